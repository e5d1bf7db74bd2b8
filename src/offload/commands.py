"""The old home of the command task, kept for rows that still name it.

Tasks queued and schedules saved before the rename may hold the task path
``offload.commands.run_command``. That path now runs the restricted task
(``offload.command_tasks.run_allowed_command``): a command that the backend's
``OPTIONS["SCHEDULE_ADMIN_COMMANDS"]`` does not list fails without running, so
a stored or crafted path cannot be used to run any command. Code that runs
commands as tasks imports ``offload.command_tasks.run_command``.
"""

from offload.command_tasks import run_allowed_command as run_command

__all__ = ["run_command"]
