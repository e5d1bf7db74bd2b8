-- claim.postgresql.sql: rendered by tests/golden.py; do not edit by hand.
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
-- PostgreSQL: a MATERIALIZED CTE, so the LIMIT is applied once (inlined as a
-- semi-join the planner may re-run it and claim more rows), picks FOR UPDATE
-- SKIP LOCKED (concurrent claimers take disjoint rows and never wait); one
-- UPDATE ... FROM claims them and RETURNING gives the worker its rows.
--
-- As passed to Django's cursor: %s is a parameter, %% a literal %. Laid out on
-- lines for reading; each line break stands for one space of the real text.
-- Rewrite with OFFLOAD_UPDATE_GOLDEN=1 (see tests/unit/test_sql_golden.py).

-- all queues, any kind
WITH picked AS MATERIALIZED (SELECT id
    FROM offload_task
    WHERE status = %s
      AND available_at <= statement_timestamp()
      AND queue_name NOT IN (SELECT name FROM offload_queue WHERE paused_at IS NOT NULL)
    ORDER BY priority DESC, available_at, id
    LIMIT %s FOR UPDATE SKIP LOCKED)
UPDATE offload_task AS t
SET status = %s,
    attempt = attempt + 1,
    lease_owner = %s,
    lease_expires_at = statement_timestamp() + %s * interval '1 second',
    claimed_at = statement_timestamp(),
    worker_ids = worker_ids || jsonb_build_array(%s::text),
    unique_key = CASE WHEN unique_scope = 'waiting' THEN NULL ELSE unique_key END
FROM picked
WHERE t.id = picked.id
RETURNING t.id, t.task_path, t.backend, t.queue_name, t.priority, t.run_after, t.available_at, t.enqueued_at, t.started_at, t.last_attempted_at, t.attempt, t.worker_ids, t.errors, t.args, t.kwargs, t.is_async, t.max_attempts, t.timeout, t.trace_context, t.concurrency_key, t.has_dependents, t.upstream_results;

-- two queues, sync
WITH picked AS MATERIALIZED (SELECT id
    FROM offload_task
    WHERE status = %s
      AND queue_name IN (%s, %s)
      AND is_async = %s
      AND available_at <= statement_timestamp()
      AND queue_name NOT IN (SELECT name FROM offload_queue WHERE paused_at IS NOT NULL)
    ORDER BY priority DESC, available_at, id
    LIMIT %s FOR UPDATE SKIP LOCKED)
UPDATE offload_task AS t
SET status = %s,
    attempt = attempt + 1,
    lease_owner = %s,
    lease_expires_at = statement_timestamp() + %s * interval '1 second',
    claimed_at = statement_timestamp(),
    worker_ids = worker_ids || jsonb_build_array(%s::text),
    unique_key = CASE WHEN unique_scope = 'waiting' THEN NULL ELSE unique_key END
FROM picked
WHERE t.id = picked.id
RETURNING t.id, t.task_path, t.backend, t.queue_name, t.priority, t.run_after, t.available_at, t.enqueued_at, t.started_at, t.last_attempted_at, t.attempt, t.worker_ids, t.errors, t.args, t.kwargs, t.is_async, t.max_attempts, t.timeout, t.trace_context, t.concurrency_key, t.has_dependents, t.upstream_results;

-- async
WITH picked AS MATERIALIZED (SELECT id
    FROM offload_task
    WHERE status = 'READY'
      AND is_async
      AND available_at <= statement_timestamp()
      AND queue_name NOT IN (SELECT name FROM offload_queue WHERE paused_at IS NOT NULL)
    ORDER BY priority DESC, available_at, id
    LIMIT %s FOR UPDATE SKIP LOCKED)
UPDATE offload_task AS t
SET status = %s,
    attempt = attempt + 1,
    lease_owner = %s,
    lease_expires_at = statement_timestamp() + %s * interval '1 second',
    claimed_at = statement_timestamp(),
    worker_ids = worker_ids || jsonb_build_array(%s::text),
    unique_key = CASE WHEN unique_scope = 'waiting' THEN NULL ELSE unique_key END
FROM picked
WHERE t.id = picked.id
RETURNING t.id, t.task_path, t.backend, t.queue_name, t.priority, t.run_after, t.available_at, t.enqueued_at, t.started_at, t.last_attempted_at, t.attempt, t.worker_ids, t.errors, t.args, t.kwargs, t.is_async, t.max_attempts, t.timeout, t.trace_context, t.concurrency_key, t.has_dependents, t.upstream_results;
