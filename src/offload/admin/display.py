"""How a task's stored values are shown: escaped, secrets masked, long text bounded."""

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from offload.admin.masking import mask_secrets, mask_text
from offload.progress import Progress
from offload.states import State

# Longest JSON text shown for one value; past it the page says how much was cut.
MAX_SHOWN_CHARS = 20_000


def as_json(value: Any) -> SafeString:
    """Pretty, masked, escaped JSON in a <pre>."""
    text = json.dumps(mask_secrets(value), indent=2, ensure_ascii=False, sort_keys=True)
    cut = ""
    if len(text) > MAX_SHOWN_CHARS:
        cut = f"... ({len(text) - MAX_SHOWN_CHARS:,} more characters)"
        text = text[:MAX_SHOWN_CHARS]
    return format_html('<pre class="offload-json">{}{}</pre>', text, cut)


def status_badge(status: str) -> SafeString:
    known = status in State.values
    label = State(status).label if known else status
    css = status.lower() if known else "unknown"
    return format_html('<span class="offload-status offload-status-{}">{}</span>', css, label)


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return human_seconds((end - start).total_seconds())


def human_seconds(seconds: float) -> str:
    if seconds < 0:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return str(timedelta(seconds=round(seconds)))


def errors_table(errors: Any) -> SafeString:
    """Every recorded attempt's error, newest first, with its traceback."""
    if not isinstance(errors, list) or not errors:
        return format_html("<p>{}</p>", "No errors recorded.")
    rows = []
    for error in reversed(errors):
        if not isinstance(error, dict):
            continue
        rows.append(
            (
                str(error.get("attempt", "-")),
                str(error.get("at", "-")),
                str(error.get("worker_id") or "-"),
                str(error.get("exception_class_path", "")),
                # A traceback may quote the arguments: credentials in it are masked.
                mask_text(str(error.get("traceback", ""))[:MAX_SHOWN_CHARS]),
            )
        )
    body = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td>"
        '<td><pre class="offload-traceback">{}</pre></td></tr>',
        rows,
    )
    return format_html(
        '<table class="offload-errors"><thead><tr><th>Attempt</th><th>At</th><th>Worker</th>'
        "<th>Exception</th><th>Traceback</th></tr></thead><tbody>{}</tbody></table>",
        body,
    )


# Characters of a progress message shown in a list cell (the detail page shows all).
PROGRESS_CELL_CHARS = 60


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _bar(progress: Progress) -> SafeString:
    """A ``<progress>`` element: no inline style, which the admin's CSP forbids."""
    fraction = progress.fraction
    if fraction is None or progress.total is None:
        # No total: an indeterminate bar.
        return format_html(
            '<progress class="offload-progress-bar">{}</progress>', _number(progress.current)
        )
    return format_html(
        '<progress class="offload-progress-bar" max="{}" value="{}">{}%</progress>',
        _number(progress.total), _number(progress.current), round(fraction * 100),
    )  # fmt: skip


def progress_summary(progress: Progress) -> str:
    """``3 / 4 (75%)``, or ``3`` without a total."""
    fraction = progress.fraction
    if progress.total is None:
        return _number(progress.current)
    percent = f" ({round(fraction * 100)}%)" if fraction is not None else ""
    return f"{_number(progress.current)} / {_number(progress.total)}{percent}"


def progress_detail(progress: Progress, now: datetime) -> SafeString:
    """The task page's progress: bar, figures, message, and the age of the report."""
    age = "-"
    if progress.reported_at is not None:
        age = human_seconds(max((now - progress.reported_at).total_seconds(), 0.0))
    return format_html(
        '<div class="offload-progress">{} <span class="offload-progress-figures">{}</span>'
        ' <span class="offload-progress-message">{}</span>'
        " <small>reported {} ago</small></div>",
        _bar(progress), progress_summary(progress), progress.message, age,
    )  # fmt: skip


def progress_cell(progress: Progress | None) -> SafeString:
    """A list cell: a small bar and percentage (or the count), and the message's start."""
    if progress is None:
        return format_html("{}", "-")
    message = progress.message
    if len(message) > PROGRESS_CELL_CHARS:
        message = message[: PROGRESS_CELL_CHARS - 1] + "…"
    fraction = progress.fraction
    if fraction is None:
        return format_html("{} <small>{}</small>", _number(progress.current), message)
    return format_html("{} {}% <small>{}</small>", _bar(progress), round(fraction * 100), message)
