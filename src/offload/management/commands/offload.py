"""``manage.py offload <subcommand>``: parses flags and hands off to offload's modules."""

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.tasks import task_backends
from django.utils import autoreload

from offload.exceptions import OffloadError
from offload.worker import logs
from offload.worker.supervisor import Supervisor
from offload.worker_options import SETTINGS, WorkerSettings, resolve


class Command(BaseCommand):
    help = "Run and inspect offload's background task workers."

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
            elif setting.field == "reload":
                worker.add_argument(
                    setting.flag, dest="reload", action=argparse.BooleanOptionalAction,
                    default=None, help=help_text,
                )  # fmt: skip
            elif setting.field == "verbosity":
                # Also accepted after the subcommand, where Django's own -v is not.
                worker.add_argument(
                    "-v", setting.flag, dest="worker_verbosity", default=None, help=help_text,
                )  # fmt: skip
            else:
                worker.add_argument(setting.flag, dest=setting.field, default=None, help=help_text)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] == "worker":
            self.worker(options)

    def worker(self, options: dict[str, Any]) -> None:
        flags = dict(options, verbosity=options.get("worker_verbosity"))
        try:
            chosen = resolve(
                flags,
                os.environ,
                lambda alias: _worker_options(alias),
                debug=settings.DEBUG,
                default_verbosity=options["verbosity"],
            )
            logs.configure(chosen.verbosity, chosen.log_format, "supervisor")
            if chosen.reload and not chosen.burst:
                # Django's autoreloader runs this command again in a child
                # process, calling _supervise there on a thread; this process
                # only watches and restarts it.
                autoreload.autoreload_started.connect(_watch_project_apps)
                autoreload.run_with_reloader(self._supervise, chosen)
                return
        except (OffloadError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from exc
        self._supervise(chosen)

    def _supervise(self, chosen: WorkerSettings) -> None:
        try:
            supervisor = Supervisor(
                chosen,
                write=lambda text: self.stdout.write(text, ending=""),
                progress=chosen.burst and sys.stdout.isatty() and chosen.verbosity > 0,
            )
            database = supervisor.describe_database()
        except (OffloadError, ImproperlyConfigured, DatabaseError) as exc:
            raise CommandError(str(exc)) from exc
        if chosen.verbosity > 0:
            self.stdout.write(supervisor.banner(database))
        begun = time.monotonic()
        code = supervisor.run()
        totals = supervisor.summary()
        if chosen.verbosity > 0:
            n = supervisor.restarts
            extra = f", {totals.cancelled} cancelled" if totals.cancelled else ""
            extra += f", {totals.retried} to be retried" if totals.retried else ""
            extra += f", {totals.released} given back"
            extra += f", {n} process restart(s)" if n else ""
            self.stdout.write(
                f"Processed {totals.processed} task(s): {totals.succeeded} successful, "
                f"{totals.failed} failed{extra}, in "
                f"{time.monotonic() - begun:.2f}s"
            )
        if code:
            raise CommandError("Task processes could not start or kept crashing; see above.")


def _worker_options(alias: str) -> dict[str, Any]:
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
