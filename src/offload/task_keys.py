"""The checks of a key a task declares, the same for a unique key and a
concurrency key: a non-empty string of bounded length without NUL, given as
such or built by a callable from the call's arguments."""

from collections.abc import Mapping, Sequence
from typing import Any

from offload.exceptions import InvalidTaskOptions


def key_problem(option: str, key: object, most: int) -> str | None:
    """Why ``key`` cannot be the value of ``option`` (at most ``most``
    characters), or None."""
    if not isinstance(key, str):
        return (
            f"{option} must be a string, or a callable returning one, got "
            f"{type(key).__name__} {key!r:.100}."
        )
    if not key:
        return f"{option} must not be empty."
    if len(key) > most:
        return f"{option} is {len(key)} characters long; the most is {most}."
    if "\x00" in key:
        return f"{option} must not hold a NUL character."
    return None


def key_of_arguments(
    where: str, option: str, key: object, most: int, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> str | None:
    """``key`` itself, or what the callable ``key`` makes of the call's
    arguments (None: this call has no key).

    Raises ``InvalidTaskOptions`` if the callable fails or returns something
    that cannot be a key (nothing is enqueued then).
    """
    if not callable(key):
        return str(key)
    try:
        found = key(*args, **kwargs)
    except Exception as exc:
        raise InvalidTaskOptions(f"{where} {option} raised {type(exc).__name__}: {exc}") from exc
    if found is None:
        return None
    problem = key_problem(option, found, most)
    if problem:
        raise InvalidTaskOptions(f"{where} the {option} callable's result: {problem}")
    return str(found)
