-- complete.sqlite.sql: rendered by tests/golden.py; do not edit by hand.
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
-- SQLite: the batch is a VALUES list joined to the table by id (UPDATE ...
-- FROM), each row found by its rowid: a CASE on the id per column would cost
-- each row a search of the whole batch (three CASEs made a batch of 200 three
-- times as slow). The seconds run go through printf, as a small REAL would
-- print as 1.0e-05, which the time modifier does not read. RETURNING says which
-- rows were written.
--
-- As passed to Django's cursor: %s is a parameter, %% a literal %. Laid out on
-- lines for reading; each line break stands for one space of the real text.
-- Rewrite with OFFLOAD_UPDATE_GOLDEN=1 (see tests/unit/test_sql_golden.py).

-- one
UPDATE offload_task
SET status = %s,
    finished_at = strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now'),
    return_value = %s,
    lease_owner = NULL,
    lease_expires_at = NULL,
    unique_key = CASE WHEN unique_scope = 'period' THEN unique_key END,
    started_at = COALESCE(started_at, strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', printf('-%%.6f seconds', %s))),
    last_attempted_at = strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', printf('-%%.6f seconds', %s))
WHERE id = %s
  AND attempt = %s
  AND status = %s;

-- batch of two
UPDATE offload_task AS t
SET status = %s,
    finished_at = strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now'),
    lease_owner = NULL,
    lease_expires_at = NULL,
    unique_key = CASE WHEN unique_scope = 'period' THEN unique_key END,
    started_at = COALESCE(started_at, strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', printf('-%%.6f seconds', d.ran))),
    last_attempted_at = strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', printf('-%%.6f seconds', d.ran)),
    return_value = d.value
FROM (SELECT column1 AS id, column2 AS attempt, column3 AS value, column4 AS ran
    FROM (VALUES (%s, %s, %s, %s), (%s, %s, %s, %s))) AS d
WHERE t.id = d.id
  AND t.attempt = d.attempt
  AND t.status = %s
RETURNING id;
