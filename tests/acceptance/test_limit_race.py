"""Many processes enqueue tasks of one concurrency key at the same moment, the
key never used before: exactly the limit's number are let in, the rest wait."""

from offload.models import ConcurrencyKey, TaskRecord
from offload.states import State

RACERS = 20
LIMIT = 2  # tasks.call_partner's concurrency_limit


def test_racing_enqueues_let_in_exactly_the_limit(start_process, tmp_path):
    go_file = tmp_path / "go"
    racers = [
        start_process("-m", "tests.acceptance.limit_racer", str(go_file), str(index))
        for index in range(RACERS)
    ]
    for proc in racers:
        assert proc.stdout.readline().strip() == "ready"
    go_file.touch()
    outputs = [proc.communicate(timeout=120)[0] for proc in racers]
    assert all(proc.returncode == 0 for proc in racers), outputs

    statuses = sorted(TaskRecord.objects.values_list("status", flat=True))
    assert statuses == sorted([State.READY] * LIMIT + [State.BLOCKED] * (RACERS - LIMIT))
    assert sorted(int(out.split()[1]) for out in outputs) == sorted(
        TaskRecord.objects.values_list("pk", flat=True)
    )
    assert ConcurrencyKey.objects.count() == 1
