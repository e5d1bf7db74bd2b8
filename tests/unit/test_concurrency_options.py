"""The checks of a task's concurrency key and limit, and the key of one call."""

import pytest

from offload.concurrency import DEFAULT_LIMIT, LimitOf, limit_of_call, limit_problems
from offload.exceptions import InvalidTaskOptions
from offload.limits import MAX_CONCURRENCY_LIMIT


@pytest.mark.parametrize(
    ("key", "limit", "problem"),
    [
        ("k", None, None),
        ("k", 1, None),
        ("k", MAX_CONCURRENCY_LIMIT, None),
        (lambda *a: "k", 3, None),
        (None, None, None),
        ("k", MAX_CONCURRENCY_LIMIT + 1, "from 1 to 1000000, got 1000001"),
        ("k", 0, "from 1 to"),
        ("k", -1, "from 1 to"),
        ("k", 1.5, "from 1 to"),
        ("k", False, "from 1 to"),
        ("k\x00", 1, "NUL"),
        (b"k", 1, "must be a string"),
        (None, 2, "needs a concurrency_key"),
    ],
)
def test_limit_problems(key, limit, problem):
    found = limit_problems("T:", key, limit)
    if problem is None:
        assert found == []
    else:
        (message,) = found
        assert message.startswith("T: ")
        assert problem in message


def test_the_key_of_a_call():
    assert limit_of_call("T:", "k", None, [], {}) == LimitOf("k", DEFAULT_LIMIT)
    key = lambda customer, **kwargs: f"c-{customer}"  # noqa: E731
    assert limit_of_call("T:", key, 3, [7], {"full": True}) == LimitOf("c-7", 3)
    assert limit_of_call("T:", lambda *a: None, 3, [], {}) is None
    assert limit_of_call("T:", None, None, [], {}) is None
    with pytest.raises(InvalidTaskOptions, match="T: concurrency_key raised KeyError"):
        limit_of_call("T:", lambda **kw: kw["x"], None, [], {})
    with pytest.raises(InvalidTaskOptions, match="callable's result: concurrency_key must not"):
        limit_of_call("T:", lambda: "", None, [], {})
