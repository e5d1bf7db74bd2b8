"""``OffloadTestMixin``: the kit on a ``unittest`` test case, as ``self.offload_tasks``."""

from __future__ import annotations

from functools import cached_property

from offload.testing.kit import OffloadTasks


class OffloadTestMixin:
    """Mix into a Django ``TestCase`` or ``TransactionTestCase``::

        class SignupTests(OffloadTestMixin, TestCase):
            def test_welcome_email(self):
                signup("ada@example.com")
                self.offload_tasks.assert_enqueued(send_welcome_email)
                [result] = self.offload_tasks.run()

    ``offload_backend`` names the ``TASKS`` alias (default ``"default"``).
    Each test gets its own kit (a test case instance runs one test).
    """

    offload_backend = "default"

    @cached_property
    def offload_tasks(self) -> OffloadTasks:
        return OffloadTasks(self.offload_backend)
