"""``python manage.py demo``: enqueue tasks of every kind, run a worker, show what happened."""

import json
import logging
import time
from datetime import timedelta
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.tasks import TaskResult, TaskResultStatus
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.utils import timezone

from demo import tasks

DEFER_SECONDS = 2
WORKER_FLAGS = ("--burst", "--processes", "1", "--threads", "1")


class RolledBack(Exception):
    """Raised inside ``transaction.atomic()`` to roll it back."""


class Command(BaseCommand):
    help = "Enqueue a few tasks of each kind, run an offload worker in burst mode, print results."

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", verbosity=0)
        if options["verbosity"] < 2:
            # Django logs each task's start and finish (failures with their
            # traceback). The table below says the same; -v 2 shows the log too.
            logging.getLogger("django.tasks").setLevel(logging.CRITICAL)

        results, deferred = self.enqueue_all()
        self.heading(f"Enqueued {len(results)} tasks")

        self.heading(
            "Running the worker: offload worker --burst --processes 1 --threads 1 "
            "(runs what is due, then exits)"
        )
        # One process with one thread starts sync tasks one after another, so
        # the order they start in shows the claim order: priority first.
        call_command("offload", "worker", *WORKER_FLAGS)

        for result in deferred:
            result.refresh()
        due = max(r.task.run_after for r in deferred if r.task.run_after is not None)
        wait = max(0.0, (due - timezone.now()).total_seconds()) + 0.2
        self.stdout.write(
            f"\nThe {len(deferred)} deferred send_reminder tasks are still "
            f"{', '.join(sorted({str(r.status) for r in deferred}))}: they are due at "
            f"{due:%H:%M:%S} UTC. Waiting {wait:.1f}s for them..."
        )
        time.sleep(wait)
        call_command("offload", "worker", *WORKER_FLAGS)

        for result in results:
            result.refresh()
        self.heading(
            "Results, in the order they were enqueued ('ran': the order the worker started them)"
        )
        # Claimed in one statement, tasks share a start time; the claim order
        # (priority, then age) breaks the tie.
        started = sorted(
            (r for r in results if r.started_at is not None),
            key=lambda r: (r.started_at, -r.task.priority, int(r.id)),
        )
        self.print_table(results, [r.id for r in started])

        self.show_rollback()
        self.show_json_refusal()

    # -- enqueueing -------------------------------------------------------------

    def enqueue_all(self) -> tuple[list[TaskResult], list[TaskResult]]:
        results: list[TaskResult] = [
            tasks.add.enqueue(2, 3),
            tasks.add.enqueue(10, 20),
            tasks.add.enqueue(100, 200),
            # Any task's defaults can be overridden per call; this one goes last.
            tasks.add.using(priority=-10).enqueue(1, 1),
            tasks.send_welcome_email.enqueue("ada@example.com"),
            tasks.send_welcome_email.enqueue("alan@example.com"),
            tasks.send_welcome_email.enqueue("grace@example.com"),
            tasks.make_thumbnail.enqueue("cat.jpg", 320),
            tasks.make_thumbnail.enqueue("dog.png", 640),
            tasks.which_attempt.enqueue("first"),
            tasks.which_attempt.enqueue("second"),
            tasks.import_contacts.enqueue("contacts.csv"),
            tasks.import_contacts.enqueue("leads.csv"),
        ]
        run_after = timezone.now() + timedelta(seconds=DEFER_SECONDS)
        deferred = [
            tasks.send_reminder.using(run_after=run_after).enqueue("ada"),
            tasks.send_reminder.using(run_after=run_after).enqueue("alan"),
        ]
        results += deferred
        # Enqueued last, run first: priority 50 beats the default 0.
        results += [
            tasks.charge_card.enqueue(1001, 4999),
            tasks.charge_card.enqueue(1002, 1250),
        ]
        return results, deferred

    # -- the other guarantees ---------------------------------------------------

    def show_rollback(self) -> None:
        self.heading("Enqueue joins the caller's transaction")
        try:
            with transaction.atomic():
                result = tasks.add.enqueue(40, 2)
                inside = tasks.add.get_result(result.id).status
                raise RolledBack
        except RolledBack:
            pass
        try:
            tasks.add.get_result(result.id)
        except TaskResultDoesNotExist:
            after = "raises TaskResultDoesNotExist: nothing was left behind"
        else:
            after = "still finds it (unexpected!)"
        self.stdout.write(
            f"Inside transaction.atomic(): enqueued add(40, 2) as #{result.id}; "
            f"get_result() there sees it {inside}.\n"
            f"The transaction was rolled back; get_result({result.id!r}) now {after}."
        )

    def show_json_refusal(self) -> None:
        self.heading("Arguments must be plain JSON")
        try:
            tasks.send_reminder.enqueue("ada", when={"at": timezone.now()})
        except InvalidTask as exc:
            self.stdout.write(
                f"send_reminder.enqueue('ada', when={{'at': <datetime>}}) raised "
                f"{type(exc).__name__} (an InvalidTask and a TypeError: "
                f"{isinstance(exc, TypeError)}):\n  {exc}"
            )

    # -- output -------------------------------------------------------------------

    def heading(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"\n{text}"))

    def print_table(self, results: list[TaskResult], run_order: list[str]) -> None:
        header = ("id", "task", "queue", "priority", "ran", "status", "return value / error")
        rows = [header]
        for result in results:
            ran = run_order.index(result.id) + 1 if result.id in run_order else "-"
            rows.append(
                (
                    result.id,
                    result.task.name,
                    result.task.queue_name,
                    str(result.task.priority),
                    str(ran),
                    str(result.status),
                    outcome(result),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
        for n, row in enumerate(rows):
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self.stdout.write("  ".join([*cells, row[-1]]).rstrip())
            if n == 0:
                self.stdout.write("  ".join("-" * w for w in [*widths, len(header[-1])]))


def outcome(result: TaskResult) -> str:
    """The return value of a successful task, or the last line of a failed one's error."""
    if result.status == TaskResultStatus.SUCCESSFUL:
        text = json.dumps(result.return_value)
    elif result.status == TaskResultStatus.FAILED and result.errors:
        text = result.errors[-1].traceback.strip().splitlines()[-1]
    else:
        text = ""
    return text if len(text) <= 70 else text[:67] + "..."
