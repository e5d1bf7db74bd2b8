-- settle.postgresql.sql: rendered by tests/golden.py; do not edit by hand.
--
-- What the final state of a workflow task adds, in the same transaction as
-- its outcome, when the claim said it has dependents (a task outside a
-- workflow runs none of it). Each waiting dependent's count of unended
-- upstreams is lowered by an UPDATE of its row, whose lock makes two upstreams
-- ending at once count one after the other; the dependents at zero become
-- READY, or BLOCKED where a concurrency or rate key's gate must let them in.
-- A failed upstream cancels a dependent that stops on failure, and its own
-- dependents in turn. The rescuer recounts waiting tasks against their
-- upstreams' states, a compare-and-set on the count it read. A claimed task
-- that receives upstream results reads them, in order, in one read per batch.
--
-- As passed to Django's cursor: %s is a parameter, %% a literal %. Laid out on
-- lines for reading; each line break stands for one space of the real text.
-- Rewrite with OFFLOAD_UPDATE_GOLDEN=1 (see tests/unit/test_sql_golden.py).

-- waiting dependents of two ended tasks
SELECT d.task_id, t.on_upstream_failure, COUNT(*), MIN(CASE WHEN u.status <> 'SUCCESSFUL' THEN u.id END)
FROM offload_task_dependency d JOIN offload_task u ON u.id = d.upstream_id JOIN offload_task t ON t.id = d.task_id
WHERE d.upstream_id IN (%s, %s)
  AND t.status = 'WAITING' GROUP BY d.task_id, t.on_upstream_failure;

-- one dependent's count lowered
UPDATE offload_task
SET waiting_on = waiting_on - %s
WHERE id = %s
  AND status = 'WAITING';

-- which of two dependents are due
SELECT id, backend, queue_name, concurrency_key, rate_key
FROM offload_task
WHERE id IN (%s, %s)
  AND status = 'WAITING'
  AND waiting_on <= 0;

-- two dependents made ready
UPDATE offload_task
SET status = CASE WHEN concurrency_key IS NULL
  AND rate_key IS NULL THEN %s ELSE %s END
WHERE id IN (%s, %s)
  AND status = 'WAITING';

-- one dependent cancelled by a failed upstream
UPDATE offload_task
SET status = %s,
    finished_at = statement_timestamp(),
    errors = errors || jsonb_build_array(%s::jsonb)
WHERE id = %s
  AND status = 'WAITING';

-- the rescuer's recount
SELECT t.id, t.waiting_on, t.on_upstream_failure, (SELECT COUNT(*)
    FROM offload_task_dependency d JOIN offload_task u ON u.id = d.upstream_id
    WHERE d.task_id = t.id
      AND u.status NOT IN ('CANCELLED', 'FAILED', 'SUCCESSFUL')), (SELECT MIN(u.id)
    FROM offload_task_dependency d JOIN offload_task u ON u.id = d.upstream_id
    WHERE d.task_id = t.id
      AND u.status IN ('CANCELLED', 'FAILED', 'SUCCESSFUL')
      AND u.status <> 'SUCCESSFUL')
FROM offload_task t
WHERE t.status = 'WAITING'
  AND t.id > %s
ORDER BY t.id
LIMIT %s;

-- upstream results of two claimed tasks
SELECT d.task_id, d.position, d.upstream_id, u.status, u.return_value
FROM offload_task_dependency d LEFT JOIN offload_task u ON u.id = d.upstream_id
WHERE d.task_id IN (%s, %s);
