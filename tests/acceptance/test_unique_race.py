"""Many processes enqueue the same unique key at the same moment: one task is
left, and every process gets that task's result."""

from offload.models import TaskRecord

RACERS = 20


def test_racing_processes_leave_one_task(start_process, tmp_path):
    go_file = tmp_path / "go"
    racers = [
        start_process("-m", "tests.acceptance.unique_racer", str(go_file), str(index))
        for index in range(RACERS)
    ]
    for proc in racers:
        assert proc.stdout.readline().strip() == "ready"
    go_file.touch()
    outputs = [proc.communicate(timeout=120)[0] for proc in racers]
    assert all(proc.returncode == 0 for proc in racers), outputs

    (task,) = TaskRecord.objects.all()
    assert task.unique_key == "customer-42"
    assert outputs == [f"id {task.pk}\n"] * RACERS
