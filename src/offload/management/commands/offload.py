"""``manage.py offload <subcommand>``: parses flags and hands off to offload's modules."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections
from django.tasks import task_backends
from django.utils import autoreload, timezone

from offload.exceptions import OffloadError
from offload.management.errors import command_error
from offload.management.global_options import add_global_options
from offload.management.prune import add_prune_parser, run_prune
from offload.operations.cli import SUBCOMMANDS as OPERATOR_SUBCOMMANDS
from offload.operations.cli import add_parsers as operator_parsers
from offload.operations.cli import run as run_operator_command
from offload.worker import logs, reloading
from offload.worker.supervisor import Supervisor
from offload.worker_options import SETTINGS, WorkerSettings, resolve_all

if TYPE_CHECKING:
    from django.tasks import TaskResult


class Command(BaseCommand):
    help = "Run and inspect offload's background task workers; prune finished tasks."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        worker = sub.add_parser(
            "worker",
            help="Run tasks from the database queue.",
            description=(
                "Run a supervisor and its task processes. Each setting can also come "
                "from the environment variable shown, or from OPTIONS['WORKER'] of the "
                "backend; a flag wins over both."
            ),
        )
        for setting in SETTINGS:
            help_text = f"{setting.help} [env {setting.env}]"
            if setting.field in ("burst",):
                worker.add_argument(
                    setting.flag, dest=setting.field, action="store_true", default=None,
                    help=help_text,
                )  # fmt: skip
            elif setting.field in ("reload", "scheduler"):
                worker.add_argument(
                    setting.flag, dest=setting.field, action=argparse.BooleanOptionalAction,
                    default=None, help=help_text,
                )  # fmt: skip
            elif setting.field == "verbosity":
                # Also accepted after the subcommand, where Django's own -v is not.
                worker.add_argument(
                    "-v", setting.flag, dest="worker_verbosity", default=None, help=help_text,
                )  # fmt: skip
            else:
                worker.add_argument(setting.flag, dest=setting.field, default=None, help=help_text)
        worker.add_argument(
            "--all-backends", action="store_true",
            help="serve every offload backend in TASKS, as --backend with all their aliases",
        )  # fmt: skip

        enqueue = sub.add_parser(
            "enqueue",
            help="Put a task or a management command on the queue; print its id.",
            description=(
                "NAME is a task's import path (myapp.tasks.send_report) or a management "
                "command (clearsessions). ARGS are the command's arguments; a task's "
                "arguments go in --args / --kwargs as JSON. Flags may come before or after "
                "NAME; anything after -- goes to the command as it is. The new task's id is "
                "the last word printed."
            ),
        )
        _enqueue_flags(enqueue)
        add_global_options(enqueue)
        enqueue.add_argument("name", metavar="NAME")
        enqueue.add_argument("command_args", metavar="ARGS", nargs=argparse.REMAINDER)

        listing = sub.add_parser("schedules", help="List schedules and their next fire times.")
        listing.add_argument("--backend", default="default", help="TASKS alias (default: default)")
        listing.add_argument("--count", type=int, default=5, help="fire times to show (5)")
        listing.add_argument(
            "--sync", action="store_true", help="copy schedules from code to the table first"
        )
        add_global_options(listing)
        add_global_options(add_prune_parser(sub))
        add_global_options(worker, verbosity=False)
        for operator in operator_parsers(sub):
            add_global_options(operator)

    def execute(self, *args: Any, **options: Any) -> str | None:
        # Probes must answer when the database does not, and quickly: Django's
        # system checks would open a connection first and take their time.
        if options.get("subcommand") in OPERATOR_SUBCOMMANDS:
            options["skip_checks"] = True
        return super().execute(*args, **options)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["subcommand"] == "worker":
                self.worker(options)
            elif options["subcommand"] == "enqueue":
                self.enqueue(options)
            elif options["subcommand"] == "schedules":
                self.schedules(options)
            elif options["subcommand"] in OPERATOR_SUBCOMMANDS:
                code = run_operator_command(options, self.stdout)
                if code:
                    raise SystemExit(code)
            elif options["subcommand"] == "prune":
                run_prune(options, self.stdout)
        except DatabaseError as exc:
            # Before migrate, every subcommand says the same thing.
            raise command_error(exc, options.get("backend") or "default") from exc

    def enqueue(self, options: dict[str, Any]) -> None:
        from offload.command_tasks import EnqueueRequest, enqueue_by_name

        # Flags after NAME are read here: argparse gives everything after NAME
        # to ARGS, so that a command's own options pass through.
        rest: list[str] = options["command_args"]
        verbatim: list[str] = []
        if "--" in rest:
            cut = rest.index("--")
            rest, verbatim = rest[:cut], rest[cut + 1 :]
        late = argparse.ArgumentParser(add_help=False, exit_on_error=False)
        _enqueue_flags(late, default=argparse.SUPPRESS)
        try:
            parsed, command_args = late.parse_known_args(rest)
        except argparse.ArgumentError as exc:
            raise CommandError(str(exc)) from exc
        options.update(vars(parsed))
        _check_enqueue_flags(options)
        request = EnqueueRequest(
            name=options["name"], args=[*command_args, *verbatim],
            json_args=options["json_args"], json_kwargs=options["json_kwargs"],
            queue=options["queue"], priority=options["priority"], at=options["at"],
            delay=options["delay"], backend=options["backend"],
        )  # fmt: skip
        try:
            result = enqueue_by_name(request)
        except (ValueError, OffloadError) as exc:
            raise CommandError(str(exc)) from exc
        except DatabaseError as exc:
            raise command_error(exc, request.backend) from exc
        self.stdout.write(_enqueued_line(request.name, result))

    def schedules(self, options: dict[str, Any]) -> None:
        from offload.schedules.listing import show
        from offload.schedules.sync import sync
        from offload.worker.config import get_backend

        if options["count"] < 0:
            raise CommandError("--count must be 0 or more.")
        try:
            backend = get_backend(options["backend"])
            if options["sync"]:
                sync(backend)
            text = show(backend, options["count"])
        except (OffloadError, ImproperlyConfigured, DatabaseError) as exc:
            raise command_error(exc, options["backend"]) from exc
        self.stdout.write(text)

    def worker(self, options: dict[str, Any]) -> None:
        flags = dict(options, verbosity=options.get("worker_verbosity"))
        if options["all_backends"]:
            if options["backend"] is not None:
                raise CommandError("--all-backends and --backend: give one or the other.")
            flags["backend"] = ",".join(_offload_aliases())
        try:
            every = resolve_all(
                flags,
                os.environ,
                lambda alias: _worker_options(alias),
                debug=settings.DEBUG,
                default_verbosity=options["verbosity"],
            )
            chosen = every[0]
            logs.configure(chosen.verbosity, chosen.log_format, "supervisor")
        except (OffloadError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from exc
        for each in every:
            _refuse_inside_transaction(each.backend)
        if not chosen.reload or chosen.burst:
            self._supervise(every, None)
        elif not reloading.in_child():
            # This process only restarts the one that supervises (see reloading).
            raise SystemExit(reloading.run_parent())
        else:
            self._supervise_reloading(every)

    def _supervise_reloading(self, every: list[WorkerSettings]) -> None:
        """Supervise until stopped; exit to be restarted after a code change.

        A worker that cannot start (a broken tasks module, a missing migration)
        says why and waits for a change, as ``runserver`` does.
        """
        autoreload.autoreload_started.connect(_watch_project_apps)
        watcher = reloading.Watcher()
        try:
            supervisor = self._supervise(every, watcher)
        except CommandError as exc:
            self.stderr.write(f"CommandError: {exc}")
            supervisor = None
        if supervisor is None or (supervisor.failed_setup and not supervisor.signalled):
            # Stop signals end the wait the ordinary way.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if supervisor is None:
                watcher.start(lambda: None, lambda: os._exit(1))
            self.stderr.write("Waiting for a file to change before starting again.")
            watcher.changed.wait()
        watcher.stop()
        if watcher.changed.is_set() and (supervisor is None or not supervisor.signalled):
            raise SystemExit(reloading.RESTART_CODE)

    def _say(self, chosen: WorkerSettings, text: str, fields: dict[str, Any]) -> None:
        """The banner and the summary: plain text, or one JSON line each with
        their fields under ``--log-format json``, like every other line."""
        if chosen.log_format != "json" or not logs.writes_json():
            self.stdout.write(text)
            return
        message, banner = logs.banner_fields(text)
        extra = fields or {"worker": banner}
        logging.getLogger("offload.worker").info(message, extra=extra)

    def _supervise(
        self, every: list[WorkerSettings], watcher: reloading.Watcher | None
    ) -> Supervisor:
        chosen = every[0]
        try:
            supervisor = Supervisor(
                chosen,
                write=lambda text: self.stdout.write(text, ending=""),
                progress=chosen.burst and sys.stdout.isatty() and chosen.verbosity > 0,
                more=every[1:],
            )
            databases = supervisor.describe_databases()
            supervisor.serve_metrics()
        except (OffloadError, ImproperlyConfigured, DatabaseError) as exc:
            raise command_error(exc, ",".join(s.backend for s in every)) from exc
        if chosen.verbosity > 0:
            self._say(chosen, supervisor.banner(databases), {})
        if watcher is not None:
            watcher.start(lambda: supervisor.request_stop(restart=True), supervisor.request_stop)
        begun = time.monotonic()
        code = supervisor.run()
        totals = supervisor.summary()
        if chosen.verbosity > 0:
            n = supervisor.restarts
            extra = f", {totals.cancelled} cancelled" if totals.cancelled else ""
            extra += f", {totals.retried} to be retried" if totals.retried else ""
            extra += f", {totals.released} given back"
            extra += f", {n} process restart(s)" if n else ""
            elapsed = time.monotonic() - begun
            self._say(
                chosen,
                f"Processed {totals.processed} task(s): {totals.succeeded} successful, "
                f"{totals.failed} failed{extra}, in {elapsed:.2f}s",
                {"summary": {
                    "processed": totals.processed, "succeeded": totals.succeeded,
                    "failed": totals.failed, "cancelled": totals.cancelled,
                    "retried": totals.retried, "released": totals.released,
                    "restarts": n, "seconds": round(elapsed, 3),
                }},
            )  # fmt: skip
        if code and watcher is None:
            raise CommandError("Task processes could not start or kept crashing; see above.")
        if code:
            self.stderr.write("Task processes could not start or kept crashing; see above.")
        return supervisor


def _enqueued_line(name: str, result: TaskResult[..., Any]) -> str:
    """What ``offload enqueue`` prints: what was enqueued, where, and the id last."""
    task = result.task
    what = task.module_path
    if "." not in name:  # a management command, run by the command task
        what = " ".join(["manage.py", *map(str, result.args)]) + f" (through {what})"
    when = f", runs after {task.run_after.isoformat()}" if task.run_after else ""
    return f"Enqueued {what} on queue {task.queue_name!r}{when}: {result.id}"


def _enqueue_flags(parser: argparse.ArgumentParser, default: Any = None) -> None:
    add = parser.add_argument
    add("--args", dest="json_args", default=default, help="JSON list of a task's arguments")
    add(
        "--kwargs",
        dest="json_kwargs",
        default=default,
        help="JSON object of a task's keyword arguments (a command's options)",
    )
    add("--queue", default=default, help="queue name (default: the task's own)")
    add("--priority", type=int, default=default, help="-100 to 100 (default: the task's own)")
    add("--at", default=default, help="run at this ISO datetime (naive: in TIME_ZONE)")
    add("--in", dest="delay", default=default, help="run after this delay: 30s, 5m, 2h, 1d")
    add("--backend", default="default" if default is None else default,
        help="TASKS alias (default: default)")  # fmt: skip


def _check_enqueue_flags(options: dict[str, Any]) -> None:
    """Raise ``CommandError`` for flags that ``enqueue_by_name`` would let through
    as a raw exception: an unknown backend, a delay past the calendar's end,
    JSON that Python refuses to read (an integer of thousands of digits, nesting
    deeper than its recursion limit)."""
    from offload.command_tasks import parse_when

    alias = options["backend"]
    if alias not in task_backends.settings:
        known = ", ".join(sorted(task_backends.settings))
        raise CommandError(f"--backend {alias!r}: no such backend in TASKS (there are: {known}).")
    try:
        parse_when(options["at"], options["delay"], timezone.now())
    except OverflowError:
        flag = f"--in {options['delay']!r}" if options["delay"] else f"--at {options['at']!r}"
        raise CommandError(f"{flag}: too far in the future.") from None
    except ValueError:
        pass  # enqueue_by_name says what is wrong
    for flag, key in (("--args", "json_args"), ("--kwargs", "json_kwargs")):
        if options[key] is None:
            continue
        try:
            json.loads(options[key])
        except json.JSONDecodeError:
            pass  # enqueue_by_name says what is wrong
        except (ValueError, RecursionError) as exc:
            raise CommandError(f"{flag}: cannot be read ({exc}).") from None


def _refuse_inside_transaction(alias: str) -> None:
    """A worker started inside an open transaction (a ``TestCase``, an
    ``atomic()`` block) would look for tasks with processes and connections of
    its own, which cannot see the rows that transaction has not committed."""
    backend = task_backends[alias]
    config = getattr(backend, "config", None)
    database = getattr(config, "database", "default")
    if connections[database].in_atomic_block:
        raise CommandError(
            f"offload worker cannot run inside an open transaction on database {database!r} "
            "(a TestCase, or an atomic() block): its task processes use connections of their "
            "own, which cannot see the rows that transaction has not committed. In tests, run "
            "the due tasks in the test itself with offload.testing (OffloadTasks.run(), the "
            "offload_tasks pytest fixture, or OffloadTestMixin); see docs/testing.md."
        )


def _offload_aliases() -> list[str]:
    """Every TASKS alias whose backend is offload's, in the setting's order."""
    from offload.backend import DatabaseBackend

    found = [a for a in task_backends.settings if isinstance(task_backends[a], DatabaseBackend)]
    if not found:
        raise CommandError("--all-backends: TASKS has no offload.backend.DatabaseBackend.")
    return found


def _worker_options(alias: str) -> dict[str, Any]:
    if alias not in task_backends.settings:
        known = ", ".join(sorted(task_backends.settings))
        raise OffloadError(f"--backend {alias!r}: no such backend in TASKS (there are: {known}).")
    try:
        backend = task_backends[alias]
    except Exception as exc:
        raise OffloadError(str(exc)) from exc
    config = getattr(backend, "config", None)
    return dict(getattr(config, "worker", {}) or {})


def _watch_project_apps(sender: autoreload.BaseReloader, **kwargs: Any) -> None:
    """Watch every Python file of the project's apps, not only what is imported here.

    Django's reloader watches the modules its own process imported. Tasks are
    imported by the task processes, never by the supervisor, so a change to a
    tasks module would go unnoticed without this.
    """
    for app in apps.get_app_configs():
        if not any(part in app.path for part in ("site-packages", "dist-packages")):
            sender.watch_dir(Path(app.path), "**/*.py")
