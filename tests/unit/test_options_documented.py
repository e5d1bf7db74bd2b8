"""The OPTIONS table of docs/configuration.md agrees with ``offload.conf.Options``,
where each option's default and types are written."""

import json
import re
from pathlib import Path

from offload.conf import KNOWN_OPTIONS, Options

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
ROW = re.compile(r"^\| `([A-Z_]+)` \| (.+?) \| `(.+?)`.*? \|", re.MULTILINE)

# What the docs show as the default when the setting is spelled differently from
# the parsed value (OPTIONS["RETRY"] is a dict; Options.retry a RetryPolicy).
SPELLED = {"RETRY": "{}"}


def documented() -> dict[str, tuple[str, str]]:
    section = DOCS.read_text().split("## `OPTIONS`", 1)[1].split("\n## ", 1)[0]
    return {name: (types, default) for name, types, default in ROW.findall(section)}


def spelled_types(types: tuple[type, ...]) -> str:
    names = [f"`{'None' if t is type(None) else t.__name__}`" for t in types]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def spelled_default(name: str, default: object) -> str:
    if name in SPELLED:
        return SPELLED[name]
    if default is None or isinstance(default, bool):
        return repr(default)  # as Python settings spell them
    return json.dumps(default)


def test_every_option_is_documented_with_its_default_and_types():
    rows = documented()
    assert sorted(rows) == sorted(KNOWN_OPTIONS)
    for name, (default, types, _doc) in KNOWN_OPTIONS.items():
        assert rows[name] == (spelled_types(types), spelled_default(name, default)), name


def test_known_options_are_derived_from_the_dataclass():
    options = Options()
    for name, (default, _types, doc) in KNOWN_OPTIONS.items():
        assert getattr(options, name.lower()) == default
        assert doc
