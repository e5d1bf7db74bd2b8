"""Fixed limits: the widths of the columns that hold names, paths and messages.

These are not settings. Each is the width of a column in the migrations, so
changing one needs a migration; the code that checks a value before it is
stored reads the limit from here, never from a literal.

A leaf module: it imports nothing, so every layer may import it.
"""

# Queue, backend, worker and schedule names, and command names in schedules.
MAX_NAME_LENGTH = 100

# A worker's --name: its id adds ":<pid>:<random>" and must still fit MAX_NAME_LENGTH.
MAX_WORKER_NAME_LENGTH = MAX_NAME_LENGTH - 30

# The import path of a task (offload_task.task_path, offload_schedule.task_path).
MAX_TASK_PATH_LENGTH = 255

# The message a running task reports with its progress (offload_task.progress_message).
MAX_PROGRESS_MESSAGE_LENGTH = 255
