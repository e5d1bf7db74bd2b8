-- rescue.sqlite.sql: rendered by tests/golden.py; do not edit by hand.
--
-- The rescue: RUNNING rows whose lease expired on the database's clock,
-- oldest first; the status is a constant, as the partial index of running
-- leases states it. Each attempt is then ended in one fenced write that also
-- requires the lease to have expired, so a heartbeat that renewed it just now
-- wins. The row's own max_attempts decides, in SQL, between READY (due after
-- the delay; BLOCKED for a task with a rate key, which the rate promoter lets
-- in) and FAILED.
--
-- As passed to Django's cursor: %s is a parameter, %% a literal %. Laid out on
-- lines for reading; each line break stands for one space of the real text.
-- Rewrite with OFFLOAD_UPDATE_GOLDEN=1 (see tests/unit/test_sql_golden.py).

-- expired leases
SELECT id, attempt, max_attempts, lease_owner, backend, concurrency_key, has_dependents
FROM offload_task
WHERE status = 'RUNNING'
  AND lease_expires_at < strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')
ORDER BY lease_expires_at
LIMIT %s;

-- attempt lost
UPDATE offload_task
SET status = CASE WHEN attempt >= max_attempts THEN %s WHEN rate_key IS NULL THEN %s ELSE %s END,
    finished_at = CASE WHEN attempt >= max_attempts THEN strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now') ELSE NULL END,
    available_at = CASE WHEN attempt >= max_attempts THEN available_at ELSE strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', %s || ' seconds') END,
    errors = json_insert(errors, '$[#]', json(%s)),
    unique_key = CASE WHEN attempt >= max_attempts
  AND unique_scope <> 'period' THEN NULL ELSE unique_key END,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = %s
  AND attempt = %s
  AND status = %s
  AND lease_expires_at < strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now');
