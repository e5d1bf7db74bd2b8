"""Fixed limits: the widths of the columns that hold names, paths and messages,
and the deepest nesting every database can store.

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

# A unique task's key (offload_task.unique_key). With the backend's name it
# makes one entry of a unique index: 255 characters of utf8mb4 and the name
# stay under InnoDB's 3,072 bytes per index entry.
MAX_UNIQUE_KEY_LENGTH = 255

# The message a running task reports with its progress (offload_task.progress_message).
MAX_PROGRESS_MESSAGE_LENGTH = 255
# The largest int progress a task may report: every int up to it is exact in
# the double columns progress is stored in, so it reads back as itself.
MAX_EXACT_PROGRESS_INT = 2**53

# The most lists and dicts one argument may nest: the ceiling of
# OPTIONS["MAX_ARGUMENT_DEPTH"], the same on every database. MariaDB's JSON
# check refuses a column nested 32 deep, and the list of args (or the dict of
# kwargs) that holds the arguments adds one level.
MAX_ARGUMENT_DEPTH = 30

# The most lists and dicts a task's return value may nest below its outermost
# one, counted as for an argument. The column holds the value itself, with no
# list of arguments around it: 31 containers in all, which MariaDB stores (it
# refuses 32), so a completion's write is never refused for its depth.
MAX_RESULT_DEPTH = MAX_ARGUMENT_DEPTH

# A concurrency key (offload_task.concurrency_key, offload_concurrency_key.name),
# held to the width of a unique key for the same reason: with the backend's
# name it makes one index entry.
MAX_CONCURRENCY_KEY_LENGTH = 255
# The most tasks one concurrency key may let run at once: the ceiling of a
# task's concurrency_limit, kept within every engine's 32-bit integer column.
MAX_CONCURRENCY_LIMIT = 1_000_000

# A rate key (offload_task.rate_key, offload_rate_key.name), as wide as a
# concurrency key for the same reason.
MAX_RATE_KEY_LENGTH = 255
# The most starts one rate may allow per period, within a 32-bit column.
MAX_RATE_COUNT = 1_000_000
# A rate's period, in seconds: from a millisecond (below it the database
# clocks and the promoter's wake-ups are coarser than the rate) to a day.
MIN_RATE_PERIOD = 0.001
MAX_RATE_PERIOD = 86_400.0
