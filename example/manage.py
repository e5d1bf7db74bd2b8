#!/usr/bin/env python
"""Django's command-line utility for the offload demo project."""

import os
import sys
from importlib.util import find_spec
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    if find_spec("offload") is None:
        # offload is normally installed in the project's venv (uv installs it).
        # Run from a checkout without it, use the package in ../src.
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
