"""Masking a schedule's arguments in its edit form, and keeping the stored secret
when the form is saved with the mask still in place.

``security.mask_secrets`` masks the values of secret-looking keys. A command's
arguments are a list of strings, so here an option such as ``--password=x`` or
``--api-key x`` is masked too.
"""

from typing import Any

from offload.admin.security import MASK, SECRET_KEY_PATTERN, mask_secrets


def _secret_flag(text: str) -> bool:
    return text.startswith("-") and bool(SECRET_KEY_PATTERN.search(text.lstrip("-")))


def mask_arguments(value: Any) -> Any:
    """``mask_secrets(value)``, and in a list of command arguments, the value of
    a secret-looking option (``--token=...``, or the item after ``--token``)."""
    masked = mask_secrets(value)
    if not isinstance(masked, list):
        return masked
    out: list[Any] = []
    hide_next = False
    for item in masked:
        if hide_next and isinstance(item, str):
            out.append(MASK)
            hide_next = False
            continue
        hide_next = False
        if isinstance(item, str) and _secret_flag(item):
            flag, sep, _rest = item.partition("=")
            if sep:
                item = f"{flag}={MASK}"
            else:
                hide_next = True
        out.append(item)
    return out


def restore_masked(submitted: Any, stored: Any) -> Any:
    """``submitted``, with every part still equal to the masked ``stored`` part
    put back to the stored value: an edit that leaves a mask keeps the secret."""
    if submitted == mask_arguments(stored):
        return stored
    if isinstance(submitted, dict) and isinstance(stored, dict):
        shown = mask_arguments(stored)
        return {
            key: _restore_part(value, shown[key], stored[key]) if key in stored else value
            for key, value in submitted.items()
        }
    if isinstance(submitted, list) and isinstance(stored, list) and len(submitted) == len(stored):
        shown = mask_arguments(stored)
        return [
            _restore_part(new, was_shown, old)
            for new, was_shown, old in zip(submitted, shown, stored, strict=True)
        ]
    return submitted


def _restore_part(new: Any, shown: Any, old: Any) -> Any:
    if new == shown and shown != old:
        return old  # the mask, left as it was
    return restore_masked(new, old)
