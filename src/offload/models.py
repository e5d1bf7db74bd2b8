"""The tables. Every write of task state goes through ``offload.store``; the models
describe the schema (and serve the admin), they are not the hot path."""

from django.core.exceptions import ValidationError
from django.db import models

from offload.limits import (
    MAX_CONCURRENCY_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PROGRESS_MESSAGE_LENGTH,
    MAX_RATE_KEY_LENGTH,
    MAX_TASK_PATH_LENGTH,
    MAX_UNIQUE_KEY_LENGTH,
)
from offload.schedules.spec import check_row
from offload.states import State


class TaskRecord(models.Model):
    """One enqueued task and everything that happened to it."""

    id = models.BigAutoField(primary_key=True)
    task_path = models.CharField(
        max_length=MAX_TASK_PATH_LENGTH, help_text="Import path of the django.tasks Task."
    )
    backend = models.CharField(max_length=MAX_NAME_LENGTH, help_text="TASKS alias it was sent to.")
    queue_name = models.CharField(max_length=MAX_NAME_LENGTH, default="default")
    priority = models.SmallIntegerField(default=0)
    status = models.CharField(max_length=10, choices=State.choices, default=State.READY)
    # Whether the task is an ``async def``, known at enqueue: a worker claims
    # async tasks for its event loop and sync ones for its threads, each only
    # as many as it has room for.
    is_async = models.BooleanField(default=False)

    # run_after is what the caller asked for (None: as soon as possible);
    # available_at is when the task may next be claimed: run_after, the enqueue
    # time, or the time a retry is due. The claim query orders on it.
    run_after = models.DateTimeField(null=True, blank=True)
    available_at = models.DateTimeField()

    enqueued_at = models.DateTimeField()
    # When the latest claim took the task. A worker claims a batch and runs it
    # as its threads free up, so the task's code may begin later: started_at
    # (first attempt) and last_attempted_at (latest) are when the code began,
    # written by the worker; a RUNNING task whose last_attempted_at is older
    # than claimed_at (or NULL) is claimed and waiting in its worker.
    claimed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # The number of claims so far, and the fencing token of the current one.
    attempt = models.PositiveIntegerField(default=0)
    # The retry budget and the hard time limit, resolved at enqueue from the
    # task and OPTIONS["RETRY"], so the rescue query can decide between READY
    # and FAILED in SQL without importing the task.
    max_attempts = models.PositiveIntegerField(default=1)
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds; None: no limit.")
    # Set by a cancel request on a RUNNING task; the worker sees it with its
    # next heartbeat and stops the task after a grace period.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # NULL, not "", means "no lease": the rescue query tests for it.
    lease_owner = models.CharField(max_length=MAX_NAME_LENGTH, null=True, blank=True)  # noqa: DJ001
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker_ids = models.JSONField(default=list, blank=True)

    # The latest progress the running attempt reported (see offload.progress),
    # written by its worker's dispatcher; NULL until a task reports any. A
    # retried task keeps its last attempt's progress until the next report.
    progress_current = models.FloatField(null=True, blank=True)
    progress_total = models.FloatField(null=True, blank=True)
    progress_message = models.CharField(  # noqa: DJ001
        max_length=MAX_PROGRESS_MESSAGE_LENGTH, null=True, blank=True
    )
    progress_at = models.DateTimeField(null=True, blank=True)

    # A unique task's key while it holds it (see offload.uniqueness): NULL for
    # every task enqueued without one, and once the key is released (at the
    # claim for scope "waiting", at a final state for "active"); a task of
    # scope "period" keeps it until unique_until, which the next enqueue of
    # the key checks. One task per (backend, unique_key): the unique index
    # offload_task_unique_key_uniq (see Meta.indexes below).
    unique_key = models.CharField(  # noqa: DJ001
        max_length=MAX_UNIQUE_KEY_LENGTH, null=True, blank=True
    )
    unique_scope = models.CharField(max_length=10, null=True, blank=True)  # noqa: DJ001
    unique_until = models.DateTimeField(null=True, blank=True)

    # A concurrency limit (see offload.concurrency): at most
    # concurrency_limit tasks of one (backend, concurrency_key) are READY or
    # RUNNING at once; the rest wait as BLOCKED. NULL for every task enqueued
    # without a key, which never pays for the limits (store.gate).
    concurrency_key = models.CharField(  # noqa: DJ001
        max_length=MAX_CONCURRENCY_KEY_LENGTH, null=True, blank=True
    )
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)

    # A rate limit (see offload.rates): at most rate_count tasks of one
    # (backend, rate_key) start per rate_period seconds; the rest wait as
    # BLOCKED. NULL for every task enqueued without a rate key, which never
    # pays for the limits (store.rate_gate).
    rate_key = models.CharField(  # noqa: DJ001
        max_length=MAX_RATE_KEY_LENGTH, null=True, blank=True
    )
    rate_count = models.PositiveIntegerField(null=True, blank=True)
    rate_period = models.FloatField(null=True, blank=True)

    # A workflow (see offload.workflows): NULL on all five for a task
    # enqueued outside one. workflow_id is the id of the workflow's first
    # task; waiting_on counts the upstream tasks (rows of
    # offload_task_dependency) that have not ended while the task is
    # WAITING; has_dependents says a final state of this task must settle
    # its dependents (store.dependencies), which the worker learns from the
    # claim; upstream_results says how the upstream results reach the task's
    # code ("value": the one upstream's, "list": all of them in order);
    # on_upstream_failure says what a failed upstream does ("stop": cancel
    # the task, "continue": run it all the same).
    workflow_id = models.BigIntegerField(null=True, blank=True)
    waiting_on = models.IntegerField(null=True, blank=True)
    has_dependents = models.BooleanField(null=True, blank=True)
    upstream_results = models.CharField(max_length=8, null=True, blank=True)  # noqa: DJ001
    on_upstream_failure = models.CharField(max_length=8, null=True, blank=True)  # noqa: DJ001

    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    return_value = models.JSONField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)
    # The enqueuing trace, as OpenTelemetry's propagator wrote it (W3C
    # ``traceparent`` and ``tracestate``, and whatever else the project's
    # propagator carries), so the worker's span of each attempt continues it.
    # NULL when the enqueue was not traced (see offload.tracing).
    trace_context = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "offload_task"
        verbose_name = "task"
        verbose_name_plural = "tasks"
        indexes = [
            # Serves the claim query exactly: equality on status and queue, then
            # the claim order. Not a partial index: MySQL and MariaDB have none,
            # and with status leading, finished rows sit in a separate range.
            models.Index(
                fields=["status", "queue_name", "-priority", "available_at", "id"],
                name="offload_task_claim_idx",
            ),
            # Serves the claim of a worker that takes every queue (the default)
            # or a list of them: with the queue second, the index above gives
            # the claim order only within one queue, and the database would
            # sort the whole backlog for each claim (170 ms at 100,000 ready
            # rows on PostgreSQL, against 0.5 ms with this index).
            models.Index(
                fields=["status", "-priority", "available_at", "id"],
                name="offload_task_claim_all_idx",
            ),
            # The partial indexes are built by the initial migration, in SQL,
            # not declared here (MariaDB has no partial indexes, and a declared
            # one makes Django warn about that on every command of a MariaDB
            # project):
            # - offload_task_running_lease_idx, lease_expires_at WHERE
            #   status = 'RUNNING': the rescue's search for expired leases. It
            #   holds running tasks only, so an enqueue never writes to it.
            #   On MariaDB the rescue reads the running tasks through the
            #   claim indexes, whose first column is the status.
            # - offload_task_async_claim_idx, (-priority, available_at,
            #   id) WHERE status = 'READY' AND is_async: the claim of async
            #   tasks alone (a worker whose threads are full), which with a
            #   sync backlog otherwise read every ready row and sorted what
            #   matched (15 ms at 100,000 ready rows on PostgreSQL).
            # - offload_task_unique_key_uniq, UNIQUE (backend,
            #   unique_key) WHERE unique_key IS NOT NULL: one holder per key.
            #   Partial where the engine allows, so a task without a key adds
            #   no entry; MariaDB's unique index holds every row but lets
            #   NULLs repeat.
            # - offload_task_blocked_idx, (backend, concurrency_key,
            #   priority DESC, id) WHERE status = 'BLOCKED': the promotion of a
            #   key's oldest blocked tasks, and the sweep's list of keys with
            #   blocked tasks. Plain on MariaDB, where it also counts a key's
            #   holders.
            # - offload_task_key_holders_idx, (backend,
            #   concurrency_key) WHERE status IN ('READY', 'RUNNING') AND
            #   concurrency_key IS NOT NULL: the count of a key's holders.
            #   Not on MariaDB (no partial indexes; the one above serves).
            # - offload_task_rate_blocked_idx, (backend, rate_key,
            #   priority DESC, id) WHERE status = 'BLOCKED': the promotion of a
            #   rate key's blocked tasks. Plain on MariaDB, where it also
            #   serves the count of a key's window.
            # - offload_task_workflow_idx, (workflow_id, id) WHERE
            #   workflow_id IS NOT NULL: a workflow's tasks. Plain on MariaDB.
            # - offload_task_waiting_idx, (id) WHERE status = 'WAITING': the
            #   rescuer's walk of waiting workflow tasks. Not on MariaDB (the
            #   claim indexes serve).
            # - offload_task_rate_window_idx, (backend, rate_key,
            #   status, claimed_at) WHERE rate_key IS NOT NULL: the count of a
            #   key's window. Not on MariaDB.
            # The admin's indexes, on finished_at, enqueued_at, (queue_name,
            # id) and (task_path, id), are built there too: no statement of
            # the worker uses them.
        ]

    def __str__(self) -> str:
        return f"{self.task_path} #{self.pk} ({self.status})"


class WorkerRecord(models.Model):
    """One live task process, kept fresh by its heartbeat (for operators and the rescue)."""

    id = models.CharField(primary_key=True, max_length=MAX_NAME_LENGTH)
    name = models.CharField(max_length=MAX_NAME_LENGTH)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    # The supervisor's pid on that host: processes of one `offload worker` share it.
    supervisor_pid = models.PositiveIntegerField()
    backend = models.CharField(max_length=MAX_NAME_LENGTH)
    queues = models.CharField(max_length=1000, help_text="The queues it claims from.")
    threads = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "offload_worker"
        verbose_name = "worker"
        verbose_name_plural = "workers"

    def __str__(self) -> str:
        return f"{self.name} ({self.hostname} pid {self.pid})"


class Lease(models.Model):
    """A named role held by one worker at a time (the rescuer), until it expires."""

    name = models.CharField(primary_key=True, max_length=MAX_NAME_LENGTH)
    owner = models.CharField(max_length=MAX_NAME_LENGTH)
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "offload_lease"

    def __str__(self) -> str:
        return f"{self.name} held by {self.owner}"


class Schedule(models.Model):
    """A task (or management command) fired on a cron expression or a fixed interval.

    Rows come from code and settings (synced at worker start, ``from_code``) or are
    created in the admin. Each tick that fires leaves a :class:`ScheduleFire`.
    """

    class CatchUp(models.TextChoices):
        SKIP = "skip", "Skip missed ticks"
        ONCE = "once", "Run once for all missed ticks"
        ALL = "all", "Run every missed tick (capped)"

    name = models.CharField(max_length=MAX_NAME_LENGTH)
    backend = models.CharField(max_length=MAX_NAME_LENGTH, default="default")
    # Exactly one of task_path and command is set.
    task_path = models.CharField(
        max_length=MAX_TASK_PATH_LENGTH, blank=True, help_text="Import path of a Task."
    )
    command = models.CharField(
        max_length=MAX_NAME_LENGTH, blank=True, help_text="A management command name."
    )
    # Exactly one of cron and interval is set.
    cron = models.CharField(max_length=100, blank=True, help_text="Five fields or @daily etc.")
    interval = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    timezone = models.CharField(
        max_length=64, blank=True, help_text="IANA time zone of the cron expression."
    )
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    # Blank / NULL: the task's own queue and priority.
    queue_name = models.CharField(max_length=MAX_NAME_LENGTH, blank=True)
    priority = models.SmallIntegerField(null=True, blank=True)
    catch_up = models.CharField(max_length=10, choices=CatchUp.choices, default=CatchUp.ONCE)
    skip_if_running = models.BooleanField(
        default=False, help_text="Skip a tick while the previous run is READY or RUNNING."
    )
    enabled = models.BooleanField(default=True, help_text="Untick to pause.")
    from_code = models.BooleanField(default=False, editable=False)
    # The earliest tick not yet handled; NULL: computed from the next scheduler
    # pass (a new, edited or resumed schedule starts from then, no catch-up).
    next_fire_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Why the scheduler could not fire it (blank once it fires again).
    last_error = models.TextField(blank=True, default="", editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "offload_schedule"
        verbose_name = "schedule"
        verbose_name_plural = "schedules"
        ordering = ["backend", "name"]
        constraints = [
            models.UniqueConstraint(fields=["backend", "name"], name="offload_schedule_name_uniq"),
        ]
        indexes = [
            models.Index(
                fields=["backend", "enabled", "next_fire_at"], name="offload_sched_due_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        problems = check_row(self)
        if problems:
            raise ValidationError(problems)


class ScheduleFire(models.Model):
    """One handled tick of a schedule. The unique (schedule, fire_at) key is what
    makes each tick fire once however many schedulers run."""

    class Outcome(models.TextChoices):
        ENQUEUED = "enqueued", "Enqueued"
        SKIPPED = "skipped", "Skipped: previous run still going"
        MANUAL = "manual", "Run now (by hand)"

    id = models.BigAutoField(primary_key=True)
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="fires")
    fire_at = models.DateTimeField(help_text="The tick, in UTC.")
    fired_at = models.DateTimeField(help_text="When a scheduler handled it.")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    fired_by = models.CharField(
        max_length=MAX_NAME_LENGTH, blank=True, help_text="The worker whose scheduler fired it."
    )
    # Not a foreign key: finished tasks may be pruned while the history stays.
    task_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "offload_schedule_fire"
        verbose_name = "schedule fire"
        verbose_name_plural = "schedule fires"
        constraints = [
            models.UniqueConstraint(fields=["schedule", "fire_at"], name="offload_fire_once_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} at {self.fire_at:%Y-%m-%d %H:%M:%S}"


class ConcurrencyKey(models.Model):
    """One concurrency key of a backend, whose row is the lock every decision
    on the key takes first (see store.gate): an enqueue that lets a task of
    the key into its queue or blocks it, and the promotion of blocked tasks
    when one of the key ends, so two never decide at once on any engine."""

    id = models.BigAutoField(primary_key=True)
    backend = models.CharField(max_length=MAX_NAME_LENGTH)
    name = models.CharField(max_length=MAX_CONCURRENCY_KEY_LENGTH)
    # When the key was last taken: what the lock's upsert writes.
    taken_at = models.DateTimeField()

    class Meta:
        db_table = "offload_concurrency_key"
        verbose_name = "concurrency key"
        constraints = [
            models.UniqueConstraint(
                fields=["backend", "name"], name="offload_concurrency_key_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.backend}:{self.name}"


class RateKey(models.Model):
    """One rate key of a backend, whose row is the lock every decision on the
    key takes first (see store.rate_gate), as a concurrency key's row is."""

    id = models.BigAutoField(primary_key=True)
    backend = models.CharField(max_length=MAX_NAME_LENGTH)
    name = models.CharField(max_length=MAX_RATE_KEY_LENGTH)
    # When the key was last taken: what the lock's upsert writes.
    taken_at = models.DateTimeField()

    class Meta:
        db_table = "offload_rate_key"
        verbose_name = "rate key"
        constraints = [
            models.UniqueConstraint(fields=["backend", "name"], name="offload_rate_key_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.backend}:{self.name}"


class Queue(models.Model):
    """An operator's switch on one queue: while ``paused_at`` is set, no worker claims from it.

    A row exists only once a queue was paused; a queue with no row runs.
    """

    name = models.CharField(primary_key=True, max_length=MAX_NAME_LENGTH)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        db_table = "offload_queue"
        verbose_name = "queue"
        verbose_name_plural = "queues"

    def __str__(self) -> str:
        return f"{self.name} (paused)" if self.paused_at else self.name


class DepthSample(models.Model):
    """How many tasks one queue had at one minute, written by the elected sampler
    (see ``offload.worker.sampler``) for the dashboard's queue-depth chart.

    The unique (minute, queue) key makes a minute's sample once however many
    samplers run, and serves the dashboard's window reads and the pruning.
    """

    id = models.BigAutoField(primary_key=True)
    minute = models.DateTimeField(help_text="The minute sampled, in UTC.")
    queue_name = models.CharField(max_length=MAX_NAME_LENGTH)
    ready = models.PositiveIntegerField(help_text="READY tasks, due or scheduled.")
    running = models.PositiveIntegerField()
    oldest_ready_seconds = models.FloatField(
        null=True, blank=True, help_text="Age of the oldest due READY task; None: none due."
    )

    class Meta:
        db_table = "offload_depth_sample"
        verbose_name = "queue depth sample"
        verbose_name_plural = "queue depth samples"
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "queue_name"], name="offload_depth_minute_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.queue_name} at {self.minute:%Y-%m-%d %H:%M}: {self.ready} ready"


# Views of the task table for the admin, one per status (and the dashboard).
# Proxies add no table; the admin checks the permissions of TaskRecord itself.


class ReadyTask(TaskRecord):
    class Meta:
        proxy = True
        verbose_name = "ready task"


class ScheduledTask(TaskRecord):
    class Meta:
        proxy = True
        verbose_name = "scheduled task"


class RunningTask(TaskRecord):
    class Meta:
        proxy = True
        verbose_name = "running task"


class FailedTask(TaskRecord):
    class Meta:
        proxy = True
        verbose_name = "failed task"


class SuccessfulTask(TaskRecord):
    class Meta:
        proxy = True
        verbose_name = "successful task"


class Dashboard(TaskRecord):
    class Meta:
        proxy = True
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"


class TaskDependency(models.Model):
    """One edge of a workflow: the task waits for its upstream to end (see
    store.dependencies). Plain ids rather than foreign keys, as the fires'
    task ids are: the pruner deletes finished tasks in raw batches, and a
    dependent still reads which upstreams it had."""

    id = models.BigAutoField(primary_key=True)
    task_id = models.BigIntegerField()
    upstream_id = models.BigIntegerField()
    # The upstream's place among the task's upstreams: the order of the
    # results a task given them as a list receives.
    position = models.PositiveIntegerField()

    class Meta:
        db_table = "offload_task_dependency"
        verbose_name = "task dependency"
        verbose_name_plural = "task dependencies"
        constraints = [
            models.UniqueConstraint(
                fields=["task_id", "upstream_id"], name="offload_dependency_uniq"
            ),
        ]
        indexes = [
            models.Index(fields=["upstream_id"], name="offload_dep_upstream_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} after {self.upstream_id}"
