"""Which stored values the admin hides: secret-looking keys, credentials inside
strings (a URL's password, ``password=...``, ``--token X``), strings that look
like a credential on their own, and every argument of the tasks listed in
``OPTIONS["ADMIN_MASK_ARGUMENTS"]``.

Masking is a best effort over what a value looks like: it errs towards hiding a
harmless value, and it cannot know that an ordinary-looking string is a secret.
Tasks whose arguments are secret by nature belong in ``ADMIN_MASK_ARGUMENTS``.
"""

import math
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

MASK = "********"

# Key names whose values are hidden: a substring, ignoring case ("api_key",
# "refreshToken", "DB_PASSWORD", "Set-Cookie", "session_id" ...).
SECRET_KEY_PATTERN = re.compile(
    r"pass(word|wd|phrase)?|pwd|token|secret|key|credential|auth|cookie|session|"
    r"signature|private|bearer|jwt|csrf|(?<![a-z])(otp|sid|pin)(?![a-z])",
    re.IGNORECASE,
)
# Inside a string: a secret-looking name followed by "=" or ":" and its value
# ("host=db password=x", "?token=abc&x=1", "Authorization: Bearer ...").
# Every pattern starts at something rare (the secret word, whitespace before a
# flag, a boundary before a URL) and every repeat is bounded, so a megabyte of
# text costs a linear scan, never a try of each start against the rest.
_KEYWORD = (
    r"(?:pass(?:word|wd|phrase)?|pwd|token|secret|api[_-]?key|access[_-]?key|"
    r"private[_-]?key|credential|auth\w{0,20}|cookie|session[_-]?id|sid|jwt)"
)
_NAME_TAIL = r"[A-Za-z0-9_.-]{0,40}"
_VALUE = r"\"[^\"]{0,500}\"|'[^']{0,500}'"
INLINE_ASSIGNMENT = re.compile(
    rf"(?P<name>{_KEYWORD}{_NAME_TAIL})(?P<sep>\s{{0,5}}[=:]\s{{0,5}})"
    rf"(?P<value>{_VALUE}|(?:Bearer|Basic|Token)\s{{1,5}}\S{{1,2000}}|[^\s&;,]{{1,2000}})",
    re.IGNORECASE,
)
# A command line's secret flag and its value: "--password X", "--token=X" ("-p X"
# is not covered: one letter is too often something else).
_FLAG = rf"--?[A-Za-z0-9_.-]{{0,40}}?{_KEYWORD}{_NAME_TAIL}"
FLAG_WITH_VALUE = re.compile(
    rf"(?<!\S)(?P<flag>{_FLAG})(?P<sep>=|\s{{1,5}})(?P<value>{_VALUE}|\S{{1,2000}})",
    re.IGNORECASE,
)
SECRET_FLAG = re.compile(_FLAG, re.IGNORECASE)
# A URL's password: scheme://user:PASSWORD@host.
URL_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<head>[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s:/@]{0,200}:)"
    r"(?P<value>[^\s@/]{1,500})(?=@)"
)
# Strings that are a credential on their own.
CREDENTIAL_SHAPES = re.compile(
    r"^(?:Bearer|Basic|Token)\s+\S+$"  # an Authorization header's value
    r"|^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$"  # a JWT
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"  # a PEM private key
    r"|^(?:gh[pousr]_|github_pat_|glpat-|sk-|sk_live_|rk_live_|xox[abprs]-|AKIA|ASIA)"
    r"[A-Za-z0-9_-]{8,}",  # well-known token prefixes
    re.IGNORECASE,
)
# A single word this long, of a token's alphabet, mixing letters and digits,
# with this much entropy per character, is taken for a generated secret.
TOKEN_MIN_LENGTH = 24
TOKEN_ALPHABET = re.compile(r"^[A-Za-z0-9_\-+/=~]+$")
TOKEN_MIN_ENTROPY = 3.5
# Longest text scanned (and shown) of one string value.
MAX_SCANNED_CHARS = 20_000


def secret_key(key: object) -> bool:
    return isinstance(key, str) and SECRET_KEY_PATTERN.search(key) is not None


def looks_like_token(text: str) -> bool:
    """A long random-looking word: an API key, a password, a session id."""
    if len(text) < TOKEN_MIN_LENGTH or not TOKEN_ALPHABET.match(text):
        return False
    if not (any(c.isdigit() for c in text) and any(c.isalpha() for c in text)):
        return False
    counts = Counter(text)
    entropy = -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())
    return entropy >= TOKEN_MIN_ENTROPY


def mask_text(text: str) -> str:
    """``text`` with the credentials found inside it replaced by the mask.

    Text past ``MAX_SCANNED_CHARS`` is cut first: no page shows that much of
    one value, and the scan's cost stays bounded.
    """
    if len(text) > MAX_SCANNED_CHARS:
        text = f"{text[:MAX_SCANNED_CHARS]}... ({len(text) - MAX_SCANNED_CHARS:,} more characters)"
    if CREDENTIAL_SHAPES.search(text) or looks_like_token(text):
        return MASK
    text = URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = FLAG_WITH_VALUE.sub(lambda m: m["flag"] + m["sep"] + MASK, text)
    return INLINE_ASSIGNMENT.sub(lambda m: m["name"] + m["sep"] + MASK, text)


def _mask_list(items: list[Any], out: list[Any], stack: list[tuple[Any, Any, Any]]) -> None:
    # A secret flag alone in a list (["--password", "x"]) hides the next item.
    hide_next = False
    for i, sub in enumerate(items):
        if hide_next:
            out[i] = MASK
            hide_next = False
            continue
        hide_next = (
            isinstance(sub, str) and len(sub) <= 100 and SECRET_FLAG.fullmatch(sub) is not None
        )
        stack.append((sub, out, i))


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` (decoded JSON) with every secret-looking part masked."""
    # Iterative, not recursive: a deeply nested payload must not raise RecursionError.
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        item, parent, slot = stack.pop()
        if isinstance(item, dict):
            copy: dict[Any, Any] = {}
            parent[slot] = copy
            for key, sub in item.items():
                copy[key] = MASK if secret_key(key) else None
                if not secret_key(key):
                    stack.append((sub, copy, key))
        elif isinstance(item, list):
            items: list[Any] = [None] * len(item)
            parent[slot] = items
            _mask_list(item, items, stack)
        elif isinstance(item, str):
            parent[slot] = mask_text(item)
        else:
            parent[slot] = item
    return root[0]


def arguments_hidden(task_path: str, patterns: Iterable[str]) -> bool:
    """Whether ``OPTIONS["ADMIN_MASK_ARGUMENTS"]`` hides the arguments of ``task_path``."""
    for pattern in patterns:
        if pattern == "*" or pattern == task_path:
            return True
        if pattern.endswith("*") and task_path.startswith(pattern[:-1]):
            return True
    return False


def restore_masked(submitted: Any, stored: Any) -> Any:
    """``submitted``, with every part still equal to the masked ``stored`` part
    put back to the stored value: an edit form saved with a mask left in place
    keeps the secret rather than storing the mask."""
    if submitted == mask_secrets(stored):
        return stored
    if isinstance(submitted, dict) and isinstance(stored, dict):
        shown = mask_secrets(stored)
        return {
            key: _restore_part(value, shown[key], stored[key]) if key in stored else value
            for key, value in submitted.items()
        }
    if isinstance(submitted, list) and isinstance(stored, list) and len(submitted) == len(stored):
        shown = mask_secrets(stored)
        return [
            _restore_part(new, was_shown, old)
            for new, was_shown, old in zip(submitted, shown, stored, strict=True)
        ]
    return submitted


def _restore_part(new: Any, shown: Any, old: Any) -> Any:
    if new == shown and shown != old:
        return old  # the mask, left as it was
    return restore_masked(new, old)
