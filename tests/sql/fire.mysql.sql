-- fire.mysql.sql: rendered by tests/golden.py; do not edit by hand.
--
-- A schedule's tick: this row is inserted in the same transaction as the
-- task's enqueue (which announces the task at commit). The unique
-- (schedule_id, fire_at) key makes a second scheduler's insert fail, and its
-- transaction, task included, rolls back: each tick fires once however many
-- schedulers run. So a plain INSERT, no skip on conflict; quoted and returning
-- the id as Django's ORM writes it.
--
-- As passed to Django's cursor: %s is a parameter, %% a literal %. Laid out on
-- lines for reading; each line break stands for one space of the real text.
-- Rewrite with OFFLOAD_UPDATE_GOLDEN=1 (see tests/unit/test_sql_golden.py).

-- fire row
INSERT INTO `offload_schedule_fire` (`schedule_id`, `fire_at`, `fired_at`, `outcome`, `fired_by`, `task_id`)
VALUES (%s, %s, %s, %s, %s, %s)
RETURNING `offload_schedule_fire`.`id`;
