"""Management commands as tasks: the built-in task ``offload.command_tasks.run_command``,
its restricted twin ``run_allowed_command`` (what schedules made in the admin
run), and ``offload enqueue``, which queues a task or a command from the shell.

Output written through the command's ``self.stdout`` / ``self.stderr`` (the
Django convention) is captured and stored. Output written with ``print()`` is
not: capturing ``sys.stdout`` would swallow the output of every other thread of
the worker process.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import BaseCommand, CommandError
from django.tasks import Task, TaskResult, task
from django.tasks.base import TaskContext
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend
from django.utils import timezone
from django.utils.module_loading import import_string

from offload.exceptions import ArgumentsMismatch, CommandFailed, ScheduleNotAllowed
from offload.schedules.allowed import command_allowed, options_of, refusal
from offload.suggest import did_you_mean

# Kept in the result and the error; a command that writes more keeps its tail.
MAX_OUTPUT_CHARS = 100_000


def _tail(text: str) -> str:
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    return f"[... {len(text) - MAX_OUTPUT_CHARS} characters cut ...]\n" + text[-MAX_OUTPUT_CHARS:]


def command_exists(name: str) -> bool:
    return name in get_commands()


@task
def run_command(command_name: str, *args: Any, **options: Any) -> dict[str, Any]:
    """Run ``manage.py command_name *args`` with ``options``; return its output and status.

    Ends FAILED (``CommandFailed``, with the output in the message) when the
    command raises ``CommandError`` or calls ``sys.exit`` with a non-zero status.
    """
    return _call(command_name, args, options)


@task(takes_context=True)
def run_allowed_command(
    context: TaskContext[..., Any], command_name: str, *args: Any, **options: Any
) -> dict[str, Any]:
    """``run_command``, for a command that the task's backend lists in
    ``OPTIONS["SCHEDULE_ADMIN_COMMANDS"]``; any other ends FAILED
    (``ScheduleNotAllowed``) without running.

    What schedules made in the admin enqueue: the check is made again where the
    command runs, so no stored row or crafted task path can run another command.
    """
    alias = context.task_result.backend
    if not command_allowed(options_of(alias), command_name):
        raise ScheduleNotAllowed(refusal("command", str(command_name), alias) + ".")
    return _call(command_name, args, options)


def is_command_runner(found: object) -> bool:
    """True for either task that runs a management command (under any alias or
    ``using()`` copy): a schedule made in the admin gives a command instead."""
    return isinstance(found, Task) and found.func in (run_command.func, run_allowed_command.func)


def _call(command_name: str, args: tuple[Any, ...], options: dict[str, Any]) -> dict[str, Any]:
    stdout, stderr = io.StringIO(), io.StringIO()
    status = 0
    reason = ""
    try:
        call_command(command_name, *map(str, args), stdout=stdout, stderr=stderr, **options)
    except CommandError as exc:
        status = exc.returncode or 1
        reason = f"CommandError: {exc}"
    except SystemExit as exc:
        code = exc.code
        if code not in (None, 0):
            status = code if isinstance(code, int) else 1
            reason = f"exited with status {code!r}"
    out, err = _tail(stdout.getvalue()), _tail(stderr.getvalue())
    if status:
        raise CommandFailed(
            f"Command {command_name!r} failed ({reason}), exit status {status}.\n"
            f"--- stdout ---\n{out}\n--- stderr ---\n{err}"
        )
    return {"command": command_name, "exit_status": 0, "stdout": out, "stderr": err}


def check_command_call(command_name: str, args: list[Any], options: dict[str, Any]) -> None:
    """Raise ``ArgumentsMismatch`` unless the command's own parser accepts ``args``
    and ``options`` as ``call_command`` will pass them when the task runs.

    Run at enqueue, so an unknown flag or a missing argument is refused at the
    shell instead of failing the task later. Parsing runs no command code but
    its ``add_arguments``.
    """
    app = get_commands()[command_name]
    command = app if isinstance(app, BaseCommand) else load_command_class(app, command_name)
    parser = command.create_parser("", command_name)
    dests = {action.dest: action for action in parser._actions}
    by_flag = {
        min(action.option_strings).lstrip("-").replace("-", "_"): action
        for action in parser._actions
        if action.option_strings
    }
    stealth = {*command.base_stealth_options, *command.stealth_options}
    unknown = sorted(set(options) - dests.keys() - by_flag.keys() - stealth)
    if unknown:
        raise ArgumentsMismatch(
            f"Command {command_name!r} has no option {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(dests.keys() | by_flag.keys() | stealth))}."
        )
    argv = [str(arg) for arg in args]
    for name, value in options.items():
        action = by_flag.get(name) or dests.get(name)
        # A required option given as a keyword is passed on the command line
        # by call_command too, so the parser must see it to be satisfied.
        if action is not None and action.required and action.option_strings:
            argv.append(min(action.option_strings))
            if action.nargs != 0:
                argv += (
                    [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
                )
    try:
        parser.parse_args(argv)
    except CommandError as exc:
        raise ArgumentsMismatch(f"Command {command_name!r}: {exc}") from None
    except SystemExit:  # a parser that exits rather than raising
        raise ArgumentsMismatch(
            f"Command {command_name!r} does not accept the arguments {argv!r}."
        ) from None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_delay(text: str) -> timedelta:
    """``30s``, ``5m``, ``2h``, ``1d`` or a plain number of seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"--in {text!r}: expected a delay such as 30s, 5m, 2h or 1d")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_when(at: str | None, delay: str | None, now: datetime) -> datetime | None:
    """The ``run_after`` for ``--at`` (ISO datetime) or ``--in`` (delay from now)."""
    if at and delay:
        raise ValueError("give --at or --in, not both")
    if delay:
        return now + parse_delay(delay)
    if not at:
        return None
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise ValueError(
            f"--at {at!r}: expected an ISO datetime such as 2030-01-31T09:00 or "
            "2030-01-31T09:00+01:00"
        ) from None
    if when.tzinfo is None:
        when = timezone.make_aware(when)  # in TIME_ZONE, as Django reads naive times
    return when


def parse_json(flag: str, text: str | None, kind: type) -> Any:
    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag}: not valid JSON ({exc})") from None
    if not isinstance(value, kind):
        raise ValueError(f"{flag} must be a JSON {'list' if kind is list else 'object'}")
    return value


@dataclass(frozen=True)
class EnqueueRequest:
    name: str  # a task's import path or a management command's name
    args: list[Any] = field(default_factory=list)  # a command's positional arguments
    json_args: str | None = None
    json_kwargs: str | None = None
    queue: str | None = None
    priority: int | None = None
    at: str | None = None
    delay: str | None = None
    backend: str = "default"


def enqueue_by_name(request: EnqueueRequest) -> TaskResult[..., Any]:
    """Enqueue a task (by import path) or a management command (by name).

    Raises ``ValueError`` with a message for the person at the shell.
    """
    args = parse_json("--args", request.json_args, list)
    kwargs = parse_json("--kwargs", request.json_kwargs, dict)
    run_after = parse_when(request.at, request.delay, timezone.now())
    found: Task[..., Any]
    if "." in request.name:
        try:
            target = import_string(request.name)
        except ImportError as exc:
            raise ValueError(f"{request.name!r} cannot be imported: {exc}") from None
        if not isinstance(target, Task):
            raise ValueError(
                f"{request.name!r} is not a django.tasks Task (decorate it with @task)"
            )
        if request.args:
            raise ValueError(
                "positional arguments are for management commands; give a task's "
                "arguments with --args and --kwargs (JSON)"
            )
        found = target
    else:
        if not command_exists(request.name):
            hint = did_you_mean(request.name, get_commands())
            raise ValueError(
                f"{request.name!r} is neither a task path (myapp.tasks.name) nor a "
                f"management command.{hint}"
            )
        try:
            check_command_call(request.name, [*request.args, *args], kwargs)
        except ArgumentsMismatch as exc:
            raise ValueError(str(exc)) from None
        found = run_command
        args = [request.name, *request.args, *args]
    changes: dict[str, Any] = {"backend": request.backend}
    if request.queue:
        changes["queue_name"] = request.queue
    if request.priority is not None:
        changes["priority"] = request.priority
    if run_after is not None:
        changes["run_after"] = run_after
    try:
        return found.using(**changes).enqueue(*args, **kwargs)
    except (InvalidTask, InvalidTaskBackend) as exc:
        raise ValueError(str(exc)) from exc
