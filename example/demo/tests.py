"""The demo's tests, written with offload.testing alone: ``python manage.py test demo``.

The tasks run inside each test, in its transaction: no worker to start, and
nothing left behind.
"""

from datetime import UTC, datetime, timedelta

from django.tasks import TaskResultStatus
from django.test import TestCase

from demo.tasks import add, charge_card, import_contacts, send_reminder, send_welcome_email
from offload.testing import OffloadTestMixin


class DemoTaskTests(OffloadTestMixin, TestCase):
    def test_add_runs_and_stores_its_result(self):
        enqueued = add.enqueue(2, 3)
        [result] = self.offload_tasks.run()
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert add.get_result(enqueued.id).return_value == 5

    def test_only_the_emails_queue(self):
        send_welcome_email.enqueue("ada@example.com")
        add.enqueue(1, 1)
        [result] = self.offload_tasks.run(queues=["emails"])
        assert result.return_value == "welcome email sent to ada@example.com"
        self.offload_tasks.assert_enqueued(add, args=[1, 1])
        self.offload_tasks.assert_not_enqueued(send_welcome_email)

    def test_higher_priority_runs_first(self):
        add.enqueue(1, 2)
        charge_card.enqueue(7, 1999)
        results = self.offload_tasks.run()
        assert results[0].return_value == {"order": 7, "charged": 1999}

    def test_a_reminder_waits_for_its_time(self):
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        send_reminder.using(run_after=tomorrow).enqueue("ada")
        assert self.offload_tasks.run() == []
        [result] = self.offload_tasks.run(now=tomorrow)
        assert result.return_value == "reminded ada"

    def test_a_failing_import_is_recorded(self):
        import_contacts.enqueue("contacts.csv")
        [result] = self.offload_tasks.run()
        assert result.status == TaskResultStatus.FAILED
        assert "row 3 has no email address" in result.errors[-1].traceback
