"""Workflows: chains, groups, callbacks and "run after these tasks", kept
by the database that holds the tasks (see docs/coordination.md).

::

    from offload.workflows import call, chain, group

    # Each step receives the result of the one before, ahead of its own arguments.
    chain(call(fetch, url), call(parse), call(store, "pages")).enqueue()

    # The members run in parallel; the callback receives their results, in order.
    group(call(resize, pk) for pk in photo_ids).then(call(notify, user_pk)).enqueue()

A workflow's tasks are enqueued in one transaction (the caller's, if one is
open), as ordinary tasks of their backend: every option of a task holds
(queues, priorities, retries, timeouts, concurrency and rate limits), except
a unique key, which a workflow refuses. A task with upstreams waits, in no
queue (WAITING), until the last of them ends; that upstream's own
transaction makes it READY, so it runs once, whatever crashes. By default a
failed or cancelled upstream cancels the tasks after it (``on_failure=
"stop"``); with ``on_failure="continue"`` they run all the same, and each
failed upstream's result is a ``Failed`` (its id and state).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, Task, TaskResult, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist

from offload.backend import DatabaseBackend, cancel_error_json
from offload.states import FINISHED_STATES, State
from offload.store.dependencies import CONTINUE, LIST, STOP, VALUE, Failed, Wait

__all__ = ["Call", "Chain", "Failed", "Group", "Workflow", "after", "call", "chain", "group"]

RULES = (STOP, CONTINUE)


@dataclass(frozen=True)
class Call:
    """A task bound to its arguments, not enqueued yet: a step of a workflow."""

    task: Task[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def then(self, *steps: Node | Task[..., Any]) -> Chain:
        """This call, then ``steps`` in turn."""
        return chain(self, *steps)


@dataclass(frozen=True)
class Chain:
    """Steps run one after the other, each receiving the one before's result
    (a group's: the list of its members' results)."""

    steps: tuple[Node, ...]

    def then(self, *steps: Node | Task[..., Any]) -> Chain:
        return chain(*self.steps, *steps)

    def enqueue(self, *, on_failure: str = STOP) -> Workflow:
        return _enqueue(self, on_failure)


@dataclass(frozen=True)
class Group:
    """Members run in parallel; what follows receives their results as a
    list, in the members' order (a member that is itself a group or a chain
    ending in one gives its results in its place, flattened)."""

    members: tuple[Node, ...]

    def then(self, *steps: Node | Task[..., Any]) -> Chain:
        """This group, then ``steps``: the first of them is the group's callback."""
        return chain(self, *steps)

    def enqueue(self, *, on_failure: str = STOP) -> Workflow:
        return _enqueue(self, on_failure)


Node = Call | Chain | Group


def call(task: Task[..., Any], *args: Any, **kwargs: Any) -> Call:
    """``task`` bound to ``args`` and ``kwargs``, which it receives after
    the results of the steps before it."""
    if not isinstance(task, Task):
        raise InvalidTask(f"call() takes a task made with @task, got {task!r:.100}.")
    return Call(task, tuple(args), dict(kwargs))


def _node(step: object) -> Node:
    if isinstance(step, (Call, Chain, Group)):
        return step
    if isinstance(step, Task):
        return Call(step)
    raise InvalidTask(
        f"A workflow step must be call(task, ...), a task, a chain or a group, got {step!r:.100}."
    )


def chain(*steps: Node | Task[..., Any]) -> Chain:
    """Run ``steps`` one after the other."""
    if not steps:
        raise InvalidTask("A chain needs at least one step.")
    return Chain(tuple(_node(step) for step in steps))


def group(*members: Node | Task[..., Any] | Iterable[Node | Task[..., Any]]) -> Group:
    """Run ``members`` in parallel; one iterable of them may be given instead."""
    listed: list[Any] = list(members)
    if len(listed) == 1 and not isinstance(listed[0], (Call, Chain, Group, Task)):
        listed = list(listed[0])
    if not listed:
        raise InvalidTask("A group needs at least one member.")
    return Group(tuple(_node(member) for member in listed))


@dataclass(frozen=True)
class _Planned:
    """One task of a workflow: its call, the plan indexes of its upstreams,
    and how it receives their results."""

    call: Call
    upstream: tuple[int, ...]
    results: str | None


def _plan(
    node: Node, upstream: tuple[int, ...], results: str | None, plan: list[_Planned]
) -> tuple[tuple[int, ...], str]:
    """Add ``node``'s tasks to ``plan``, after ``upstream``; return the
    indexes of its last tasks and how the next step receives their results."""
    if isinstance(node, Call):
        plan.append(_Planned(node, upstream, results if upstream else None))
        return (len(plan) - 1,), VALUE
    if isinstance(node, Group):
        ends: tuple[int, ...] = ()
        for member in node.members:
            ends += _plan(member, upstream, results, plan)[0]
        return ends, LIST
    shape = results or VALUE
    for step in node.steps:
        upstream, shape = _plan(step, upstream, results, plan)
        results = shape
    return upstream, shape


def _backend_of(plan: list[_Planned]) -> DatabaseBackend:
    aliases = {planned.call.task.backend for planned in plan}
    if len(aliases) > 1:
        raise InvalidTask(
            f"A workflow's tasks must share one backend, got {', '.join(sorted(aliases))}."
        )
    backend = _offload_backend(aliases.pop())
    for planned in plan:
        if getattr(planned.call.task, "unique_key", None) is not None:
            raise InvalidTask(
                f"Task {planned.call.task.module_path}: a workflow's tasks cannot be unique "
                "(a duplicate would stand for another workflow's task)."
            )
    return backend


def _rule(on_failure: str) -> str:
    if on_failure not in RULES:
        raise InvalidTask(f"on_failure must be one of {', '.join(RULES)}, got {on_failure!r}.")
    return on_failure


def _enqueue(node: Node, on_failure: str) -> Workflow:
    rule = _rule(on_failure)
    plan: list[_Planned] = []
    ends = _plan(node, (), None, plan)[0]
    backend = _backend_of(plan)
    with transaction.atomic(using=backend.config.database):
        results = _enqueue_plan(backend, plan)
        ids = [int(result.id) for result in results]
        waits = [
            Wait(ids[index], tuple(ids[up] for up in p.upstream), p.results, rule)
            for index, p in enumerate(plan)
            if p.upstream
        ]
        backend.store.link(ids[0], ids, waits)
    return Workflow(str(ids[0]), backend.alias, results, [results[i] for i in ends])


def _enqueue_plan(backend: DatabaseBackend, plan: list[_Planned]) -> list[TaskResult[..., Any]]:
    """Enqueue every task of ``plan``, in order: a run of calls of one task
    that receive results alike (a group's members) goes in through
    ``enqueue_many``, a multi-row INSERT, rather than a statement each."""
    results: list[TaskResult[..., Any]] = []
    start = 0
    while start < len(plan):
        first = plan[start]
        end = start + 1
        while (
            end < len(plan)
            and plan[end].call.task is first.call.task
            and bool(plan[end].results) == bool(first.results)
        ):
            end += 1
        receives = 1 if first.results else 0
        calls = [(list(p.call.args), dict(p.call.kwargs)) for p in plan[start:end]]
        if len(calls) == 1:
            results.append(backend.enqueue_step(first.call.task, *calls[0], receives))
        else:
            results += backend.enqueue_many(first.call.task, calls, receives)
        start = end
    return results


@dataclass(frozen=True)
class After:
    """What ``after()`` returns: ``enqueue`` a task to run once ``upstreams`` end."""

    upstreams: tuple[str, ...]
    on_failure: str
    pass_results: bool

    def enqueue(self, task: Task[..., Any], *args: Any, **kwargs: Any) -> TaskResult[..., Any]:
        """Enqueue ``task(*args, **kwargs)`` to run once every upstream has
        ended (at once, if they all have); with ``pass_results``, it receives
        the list of their results ahead of ``args``."""
        backend = _backend_of([_Planned(Call(task, args, kwargs), (), None)])
        results = LIST if self.pass_results else None
        with transaction.atomic(using=backend.config.database):
            result = backend.enqueue_step(task, list(args), kwargs, 1 if results else 0)
            ups = tuple(int(up) for up in self.upstreams)
            workflows = backend.store.workflows_of(ups)
            shared = workflows.pop() if len(workflows) == 1 else None
            workflow_id = int(result.id) if shared is None else shared
            backend.store.link(workflow_id, [int(result.id)], [
                Wait(int(result.id), ups, results, self.on_failure)
            ])  # fmt: skip
        return result


def after(
    *upstreams: TaskResult[..., Any] | str | int,
    on_failure: str = STOP,
    pass_results: bool = False,
) -> After:
    """Run a task after ``upstreams`` (results, or their ids), which may be
    any tasks of the same backend, running, waiting or ended::

        after(export, upload).enqueue(notify, "done")

    The task joins their workflow if they share one."""
    if not upstreams:
        raise InvalidTask("after() needs at least one task to wait for.")
    ids = []
    for upstream in upstreams:
        found = upstream.id if isinstance(upstream, TaskResult) else upstream
        if not str(found).isdigit():
            raise InvalidTask(f"after() takes task results or ids, got {upstream!r:.100}.")
        ids.append(str(found))
    return After(tuple(ids), _rule(on_failure), pass_results)


@dataclass
class Workflow:
    """A workflow's tasks, readable from any process: its id is its first
    task's id."""

    id: str
    backend: str
    # Every task, in the order the workflow was built.
    results: list[TaskResult[..., Any]]
    # The tasks nothing in the workflow waits for: its outcome.
    ends: list[TaskResult[..., Any]]

    @classmethod
    def get(cls, workflow_id: str | int, backend: str = DEFAULT_TASK_BACKEND_ALIAS) -> Workflow:
        """The workflow ``workflow_id`` of ``backend``, as stored now; raises
        ``TaskResultDoesNotExist`` if it has no task."""
        found = _offload_backend(backend)
        if not str(workflow_id).isdigit():
            raise TaskResultDoesNotExist(str(workflow_id))
        ids = found.store.workflow_tasks(int(workflow_id))
        results = found.get_results(ids)
        if not results:
            raise TaskResultDoesNotExist(str(workflow_id))
        upstreams = found.store.upstreams_of(ids)
        ends = [result for result in results if int(result.id) not in upstreams]
        return cls(str(workflow_id), backend, results, ends)

    def refresh(self) -> None:
        """Read every task's state again."""
        for result in self.results:
            result.refresh()

    def states(self) -> list[str]:
        """The stored state of each task (offload's, finer than Django's:
        WAITING, BLOCKED and READY are all READY there), DELETED for one
        pruned or deleted since."""
        found = _offload_backend(self.backend).store.states_of([int(r.id) for r in self.results])
        return [found.get(int(result.id), "DELETED") for result in self.results]

    @property
    def finished(self) -> bool:
        """Whether every task has ended."""
        return all(state in FINISHED_STATES or state == "DELETED" for state in self.states())

    @property
    def succeeded(self) -> bool:
        """Whether every task has succeeded."""
        return all(state == State.SUCCESSFUL for state in self.states())

    def cancel(self) -> int:
        """Cancel every task not yet ended (running ones are asked to stop,
        as ``cancel`` of one task does); return how many were asked."""
        found = _offload_backend(self.backend)
        open_ = [
            int(result.id)
            for result, state in zip(self.results, self.states(), strict=True)
            if state not in FINISHED_STATES and state != "DELETED"
        ]
        error = cancel_error_json("The workflow was cancelled.")
        cancelled, requested = found.store.cancel(open_, error)
        return len(cancelled) + len(requested)


def _offload_backend(alias: str) -> DatabaseBackend:
    found = task_backends[alias]
    if not isinstance(found, DatabaseBackend):
        raise InvalidTask(f"Workflows need offload's backend, not {type(found).__name__}.")
    return found
