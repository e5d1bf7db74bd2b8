-- complete.postgresql.sql: rendered by tests/golden.py; do not edit by hand.
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
-- PostgreSQL: the batch comes as four arrays (four parameters whatever its
-- size), joined to the table and fenced row by row; RETURNING says which rows
-- were written.
--
-- As passed to Django's cursor: %s is a parameter, %% a literal %. Laid out on
-- lines for reading; each line break stands for one space of the real text.
-- Rewrite with OFFLOAD_UPDATE_GOLDEN=1 (see tests/unit/test_sql_golden.py).

-- one
UPDATE offload_task
SET status = %s,
    finished_at = statement_timestamp(),
    return_value = %s::jsonb,
    lease_owner = NULL,
    lease_expires_at = NULL,
    unique_key = CASE WHEN unique_scope = 'period' THEN unique_key END,
    started_at = COALESCE(started_at, statement_timestamp() - (%s) * interval '1 second'),
    last_attempted_at = statement_timestamp() - (%s) * interval '1 second'
WHERE id = %s
  AND attempt = %s
  AND status = %s;

-- batch of two
UPDATE offload_task AS t
SET status = %s,
    finished_at = statement_timestamp(),
    lease_owner = NULL,
    lease_expires_at = NULL,
    unique_key = CASE WHEN unique_scope = 'period' THEN unique_key END,
    started_at = COALESCE(started_at, statement_timestamp() - (d.ran) * interval '1 second'),
    last_attempted_at = statement_timestamp() - (d.ran) * interval '1 second',
    return_value = d.value::jsonb
FROM unnest(%s::bigint[], %s::integer[], %s::text[], %s::double precision[]) AS d(id, attempt, value, ran)
WHERE t.id = d.id
  AND t.attempt = d.attempt
  AND t.status = %s
RETURNING t.id;
