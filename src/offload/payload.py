"""Arguments and results are plain JSON, checked before anything is written.

``json.dumps`` alone is not enough: it writes ``NaN`` and ``Infinity`` (which
PostgreSQL's jsonb rejects and other engines store as invalid JSON), turns
tuples into lists and non-string keys into strings. A task must receive exactly
what was enqueued, so anything that would not survive the round trip is refused
with the path of the offending value.
"""

import json
import math
from typing import Any

from offload.exceptions import InvalidArguments, PayloadTooLarge

_SCALARS = (str, int, bool, type(None))


def _describe(value: object) -> str:
    kind = type(value)
    return (
        f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__
    )


def find_non_json(value: object, path: str) -> str | None:
    """Return a message naming the first value under ``path`` that is not plain JSON."""
    # An explicit stack instead of recursion: a deeply nested payload must give a
    # clear error, not a RecursionError.
    stack: list[tuple[object, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, _SCALARS):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return f"{where} is {item!r}, which JSON cannot represent"
            continue
        if isinstance(item, dict):
            for key, sub in reversed(list(item.items())):
                if not isinstance(key, str):
                    return (
                        f"{where} has the key {key!r} of type {_describe(key)}; "
                        "JSON object keys must be strings"
                    )
                stack.append((sub, f"{where}[{json.dumps(key)}]"))
            continue
        if isinstance(item, (list, tuple)):
            stack.extend((sub, f"{where}[{i}]") for i, sub in reversed(list(enumerate(item))))
            continue
        return (
            f"Unsupported type: {where} is of type {_describe(item)}, which is not plain JSON "
            "(use str, int, float, bool, None, list or dict)"
        )
    return None


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


def encode_arguments(args: Any, kwargs: Any, max_bytes: int) -> tuple[str, str]:
    """Encode a task's arguments, enforcing the payload size cap."""
    if not args and not kwargs and max_bytes >= len(_NO_ARGUMENTS):
        return "[]", "{}"  # the common call with no arguments: nothing to check
    encoded_args = encode(list(args), "args")
    encoded_kwargs = encode(dict(kwargs), "kwargs")
    size = len(encoded_args.encode()) + len(encoded_kwargs.encode())
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
