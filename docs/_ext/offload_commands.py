"""The reference of ``manage.py offload``, read from the command's own parser
when the site is built, so it cannot drift from the code.

At ``builder-inited`` it writes ``_generated/commands.md`` (not kept in git):
a section per subcommand with its usage, its description and a table of its
arguments. Django's global options, which every subcommand accepts, are
listed once rather than under each.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

# Django's own options: documented by Django, listed once.
GLOBAL = {
    "--settings", "--pythonpath", "--traceback", "--no-color", "--force-color",
    "--skip-checks", "--verbosity", "--version", "--help", "-h",
}  # fmt: skip

INTRO = """\
# Commands

Every subcommand of `manage.py offload`, with its arguments, as its own
`--help` prints them (this page is generated from the command's parser).
Every subcommand also accepts Django's global options (`--settings`,
`--pythonpath`, `--traceback`, `--no-color`, `--force-color`,
`--skip-checks`), before or after the subcommand's name.
"""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise LookupError("manage.py offload has no subcommands")


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _names(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    takes_value = action.nargs != 0
    value = f" {action.metavar or action.dest.upper()}" if takes_value else ""
    return ", ".join(f"`{name}{value}`" for name in action.option_strings)


def _table(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if GLOBAL & set(action.option_strings) or action.help == argparse.SUPPRESS:
            continue
        default = action.default
        shown = "" if default in (None, False, argparse.SUPPRESS) else f"`{default}`"
        rows.append(f"| {_names(action)} | {_cell(action.help or '')} | {shown} |")
    if not rows:
        return []
    return ["| Argument | What it does | Default |", "|---|---|---|", *rows, ""]


def render() -> str:
    from offload.management.commands.offload import Command

    top = Command().create_parser("manage.py", "offload")
    text = [INTRO]
    for name, parser in _subcommands(top).items():
        usage = parser.format_usage().removeprefix("usage: ").strip()
        text += [f"## `offload {name}`", "", "```text", usage, "```", ""]
        if parser.description:
            text += [_cell(parser.description), ""]
        text += _table(parser)
    return "\n".join(text)


def write(app: Sphinx) -> None:
    out = Path(app.srcdir) / "_generated" / "commands.md"
    out.parent.mkdir(exist_ok=True)
    body = render()
    # Rewriting an unchanged file would make Sphinx rebuild the page each time.
    if not out.exists() or out.read_text() != body:
        out.write_text(body)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", write)
    return {"parallel_read_safe": True}
