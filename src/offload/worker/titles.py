"""Process titles: ``ps`` and ``top`` show what each offload process is doing."""

from setproctitle import setproctitle

PREFIX = "offload: "


def set_title(text: str) -> None:
    setproctitle(PREFIX + text)
