"""Task lines between a task process and its supervisor."""

import select

from offload.worker.protocol import TaskEvent, task_line, writes


def test_a_task_line_reads_back_as_its_event():
    for event in [
        TaskEvent("start", 12, 3, 1.5),
        TaskEvent("end", 12, 3),
        TaskEvent("kill", 1, 1, 0.0),
    ]:
        assert task_line(event.kind, event.task_id, event.attempt, event.seconds) == event.line()
        assert TaskEvent.parse(event.line().rstrip(b"\n")) == event


def test_lines_are_joined_into_writes_of_whole_lines_within_pipe_buf():
    lines = [task_line("end", n, 1) for n in range(10_000_000, 10_000_400)]
    chunks = list(writes(lines))
    assert len(chunks) > 1
    assert all(len(chunk) <= select.PIPE_BUF and chunk.endswith(b"\n") for chunk in chunks)
    assert b"".join(chunks) == b"".join(lines)
    assert list(writes([])) == []
