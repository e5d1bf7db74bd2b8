"""A test kit for projects that use offload: run due tasks inside the test,
on its connection and in its transaction, and assert on what was enqueued.

``OffloadTasks`` is the kit; ``OffloadTestMixin`` gives a ``TestCase`` one as
``self.offload_tasks``, and the pytest plugin (registered by the package) gives
the ``offload_tasks`` fixture. See docs/testing.md.

The names are imported on first use: pytest loads the plugin before Django
is set up, when the models cannot be imported yet.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from offload.testing.kit import OffloadTasks
    from offload.testing.mixin import OffloadTestMixin

__all__ = ["OffloadTasks", "OffloadTestMixin"]


def __getattr__(name: str) -> Any:
    if name == "OffloadTasks":
        from offload.testing.kit import OffloadTasks

        return OffloadTasks
    if name == "OffloadTestMixin":
        from offload.testing.mixin import OffloadTestMixin

        return OffloadTestMixin
    raise AttributeError(f"module 'offload.testing' has no attribute {name!r}")
