-- claim.mysql.sql: rendered by tests/golden.py; do not edit by hand.
--
-- The claim: a worker takes up to LIMIT due READY tasks, in claim order
-- (priority DESC, available_at, id, which the claim index serves, so the read
-- stops after LIMIT rows however long the backlog), and each becomes RUNNING
-- with attempt + 1 (its fencing token), a lease on the database's clock,
-- claimed_at and the worker appended to worker_ids. Paused queues are left out
-- in the statement itself, so a pause reaches every worker with no message.
-- started_at and last_attempted_at are not written here: a claimed task may
-- wait in its worker's buffer, and they say when its code began (the outcome
-- writes them).
--
-- MariaDB has no UPDATE ... RETURNING and no LIMIT in an IN subquery, and a
-- locking read is slow past InnoDB's not yet purged index entries. So: a plain
-- read of the rows and the clock, then one UPDATE of exactly those rows, each
-- fenced by the attempt it was read with and READY (a row another worker took
-- in between is left alone), writing the clock that was read.
--
-- As passed to Django's cursor: %s is a parameter, %% a literal %. Laid out on
-- lines for reading; each line break stands for one space of the real text.
-- Rewrite with OFFLOAD_UPDATE_GOLDEN=1 (see tests/unit/test_sql_golden.py).

-- read (all queues, any kind)
SELECT id, task_path, backend, queue_name, priority, run_after, available_at, enqueued_at, started_at, last_attempted_at, attempt, worker_ids, errors, args, kwargs, is_async, max_attempts, timeout, trace_context, concurrency_key, has_dependents, upstream_results, UTC_TIMESTAMP(6)
FROM offload_task
WHERE status = %s
  AND available_at <= UTC_TIMESTAMP(6)
  AND queue_name NOT IN (SELECT name FROM offload_queue WHERE paused_at IS NOT NULL)
ORDER BY priority DESC, available_at, id
LIMIT %s;

-- read (two queues, sync)
SELECT id, task_path, backend, queue_name, priority, run_after, available_at, enqueued_at, started_at, last_attempted_at, attempt, worker_ids, errors, args, kwargs, is_async, max_attempts, timeout, trace_context, concurrency_key, has_dependents, upstream_results, UTC_TIMESTAMP(6)
FROM offload_task
WHERE status = %s
  AND queue_name IN (%s, %s)
  AND is_async = %s
  AND available_at <= UTC_TIMESTAMP(6)
  AND queue_name NOT IN (SELECT name FROM offload_queue WHERE paused_at IS NOT NULL)
ORDER BY priority DESC, available_at, id
LIMIT %s;

-- write (the two rows read)
UPDATE offload_task
SET status = %s,
    attempt = attempt + 1,
    lease_owner = %s,
    lease_expires_at = TIMESTAMPADD(MICROSECOND, CAST(%s * 1000000 AS SIGNED), UTC_TIMESTAMP(6)),
    claimed_at = %s,
    worker_ids = JSON_ARRAY_APPEND(worker_ids, '$', %s),
    unique_key = CASE WHEN unique_scope = 'waiting' THEN NULL ELSE unique_key END
WHERE status = %s
  AND id IN (%s, %s)
  AND ((id = %s AND attempt = %s) OR (id = %s AND attempt = %s));
