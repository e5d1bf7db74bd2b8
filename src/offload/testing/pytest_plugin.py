"""The pytest plugin, registered under ``pytest11`` by the package: fixtures
that do nothing until a test asks for them by name.

``offload_tasks`` is the kit for ``TASKS["default"]``; a test needs database
access as usual (pytest-django's ``db`` or ``transactional_db`` fixture, or
its ``django_db`` mark). ``offload_tasks_for`` makes one for another alias.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from offload.testing.kit import OffloadTasks


@pytest.fixture
def offload_tasks_for() -> Callable[[str], OffloadTasks]:
    """A function that makes the kit for a ``TASKS`` alias."""
    # Imported here: pytest loads this module before Django is set up.
    from offload.testing.kit import OffloadTasks

    return OffloadTasks


@pytest.fixture
def offload_tasks(offload_tasks_for: Callable[[str], OffloadTasks]) -> OffloadTasks:
    """The kit for ``TASKS["default"]``: run due tasks, assert on what was enqueued."""
    return offload_tasks_for("default")
