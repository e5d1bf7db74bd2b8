"""A command that fails: CommandError, or sys.exit with the given status."""

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Fail after writing some output."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--exit", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("started the work")
        if options["exit"] is not None:
            sys.exit(options["exit"])
        raise CommandError("the work could not be done")
