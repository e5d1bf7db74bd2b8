"""Reading a stored failure: message, command outcome, and the traceback split
so the task's frames come first without losing one."""

from offload.admin import failure
from offload.admin.display import message_cell, task_lead
from offload.failures import exception_record

PKG = "/venv/lib/python3.13/site-packages/offload/"


def _frame(path: str, line: int = 1, func: str = "f") -> str:
    return f'  File "{path}", line {line}, in {func}\n    source()\n    ^^^^^^^^\n'


def test_the_message_is_the_last_exceptions_text_under_its_printed_name():
    text = (
        "Traceback (most recent call last):\n"
        + _frame("/app/a.py")
        + "KeyError: 'x'\n\nDuring handling of the above exception, another exception occurred:\n\n"
        + "Traceback (most recent call last):\n"
        + _frame("/app/b.py")
        + "billing.Refused: card refused\nsecond line\n"
    )
    found = failure.exception_text(text, "billing.Refused")
    assert found == "billing.Refused: card refused\nsecond line"
    assert failure.message_of(found, "billing.Refused") == "card refused\nsecond line"
    # builtins print without their module; an unknown name falls back to after the frames.
    assert failure.exception_text("ValueError: v\n", "builtins.ValueError") == "ValueError: v"
    assert (
        failure.exception_text(text, "other.Name") == "billing.Refused: card refused\nsecond line"
    )
    assert failure.message_of("x.Gone", "x.Gone") == ""


def test_a_real_exceptions_record_reads_back():
    try:
        raise ValueError("bad input\nwith detail")
    except ValueError as exc:
        record = exception_record(exc, attempt=1, worker_id="w")
    text = failure.exception_text(record["traceback"], record["exception_class_path"])
    assert failure.message_of(text, "builtins.ValueError") == "bad input\nwith detail"


def test_offloads_frames_move_below_and_none_is_lost():
    text = (
        "Traceback (most recent call last):\n"
        + _frame(PKG + "worker/runner.py", 275, "run")
        + _frame(PKG + "task.py", 139, "call")
        + "    [Previous line repeated 2 more times]\n"
        + _frame("/app/billing/tasks.py", 42, "charge")
        + _frame(PKG + "progress.py", 9, "report")
        + _frame("/app/billing/rules.py", 7, "check")
        + "ValueError: negative\n"
    )
    split = failure.split_traceback(text, package_dir="/nowhere/")
    assert split.offload_frame_count == 3
    own = split.own.split("\n")
    assert own[0] == "Traceback (most recent call last):"
    assert own[1] == "  [2 frame(s) of offload's own: listed below]"
    assert own[2] == '  File "/app/billing/tasks.py", line 42, in charge'
    assert "ValueError: negative" in split.own
    assert "offload/" not in split.own
    assert "[Previous line repeated 2 more times]" in split.offload_frames
    # Every line is in one part or the other.
    markers = [line for line in own if "frame(s) of offload's own" in line]
    kept = [line for line in own if line not in markers]
    assert sorted(kept + split.offload_frames.split("\n")) == sorted(text.split("\n"))


def test_the_local_package_directory_counts_as_offloads():
    import offload

    here = offload.__file__
    assert failure.is_offload_frame(here)
    assert not failure.is_offload_frame("/app/offload_helpers/x.py")


def test_a_traceback_without_frames_is_kept_whole():
    split = failure.split_traceback("offload.exceptions.WorkerCrashed: process died\n")
    assert split.own == "offload.exceptions.WorkerCrashed: process died\n"
    assert split.offload_frame_count == 0


def test_a_failed_commands_status_and_output_tails():
    out = "\n".join(f"line {n}" for n in range(100))
    message = (
        "Command 'broken' failed (exited with status 3), exit status 3.\n"
        f"--- stdout ---\n{out}\n--- stderr ---\noops\n"
    )
    text = "Traceback (most recent call last):\n" + _frame(PKG + "command_tasks.py")
    text += f"offload.exceptions.CommandFailed: {message}"
    outcome = failure.command_outcome("x", failure.COMMAND_FAILED, text, None)
    assert outcome is not None
    assert outcome.exit_status == 3
    assert outcome.stdout_tail.split("\n") == [f"line {n}" for n in range(80, 100)]
    assert outcome.stderr_tail == "oops"
    done = failure.command_outcome(
        "offload.command_tasks.run_command",
        "",
        "",
        {"exit_status": 0, "stdout": "hi\n", "stderr": ""},
    )
    assert done == failure.CommandOutcome(0, "hi", "")
    assert failure.command_outcome("myapp.tasks.x", "", "", {"exit_status": 0}) is None


def test_the_list_message_comes_from_the_start_or_the_end_of_a_long_traceback():
    frames = _frame("/app/a.py") * 3
    head = "Traceback (most recent call last):\n" + frames + "x.Err: first line\nmore"
    assert failure.listed_message("x.Err", head, "", head_limit=10_000) == "first line"
    long_head = head + "y" * 100
    assert failure.listed_message("x.Err", long_head, "yyyy\n", head_limit=len(long_head)) == (
        "first line"
    )
    assert failure.listed_message("x.Err", "a" * 50, "tail\nlast words", head_limit=50) == (
        "… last words"
    )


def test_what_is_shown_is_masked_escaped_and_bounded():
    error = {
        "exception_class_path": "builtins.ValueError",
        "traceback": f"ValueError: <script>x</script> password=hunter2 {'z' * 5000}\n",
    }
    lead = task_lead(
        failure_html := message_cell("builtins.ValueError", error["traceback"], "", 10_000),
        "FAILED",
        "t",
        [error],
        None,
    )
    for html in (lead, failure_html):
        assert "hunter2" not in html
        assert "<script>" not in html
    assert len(failure_html) < 500
    assert "more characters" in lead
