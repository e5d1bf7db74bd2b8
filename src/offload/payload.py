"""Arguments and results are plain JSON, checked before anything is written.

``json.dumps`` alone is not enough: it writes ``NaN`` and ``Infinity`` (which
PostgreSQL's jsonb rejects and other engines store as invalid JSON), turns
tuples into lists and non-string keys into strings. A task must receive exactly
what was enqueued, so anything that would not survive the round trip is refused
with the path of the offending value.
"""

import json
import math
import sys
from typing import Any

from offload.exceptions import (
    ArgumentsTooDeep,
    InvalidArguments,
    PayloadTooLarge,
    UnstorableArguments,
)
from offload.limits import MAX_ARGUMENT_DEPTH, MAX_RESULT_DEPTH

_SCALARS = (str, int, bool, type(None))

# Below this many bits an int has fewer digits than any str conversion limit
# Python allows (640 at the least), so it is not converted to find out.
_SHORT_INT_BITS = 2000

# A path from the root: (the parent's trail, the key or index), None at the root.
# Built as tuples while walking, turned into text only for an error.
type _Trail = tuple[_Trail, str | int] | None


def _describe(value: object) -> str:
    kind = type(value)
    return (
        f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__
    )


def _path(root: str, trail: _Trail) -> str:
    parts: list[str] = []
    while trail is not None:
        trail, key = trail
        parts.append(f"[{json.dumps(key)}]" if isinstance(key, str) else f"[{key}]")
    return root + "".join(reversed(parts))


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "holds a NUL character (\\x00), which PostgreSQL cannot store in JSON"
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            return (
                f"holds the lone surrogate {text[exc.start]!r}, which is not valid "
                "Unicode and cannot be written as UTF-8"
            )
    return None


def _int_problem(number: int) -> str | None:
    if number.bit_length() < _SHORT_INT_BITS:
        return None
    try:
        int.__repr__(number)
    except ValueError:
        return (
            f"is an integer of about {int(number.bit_length() * math.log10(2)):,} digits, "
            f"over Python's limit for writing one as text ({sys.get_int_max_str_digits():,})"
        )
    return None


# Exact types the walk knows, and the base it treats a subclass of each as.
_KNOWN = frozenset((str, int, bool, float, dict, list, tuple, type(None)))
_BASES = (str, bool, int, float, dict, list, tuple)


def _scalar_problem(item: Any, kind: type, strict: bool) -> str | None:
    """What is wrong with a str, int or float, or None; the strict checks (NUL,
    lone surrogates, integers too long to write) only for arguments."""
    if kind is float:
        return None if math.isfinite(item) else f"is {item!r}, which JSON cannot represent"
    if not strict:
        return None
    if kind is str:
        return _string_problem(item) if "\x00" in item or not item.isascii() else None
    return _int_problem(item) if item.bit_length() >= _SHORT_INT_BITS else None


def _key_problem(
    item: dict[Any, Any], strict: bool, root: str, trail: _Trail
) -> InvalidArguments | None:
    """The error for a dict's first key JSON or a database cannot take, or None."""
    for key in item:
        if type(key) is not str and not isinstance(key, str):
            return InvalidArguments(
                f"{_path(root, trail)} has the key {key!r} of type "
                f"{_describe(key)}; JSON object keys must be strings"
            )
        if strict and ("\x00" in key or not key.isascii()):
            found = _string_problem(key)
            if found:
                return UnstorableArguments(f"{_path(root, trail)} has a key that {found}")
    return None


def _problem(
    value: object,
    root: str,
    max_depth: int | None = None,
    limit: str = "OPTIONS['MAX_ARGUMENT_DEPTH']",
) -> InvalidArguments | None:
    """The error for the first value under ``root`` that is not plain JSON, or None.

    With ``max_depth`` (arguments, not return values or error records), also
    refuses containers nested deeper than that below ``value``, NUL characters,
    lone surrogates and integers too long to write as text.
    """
    strict = max_depth is not None
    # The depth at which a list or dict is one level too deep (never, without a limit).
    too_deep = max_depth + 1 if max_depth is not None else -1
    # An explicit stack instead of recursion: a deeply nested payload must give a
    # clear error, not a RecursionError. Paths are kept as tuples and only
    # written out for an error.
    stack: list[tuple[Any, int, _Trail]] = [(value, 0, None)]
    pop, push = stack.pop, stack.extend
    while stack:
        item, depth, trail = pop()
        kind: type = type(item)
        if kind not in _KNOWN:
            kind = next((base for base in _BASES if isinstance(item, base)), object)
        if kind is str or kind is int or kind is float:
            found = _scalar_problem(item, kind, strict)
            if found is not None:
                error = UnstorableArguments if kind is not float else InvalidArguments
                return error(f"{_path(root, trail)} {found}")
        elif kind is bool or item is None:
            continue
        elif kind is dict or kind is list or kind is tuple:
            if depth == too_deep:
                return ArgumentsTooDeep(
                    f"{_path(root, trail)} nests lists and dicts more than {max_depth} "
                    f"levels deep ({limit}): flatten the data or "
                    "store it elsewhere and pass a reference to it"
                )
            depth += 1
            if kind is dict:
                bad_key = _key_problem(item, strict, root, trail)
                if bad_key is not None:
                    return bad_key
                pairs: Any = item.items()
            else:
                pairs = enumerate(item)
            push([(sub, depth, (trail, key)) for key, sub in pairs][::-1])
        else:
            return InvalidArguments(
                f"Unsupported type: {_path(root, trail)} is of type {_describe(item)}, which "
                "is not plain JSON (use str, int, float, bool, None, list or dict)"
            )
    return None


def find_non_json(value: object, path: str) -> str | None:
    """Return a message naming the first value under ``path`` that is not plain JSON."""
    problem = _problem(value, path)
    return None if problem is None else str(problem)


# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _flat(value: object) -> bool:
    """Whether ``value`` is a list of strings, ints, bools, None and finite floats, or a
    dict of them under string keys: plain JSON with no walk needed (the usual case)."""
    if type(value) is list:
        items: Any = value
    elif type(value) is dict:
        if not all(type(key) is str for key in value):
            return False
        items = value.values()
    else:
        return False
    for item in items:
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                return False
        elif kind not in _EXACT_SCALARS:
            return False
    return True


_EXACT_SCALARS = frozenset((str, int, bool, type(None)))


def encode(value: object, path: str) -> str:
    """Encode ``value`` as compact JSON, refusing anything that would not round-trip."""
    if not _flat(value):
        problem = find_non_json(value, path)
        if problem is not None:
            raise InvalidArguments(problem)
    return _ENCODER.encode(value)


def encode_result(value: object) -> str:
    """Encode a task's return value with the checks arguments get, so a value no
    database would store fails the task instead of its completion's write."""
    if value is None:
        # Most tasks return nothing: no walk, no encoder, on every completion.
        return "null"
    return _encode_strictly(value, "the return value", MAX_RESULT_DEPTH, "MAX_RESULT_DEPTH")[0]


def _encode_argument_list(
    value: list[Any] | dict[str, Any], root: str, max_depth: int
) -> tuple[str, int]:
    """``encode`` for the args list or kwargs dict, with the checks only arguments
    get; returns the JSON and its size in UTF-8 bytes."""
    return _encode_strictly(value, root, max_depth, "OPTIONS['MAX_ARGUMENT_DEPTH']")


def _encode_strictly(value: object, root: str, max_depth: int, limit: str) -> tuple[str, int]:
    flat = _flat(value)
    if not flat:
        problem = _problem(value, root, max_depth, limit)
        if problem is not None:
            raise problem
    try:
        text = _ENCODER.encode(value)
    except ValueError:  # an int over the str conversion limit in a flat list
        text = None
    if text is not None:
        # A flat value skipped the walk: its encoded text tells cheaply whether
        # one of its strings needs a look (NUL is written as the escape \u0000;
        # a lone surrogate as itself, which UTF-8 cannot encode).
        if text.isascii():
            if not flat or "\\u0000" not in text:
                return text, len(text)
        else:
            try:
                size = len(text.encode())
            except UnicodeEncodeError:
                pass
            else:
                if not flat or "\\u0000" not in text:
                    return text, size
    problem = _problem(value, root, max_depth, limit)
    if problem is not None:
        raise problem
    if text is None:
        raise UnstorableArguments(f"{root} cannot be written as JSON")
    return text, len(text.encode())  # "\\u0000" written by the caller: fine


def encode_arguments(
    args: Any, kwargs: Any, max_bytes: int, max_depth: int = MAX_ARGUMENT_DEPTH
) -> tuple[str, str]:
    """Encode a task's arguments, enforcing the payload size cap and nesting depth.

    Refuses, before anything is written, whatever would not come back exactly or
    that one of the supported databases would not store: see ``_problem``.
    """
    if not args and not kwargs and max_bytes >= len(_NO_ARGUMENTS):
        return "[]", "{}"  # the common call with no arguments: nothing to check
    encoded_args, args_size = _encode_argument_list(list(args), "args", max_depth)
    encoded_kwargs, kwargs_size = _encode_argument_list(dict(kwargs), "kwargs", max_depth)
    size = args_size + kwargs_size
    if size > max_bytes:
        raise PayloadTooLarge(
            f"The task's arguments are {size:,} bytes as JSON, over the limit of "
            f"{max_bytes:,} bytes (OPTIONS['MAX_PAYLOAD_BYTES']). Store large data "
            "elsewhere and pass a reference to it."
        )
    return encoded_args, encoded_kwargs


_NO_ARGUMENTS = "[]{}"

# Columns that usually hold an empty list or object: each read of a claimed
# row skips the decoder for them (a new object each time: callers may mutate it).
_EMPTY: dict[Any, Any] = {"[]": list, "{}": dict, b"[]": list, b"{}": dict}


def decode(value: Any) -> Any:
    """Decode a JSON column read through a raw cursor (drivers differ in what they return)."""
    empty = _EMPTY.get(value) if isinstance(value, (str, bytes)) else None
    if empty is not None:
        return empty()
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode()
    if isinstance(value, str):
        return json.loads(value)
    return value
