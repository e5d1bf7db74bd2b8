"""Queue depth samples: written once a minute by the elected sampler, pruned after
a day, and returned by the dashboard's JSON."""

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from offload.models import DepthSample, Lease
from offload.states import State
from offload.store import TaskStore, depth
from offload.worker.sampler import LEASE_NAME, DepthSampler
from tests.admin_factory import make_task, make_user


def _store() -> TaskStore:
    return TaskStore("default")


def _tasks() -> None:
    now = timezone.now()
    make_task(queue_name="emails", available_at=now - timedelta(seconds=30))
    make_task(queue_name="emails", available_at=now - timedelta(seconds=5))
    make_task(queue_name="emails", available_at=now + timedelta(hours=1))  # scheduled
    make_task(queue_name="default", status=State.RUNNING, attempt=1, lease_owner="w")
    for _ in range(3):
        make_task(queue_name="old", status=State.SUCCESSFUL, finished_at=now)


def test_a_sample_counts_ready_and_running_per_queue():
    _tasks()
    minute, written = depth.sample(_store(), ["default", "reports"])
    assert minute.second == 0
    assert minute.microsecond == 0
    assert written == 3
    rows = {s.queue_name: s for s in DepthSample.objects.all()}
    assert set(rows) == {"emails", "default", "reports"}  # finished-only "old" is not read
    assert (rows["emails"].ready, rows["emails"].running) == (3, 0)
    assert 25 <= rows["emails"].oldest_ready_seconds < 120
    assert (rows["default"].ready, rows["default"].running) == (0, 1)
    assert rows["default"].oldest_ready_seconds is None
    assert (rows["reports"].ready, rows["reports"].running) == (0, 0)


def test_one_row_per_queue_and_minute_even_with_two_samplers():
    _tasks()
    if timezone.now().second >= 55:
        time.sleep(61 - timezone.now().second)  # the whole test within one minute
    first = DepthSampler("default", "host-a:1", ["default"])
    second = DepthSampler("default", "host-b:1", ["default"])
    assert first.sample() == 2
    assert second.sample() == 0  # the role is first's
    assert Lease.objects.get(name=LEASE_NAME).owner == "host-a:1"
    # Even a second writer in the same minute (a lease that just changed
    # hands) adds nothing: the (minute, queue) key skips it.
    assert depth.sample(_store(), ["default"])[1] == 0
    assert DepthSample.objects.count() == 2
    assert first.sample() == 0  # the holder itself, again within the minute


def test_samples_older_than_the_day_window_are_pruned():
    now = timezone.now().replace(second=0, microsecond=0)
    for age in (timedelta(days=1, minutes=5), timedelta(days=1, minutes=1), timedelta(hours=23)):
        DepthSample.objects.create(minute=now - age, queue_name="default", ready=1, running=0)
    sampler = DepthSampler("default", "host-a:1", ["default"])
    sampler.sample()
    kept = sorted(DepthSample.objects.values_list("minute", flat=True))
    assert kept[0] == now - timedelta(hours=23)
    assert len(kept) == 2  # the 23-hour-old sample and this minute's


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def test_the_dashboard_returns_the_windows_samples(operator):
    now = timezone.now().replace(second=0, microsecond=0)
    for minutes_ago, ready in ((90, 9), (30, 4), (2, 7)):
        DepthSample.objects.create(
            minute=now - timedelta(minutes=minutes_ago), queue_name="emails", ready=ready, running=1
        )
    url = reverse("admin:offload_dashboard_data")
    hour = operator.get(url + "?window=hour").json()["depth"]
    assert [point[1:] for point in hour["emails"]] == [[4, 1], [7, 1]]
    day = operator.get(url + "?window=day").json()["depth"]
    assert [point[1] for point in day["emails"]] == [9, 4, 7]
