"""How a task's stored values are shown: escaped, secrets masked, long text bounded."""

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from offload.admin import failure
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


def compact_time(value: datetime | None) -> SafeString:
    """A list cell's date and time: short, in the current time zone, the exact
    instant in its title."""
    if value is None:
        return format_html("{}", "-")
    local = timezone.localtime(value)
    # This year's dates leave the year out, to keep the columns narrow.
    if local.year == timezone.localtime().year:
        shown = local.strftime("%b %d %H:%M:%S")
    else:
        shown = local.strftime("%Y-%m-%d %H:%M")
    return format_html(
        '<time class="offload-time" datetime="{}" title="{}">{}</time>',
        value.isoformat(), local.isoformat(), shown,
    )  # fmt: skip


def cut_text(text: str) -> SafeString:
    """Text cut short by the stylesheet; the whole of it in the title."""
    return format_html('<span class="offload-path" title="{}">{}</span>', text, text)


def path_cell(url: str, path: str) -> SafeString:
    """A task path as a link, cut short by the stylesheet; the whole path in its title."""
    return format_html('<a class="offload-path" href="{}" title="{}">{}</a>', url, path, path)


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
    """Every recorded attempt's error, newest first: a row with its class and
    message, then its whole traceback, as recorded, across the table's width."""
    if not isinstance(errors, list) or not errors:
        return format_html("<p>{}</p>", "No errors recorded.")
    rows = []
    for error in reversed(errors):
        if not isinstance(error, dict):
            continue
        path = str(error.get("exception_class_path", ""))
        traceback = str(error.get("traceback", ""))
        message = failure.message_of(failure.exception_text(traceback, path), path)
        rows.append(
            (
                str(error.get("attempt", "-")),
                str(error.get("at", "-")),
                str(error.get("worker_id") or "-"),
                path,
                mask_text(_bounded(failure.first_line(message), MESSAGE_CELL_CHARS)),
                # A traceback may quote the arguments: credentials in it are masked.
                mask_text(traceback[:MAX_SHOWN_CHARS]),
            )
        )
    body = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code> {}</td></tr>"
        '<tr class="offload-traceback-row"><td colspan="4"><details><summary>Traceback</summary>'
        '<pre class="offload-traceback">{}</pre></details></td></tr>',
        rows,
    )
    return format_html(
        '<table class="offload-errors"><thead><tr><th>Attempt</th><th>At</th><th>Worker</th>'
        "<th>Exception</th></tr></thead><tbody>{}</tbody></table>",
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


# -- a task's page leads with its state, and a failure with its cause ----------------

# Characters of an exception's message shown at the top of a task's page, and in
# a list's message column.
LEAD_MESSAGE_CHARS = 2_000
MESSAGE_CELL_CHARS = 120
# States whose latest error is why the task is in them.
ENDED_BY_ERROR = (State.FAILED, State.CANCELLED)


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text) - limit + 1:,} more characters)"


def _last_chars(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit:,} characters cut ...]\n{text[-limit:]}"


def message_cell(
    class_path: str | None, head: str | None, tail: str | None, head_limit: int
) -> SafeString:
    """A list cell: the last error's first message line, cut short, masked, escaped."""
    if not class_path and not head:
        return format_html("{}", "-")
    path = class_path or ""
    line = failure.listed_message(path, head or "", tail or "", head_limit)
    text = mask_text(_bounded(line, MESSAGE_CELL_CHARS)) if line else ""
    return format_html(
        '<span class="offload-message-cell" title="{}"><code>{}</code> {}</span>',
        path, failure.class_label(path).rsplit(".", 1)[-1], text,
    )  # fmt: skip


def _latest_error(errors: Any) -> dict[str, Any] | None:
    if isinstance(errors, list):
        for error in reversed(errors):
            if isinstance(error, dict):
                return error
    return None


EXIT_HTML = '<p>Exit status <strong class="offload-exit-status">{}</strong></p>'
OUTPUT_HTML = '<h3>Last lines of {}</h3><pre class="offload-output offload-output-{}">{}</pre>'


def _command_block(outcome: failure.CommandOutcome) -> SafeString:
    status = "-" if outcome.exit_status is None else str(outcome.exit_status)
    parts = [format_html(EXIT_HTML, status)]
    for name, tail in (("stdout", outcome.stdout_tail), ("stderr", outcome.stderr_tail)):
        if tail.strip():
            parts.append(format_html(OUTPUT_HTML, name, name, mask_text(tail)))
    return format_html(
        '<div class="offload-command">{}</div>', format_html_join("", "{}", ((p,) for p in parts))
    )


def _traceback_block(traceback: str) -> SafeString:
    split = failure.split_traceback(traceback)
    own = format_html(
        "<h3>Traceback, the task's own frames first</h3>"
        '<pre class="offload-traceback offload-traceback-lead">{}</pre>',
        mask_text(_last_chars(split.own, MAX_SHOWN_CHARS)),
    )
    if not split.offload_frame_count:
        return own
    return format_html(
        '{}<details class="offload-own-frames"><summary>{} frame(s) of offload\'s own</summary>'
        '<pre class="offload-traceback">{}</pre></details>',
        own, split.offload_frame_count, mask_text(split.offload_frames),
    )  # fmt: skip


def task_lead(
    status_html: SafeString, status: str, task_path: str, errors: Any, return_value: Any
) -> SafeString:
    """The top of a task's page: its state, and for a failure the exception's class
    and message, a command's exit status and output, and the traceback."""
    error = _latest_error(errors)
    head = format_html('<p class="offload-lead-status">{}</p>', status_html)
    if error is None:
        outcome = failure.command_outcome(task_path, "", "", return_value)
        tail = _command_block(outcome) if outcome else ""
        return format_html('<div class="module offload-lead">{}{}</div>', head, tail)
    path = str(error.get("exception_class_path", ""))
    traceback = str(error.get("traceback", ""))
    message = failure.message_of(failure.exception_text(traceback, path), path)
    if status not in ENDED_BY_ERROR:
        return format_html(
            '<div class="module offload-lead">{}<p class="offload-lead-previous">'
            "The last failed attempt raised <code>{}</code>: {}</p></div>",
            head, path, mask_text(_bounded(failure.first_line(message), LEAD_MESSAGE_CHARS)),
        )  # fmt: skip
    outcome = failure.command_outcome(task_path, path, traceback, return_value)
    if outcome is not None:
        message = failure.first_line(message)  # the output is shown on its own
    return format_html(
        '<div class="module offload-lead">{}<p class="offload-error-class"><code>{}</code></p>'
        '<pre class="offload-error-message">{}</pre>{}{}</div>',
        head, path, mask_text(_bounded(message, LEAD_MESSAGE_CHARS)),
        _command_block(outcome) if outcome else "", _traceback_block(traceback),
    )  # fmt: skip
