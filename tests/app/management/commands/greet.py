"""A command that writes to stdout and stderr, for commands-as-tasks tests."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Greet someone."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--shout", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        text = f"Hello, {options['name']}!"
        self.stdout.write(text.upper() if options["shout"] else text)
        self.stderr.write("greeted")
