"""The golden SQL: the statements that matter most, as each engine gets them.

``tests/sql/<statement>.<engine>.sql`` holds, under a header that says why the
statement is written that way, each statement the store sends for a fixed set
of arguments. ``tests/unit/test_sql_golden.py`` renders them without a server
and compares; ``tests/integration/test_sql_golden.py`` compares them with what
the store really executes. ``OFFLOAD_UPDATE_GOLDEN=1`` rewrites the files.

In the files a statement is laid out on several lines for reading: a line break
and indent stand where the statement has one space (:func:`layout`), and
:func:`flatten` gives the exact text back.
"""

import re
from collections.abc import Callable
from pathlib import Path

from offload.schedules.firing import fire_insert
from offload.states import State
from offload.store.base import Fence, fenced_update
from offload.store.claim import claim_read, claim_statement, claim_write
from offload.store.dependencies import (
    decrement_sql,
    dependents_sql,
    promote_sql,
    ready_sql,
    recount_sql,
    stop_sql,
    upstream_values_sql,
)
from offload.store.outcomes import complete_assignments, complete_many_statement
from offload.store.prune import (
    PruneFilter,
    delete_read,
    dependency_batch,
    fire_batch,
    one_statement,
    task_batch,
)
from offload.store.rescue import attempt_lost_statement, expired_select
from offload.store.rows import ALL_QUEUES, QueueFilter
from offload.store.vendor import Vendor, vendor_named

SQL_DIR = Path(__file__).resolve().parent / "sql"
ENGINES = ("postgresql", "sqlite", "mysql")
STATEMENTS = ("claim", "complete", "settle", "rescue", "fire", "prune")

# The arguments every rendering uses; the integration test calls the store
# with the same ones.
WORKER = "worker-1"
LIMIT = 10
LEASE = 60.0
DONE = ((1, 1, "1", 0.5), (2, 1, "2", 0.25))  # complete_many's (id, attempt, value, ran)
READ = ((1, 0), (2, 0))  # MariaDB's claim: rows read, (id, attempt)
ONLY = QueueFilter(only=("default", "emails"))
PRUNED = PruneFilter(queue="emails", task_path="tests.app.tasks.noop")  # offload prune's filters

WHY: dict[str, str] = {
    "claim": """\
The claim: a worker takes up to LIMIT due READY tasks, in claim order
(priority DESC, available_at, id, which the claim index serves, so the read
stops after LIMIT rows however long the backlog), and each becomes RUNNING
with attempt + 1 (its fencing token), a lease on the database's clock,
claimed_at and the worker appended to worker_ids. Paused queues are left out
in the statement itself, so a pause reaches every worker with no message.
started_at and last_attempted_at are not written here: a claimed task may
wait in its worker's buffer, and they say when its code began (the outcome
writes them).""",
    "complete": """\
The success write, fenced: a row is written only while it holds the
worker's attempt and is RUNNING, so a worker presumed dead (its task
rescued and claimed again) writes nothing over the newer attempt. The batch
form records many outcomes in one statement: one commit per batch, not per
task, each row fenced by its own attempt. The same write records when the
attempt's code began (started_at the first time, last_attempted_at each
time), not a statement of its own: the worker sends the seconds its code ran
and the database subtracts them from its clock, so the time is still the
database's.""",
    "settle": """\
What the final state of a workflow task adds, in the same transaction as
its outcome, when the claim said it has dependents (a task outside a
workflow runs none of it). Each waiting dependent's count of unended
upstreams is lowered by an UPDATE of its row, whose lock makes two upstreams
ending at once count one after the other; the dependents at zero become
READY, or BLOCKED where a concurrency or rate key's gate must let them in.
A failed upstream cancels a dependent that stops on failure, and its own
dependents in turn. The rescuer recounts waiting tasks against their
upstreams' states, a compare-and-set on the count it read. A claimed task
that receives upstream results reads them, in order, in one read per batch.""",
    "rescue": """\
The rescue: RUNNING rows whose lease expired on the database's clock,
oldest first; the status is a constant, as the partial index of running
leases states it. Each attempt is then ended in one fenced write that also
requires the lease to have expired, so a heartbeat that renewed it just now
wins. The row's own max_attempts decides, in SQL, between READY (due after
the delay; BLOCKED for a task with a rate key, which the rate promoter lets
in) and FAILED.""",
    "fire": """\
A schedule's tick: this row is inserted in the same transaction as the
task's enqueue (which announces the task at commit). The unique
(schedule_id, fire_at) key makes a second scheduler's insert fail, and its
transaction, task included, rolls back: each tick fires once however many
schedulers run. So a plain INSERT, no skip on conflict; quoted and returning
the id as Django's ORM writes it.""",
    "prune": """\
The pruner's batch: the ids of the oldest finished rows of one status
(a parameter, always SUCCESSFUL, FAILED or CANCELLED) that finished before
the cutoff, through the finished_at index and stopping after LIMIT rows,
then the DELETE of those ids, which tests the status and the cutoff again
on each row: a task an operator retried in between is kept. READY and
RUNNING rows never match, so a claim never waits for a prune; each batch
is its own short transaction. Fire records go the same way, oldest ids
first, once their schedule has moved past their tick: until then the record
is what stops the tick from firing twice.""",
}

# What is particular to one engine's shape of the statement.
ENGINE_WHY: dict[tuple[str, str], str] = {
    ("claim", "postgresql"): """\
PostgreSQL: a MATERIALIZED CTE, so the LIMIT is applied once (inlined as a
semi-join the planner may re-run it and claim more rows), picks FOR UPDATE
SKIP LOCKED (concurrent claimers take disjoint rows and never wait); one
UPDATE ... FROM claims them and RETURNING gives the worker its rows.""",
    ("claim", "sqlite"): """\
SQLite: one UPDATE ... WHERE id IN (pick) RETURNING. It takes the
database's write lock before it reads, so it is its own immediate
transaction: no other writer claims in between, no BUSY on an upgrade.
Async claims name the partial index (INDEXED BY): SQLite keeps no
statistics for it and would read the whole backlog through a wider one.""",
    ("claim", "mysql"): """\
MariaDB has no UPDATE ... RETURNING and no LIMIT in an IN subquery, and a
locking read is slow past InnoDB's not yet purged index entries. So: a plain
read of the rows and the clock, then one UPDATE of exactly those rows, each
fenced by the attempt it was read with and READY (a row another worker took
in between is left alone), writing the clock that was read.""",
    ("complete", "postgresql"): """\
PostgreSQL: the batch comes as four arrays (four parameters whatever its
size), joined to the table and fenced row by row; RETURNING says which rows
were written.""",
    ("complete", "sqlite"): """\
SQLite: the batch is a VALUES list joined to the table by id (UPDATE ...
FROM), each row found by its rowid: a CASE on the id per column would cost
each row a search of the whole batch (three CASEs made a batch of 200 three
times as slow). The seconds run go through printf, as a small REAL would
print as 1.0e-05, which the time modifier does not read. RETURNING says which
rows were written.""",
    ("complete", "mysql"): """\
MariaDB: a CASE on the id picks each row's value and seconds run; its SET
terms apply left to right, each seeing those before, so started_at takes the
last_attempted_at just written and the start is computed once. No
RETURNING: only when fewer rows were written than sent are the written ones
read back (a row holds this attempt and SUCCESSFUL only if this worker
wrote it).""",
    ("prune", "postgresql"): """\
PostgreSQL: one statement. The MATERIALIZED CTE applies the LIMIT once;
SKIP LOCKED leaves a row another transaction holds (an operator's action)
for the next batch instead of waiting for it.""",
    ("prune", "sqlite"): """\
SQLite: one DELETE ... WHERE id IN (pick), so one short write transaction.""",
    ("prune", "mysql"): """\
MariaDB has no LIMIT in an IN subquery: a plain read of the ids (no locks),
then a DELETE of exactly those rows by primary key, which locks only them.""",
}


def _claim(vendor: Vendor) -> list[tuple[str, str]]:
    if vendor.claim is None:
        return [
            ("read (all queues, any kind)", claim_read(vendor, ALL_QUEUES, None, LIMIT)[0]),
            ("read (two queues, sync)", claim_read(vendor, ONLY, False, LIMIT)[0]),
            ("write (the two rows read)", claim_write(vendor, WORKER, LEASE, "now", READ)[0]),
        ]
    return [
        (
            "all queues, any kind",
            claim_statement(vendor, WORKER, ALL_QUEUES, None, LIMIT, LEASE)[0],
        ),
        ("two queues, sync", claim_statement(vendor, WORKER, ONLY, False, LIMIT, LEASE)[0]),
        ("async", claim_statement(vendor, WORKER, ALL_QUEUES, True, LIMIT, LEASE)[0]),
    ]


def _complete(vendor: Vendor) -> list[tuple[str, str]]:
    found = [
        ("one", fenced_update(complete_assignments(vendor))),
        ("batch of two", complete_many_statement(vendor, DONE)[0]),
    ]
    if not vendor.update_returning:
        fence, _ = Fence.each([(row[0], row[1]) for row in DONE])
        found.append(("batch read-back", f"SELECT id FROM offload_task WHERE {fence}"))
    return found


def _settle(vendor: Vendor) -> list[tuple[str, str]]:
    # What the end of a workflow task with dependents adds to its outcome's
    # transaction (store.dependencies), for two upstreams ended at once.
    return [
        ("waiting dependents of two ended tasks", dependents_sql(2)),
        ("one dependent's count lowered", decrement_sql()),
        ("which of two dependents are due", ready_sql(2)),
        ("two dependents made ready", promote_sql(2)),
        ("one dependent cancelled by a failed upstream",
         stop_sql(vendor.now, vendor.append_json.format(col="errors"))),
        ("the rescuer's recount", recount_sql()),
        ("upstream results of two claimed tasks", upstream_values_sql(2)),
    ]  # fmt: skip


def _rescue(vendor: Vendor) -> list[tuple[str, str]]:
    return [
        ("expired leases", expired_select(vendor)),
        ("attempt lost", attempt_lost_statement(vendor, 1, 1, "{}", 1.0, expired_only=True)[0]),
    ]


def _fire(vendor: Vendor) -> list[tuple[str, str]]:
    return [("fire row", fire_insert(vendor))]


def _prune(vendor: Vendor) -> list[tuple[str, str]]:
    batches = [
        ("finished tasks", task_batch(State.SUCCESSFUL, "cutoff", LIMIT)),
        ("finished tasks of one queue and task", task_batch(State.FAILED, "c", LIMIT, PRUNED)),
        ("fire records", fire_batch("cutoff", LIMIT)),
        ("workflow links of deleted tasks", dependency_batch(LIMIT)),
    ]
    found = []
    for label, batch in batches:
        single = one_statement(vendor, batch)
        if single is not None:
            found.append((label, single[0]))
            continue
        found.append((f"read ({label})", batch.pick))
        found.append((f"delete ({label}, two rows read)", delete_read(batch, [1, 2])[0]))
    return found


RENDER: dict[str, Callable[[Vendor], list[tuple[str, str]]]] = {
    "claim": _claim,
    "complete": _complete,
    "settle": _settle,
    "rescue": _rescue,
    "fire": _fire,
    "prune": _prune,
}

_CLAUSES = (
    "SELECT", "FROM", "WHERE", "ORDER BY", "LIMIT", "RETURNING", "UPDATE", "SET", "VALUES",
    "DELETE", "USING",
)  # fmt: skip
# A parenthesised SELECT longer than this gets its clauses on lines of their own.
_INLINE = 80


def _groups(sql: str) -> dict[int, int]:
    """Where each parenthesis outside quotes closes, by where it opens."""
    ends: dict[int, int] = {}
    opened: list[int] = []
    quoted = False
    for i, char in enumerate(sql):
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            opened.append(i)
        elif not quoted and char == ")":
            ends[opened.pop()] = i
    return ends


def layout(sql: str) -> str:
    """``sql`` on several lines for reading: each line break (and its indent)
    stands where the statement has exactly one space, so :func:`flatten` gives
    the exact statement back. Clauses start lines, as do the ANDs of a WHERE
    and the assignments of a SET, at the top level and in long subqueries."""
    if "\n" in sql or "  " in sql:
        raise ValueError("A golden statement must be on one line with single spaces.")
    ends = _groups(sql)
    out: list[str] = []
    stack: list[bool] = []  # per open parenthesis: whether its clauses are laid out
    quoted, in_set = False, False
    for i, char in enumerate(sql):
        if char == "'":
            quoted = not quoted
        if quoted or char not in " (),":
            out.append(char)
            continue
        if char == "(":
            long_select = sql.startswith("SELECT", i + 1) and ends[i] - i > _INLINE
            stack.append(long_select)
        elif char == ")":
            stack.pop()
        laid_out = all(stack)
        if char != " " or not laid_out:
            out.append(char)
            continue
        rest, depth = sql[i + 1 :], "    " * len(stack)
        clause = next((c for c in _CLAUSES if rest.startswith(c + " ")), None)
        if clause == "UPDATE" and sql[:i].endswith(" FOR"):
            clause = None
        if clause == "FROM" and sql[:i].endswith("DELETE"):
            clause = None
        if clause is not None:
            in_set = clause == "SET"
            out.append("\n" + depth)
        elif rest.startswith(("AND ", "OR ")):
            out.append("\n" + depth + "  ")
        elif in_set and sql[i - 1] == ",":
            out.append("\n" + depth + "    ")
        else:
            out.append(char)
    return "".join(out)


def flatten(text: str) -> str:
    """The exact statement back from its :func:`layout`."""
    return re.sub(r"\n *", " ", text)


def path(statement: str, engine: str) -> Path:
    return SQL_DIR / f"{statement}.{engine}.sql"


def render_file(statement: str, engine: str) -> str:
    """The whole golden file of ``statement`` on ``engine``."""
    lines = [f"-- {statement}.{engine}.sql: rendered by tests/golden.py; do not edit by hand."]
    why = [WHY[statement], ENGINE_WHY.get((statement, engine), "")]
    for paragraph in filter(None, why):
        lines += ["--", *(f"-- {line}".rstrip() for line in paragraph.splitlines())]
    lines += [
        "--",
        "-- As passed to Django's cursor: %s is a parameter, %% a literal %. Laid out on",
        "-- lines for reading; each line break stands for one space of the real text.",
        "-- Rewrite with OFFLOAD_UPDATE_GOLDEN=1 (see tests/unit/test_sql_golden.py).",
    ]
    for label, sql in RENDER[statement](vendor_named(engine)):
        lines += ["", f"-- {label}", layout(sql) + ";"]
    return "\n".join(lines) + "\n"


def read_statements(statement: str, engine: str) -> dict[str, str]:
    """The statements of a golden file by label, each flattened to its exact text."""
    found: dict[str, str] = {}
    for block in path(statement, engine).read_text().split("\n\n")[1:]:
        label, _, body = block.partition("\n")
        found[label.removeprefix("-- ")] = flatten(body.rstrip().removesuffix(";"))
    return found
