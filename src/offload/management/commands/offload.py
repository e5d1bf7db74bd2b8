"""``manage.py offload <subcommand>``: parses flags and hands off to offload's modules."""

import sys
import time
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from offload.exceptions import OffloadError
from offload.store import ClaimedTask
from offload.worker import Worker
from offload.worker.runner import Outcome


def _queue_list(value: str) -> list[str]:
    queues = [q.strip() for q in value.split(",") if q.strip()]
    if not queues:
        raise CommandError("--queues needs at least one queue name, e.g. --queues default,emails")
    return queues


class Command(BaseCommand):
    help = "Run and inspect offload's background task workers."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        worker = sub.add_parser("worker", help="Run tasks from the database queue.")
        worker.add_argument("--backend", default="default", help="TASKS alias (default: default).")
        worker.add_argument(
            "--queues", type=_queue_list, default=None,
            help="Comma-separated queues to take tasks from (default: all).",
        )  # fmt: skip
        worker.add_argument(
            "--burst", action="store_true",
            help="Run every task that is due, then exit.",
        )  # fmt: skip
        worker.add_argument("--name", default=None, help="Worker name shown in logs and results.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] == "worker":
            self.worker(options)

    def worker(self, options: dict[str, Any]) -> None:
        show_progress = options["burst"] and sys.stdout.isatty() and options["verbosity"] > 0

        def progress(claimed: ClaimedTask, outcome: Outcome, elapsed: float) -> None:
            stats = worker.stats
            self.stdout.write(
                f"\r{stats.processed} done ({stats.succeeded} successful, {stats.failed} failed)",
                ending="",
            )

        try:
            worker = Worker(
                options["backend"],
                queues=options["queues"],
                name=options["name"],
                on_task=progress if show_progress else None,
            )
        except (OffloadError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from exc
        worker.install_signal_handlers()
        if options["verbosity"] > 0:
            queues = ", ".join(worker.queues) if worker.queues else "all queues"
            self.stdout.write(f"offload worker {worker.worker_id} on {queues}")
        begun = time.monotonic()
        stats = worker.run(burst=options["burst"])
        if show_progress:
            self.stdout.write("")
        if options["verbosity"] > 0:
            self.stdout.write(
                f"Processed {stats.processed} task(s): {stats.succeeded} successful, "
                f"{stats.failed} failed, {stats.released} given back, in "
                f"{time.monotonic() - begun:.2f}s"
            )
