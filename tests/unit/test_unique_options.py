"""A task's uniqueness options: checked when the task is declared or copied,
and the key of one call worked out from them."""

from datetime import timedelta

import pytest
from django.tasks.exceptions import InvalidTask

from offload.exceptions import DuplicateTask, InvalidTaskOptions
from offload.limits import MAX_UNIQUE_KEY_LENGTH
from offload.task import task
from offload.uniqueness import UniqueKeyOf
from tests.app import tasks


def job(customer_id: int, full: bool = False) -> None:
    pass


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"unique_key": 42}, "unique_key must be a string, or a callable returning one, got int"),
        ({"unique_key": ""}, "unique_key must not be empty"),
        (
            {"unique_key": "k" * (MAX_UNIQUE_KEY_LENGTH + 1)},
            f"unique_key is 256 characters long; the most is {MAX_UNIQUE_KEY_LENGTH}",
        ),
        ({"unique_key": "a\x00b"}, "must not hold a NUL character"),
        ({"unique_key": "k", "unique_scope": "forever"}, "unique_scope must be one of waiting"),
        ({"unique_key": "k", "unique_scope": "period"}, "'period' needs unique_for"),
        ({"unique_key": "k", "unique_for": 0}, "unique_for must be a number of seconds > 0"),
        ({"unique_key": "k", "unique_for": True}, "unique_for must be a number of seconds > 0"),
        ({"unique_key": "k", "unique_for": "1h"}, "unique_for must be a number of seconds > 0"),
        ({"unique_key": "k", "unique_for": float("inf")}, "unique_for must be a number"),
        (
            {"unique_key": "k", "unique_scope": "active", "unique_for": 60},
            "unique_for applies to unique_scope 'period', not 'active'",
        ),
        ({"unique_key": "k", "on_duplicate": "ignore"}, "on_duplicate must be one of existing"),
    ],
)
def test_bad_options_raise_invalid_task_naming_the_task(options, message):
    with pytest.raises(InvalidTask) as caught:
        task(**options)(job)
    assert isinstance(caught.value, InvalidTaskOptions)
    assert "Task 'job':" in str(caught.value)
    assert message in str(caught.value)


def test_every_problem_is_told_at_once():
    with pytest.raises(InvalidTaskOptions) as caught:
        task(unique_key="", unique_scope="x", on_duplicate="y")(job)
    text = str(caught.value)
    assert "must not be empty" in text
    assert "unique_scope" in text
    assert "on_duplicate" in text


def test_unique_checks_per_call_values_too():
    with pytest.raises(InvalidTaskOptions, match="unique_key must not be empty"):
        tasks.sync_customer.unique("")
    with pytest.raises(InvalidTaskOptions, match="on_duplicate must be one of"):
        tasks.sync_customer.unique("k", on_duplicate="skip")


def test_unique_returns_a_copy_and_keeps_the_tasks_own_options():
    copy = tasks.reindex.unique("reindex-products")
    assert copy is not tasks.reindex
    assert (copy.unique_key, copy.unique_scope, copy.on_duplicate) == (
        "reindex-products",
        "active",
        "raise",
    )
    assert tasks.reindex.unique_key == "reindex"
    period = tasks.sync_customer.unique("k", unique_for=timedelta(minutes=5))
    assert period.unique_key_of([1], {}) == UniqueKeyOf("k", "period", 300.0, "existing")


def test_the_key_of_a_call():
    assert tasks.sync_customer.unique_key_of([42], {"full": True}) == UniqueKeyOf(
        "customer-42", "waiting", None, "existing"
    )
    assert tasks.send_digest.unique_key_of(["mon"], {}) == UniqueKeyOf(
        "digest", "period", 3600.0, "existing"
    )
    assert tasks.add.unique_key_of([1, 2], {}) is None
    assert tasks.add.unique(lambda a, b: None).unique_key_of([1, 2], {}) is None


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (lambda customer_id, **kw: customer_id, "callable's result: unique_key must be a"),
        (lambda customer_id, **kw: "", "callable's result: unique_key must not be empty"),
        (lambda: "k", "unique_key raised TypeError"),
    ],
)
def test_a_callable_key_that_fails_or_returns_no_string_is_refused(key, message):
    with pytest.raises(InvalidTaskOptions, match=message):
        tasks.sync_customer.unique(key).unique_key_of([42], {})


def test_duplicate_task_carries_the_holder():
    error = DuplicateTask("reindex", "17")
    assert (error.key, error.existing_id) == ("reindex", "17")
    assert "Task 17 already holds unique key 'reindex'" in str(error)
