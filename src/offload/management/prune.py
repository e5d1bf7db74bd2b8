"""``manage.py offload prune``: delete finished tasks older than a cutoff.

Without ``--older-than`` each status keeps its retention option
(``RETAIN_SUCCESSFUL`` and the others), as the elected pruner does; with it,
one age for every status chosen. The deletes are the pruner's own batches
(``offload.retention``), so the command is safe to run while workers run:
it touches finished rows only, and each batch is its own short transaction.
``--dry-run`` counts instead of deleting.
"""

from __future__ import annotations

import argparse
import re
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, OutputWrapper

from offload.conf import OPTION_BOUNDS, Options
from offload.exceptions import OffloadError
from offload.limits import MAX_NAME_LENGTH
from offload.retention import LINKS, RETENTION, PruneRun, Rule, cutoff, rules_from
from offload.states import State
from offload.store import TaskStore
from offload.store.prune import PruneFilter, preview
from offload.worker.config import get_backend

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Statuses by the name the flag takes, lower case: finished ones only.
STATUSES = {state.value.lower(): state for state in RETENTION}
BAR_WIDTH = 30


def add_prune_parser(sub: Any) -> argparse.ArgumentParser:
    prune: argparse.ArgumentParser = sub.add_parser(
        "prune",
        help="Delete finished tasks older than their retention, or than --older-than.",
        description=(
            "Delete finished tasks (successful, failed, cancelled) in batches. Without "
            "--older-than each status keeps its RETAIN_* option. Safe while workers run: "
            "only finished rows are deleted, one short transaction per batch."
        ),
    )
    add = prune.add_argument
    add(
        "--older-than",
        metavar="AGE",
        default=None,
        help="finished longer ago than this: 30m, 12h, 7d, 2w",
    )
    add("--status", action="append", default=None,
        help="successful, failed or cancelled; repeat for more (default: all three)")  # fmt: skip
    add("--queue", metavar="NAME", default=None, help="only tasks of this queue")
    add("--task", metavar="PATH", default=None, help="only tasks of this import path")
    add("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
    add(
        "--batch-size",
        metavar="N",
        type=int,
        default=None,
        help="rows per DELETE (default: PRUNE_BATCH_SIZE)",
    )
    add("--backend", metavar="ALIAS", default="default", help="TASKS alias (default: default)")
    return prune


def parse_age(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` (or seconds, ``90s``); more than zero."""
    match = _AGE.match(text)
    if match is None:
        raise CommandError(
            f"--older-than {text!r}: expected an age such as 30m, 12h, 7d or 2w "
            "(a number and one of s, m, h, d, w)."
        )
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise CommandError(f"--older-than {text!r}: must be more than zero.")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise CommandError(f"--older-than {text!r}: too long.") from None


def parse_statuses(names: Sequence[str] | None) -> list[State]:
    if not names:
        return list(RETENTION)
    found: list[State] = []
    for name in names:
        state = STATUSES.get(name.strip().lower())
        if state is None:
            if name.strip().upper() in State.values:
                raise CommandError(
                    f"--status {name!r}: only finished tasks are pruned "
                    f"({', '.join(STATUSES)}); {name.upper()} tasks are never deleted."
                )
            raise CommandError(f"--status {name!r}: expected one of {', '.join(STATUSES)}.")
        if state not in found:
            found.append(state)
    return found


def _name(flag: str, value: str | None) -> str | None:
    if value is not None and (not value.strip() or len(value) > MAX_NAME_LENGTH):
        raise CommandError(
            f"{flag} {value!r}: must be a non-empty name of at most {MAX_NAME_LENGTH} characters."
        )
    return value


def _batch_size(value: int | None, default: int) -> int:
    if value is None:
        return default
    low, high = OPTION_BOUNDS["PRUNE_BATCH_SIZE"]
    if not low <= value <= high:
        raise CommandError(f"--batch-size {value}: must be between {low:,.0f} and {high:,.0f}.")
    return value


@dataclass
class Request:
    """What to prune, checked: the rules, the filter, the batch size."""

    rules: list[Rule]
    where: PruneFilter
    batch_size: int
    rate: float | None
    dry_run: bool
    quiet: bool  # -v 0: errors only (cron mails nothing on success)


def read_request(options: dict[str, Any], config: Options) -> Request:
    statuses = parse_statuses(options.get("status"))
    if options.get("older_than") is not None:
        age = parse_age(options["older_than"])
        rules = [Rule(status, age) for status in statuses]
    else:
        rules = [rule for rule in rules_from(config) if rule.status in statuses]
        if not rules:
            kept = ", ".join(f"RETAIN_{s.value}" for s in statuses)
            raise CommandError(
                f"Nothing to prune: {kept} keep(s) tasks forever (None). Give --older-than."
            )
    where = PruneFilter(
        _name("--queue", options.get("queue")), _name("--task", options.get("task"))
    )
    return Request(
        rules=rules,
        where=where,
        batch_size=_batch_size(options.get("batch_size"), config.prune_batch_size),
        rate=config.prune_max_rows_per_second,
        dry_run=bool(options.get("dry_run")),
        quiet=options.get("verbosity") == 0,
    )


def run_prune(options: dict[str, Any], out: OutputWrapper) -> None:
    """The subcommand: check the flags, then count or delete and say what happened."""
    try:
        backend = get_backend(options["backend"])
    except OffloadError as exc:
        raise CommandError(str(exc)) from exc
    request = read_request(options, backend.config)
    store = TaskStore(backend.config.database)
    if request.dry_run:
        _dry_run(store, request, out)
    else:
        _prune(store, request, out)


def _dry_run(store: TaskStore, request: Request, out: OutputWrapper) -> None:
    total = 0
    for rule in request.rules:
        found = preview(store, rule.status, cutoff(store, rule.older_than), request.where)
        total += found.count
        line = f"{rule.status.value}: {found.count} task(s) finished more than {_age(rule)} ago"
        if found.count:
            line += (
                f", oldest finished {found.oldest:%Y-%m-%d %H:%M:%S}, "
                f"newest {found.newest:%Y-%m-%d %H:%M:%S} (UTC)"
            )
        out.write(line)
    out.write(f"Dry run: would delete {total} task(s); nothing was deleted.")


def _prune(store: TaskStore, request: Request, out: OutputWrapper) -> None:
    show_bar = out.isatty() and not request.quiet
    bar = _Bar(out, _to_delete(store, request)) if show_bar else None
    run = PruneRun(store, request.batch_size, request.rate, on_batch=bar.step if bar else None)
    begun = time.monotonic()
    # Ctrl-C asks the run to stop between batches, rather than raising in the
    # middle of one: a DELETE the server has committed would otherwise go
    # uncounted in what the command reports.
    previous = signal.signal(signal.SIGINT, lambda signum, frame: run.stop.set())
    try:
        for rule in request.rules:
            run.tasks(rule, request.where)
        if any(run.deleted.values()):
            run.links()
    finally:
        signal.signal(signal.SIGINT, previous)
    interrupted = run.stop.is_set()
    if bar is not None:
        bar.end()
    links = run.deleted.pop(LINKS, 0)
    deleted = sum(run.deleted.values())
    parts = ", ".join(f"{label}: {n}" for label, n in run.deleted.items())
    what = "Interrupted after deleting" if interrupted else "Deleted"
    if not request.quiet or interrupted:
        out.write(
            f"{what} {deleted} task(s)" + (f" ({parts})" if parts else "")
            + (f" and {links} workflow link(s)" if links else "")
            + f" in {time.monotonic() - begun:.2f}s."
        )  # fmt: skip
    if interrupted:
        raise CommandError("Interrupted; run it again to delete the rest.")


def _to_delete(store: TaskStore, request: Request) -> int:
    return sum(
        preview(store, rule.status, cutoff(store, rule.older_than), request.where).count
        for rule in request.rules
    )


def _age(rule: Rule) -> str:
    seconds = rule.older_than.total_seconds()
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


class _Bar:
    """A progress bar on one terminal line, redrawn after each batch."""

    def __init__(self, out: OutputWrapper, total: int) -> None:
        self.out, self.total, self.done = out, total, 0

    def step(self, label: str, deleted: int) -> None:
        self.done += deleted
        share = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = round(share * BAR_WIDTH)
        self.out.write(
            f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.done}/{self.total} ({label})",
            ending="",
        )
        self.out.flush()

    def end(self) -> None:
        if self.done:
            self.out.write("")
