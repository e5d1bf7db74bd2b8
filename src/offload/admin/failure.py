"""Reads a stored failure for the task's page: the exception's class and message,
a management command's exit status and the end of its output, and the traceback
split so the task's own frames come first.

Pure text work on what ``offload.failures`` recorded; nothing here escapes or
masks (``display`` does, on what it shows).
"""

import os
import re
from dataclasses import dataclass
from typing import Any

import offload

COMMAND_FAILED = "offload.exceptions.CommandFailed"
COMMAND_TASKS = frozenset(
    {
        "offload.command_tasks.run_command",
        "offload.command_tasks.run_allowed_command",
        "offload.commands.run_allowed_command",
    }
)
# Lines of a command's output shown at the top of its page (the error keeps all).
OUTPUT_TAIL_LINES = 20
OUTPUT_TAIL_CHARS = 4_000

_HEADER = "Traceback (most recent call last):"
# A frame's first line; ExceptionGroup tracebacks prefix theirs with "| ".
_FRAME = re.compile(r'^(?P<prefix>[ |+\-]*)File "(?P<file>[^"\n]*)", line \d+')
# Where offload's own modules live when the recording worker ran elsewhere.
_INSTALLED_OFFLOAD = re.compile(r"[/\\](?:site|dist)-packages[/\\]offload[/\\]")
_COMMAND_STATUS = re.compile(r"exit status (-?\d+)\.")


@dataclass(frozen=True)
class CommandOutcome:
    exit_status: int | None
    stdout_tail: str
    stderr_tail: str


@dataclass(frozen=True)
class SplitTraceback:
    """Every line of a traceback, once: ``own`` without offload's frames (a
    marker line stands where they were), ``offload_frames`` those frames."""

    own: str
    offload_frames: str
    offload_frame_count: int


def class_label(class_path: str) -> str:
    """How ``traceback`` prints the class: builtins without their module."""
    return class_path.removeprefix("builtins.")


def exception_text(traceback: str, class_path: str) -> str:
    """The last exception's ``Class: message`` text (all its lines), or ''."""
    found = labelled_text(traceback, class_path)
    if found is not None:
        return found
    return _after_last_frame(traceback.rstrip("\n").split("\n"))


def labelled_text(traceback: str, class_path: str) -> str | None:
    """The text from the last line that starts with the class's name, if any."""
    label = class_label(class_path)
    if not label:
        return None
    lines = traceback.rstrip("\n").split("\n")
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if line == label or line.startswith(f"{label}: "):
            return "\n".join(lines[index:])
    return None


def listed_message(class_path: str, head: str, tail: str, head_limit: int) -> str:
    """The message's first line from the start and end of a long traceback: from
    the start when the message begins there, else what the end shows of it."""
    if len(head) < head_limit:  # the whole traceback
        return first_line(message_of(exception_text(head, class_path), class_path))
    for part in (tail, head):
        found = labelled_text(part, class_path)
        if found is not None:
            return first_line(message_of(found, class_path))
    last = tail.rstrip().rsplit("\n", 1)[-1]
    return f"… {last.strip()}" if last.strip() else ""


def _after_last_frame(lines: list[str]) -> str:
    # The class is printed under another name: the text after the last frame.
    start = 0
    for index, line in enumerate(lines):
        if line == _HEADER or _FRAME.match(line) or (start and line.startswith(" ")):
            start = index + 1
    return "\n".join(lines[start:]).strip("\n")


def message_of(text: str, class_path: str) -> str:
    """``text`` (from ``exception_text``) without its leading ``Class: ``."""
    label = class_label(class_path)
    if label and text.startswith(f"{label}: "):
        return text[len(label) + 2 :]
    if text == label:
        return ""
    return text


def first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]


def _offload_dir() -> str:
    return os.path.dirname(os.path.abspath(offload.__file__)) + os.sep


def is_offload_frame(file: str, package_dir: str | None = None) -> bool:
    return file.startswith(package_dir or _offload_dir()) or bool(_INSTALLED_OFFLOAD.search(file))


def _frame_blocks(lines: list[str]) -> list[tuple[str | None, list[str]]]:
    """(file or None for a non-frame line, its lines), in order."""
    blocks: list[tuple[str | None, list[str]]] = []
    depth = -1  # indentation of the frame being read; -1: none
    for line in lines:
        found = _FRAME.match(line)
        if found:
            depth = len(found["prefix"])
            blocks.append((found["file"], [line]))
        elif depth >= 0 and len(line) - len(line.lstrip(" |+-")) > depth and line.strip():
            blocks[-1][1].append(line)  # its source line, carets, "[Previous line ...]"
        else:
            depth = -1
            blocks.append((None, [line]))
    return blocks


def split_traceback(traceback: str, package_dir: str | None = None) -> SplitTraceback:
    """The traceback with offload's frames moved out, so the task's come first."""
    own: list[str] = []
    moved: list[str] = []
    run = 0  # offload frames in the current stretch
    count = 0
    for file, block in _frame_blocks(traceback.split("\n")):
        if file is not None and is_offload_frame(file, package_dir):
            if run == 0:
                own.append("")  # a placeholder for the marker
            run += 1
            count += 1
            moved.extend(block)
            continue
        if run:
            own[-1] = _marker(run, block[0])
            run = 0
        own.extend(block)
    if run:
        own[-1] = _marker(run, "  ")
    return SplitTraceback("\n".join(own), "\n".join(moved), count)


def _marker(count: int, next_line: str) -> str:
    indent = next_line[: len(next_line) - len(next_line.lstrip(" |+-"))] or "  "
    return f"{indent}[{count} frame(s) of offload's own: listed below]"


def _tail_lines(text: str) -> str:
    text = text.rstrip("\n")
    lines = text.split("\n")
    tail = "\n".join(lines[-OUTPUT_TAIL_LINES:])
    if len(tail) > OUTPUT_TAIL_CHARS:
        tail = tail[-OUTPUT_TAIL_CHARS:]
    return tail


def command_outcome(
    task_path: str, class_path: str, traceback: str, return_value: Any
) -> CommandOutcome | None:
    """A management command's exit status and output tails, or None for other tasks."""
    if class_path == COMMAND_FAILED:
        message = message_of(exception_text(traceback, class_path), class_path)
        status = _COMMAND_STATUS.search(first_line(message))
        _, _, output = message.partition("\n--- stdout ---\n")
        stdout, _, stderr = output.rpartition("\n--- stderr ---")
        stderr = stderr.removeprefix("\n")
        return CommandOutcome(
            int(status[1]) if status else None, _tail_lines(stdout), _tail_lines(stderr)
        )
    if task_path in COMMAND_TASKS and isinstance(return_value, dict):
        status = return_value.get("exit_status")
        return CommandOutcome(
            status if isinstance(status, int) else None,
            _tail_lines(str(return_value.get("stdout", ""))),
            _tail_lines(str(return_value.get("stderr", ""))),
        )
    return None
