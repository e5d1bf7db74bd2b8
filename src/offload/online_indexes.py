"""Index changes on a busy table that never stop its writers, for offload's migrations.

A plain ``CREATE INDEX`` on PostgreSQL holds a lock that blocks every INSERT
and UPDATE of the table until the index is built: on a large ``offload_task``
that stops enqueues, claims and completions for as long as the build takes.
So offload's migrations build and drop the task table's indexes:

- on PostgreSQL ``CONCURRENTLY`` (the migration must be ``atomic = False``;
  an index a failed build left INVALID is dropped before it is built again);
- on MariaDB with ``ALGORITHM=INPLACE, LOCK=NONE``: InnoDB builds a secondary
  index online by default, and this makes the server refuse rather than
  quietly fall back to a copy under lock;
- on SQLite as usual (one writer at a time whatever the statement).

The operations take the same arguments as Django's ``AddIndex`` and
``RemoveIndex`` and leave the same migration state, so the schema they build is
the one those would have built.
"""

from __future__ import annotations

from typing import Any

from django.db import NotSupportedError, migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import ProjectState
from django.db.models import Index, Model

# MariaDB's options that make an index change online, or fail. Its DROP INDEX
# takes none, so a drop is written as ALTER TABLE ... DROP INDEX.
MARIADB_ONLINE = "ALGORITHM=INPLACE LOCK=NONE"
MARIADB_DROP = "ALTER TABLE {table} DROP INDEX {name}, ALGORITHM=INPLACE, LOCK=NONE"


def _vendor(schema_editor: BaseDatabaseSchemaEditor) -> str:
    return str(schema_editor.connection.vendor)


def _outside_transaction(schema_editor: BaseDatabaseSchemaEditor, what: str) -> None:
    if schema_editor.connection.in_atomic_block:
        raise NotSupportedError(
            f"{what} on PostgreSQL runs CONCURRENTLY, which cannot run inside a "
            "transaction: set atomic = False on the migration."
        )


def _drop_if_invalid(schema_editor: BaseDatabaseSchemaEditor, name: str) -> None:
    """Drop index ``name`` if an interrupted concurrent build left it INVALID."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace "
            "AND NOT i.indisvalid",
            [name],
        )
        invalid = cursor.fetchone() is not None
    if invalid:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")


def create_index_sql(
    schema_editor: BaseDatabaseSchemaEditor,
    name: str,
    table: str,
    columns: str,
    where: str = "",
    *,
    unique: bool = False,
) -> None:
    """``CREATE [UNIQUE] INDEX name ON table (columns) [WHERE where]``, online on every engine.

    For indexes the migrations write in SQL (partial ones, and ones kept out of
    the model's state); ``where`` is ignored where partial indexes do not exist.
    A unique index built CONCURRENTLY on PostgreSQL enforces itself from the
    moment its build starts (a duplicate written meanwhile fails the build,
    whose INVALID index the next attempt drops).
    """
    condition = f" WHERE {where}" if where else ""
    create = "CREATE UNIQUE INDEX" if unique else "CREATE INDEX"
    vendor = _vendor(schema_editor)
    if vendor == "postgresql":
        _outside_transaction(schema_editor, f"Creating index {name}")
        _drop_if_invalid(schema_editor, name)
        schema_editor.execute(f"{create} CONCURRENTLY {name} ON {table} ({columns}){condition}")
    elif vendor == "mysql":
        schema_editor.execute(f"{create} {name} ON {table} ({columns}) {MARIADB_ONLINE}")
    else:
        schema_editor.execute(f"{create} {name} ON {table} ({columns}){condition}")


def drop_index_sql(schema_editor: BaseDatabaseSchemaEditor, name: str, table: str) -> None:
    """``DROP INDEX name``, online on every engine."""
    vendor = _vendor(schema_editor)
    if vendor == "postgresql":
        _outside_transaction(schema_editor, f"Dropping index {name}")
        schema_editor.execute(f"DROP INDEX CONCURRENTLY {name}")
    elif vendor == "mysql":
        schema_editor.execute(MARIADB_DROP.format(table=table, name=name))
    else:
        schema_editor.execute(f"DROP INDEX {name}")


def add_index(schema_editor: BaseDatabaseSchemaEditor, model: type[Model], index: Index) -> None:
    """``schema_editor.add_index(model, index)``, online on every engine."""
    vendor = _vendor(schema_editor)
    if vendor == "postgresql":
        _outside_transaction(schema_editor, f"Creating index {index.name}")
        _drop_if_invalid(schema_editor, str(index.name))
        schema_editor.add_index(model, index, concurrently=True)  # type: ignore[call-arg]
    elif vendor == "mysql":
        statement = index.create_sql(model, schema_editor)
        schema_editor.execute(f"{statement} {MARIADB_ONLINE}", params=None)
    else:
        schema_editor.add_index(model, index)


def remove_index(schema_editor: BaseDatabaseSchemaEditor, model: type[Model], index: Index) -> None:
    """``schema_editor.remove_index(model, index)``, online on every engine."""
    vendor = _vendor(schema_editor)
    if vendor == "postgresql":
        _outside_transaction(schema_editor, f"Dropping index {index.name}")
        schema_editor.remove_index(model, index, concurrently=True)  # type: ignore[call-arg]
    elif vendor == "mysql":
        quote = schema_editor.quote_name
        schema_editor.execute(
            MARIADB_DROP.format(table=quote(model._meta.db_table), name=quote(str(index.name)))
        )
    else:
        schema_editor.remove_index(model, index)


class AddIndexOnline(migrations.AddIndex):
    """``AddIndex`` that never blocks the table's writers (see the module's doc)."""

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            add_index(schema_editor, model, self.index)

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            remove_index(schema_editor, model, self.index)

    def describe(self) -> str:
        return f"{super().describe()}, online"


class RemoveIndexOnline(migrations.RemoveIndex):
    """``RemoveIndex`` that never blocks the table's writers (see the module's doc)."""

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = _index(from_state, app_label, self.model_name_lower, self.name)
            remove_index(schema_editor, model, index)

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = _index(to_state, app_label, self.model_name_lower, self.name)
            add_index(schema_editor, model, index)

    def describe(self) -> str:
        return f"{super().describe()}, online"


def _index(state: ProjectState, app_label: str, model: str, name: str) -> Any:
    return state.models[app_label, model].get_index_by_name(name)
