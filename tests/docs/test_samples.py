"""Every Python sample of the documentation site and the README runs here, in
page order, on the test database (see tests/docs/pages.py and
docs/development.md). A sample that cannot run is skipped with its reason
written next to it in the page."""

import re
import unittest
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sybil import Example

from tests.conftest import _server_problem
from tests.docs import pages

EXAMPLES = pages.examples()
FENCE = re.compile(r"^\s*```python\s*$")
SKIP = re.compile(r"<!--\s*skip:\s*(?P<action>\w+)(?P<reason>[^\n]*?)\s*-->")


class Pages:
    """The page whose samples are running, with database access while it runs."""

    def __init__(self, django_db_blocker: object) -> None:
        self.blocker = django_db_blocker
        self.page: pages.Page | None = None
        self.stack = ExitStack()

    def enter(self, page: pages.Page) -> None:
        if page is self.page:
            return
        self.leave()
        self.page = page
        self.stack.enter_context(self.blocker.unblock())  # type: ignore[attr-defined]
        pages.start(page)
        self.stack.callback(pages.finish, page)

    def leave(self) -> None:
        self.stack.close()
        self.page = None


@pytest.fixture(scope="module")
def pages_running(django_db_setup: None, django_db_blocker: object) -> Iterator[Pages]:
    problem = _server_problem()
    if problem:
        pytest.skip(problem)
    running = Pages(django_db_blocker)
    yield running
    running.leave()


@pytest.fixture
def db(pages_running: Pages) -> Pages:
    """pytest-django's name, so that it creates the test database for these tests;
    the transaction is the page's, not one per sample as pytest-django's ``db``."""
    return pages_running


def name(example: Example) -> str:
    return f"{example.path.rsplit('/', 1)[-1]}:{example.line}"


@pytest.mark.parametrize("example", EXAMPLES, ids=name)
def test_sample(example: Example, db: Pages) -> None:
    db.enter(example.document)  # type: ignore[arg-type]
    try:
        example.evaluate()
    except unittest.SkipTest as skipped:
        # Said again with the page and line, where the reader can find it.
        pytest.skip(f"{name(example)}: {skipped}")


def test_every_python_block_is_collected() -> None:
    # A change of fence syntax or of parser must not silently leave a sample out.
    collected = {(Path(e.path), e.line) for e in EXAMPLES}
    fences = [
        (page, number)
        for page in pages.PAGES
        for number, line in enumerate(page.read_text().splitlines(), start=1)
        if FENCE.match(line)
    ]
    assert len(fences) > 30
    assert [fence for fence in fences if fence not in collected] == []


def test_every_skip_gives_its_reason() -> None:
    for page in pages.PAGES:
        for found in SKIP.finditer(page.read_text()):
            if found["action"] != "end":
                assert found["reason"].strip(), f"{page.name}: {found[0]} gives no reason"
