"""``manage.py offload prune``: its flags, the dry run, the summary and the errors."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from offload.states import State
from tests.helpers import override_options
from tests.integration.test_prune import DAY, left, row


def prune(*args: str, stdout: io.StringIO | None = None) -> str:
    out = stdout or io.StringIO()
    call_command("offload", "prune", *args, stdout=out)
    return out.getvalue()


def test_without_older_than_each_status_keeps_its_retention():
    kept = {row(State.SUCCESSFUL, 6 * DAY), row(State.FAILED, 20 * DAY), row(State.READY, None)}
    row(State.SUCCESSFUL, 8 * DAY)
    row(State.FAILED, 31 * DAY)
    out = prune()
    assert "Deleted 2 task(s) (SUCCESSFUL: 1, FAILED: 1" in out
    assert left() == kept


def test_older_than_and_status_choose_what_goes():
    kept = {
        row(State.SUCCESSFUL, timedelta(hours=11)),
        row(State.FAILED, timedelta(hours=13)),  # not a chosen status
        row(State.RUNNING, None, attempt=1),
    }
    row(State.SUCCESSFUL, timedelta(hours=13))
    row(State.CANCELLED, timedelta(hours=13))
    out = prune("--older-than", "12h", "--status", "successful", "--status", "CANCELLED")
    assert "Deleted 2 task(s)" in out
    assert left() == kept


def test_queue_and_task_narrow_the_prune():
    mine = row(State.SUCCESSFUL, 2 * DAY, queue_name="emails", task_path="tests.app.tasks.add")
    others = {
        row(State.SUCCESSFUL, 2 * DAY, queue_name="emails"),
        row(State.SUCCESSFUL, 2 * DAY, task_path="tests.app.tasks.add"),
    }
    prune("--older-than", "1d", "--queue", "emails", "--task", "tests.app.tasks.add")
    assert mine not in left()
    assert left() == others


def test_a_dry_run_counts_and_deletes_nothing():
    ids = {row(State.SUCCESSFUL, 3 * DAY), row(State.SUCCESSFUL, 2 * DAY)}
    ids.add(row(State.FAILED, 10 * DAY))
    out = prune("--older-than", "30m", "--dry-run")
    assert "SUCCESSFUL: 2 task(s) finished more than 30m ago, oldest finished" in out
    assert "FAILED: 1 task(s)" in out
    assert "CANCELLED: 0 task(s)" in out
    assert "Dry run: would delete 3 task(s); nothing was deleted." in out
    assert left() == ids


def test_small_batches_delete_everything_and_no_bar_without_a_terminal():
    for _ in range(7):
        row(State.SUCCESSFUL, 2 * DAY)
    out = prune("--older-than", "1d", "--batch-size", "2")
    assert "Deleted 7 task(s) (SUCCESSFUL: 7" in out
    assert "\r" not in out
    assert "[#" not in out
    assert left() == set()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar():
    for _ in range(4):
        row(State.SUCCESSFUL, 2 * DAY)
    out = prune("--older-than", "1d", "--batch-size", "2", stdout=Terminal())
    assert "\r[" + "#" * 15 + "." * 15 + "] 2/4 (SUCCESSFUL)" in out
    assert "\r[" + "#" * 30 + "] 4/4 (SUCCESSFUL)" in out
    assert out.rstrip().endswith("s.")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "soon"], "--older-than 'soon': expected an age such as 30m"),
        (["--older-than", "7"], "expected an age such as"),
        (["--older-than=-5m"], "expected an age such as"),
        (["--older-than", "0d"], "must be more than zero"),
        (["--older-than", "9" * 20 + "w"], "too long"),
        (["--older-than", "1d", "--status", "ready"], "only finished tasks are pruned"),
        (["--older-than", "1d", "--status", "RUNNING"], "RUNNING tasks are never deleted"),
        (["--older-than", "1d", "--status", "done"], "expected one of successful, failed"),
        (["--older-than", "1d", "--batch-size", "0"], "--batch-size 0: must be between 1"),
        (["--older-than", "1d", "--batch-size", "100001"], "must be between 1 and 100,000"),
        (["--older-than", "1d", "--batch-size", "x"], "invalid int value"),
        (["--older-than", "1d", "--queue", " "], "--queue ' ': must be a non-empty name"),
        (["--older-than", "1d", "--task", "x" * 101], "at most 100 characters"),
        (["--backend", "nope"], "nope"),
    ],
)
def test_bad_flags_get_a_clear_error_and_delete_nothing(args, message):
    ids = {row(State.SUCCESSFUL, 100 * DAY)}
    with pytest.raises(CommandError, match=message):
        prune(*args)
    assert left() == ids


def test_a_status_kept_forever_needs_older_than():
    ids = {row(State.CANCELLED, 100 * DAY)}
    with (
        override_options(RETAIN_CANCELLED=None),
        pytest.raises(CommandError, match=r"RETAIN_CANCELLED keep.* forever .*--older-than"),
    ):
        prune("--status", "cancelled")
    assert left() == ids


def test_the_configured_batch_size_and_rate_apply():
    for _ in range(5):
        row(State.SUCCESSFUL, 100 * DAY)
    with override_options(PRUNE_BATCH_SIZE=2, PRUNE_MAX_ROWS_PER_SECOND=1000):
        out = prune("--older-than", "1d", stdout=Terminal())
    assert "] 2/5" in out
    assert "] 4/5" in out
    assert "] 5/5" in out
    assert left() == set()


def test_verbosity_zero_prints_nothing_on_success():
    row(State.SUCCESSFUL, 2 * DAY)
    assert prune("--older-than", "1d", "-v", "0", stdout=Terminal()) == ""
    assert left() == set()
