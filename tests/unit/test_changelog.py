"""CHANGELOG.md keeps the Keep a Changelog shape that docs/release.md relies on."""

import re
from pathlib import Path

CHANGELOG = Path(__file__).resolve().parents[2] / "CHANGELOG.md"
SECTIONS = ["Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"]
RELEASE = re.compile(r"^\[(Unreleased|\d+\.\d+\.\d+)\]( - \d{4}-\d{2}-\d{2})?$")


def headings(level: int) -> list[str]:
    marks = "#" * level + " "
    return [line[len(marks) :] for line in CHANGELOG.read_text().splitlines()
            if line.startswith(marks)]  # fmt: skip


def test_releases_are_unreleased_or_dated_versions_newest_first() -> None:
    releases = headings(2)
    assert releases
    assert releases[0] == "[Unreleased]"
    for release in releases:
        found = RELEASE.match(release)
        assert found, f"not a Keep a Changelog release heading: {release!r}"
        assert found[1] == "Unreleased" or found[2], f"a release needs its date: {release!r}"
    assert releases.count("[Unreleased]") == 1


def test_every_section_is_a_keep_a_changelog_one_in_its_order() -> None:
    text = CHANGELOG.read_text()
    for release in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        names = re.findall(r"^### (.+)$", release, flags=re.MULTILINE)
        assert names, f"{release.splitlines()[0]} has no section"
        assert all(name in SECTIONS for name in names), names
        assert names == sorted(names, key=SECTIONS.index), names
        assert len(set(names)) == len(names), names
