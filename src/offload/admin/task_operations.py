"""The four operations on tasks (retry, cancel, run again as a copy, delete), each
on a list of ids fixed before it starts, on the database of the backend the
request chose (``?backend=``, see ``backend_choice``).

Each batch runs in one transaction that first locks the rows it may change,
acts on exactly those through ``offload.store.operations``, and logs one admin
``LogEntry`` per row changed. A task that changed state since the operator
looked is left alone, and the messages say how many were skipped and why.
"""

from collections.abc import Callable

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest

from offload.admin import audit
from offload.admin.backend_choice import chosen_store
from offload.admin.options import database_of
from offload.backend import cancel_error_json
from offload.models import TaskRecord
from offload.states import State
from offload.store import TaskStore, operations

Rows = list[tuple[int, str]]
# An operation: (request, ids) -> how many tasks it changed.
Operation = Callable[[HttpRequest, list[int]], int]


def _rows(store: TaskStore, ids: list[int], *, lock: bool, **conditions: object) -> Rows:
    """(id, "#id path") of the tasks among ``ids`` that meet ``conditions``; on
    another database than the admin's, the label names it (ids repeat across them)."""
    queryset = TaskRecord.objects.using(store.alias).filter(pk__in=ids, **conditions)
    if lock:
        queryset = queryset.select_for_update()
    found = queryset.order_by("pk").values_list("pk", "task_path")
    where = "" if store.alias == database_of(None) else f" (database {store.alias})"
    return [(pk, f"#{pk} {path}{where}") for pk, path in found]


def _report(request: HttpRequest, done: int, asked: int, verb: str, why: str) -> None:
    if done:
        messages.success(request, f"{verb.capitalize()} {done} task(s).")
    if asked - done:
        messages.warning(request, f"{asked - done} task(s) not {verb}: it {why}.")


def retry(request: HttpRequest, ids: list[int]) -> int:
    store = chosen_store(request)
    done = 0
    for batch in operations.batches(ids):
        with transaction.atomic(using=store.alias):
            rows = _rows(store, batch, lock=True, status__in=operations.RETRYABLE)
            done += operations.retry(store, [pk for pk, _ in rows])
            audit.log_rows(request, TaskRecord, rows, audit.CHANGE, "Retried.")
    _report(request, done, len(ids), "retried", "was not failed or cancelled")
    return done


def cancel(request: HttpRequest, ids: list[int]) -> int:
    store = chosen_store(request)
    who = request.user.get_username()
    error = cancel_error_json(f"Cancelled from the admin by {who}.")
    cancelled: Rows = []
    requested: Rows = []
    for batch in operations.batches(ids):
        with transaction.atomic(using=store.alias):
            labels = dict(_rows(store, batch, lock=False))
            now, asked = store.cancel(list(labels), error)
            cancelled += [(pk, labels[pk]) for pk in now]
            requested += [(pk, labels[pk]) for pk in asked]
    audit.log_rows(request, TaskRecord, cancelled, audit.CHANGE, "Cancelled.")
    audit.log_rows(
        request, TaskRecord, requested, audit.CHANGE, "Asked to stop (cancel requested)."
    )
    if cancelled:
        messages.success(request, f"Cancelled {len(cancelled)} ready task(s).")
    if requested:
        messages.info(
            request, f"Asked {len(requested)} running task(s) to stop; their worker stops them."
        )
    skipped = len(ids) - len(cancelled) - len(requested)
    if skipped:
        messages.warning(request, f"{skipped} task(s) had already finished; left alone.")
    return len(cancelled) + len(requested)


def copy(request: HttpRequest, ids: list[int]) -> int:
    store = chosen_store(request)
    new: list[int] = []
    for batch in operations.batches(ids):
        with transaction.atomic(using=store.alias):
            # Locked, so none is deleted between this read and the copy:
            # run_again copies the same rows, in the same (id) order.
            originals = _rows(store, batch, lock=True)
            copies = operations.run_again(store, [pk for pk, _ in originals])
            if len(copies) != len(originals):  # cannot happen under the lock; stay correct
                originals = [(0, "#0 (unknown)")] * len(copies)
            pairs = list(zip(copies, originals, strict=True))
            logged = [
                (copy_id, f"#{copy_id} {label.split(' ', 1)[1]}") for copy_id, (_, label) in pairs
            ]
            notes = {copy_id: f"Run again as a copy of task #{pk}." for copy_id, (pk, _) in pairs}
            audit.log_rows(request, TaskRecord, logged, audit.ADDITION, notes)
            new += copies
    if new:
        span = f"#{new[0]}" + (f" to #{new[-1]}" if len(new) > 1 else "")
        messages.success(request, f"Enqueued {len(new)} new copy(ies): {span}.")
    return len(new)


def delete(request: HttpRequest, ids: list[int]) -> int:
    store = chosen_store(request)
    done = 0
    for batch in operations.batches(ids):
        with transaction.atomic(using=store.alias):
            rows = _rows(store, batch, lock=True, status__in=DELETABLE)
            done += operations.delete(store, [pk for pk, _ in rows])
            audit.log_rows(request, TaskRecord, rows, audit.DELETION, "Deleted.")
    _report(request, done, len(ids), "deleted", "was running (cancel it first)")
    return done


# RUNNING tasks are not deleted: cancel them first.
DELETABLE = [state for state in State.values if state != State.RUNNING]

# Operation name -> (operation, the permission it needs on TaskRecord).
OPERATIONS: dict[str, tuple[Operation, str]] = {
    "retry": (retry, "change"),
    "cancel": (cancel, "change"),
    "copy": (copy, "change"),
    "delete": (delete, "delete"),
}
