"""Django's global options, accepted after a subcommand too.

``BaseCommand`` adds ``--settings``, ``--traceback`` and the rest to the top
parser only, so ``manage.py offload worker --traceback`` was refused. Each
subparser takes them as well. Their default is ``SUPPRESS``: argparse copies a
subparser's values over the top parser's, and a default there would undo the
same option given before the subcommand. ``--settings`` and ``--pythonpath``
take effect where they do for every command: Django reads them from the whole
command line before the command is loaded.
"""

import argparse

VERBOSITY_HELP = (
    "Verbosity level; 0=minimal output, 1=normal output, 2=verbose output, 3=very verbose output"
)


def add_global_options(parser: argparse.ArgumentParser, *, verbosity: bool = True) -> None:
    """Add Django's global options to a subcommand's ``parser``.

    ``verbosity=False`` for a subcommand that has its own ``-v``.
    """
    group = parser.add_argument_group("Django's options (also accepted before the subcommand)")
    add = group.add_argument
    hidden = argparse.SUPPRESS
    if verbosity:
        add(
            "-v", "--verbosity", type=int, choices=[0, 1, 2, 3], default=hidden, help=VERBOSITY_HELP
        )
    add("--settings", default=hidden, help="The Python path to a settings module.")
    add("--pythonpath", default=hidden, help="A directory to add to the Python path.")
    add("--traceback", action="store_true", default=hidden,
        help="Display a full stack trace on CommandError exceptions.")  # fmt: skip
    add(
        "--no-color", action="store_true", default=hidden, help="Don't colorize the command output."
    )
    add(
        "--force-color",
        action="store_true",
        default=hidden,
        help="Force colorization of the command output.",
    )
    add("--skip-checks", action="store_true", default=hidden, help="Skip system checks.")
