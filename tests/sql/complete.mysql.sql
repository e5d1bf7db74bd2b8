-- complete.mysql.sql: rendered by tests/golden.py; do not edit by hand.
--
-- The success write, fenced: a row is written only while it holds the
-- worker's attempt and is RUNNING, so a worker presumed dead (its task
-- rescued and claimed again) writes nothing over the newer attempt. The batch
-- form records many outcomes in one statement: one commit per batch, not per
-- task, each row fenced by its own attempt. The same write records when the
-- attempt's code began (started_at the first time, last_attempted_at each
-- time), not a statement of its own: the worker sends the seconds its code ran
-- and the database subtracts them from its clock, so the time is still the
-- database's.
--
-- MariaDB: a CASE on the id picks each row's value and seconds run; its SET
-- terms apply left to right, each seeing those before, so started_at takes the
-- last_attempted_at just written and the start is computed once. No
-- RETURNING: only when fewer rows were written than sent are the written ones
-- read back (a row holds this attempt and SUCCESSFUL only if this worker
-- wrote it).
--
-- As passed to Django's cursor: %s is a parameter, %% a literal %. Laid out on
-- lines for reading; each line break stands for one space of the real text.
-- Rewrite with OFFLOAD_UPDATE_GOLDEN=1 (see tests/unit/test_sql_golden.py).

-- one
UPDATE offload_task
SET status = %s,
    finished_at = UTC_TIMESTAMP(6),
    return_value = %s,
    lease_owner = NULL,
    lease_expires_at = NULL,
    unique_key = CASE WHEN unique_scope = 'period' THEN unique_key END,
    last_attempted_at = TIMESTAMPADD(MICROSECOND, -CAST((%s) * 1000000 AS SIGNED), UTC_TIMESTAMP(6)),
    started_at = COALESCE(started_at, last_attempted_at)
WHERE id = %s
  AND attempt = %s
  AND status = %s;

-- batch of two
UPDATE offload_task
SET status = %s,
    finished_at = UTC_TIMESTAMP(6),
    lease_owner = NULL,
    lease_expires_at = NULL,
    unique_key = CASE WHEN unique_scope = 'period' THEN unique_key END,
    return_value = CASE id WHEN %s THEN %s WHEN %s THEN %s END,
    last_attempted_at = TIMESTAMPADD(MICROSECOND, -CAST((CASE id WHEN %s THEN %s WHEN %s THEN %s END) * 1000000 AS SIGNED), UTC_TIMESTAMP(6)),
    started_at = COALESCE(started_at, last_attempted_at)
WHERE status = %s
  AND id IN (%s, %s)
  AND ((id = %s AND attempt = %s) OR (id = %s AND attempt = %s));

-- batch read-back
SELECT id
FROM offload_task
WHERE status = %s
  AND id IN (%s, %s)
  AND ((id = %s AND attempt = %s) OR (id = %s AND attempt = %s));
