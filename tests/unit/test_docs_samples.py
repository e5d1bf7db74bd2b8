"""The samples of the documentation site and the README are checked against the
code: every Python block is valid Python, and every ``manage.py offload`` line
of a console block is accepted by the command's own parser, so a renamed flag
fails here rather than in a reader's terminal. These need no database; the
Python blocks also run, on each database, in tests/docs."""

import argparse
import ast
import contextlib
import io
import re
import shlex
import textwrap
from pathlib import Path

import pytest

from offload.management.commands.offload import Command

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"^([ \t]*)```(\w+)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
OFFLOAD_LINE = re.compile(r"^\$ (?:python3? )?(?:\./)?manage\.py offload (.*)$", re.MULTILINE)


def blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for n, (_indent, lang, body) in enumerate(FENCE.findall(page.read_text())):
            if lang == language:
                found.append((f"{page.name}#{n}", textwrap.dedent(body)))
    return found


@pytest.mark.parametrize(("where", "source"), blocks("python"), ids=lambda v: str(v)[:40])
def test_every_python_sample_is_valid_python(where: str, source: str) -> None:
    ast.parse(source, filename=where)


def offload_lines() -> list[tuple[str, str]]:
    found = []
    for where, body in blocks("console"):
        for line in OFFLOAD_LINE.findall(body):
            words = shlex.split(line, comments=True)
            if any(word.startswith("[") for word in words):
                continue  # a synopsis ("worker [flags]"), not a command to type
            found.append((where, shlex.join(words)))
    return found


@pytest.mark.parametrize(("where", "line"), offload_lines(), ids=lambda v: str(v)[:60])
def test_every_offload_command_line_parses(where: str, line: str) -> None:
    parser = Command().create_parser("manage.py", "offload")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parser.parse_args(shlex.split(line))
        except (SystemExit, argparse.ArgumentError) as refused:
            refusal = f"{err.getvalue()}{refused}"
            pytest.fail(f"{where}: `manage.py offload {line}` is refused: {refusal}")


def test_the_samples_are_found() -> None:
    # A change of fence syntax must not silently empty the checks above.
    assert len(blocks("python")) > 20
    assert len(offload_lines()) > 10
