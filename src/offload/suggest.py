"""The "Did you mean ...?" of an error message about a misspelt name."""

import difflib
from collections.abc import Iterable


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest of ``choices`` to ``word``, or ""."""
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
