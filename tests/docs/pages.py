"""The pages of the documentation site and the README, parsed by Sybil, and what
their samples run with.

Each page's samples run in order in one namespace, which is a real module's
``__dict__``: a function a sample declares with ``@task`` has an import path, so
the backend can enqueue it and the test kit (offload.testing) can run it. A page
runs inside one database transaction, rolled back when its last sample is done,
so a sample sees what an earlier sample of the same page enqueued, and no other
page does.

Invisible blocks (``<!-- invisible-code-block: python ... -->``, which Markdown
renders as nothing) set a page up or check what a sample made, with the helpers
of ``helpers()`` below. A sample that cannot run here is skipped with a reason:
``<!-- skip: next "a systemd unit" -->``. See docs/development.md.
"""

import io
import re
import sys
import types
import unittest
from collections.abc import Callable
from contextlib import ExitStack
from importlib import import_module
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.test import override_settings
from django.utils.module_loading import import_string
from sybil import Document, Example, Sybil
from sybil.parsers.myst import PythonCodeBlockParser, SkipParser

from offload.schedules.registry import _REGISTRY

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
# The top-level package the pages' own modules live under (docs_samples.tutorial ...).
PACKAGE = "docs_samples"
TASKS_KEYS = {"BACKEND", "QUEUES", "OPTIONS"}


def module_name(path: str) -> str:
    return f"{PACKAGE}.{re.sub(r'\W', '_', Path(path).stem.lower())}"


class Page(Document):
    """A page whose namespace is the ``__dict__`` of a module of its own."""

    def __init__(self, text: str, path: str) -> None:
        super().__init__(text, path)
        self.module = types.ModuleType(module_name(path))
        self.namespace = self.module.__dict__
        self.stack = ExitStack()
        self.transaction = ExitStack()

    def begin(self) -> None:
        """Open the page's transaction: whatever its samples write goes with it."""
        self.transaction.enter_context(transaction.atomic())
        self.transaction.callback(transaction.set_rollback, True)

    def roll_back(self) -> None:
        self.transaction.close()


SYBIL = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    document_types={".md": Page},
)


def examples() -> list[Example]:
    return [example for path in PAGES for example in SYBIL.parse(path).examples()]


# -- what a page's samples run with ------------------------------------------------------


def _register(page: Page, name: str) -> None:
    """Make the page's module importable as ``name`` (and its parents as packages)
    until the page ends."""
    parts = name.split(".")
    for depth in range(1, len(parts)):
        parent = ".".join(parts[:depth])
        if parent not in sys.modules:
            package = types.ModuleType(parent)
            package.__path__ = []
            _add_module(page, parent, package)
    _add_module(page, name, page.module)


def _add_module(page: Page, name: str, module: types.ModuleType) -> None:
    previous = sys.modules.get(name)
    sys.modules[name] = module
    page.stack.callback(_restore_module, name, previous)


def _restore_module(name: str, previous: types.ModuleType | None) -> None:
    if previous is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = previous


def helpers(page: Page) -> dict[str, Callable[..., Any]]:
    def as_module(name: str, *aliases: str) -> None:
        """The samples that follow are module ``name`` (as a "# myapp/tasks.py"
        sample says): their tasks' paths start with it, and ``from name import``
        (or any of ``aliases``) finds what the page defined."""
        page.namespace["__name__"] = name
        for each in (name, *aliases):
            _register(page, each)

    def use_settings(**overrides: Any) -> None:
        """Django settings for the rest of the page (``TASKS`` resets the backends)."""
        page.stack.enter_context(override_settings(**overrides))

    def check_tasks(tasks: dict[str, Any], databases: dict[str, Any] | None = None) -> None:
        """Read a ``TASKS`` sample as the backend does and fail on any problem:
        a mistyped option, a bad schedule, a database alias that is not there
        (``databases``: the page's ``DATABASES`` sample, for its aliases)."""
        problems: list[str] = []
        saved = settings.DATABASES
        # Only offload's parser reads the swapped setting; Django's connections
        # took theirs at start-up.
        settings.DATABASES = {**saved, **(databases or {})}
        try:
            for alias, params in tasks.items():
                problems += [f"TASKS[{alias!r}] has {key!r}" for key in set(params) - TASKS_KEYS]
                backend = import_string(params["BACKEND"])(alias, params)
                problems += backend.config.problems + backend.config.schedule_problems
        finally:
            settings.DATABASES = saved
        assert not problems, "\n".join(problems)

    def run_unittest(case: type[unittest.TestCase]) -> None:
        """Run a ``TestCase`` a sample declares; fail with its report if it fails."""
        # A TestCase rolls back its own transaction and then closes the
        # connection, as the outermost one: it runs outside the page's.
        page.roll_back()
        out = io.StringIO()
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
        try:
            result = unittest.TextTestRunner(stream=out, verbosity=2).run(suite)
        finally:
            page.begin()
        assert result.testsRun, out.getvalue()
        assert result.wasSuccessful(), out.getvalue()

    return {
        "as_module": as_module,
        "use_settings": use_settings,
        "check_tasks": check_tasks,
        "run_unittest": run_unittest,
    }


def start(page: Page) -> None:
    # The scheduler imports every app's tasks module: the test project's are
    # imported now, under its own TASKS, not under a page's (whose QUEUES may
    # not have theirs).
    import_module("tests.app.tasks")
    # A page's @schedule declarations are the page's only.
    declared = {backend: dict(names) for backend, names in _REGISTRY.items()}
    page.stack.callback(_restore_registry, declared)
    # And so are the receivers it connects (the Sentry recipe's).
    for signal in (task_enqueued, task_started, task_finished):
        page.stack.callback(_restore_receivers, signal, list(signal.receivers))
    page.namespace.update(helpers(page))
    _register(page, page.module.__name__)
    page.begin()


def _restore_registry(declared: dict[str, dict[str, Any]]) -> None:
    _REGISTRY.clear()
    _REGISTRY.update(declared)


def _restore_receivers(signal: Signal, receivers: list[Any]) -> None:
    with signal.lock:
        signal.receivers = receivers
        signal.sender_receivers_cache.clear()


def finish(page: Page) -> None:
    page.roll_back()
    page.stack.close()
