-- claim.sqlite.sql: rendered by tests/golden.py; do not edit by hand.
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
-- SQLite: one UPDATE ... WHERE id IN (pick) RETURNING. It takes the
-- database's write lock before it reads, so it is its own immediate
-- transaction: no other writer claims in between, no BUSY on an upgrade.
-- Async claims name the partial index (INDEXED BY): SQLite keeps no
-- statistics for it and would read the whole backlog through a wider one.
--
-- As passed to Django's cursor: %s is a parameter, %% a literal %. Laid out on
-- lines for reading; each line break stands for one space of the real text.
-- Rewrite with OFFLOAD_UPDATE_GOLDEN=1 (see tests/unit/test_sql_golden.py).

-- all queues, any kind
UPDATE offload_task
SET status = %s,
    attempt = attempt + 1,
    lease_owner = %s,
    lease_expires_at = strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', %s || ' seconds'),
    claimed_at = strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now'),
    worker_ids = json_insert(worker_ids, '$[#]', %s),
    unique_key = CASE WHEN unique_scope = 'waiting' THEN NULL ELSE unique_key END
WHERE id IN (SELECT id
    FROM offload_task
    WHERE status = %s
      AND available_at <= strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')
      AND queue_name NOT IN (SELECT name FROM offload_queue WHERE paused_at IS NOT NULL)
    ORDER BY priority DESC, available_at, id
    LIMIT %s)
RETURNING id, task_path, backend, queue_name, priority, run_after, available_at, enqueued_at, started_at, last_attempted_at, attempt, worker_ids, errors, args, kwargs, is_async, max_attempts, timeout, trace_context, concurrency_key, has_dependents, upstream_results;

-- two queues, sync
UPDATE offload_task
SET status = %s,
    attempt = attempt + 1,
    lease_owner = %s,
    lease_expires_at = strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', %s || ' seconds'),
    claimed_at = strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now'),
    worker_ids = json_insert(worker_ids, '$[#]', %s),
    unique_key = CASE WHEN unique_scope = 'waiting' THEN NULL ELSE unique_key END
WHERE id IN (SELECT id
    FROM offload_task
    WHERE status = %s
      AND queue_name IN (%s, %s)
      AND is_async = %s
      AND available_at <= strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')
      AND queue_name NOT IN (SELECT name FROM offload_queue WHERE paused_at IS NOT NULL)
    ORDER BY priority DESC, available_at, id
    LIMIT %s)
RETURNING id, task_path, backend, queue_name, priority, run_after, available_at, enqueued_at, started_at, last_attempted_at, attempt, worker_ids, errors, args, kwargs, is_async, max_attempts, timeout, trace_context, concurrency_key, has_dependents, upstream_results;

-- async
UPDATE offload_task
SET status = %s,
    attempt = attempt + 1,
    lease_owner = %s,
    lease_expires_at = strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', %s || ' seconds'),
    claimed_at = strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now'),
    worker_ids = json_insert(worker_ids, '$[#]', %s),
    unique_key = CASE WHEN unique_scope = 'waiting' THEN NULL ELSE unique_key END
WHERE id IN (SELECT id
    FROM offload_task INDEXED BY offload_task_async_claim_idx
    WHERE status = 'READY'
      AND is_async
      AND is_async = 1
      AND available_at <= strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')
      AND queue_name NOT IN (SELECT name FROM offload_queue WHERE paused_at IS NOT NULL)
    ORDER BY priority DESC, available_at, id
    LIMIT %s)
RETURNING id, task_path, backend, queue_name, priority, run_after, available_at, enqueued_at, started_at, last_attempted_at, attempt, worker_ids, errors, args, kwargs, is_async, max_attempts, timeout, trace_context, concurrency_key, has_dependents, upstream_results;
