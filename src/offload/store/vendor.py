"""The small differences between database engines, in one place.

What Django already knows (``connection.features``: RETURNING from INSERT and
UPDATE, SKIP LOCKED) is asked of Django; what it does not (the SQL spelling of
"now" in UTC, JSON array append, interval arithmetic) is spelled here.

Times always come from the database's clock, never the host's, so that workers
on hosts with skewed clocks agree on when a task is due or a lease expired. For
SQLite the database's clock is the host's: every process shares one file.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.dateparse import parse_datetime

from offload.exceptions import UnsupportedDatabase


@dataclass(frozen=True, slots=True)
class Vendor:
    name: str
    # SQL for the current UTC time with sub-second precision, comparable with
    # what Django stores in a DateTimeField on this engine.
    now: str
    # SQL for "now plus %s seconds" (one float parameter).
    now_plus_seconds: str
    # SQL for "now minus {seconds} seconds", {seconds} an SQL expression (a
    # parameter, a CASE, a column): when a task's code began, from how long
    # the worker has seen it run, so the time is still the database's clock.
    now_minus: str
    # SQL that appends one string parameter to a JSON array column; {col} is the column.
    append_string: str
    # SQL for a JSON array column without its last element; {col} is the column.
    pop_last: str
    # SQL that appends one JSON value, given as encoded text, to a JSON array column.
    append_json: str
    # Placeholder for a JSON parameter given as already-encoded text.
    json_param: str
    # Suffix of a SELECT that locks the rows it reads until the transaction ends
    # ("" on SQLite, whose write transactions lock the whole database).
    lock_rows: str
    # The SQL type to CAST a float parameter to.
    float_type: str
    # An INSERT that skips rows whose unique key exists: {table}, {columns}, {rows}.
    insert_or_skip: str
    # The condition of the partial index offload_task_async_claim_idx on
    # is_async, written as Django wrote it there: a planner uses a partial
    # index only when it can match the query's terms to the index's. None
    # where there are no partial indexes (MariaDB).
    async_only: str | None
    # What follows the table name to make the planner use index {index}
    # ("" where its cost model picks the right one by itself). SQLite keeps no
    # statistics for an empty partial index and prefers a wider one that
    # reads the whole backlog; INDEXED BY settles it (and fails loudly if the
    # index were missing, rather than quietly slowing every claim).
    use_index: str
    # The claim as one UPDATE ... RETURNING, from {pick} (the SELECT of the
    # rows to take, see ``store.claim``), {assignments}, {table} and the
    # returned {columns} (PostgreSQL: {t_columns}, qualified by the alias t).
    # None on MariaDB, which has no UPDATE ... RETURNING and no LIMIT in an
    # IN subquery: it claims with a read and a fenced update instead.
    claim: str | None
    # The bulk success write (``store.outcomes``) from arrays, one parameter
    # per column whatever the batch: {table}, {assignments}, {fence}. None:
    # a CASE on the id picks each row's value instead.
    complete_from_arrays: str | None
    # The pruner's delete of a batch in one statement, from {pick} (the SELECT
    # of the ids to delete, oldest first, with its LIMIT), {table} and {recheck}
    # (the terms that make a row deletable, tested again on the row deleted).
    # None on MariaDB, which has no LIMIT in an IN subquery: it reads the ids,
    # then deletes them by primary key (see ``store.prune``).
    delete_picked: str | None
    # The bulk success write from a VALUES list of the rows (id, attempt,
    # value, ran), joined to the table by id: {table}, {assignments}, {rows}
    # (the VALUES rows), {fence}. None: arrays, or else a CASE on the id.
    complete_from_rows: str | None
    # Whether an UPDATE can end in RETURNING (MariaDB's cannot).
    update_returning: bool
    # The multi-row INSERT of new tasks from arrays ({table}, {columns}), or
    # None for a VALUES list. Arrays on PostgreSQL: a VALUES list would cost
    # the driver a parse of thousands of placeholders per statement, longer
    # than the insert itself.
    insert_from_arrays: str | None
    # How the one-task INSERT ({insert}, ending in RETURNING id, enqueued_at)
    # also sends NOTIFY (channel and payload as parameters) in the same round
    # trip, or None where the engine has no NOTIFY (see ``store.announce``).
    insert_and_notify: str | None
    # The statement that sends one NOTIFY (channel, payload), or None.
    notify: str | None
    # What precedes a statement to get its plan.
    explain: str
    # The character that quotes an identifier, as Django's ORM writes it.
    quote: str
    # Statements run once on each new connection of a worker's own (see
    # store.connection.open_private), never on the connection task code or
    # the web process shares.
    worker_session: tuple[str, ...] = ()
    # What an idle worker runs to move the write-ahead log into the database
    # file (SQLite), or None where the database does that by itself.
    idle_checkpoint: str | None = None
    # Whether each SET term of an UPDATE sees the terms before it (MariaDB),
    # rather than the row as it was (the standard).
    set_in_order: bool = False
    # What holds back VACUUM on the task table for longer than %s seconds,
    # oldest first, at most %s rows (see ``store.vacuum``), or None where
    # nothing can (SQLite has no MVCC garbage; InnoDB's purge thread is
    # another story, see docs/operations.md#what-holds-vacuum-back).
    vacuum_blockers: str | None = None
    # For an engine whose dead row versions stay until a VACUUM (PostgreSQL):
    # one row of (whether autovacuum will vacuum table %s, its live rows, its
    # dead rows), and the VACUUM to run when it will not. None elsewhere:
    # SQLite reuses freed pages and InnoDB's purge thread needs no help.
    dead_rows: str | None = None
    vacuum: str | None = None
    # What ends a SELECT that must see the latest committed rows whatever
    # the transaction's snapshot (the holder of a unique key, just refused
    # by the unique index, see ``store.unique``). InnoDB's default REPEATABLE
    # READ reads an older snapshot in a transaction that already read, which
    # may predate the holder; a locking read reads the latest, and the shared
    # lock is the one the refused INSERT already took on that entry.
    # PostgreSQL's READ COMMITTED and SQLite's one writer see it anyway.
    read_latest: str = ""
    # What ends the INSERT of a row that may exist, so that it then writes
    # {column} of the existing row to the value given: the lock of a
    # concurrency key (see ``store.gate``), whose write locks the row until
    # the transaction ends. {keys}: the columns of the unique constraint.
    touch_on_conflict: str = "ON CONFLICT ({keys}) DO UPDATE SET {column} = excluded.{column}"


# Three catalog views, read once each: no table of offload's, no lock, no
# statistics function that walks the whole server. Only what can hold back a
# table of this database: sessions and prepared transactions of other
# databases cannot (each database has its own horizon since PostgreSQL 14, and
# before it sessions of other databases never counted for its tables), while a
# physical slot (database NULL) counts for every database. A session counts
# when it has a snapshot (backend_xmin) or an xid of its own (backend_xid: a
# READ COMMITTED transaction that wrote and sits idle); its age is its
# transaction's, an upper bound of how long it has held the horizon.
# Autovacuum's own workers and this probe's session are left out: vacuum
# ignores the former, and the latter holds nothing once it returns.
# A slot records no time: PostgreSQL 17 adds inactive_since, read through
# to_jsonb so the same statement runs on older servers (it is NULL there);
# an inactive slot with an xmin but no time is reported whatever the
# threshold, since nothing will ever move its horizon on.
# pg_stat_activity shows other roles' transaction columns only to
# superusers and pg_read_all_stats: without it, only the site's own role's
# sessions can be named (docs/operations.md#what-holds-vacuum-back).
_PG_VACUUM_BLOCKERS = """
SELECT kind, pid, name, application_name, client, state, since, query_start,
       EXTRACT(EPOCH FROM statement_timestamp() - since) AS age_seconds, xmin_age
FROM (
    SELECT 'transaction' AS kind, a.pid, a.usename::text AS name,
           a.application_name::text AS application_name,
           host(a.client_addr) AS client, a.state::text AS state,
           a.xact_start AS since, a.query_start,
           greatest(age(a.backend_xmin), age(a.backend_xid)) AS xmin_age
    FROM pg_stat_activity AS a
    WHERE a.datname = current_database()
      AND a.pid <> pg_backend_pid()
      AND (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL)
      AND a.backend_type NOT LIKE 'autovacuum%%'
      AND a.xact_start < statement_timestamp() - %s * interval '1 second'
    UNION ALL
    SELECT 'prepared transaction', NULL, p.gid::text, p.owner::text, NULL, 'prepared',
           p.prepared, NULL, age(p.transaction)
    FROM pg_prepared_xacts AS p
    WHERE p.database = current_database()
      AND p.prepared < statement_timestamp() - %s * interval '1 second'
    UNION ALL
    SELECT 'replication slot', s.active_pid, s.slot_name::text, s.slot_type::text, NULL,
           CASE WHEN s.active THEN 'active' ELSE 'inactive' END,
           (to_jsonb(s) ->> 'inactive_since')::timestamptz, NULL,
           greatest(age(s.xmin), age(s.catalog_xmin))
    FROM pg_replication_slots AS s
    WHERE (s.database IS NULL OR s.database = current_database())
      AND (s.xmin IS NOT NULL OR s.catalog_xmin IS NOT NULL)
      AND NOT s.active
      AND coalesce((to_jsonb(s) ->> 'inactive_since')::timestamptz, '-infinity')
          < statement_timestamp() - %s * interval '1 second'
) AS found
ORDER BY xmin_age DESC NULLS LAST, since NULLS FIRST
LIMIT %s
"""

_POSTGRESQL = Vendor(
    name="postgresql",
    # Autovacuum runs on a table only when it is on for the server and not
    # turned off for the table (reloption autovacuum_enabled).
    dead_rows=(
        "SELECT current_setting('autovacuum')::boolean AND COALESCE(("
        "SELECT option_value::boolean FROM pg_options_to_table(c.reloptions) "
        "WHERE option_name = 'autovacuum_enabled'), true), s.n_live_tup, s.n_dead_tup "
        "FROM pg_class AS c JOIN pg_stat_user_tables AS s ON s.relid = c.oid "
        "WHERE c.oid = %s::regclass"
    ),
    # Not FULL: plain VACUUM takes a lock that claims, enqueues and outcome
    # writes never wait for.
    vacuum="VACUUM (ANALYZE) {table}",
    # statement_timestamp(), not now(): inside a longer transaction now() is the
    # transaction's start.
    now="statement_timestamp()",
    now_plus_seconds="statement_timestamp() + %s * interval '1 second'",
    now_minus="statement_timestamp() - ({seconds}) * interval '1 second'",
    append_string="{col} || jsonb_build_array(%s::text)",
    append_json="{col} || jsonb_build_array(%s::jsonb)",
    pop_last="({col} - -1)",
    json_param="%s::jsonb",
    lock_rows=" FOR UPDATE",
    float_type="double precision",
    insert_or_skip="INSERT INTO {table} ({columns}) VALUES {rows} ON CONFLICT DO NOTHING",
    async_only="is_async",
    use_index="",
    # The CTE is MATERIALIZED so the LIMIT is applied once: inlined as a
    # semi-join, PostgreSQL may re-run the subquery and claim more rows.
    # SKIP LOCKED makes concurrent claimers take disjoint rows, not wait.
    claim=(
        "WITH picked AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED) "
        "UPDATE {table} AS t SET {assignments} FROM picked WHERE t.id = picked.id "
        "RETURNING {t_columns}"
    ),
    complete_from_arrays=(
        "UPDATE {table} AS t SET {assignments}, return_value = d.value::jsonb "
        "FROM unnest(%s::bigint[], %s::integer[], %s::text[], %s::double precision[]) "
        "AS d(id, attempt, value, ran) "
        "WHERE {fence} RETURNING t.id"
    ),
    # MATERIALIZED: the LIMIT applies once. SKIP LOCKED: a row an operator's
    # action holds is left for the next batch rather than waited for.
    delete_picked=(
        "WITH picked AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED) "
        "DELETE FROM {table} USING picked WHERE {table}.id = picked.id AND {recheck}"
    ),
    complete_from_rows=None,
    update_returning=True,
    insert_from_arrays=(
        "INSERT INTO {table} {columns} "
        "SELECT r.task_path, r.backend, r.queue_name, r.priority, %s, r.is_async, "
        "r.max_attempts, r.timeout, r.run_after, COALESCE(r.run_after, statement_timestamp()), "
        "statement_timestamp(), 0, '[]'::jsonb, r.args::jsonb, r.kwargs::jsonb, '[]'::jsonb, "
        "r.trace_context::jsonb "
        "FROM unnest(%s::text[], %s::text[], %s::text[], %s::smallint[], %s::boolean[], "
        "%s::integer[], %s::double precision[], %s::timestamptz[], %s::text[], %s::text[], "
        "%s::text[]) "
        "WITH ORDINALITY AS r(task_path, backend, queue_name, priority, is_async, max_attempts, "
        "timeout, run_after, args, kwargs, trace_context, n) "
        "ORDER BY r.n RETURNING id, enqueued_at"
    ),
    # Delayed tasks notify too: a sleeping worker re-reads when the next task
    # is due, so one enqueued for sooner than that is not missed.
    insert_and_notify=(
        "WITH new AS ({insert}) SELECT new.id, new.enqueued_at, pg_notify(%s, %s) FROM new"
    ),
    notify="SELECT pg_notify(%s, %s)",
    explain="EXPLAIN",
    quote='"',
    # Every statement the worker sends on its own connection reads through an
    # index in the order it needs (the claim takes rows in index order, with a
    # LIMIT), so a sort there is always the wrong plan. The planner would still pick
    # one whenever its statistics are older than the backlog: after a burst
    # of enqueues into a table analyzed while its READY rows were few, it
    # expects a handful of them, reads every READY row with a bitmap scan
    # and sorts them all, for each claim, until autovacuum's next ANALYZE (a
    # claim of 10 took 5.5 ms at 30,000 ready rows, 1.0 ms with this). With
    # sorts priced out, the index scan is the plan whatever the statistics
    # say; a statement with no other way still sorts.
    worker_session=("SET enable_sort = off",),
    vacuum_blockers=_PG_VACUUM_BLOCKERS,
)
_SQLITE = Vendor(
    name="sqlite",
    # Django stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text in UTC;
    # strftime gives the same shape (to the millisecond), so text order is time order.
    now="strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')",
    # The modifier is "N seconds", N signed or not ("+-1" would not parse).
    now_plus_seconds="strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', %s || ' seconds')",
    # printf, not ||: a small REAL becomes text like 1.0e-05, which the
    # modifier does not read.
    now_minus="strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', printf('-%%.6f seconds', {seconds}))",
    append_string="json_insert({col}, '$[#]', %s)",
    append_json="json_insert({col}, '$[#]', json(%s))",
    pop_last="json_remove({col}, '$[#-1]')",
    json_param="%s",
    lock_rows="",
    float_type="REAL",
    insert_or_skip="INSERT INTO {table} ({columns}) VALUES {rows} ON CONFLICT DO NOTHING",
    # Django 6.0 writes the index's condition as "is_async", 6.1 as
    # "is_async" = 1, and SQLite matches a partial index's terms literally:
    # both terms, so the index serves whichever version migrated it.
    async_only="is_async AND is_async = 1",
    use_index="INDEXED BY {index}",
    # One UPDATE statement on SQLite takes the database's write lock before it
    # reads anything, so the statement is itself an immediate write
    # transaction: no other writer can claim between the SELECT and the
    # UPDATE, and there is no read-to-write upgrade to fail with BUSY.
    claim="UPDATE {table} SET {assignments} WHERE id IN ({pick}) RETURNING {columns}",
    complete_from_arrays=None,
    # One statement, so one short write transaction.
    delete_picked="DELETE FROM {table} WHERE id IN ({pick}) AND {recheck}",
    # The rows' list is read once and each row found by its id (the primary
    # key, so the rowid).
    complete_from_rows=(
        "UPDATE {table} AS t SET {assignments}, return_value = d.value "
        "FROM (SELECT column1 AS id, column2 AS attempt, column3 AS value, column4 AS ran "
        "FROM (VALUES {rows})) AS d WHERE {fence} RETURNING id"
    ),
    update_returning=True,
    insert_from_arrays=None,
    insert_and_notify=None,
    notify=None,
    explain="EXPLAIN QUERY PLAN",
    quote='"',
    # SQLite copies its log into the database file inside the COMMIT that
    # takes the log past wal_autocheckpoint (1,000 pages): copying and syncing
    # them held that commit 5 to 10 ms. When the commit is an enqueue's, the
    # wake-up it sends after committing is that late. PASSIVE never waits for
    # readers or writers; it copies what it can (see worker.loop).
    idle_checkpoint="PRAGMA wal_checkpoint(PASSIVE)",
)
_MYSQL = Vendor(
    name="mysql",
    # UTC_TIMESTAMP, not NOW(): Django writes UTC, while NOW() is the session's zone.
    now="UTC_TIMESTAMP(6)",
    now_plus_seconds="TIMESTAMPADD(MICROSECOND, CAST(%s * 1000000 AS SIGNED), UTC_TIMESTAMP(6))",
    now_minus="TIMESTAMPADD(MICROSECOND, -CAST(({seconds}) * 1000000 AS SIGNED), UTC_TIMESTAMP(6))",
    append_string="JSON_ARRAY_APPEND({col}, '$', %s)",
    # MariaDB has no CAST(... AS JSON); JSON_EXTRACT(x, '$') yields the value as JSON.
    append_json="JSON_ARRAY_APPEND({col}, '$', JSON_EXTRACT(%s, '$'))",
    pop_last="JSON_REMOVE({col}, CONCAT('$[', JSON_LENGTH({col}) - 1, ']'))",
    json_param="%s",
    lock_rows=" FOR UPDATE",
    float_type="DOUBLE",
    # MariaDB has no ON CONFLICT. INSERT IGNORE also turns other errors into
    # warnings; the rows written with it hold nothing but counts.
    insert_or_skip="INSERT IGNORE INTO {table} ({columns}) VALUES {rows}",
    async_only=None,
    use_index="",
    claim=None,
    complete_from_arrays=None,
    delete_picked=None,
    complete_from_rows=None,
    update_returning=False,
    insert_from_arrays=None,
    insert_and_notify=None,
    notify=None,
    explain="EXPLAIN",
    quote="`",
    set_in_order=True,
    read_latest=" LOCK IN SHARE MODE",
    touch_on_conflict="ON DUPLICATE KEY UPDATE {column} = VALUES({column})",
)

_VENDORS = {"postgresql": _POSTGRESQL, "sqlite": _SQLITE, "mysql": _MYSQL}


def vendor_named(name: str) -> Vendor:
    """The vendor of Django's vendor name ``name``, without a connection (for
    rendering statements, as the golden SQL tests do)."""
    return _VENDORS[name]


def worker_session(vendor: str) -> tuple[str, ...]:
    """``Vendor.worker_session`` for Django's vendor name (empty for any other engine)."""
    found = _VENDORS.get(vendor)
    return found.worker_session if found else ()


def vendor_for(connection: BaseDatabaseWrapper) -> Vendor:
    """Return the vendor of ``connection``, refusing engines offload cannot claim on."""
    problem = unsupported_reason(connection)
    if problem:
        raise UnsupportedDatabase(problem)
    return _VENDORS[connection.vendor]


def unsupported_reason(connection: BaseDatabaseWrapper) -> str | None:
    """Why offload cannot keep its tasks on ``connection``, or None if it can."""
    return engine_problem(connection) or server_problem(connection)


def engine_problem(connection: BaseDatabaseWrapper) -> str | None:
    """An unsupported engine, known from the settings alone (no query)."""
    if connection.vendor in _VENDORS:
        return None
    return (
        f"offload supports PostgreSQL, MariaDB and SQLite; database "
        f"{connection.alias!r} is {connection.vendor}."
    )


def server_problem(connection: BaseDatabaseWrapper) -> str | None:
    """An unsupported server behind a supported engine (asks the server once)."""
    # Django's "mysql" vendor covers MySQL too, which has no INSERT ... RETURNING:
    # the enqueue statement needs it to read the id and the database's clock back
    # in one round trip. (Django 6 requires MariaDB 10.6+, which has SKIP LOCKED.)
    if connection.vendor == "mysql" and not getattr(connection, "mysql_is_mariadb", False):
        return (
            f"Database {connection.alias!r} is MySQL; offload supports MariaDB (which has "
            "INSERT ... RETURNING), PostgreSQL and SQLite."
        )
    return None


def read_datetime(value: Any) -> datetime | None:
    """Turn a datetime read through a raw cursor into an aware UTC datetime.

    PostgreSQL returns aware values, MariaDB naive UTC ones, SQLite text or naive
    values depending on how the column was declared.
    """
    if value is None:
        return None
    if isinstance(value, (bytes, str)):
        text = value.decode() if isinstance(value, bytes) else value
        parsed = parse_datetime(text)
        if parsed is None:
            raise ValueError(f"Unreadable datetime from the database: {text!r}")
        value = parsed
    if not isinstance(value, datetime):
        raise TypeError(f"Expected a datetime from the database, got {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# Errors that mean "two transactions wanted the same locks; one was chosen to
# lose": MariaDB/MySQL deadlock (1213) and lock wait timeout (1205), PostgreSQL
# deadlock (40P01) and serialization failure (40001). InnoDB reports deadlocks
# between a claim and concurrent completions now and then, even with SKIP
# LOCKED, because both touch entries of the claim index. Nothing is lost (the
# statement's transaction was rolled back); the worker simply tries again.
_MYSQL_CONFLICTS = {1205, 1213}
_POSTGRESQL_CONFLICTS = {"40P01", "40001"}


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` (a Django DatabaseError) is a deadlock or lock timeout to retry."""
    cause = exc.__cause__ or exc
    if getattr(cause, "sqlstate", None) in _POSTGRESQL_CONFLICTS:
        return True
    args: tuple[Any, ...] = getattr(cause, "args", ())
    return bool(args) and args[0] in _MYSQL_CONFLICTS
