-- prune.sqlite.sql: rendered by tests/golden.py; do not edit by hand.
--
-- The pruner's batch: the ids of the oldest finished rows of one status
-- (a parameter, always SUCCESSFUL, FAILED or CANCELLED) that finished before
-- the cutoff, through the finished_at index and stopping after LIMIT rows,
-- then the DELETE of those ids, which tests the status and the cutoff again
-- on each row: a task an operator retried in between is kept. READY and
-- RUNNING rows never match, so a claim never waits for a prune; each batch
-- is its own short transaction. Fire records go the same way, oldest ids
-- first, once their schedule has moved past their tick: until then the record
-- is what stops the tick from firing twice.
--
-- SQLite: one DELETE ... WHERE id IN (pick), so one short write transaction.
--
-- As passed to Django's cursor: %s is a parameter, %% a literal %. Laid out on
-- lines for reading; each line break stands for one space of the real text.
-- Rewrite with OFFLOAD_UPDATE_GOLDEN=1 (see tests/unit/test_sql_golden.py).

-- finished tasks
DELETE FROM offload_task
WHERE id IN (SELECT id
    FROM offload_task
    WHERE status = %s
      AND finished_at < %s
    ORDER BY finished_at
    LIMIT %s)
  AND status = %s
  AND finished_at < %s;

-- finished tasks of one queue and task
DELETE FROM offload_task
WHERE id IN (SELECT id
    FROM offload_task
    WHERE status = %s
      AND finished_at < %s
      AND queue_name = %s
      AND task_path = %s
    ORDER BY finished_at
    LIMIT %s)
  AND status = %s
  AND finished_at < %s;

-- fire records
DELETE FROM offload_schedule_fire
WHERE id IN (SELECT id
    FROM offload_schedule_fire
    WHERE fired_at < %s
      AND NOT EXISTS (SELECT 1
        FROM offload_schedule
        WHERE offload_schedule.id = offload_schedule_fire.schedule_id
          AND offload_schedule.next_fire_at <= offload_schedule_fire.fire_at)
    ORDER BY id
    LIMIT %s)
  AND fired_at < %s
  AND NOT EXISTS (SELECT 1
    FROM offload_schedule
    WHERE offload_schedule.id = offload_schedule_fire.schedule_id
      AND offload_schedule.next_fire_at <= offload_schedule_fire.fire_at);

-- workflow links of deleted tasks
DELETE FROM offload_task_dependency
WHERE id IN (SELECT id
    FROM offload_task_dependency
    WHERE NOT EXISTS (SELECT 1
        FROM offload_task
        WHERE offload_task.id = offload_task_dependency.task_id)
    ORDER BY id
    LIMIT %s)
  AND NOT EXISTS (SELECT 1
    FROM offload_task
    WHERE offload_task.id = offload_task_dependency.task_id);
