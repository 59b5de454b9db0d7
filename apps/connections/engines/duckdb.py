"""DuckDB, in process.

The engine lock: every query opens the file afresh with `read_only=True` (DuckDB refuses to write
the catalogue or the data) and a configuration that switches off everything read-only mode does
not cover: external access (reading or writing any other file, COPY TO, EXPORT DATABASE, ATTACH,
the network), installing or auto-loading extensions, spilling to a temporary directory next to
the user's file; then `lock_configuration` makes all of it unchangeable by a statement. DuckDB's
own parser must find exactly one statement, and a SELECT, before it runs. A timer interrupts the
statement at its deadline; cancel interrupts it too.
"""

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import duckdb

from apps.connections.engines import register
from apps.connections.engines.base import (
    SAMPLE_LIMIT,
    SAMPLE_MAX_DISTINCT,
    SAMPLE_MAX_LENGTH,
    CancelRegistrar,
    ColumnInfo,
    ConnectionFailed,
    ConnectionSpec,
    Engine,
    EngineError,
    QueryCancelled,
    QueryFailed,
    QueryResult,
    QueryTimeout,
    ResultColumn,
    TableInfo,
    convert_rows,
    is_sensitive_column,
)

# Applied when the database opens; lock_configuration then refuses any SET or PRAGMA that would
# change one of them (or any other setting).
CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "temp_directory": "",
    "lock_configuration": True,
}
# approx_count_distinct and approx_top_k read every row, so only small schemas and tables are
# sampled, one query per table, within one overall budget.
SAMPLE_MAX_TABLES = 200
SAMPLE_MAX_ROWS = 5_000_000
SAMPLE_BUDGET_S = 10.0
_TEXT_TYPES = ("VARCHAR", "ENUM")
# Python's DuckDB client needs pytz to build zone-aware datetimes; such columns are read as
# DuckDB's own text rendering instead (e.g. "2024-05-01 12:00:00+00").
_ZONED = "WITH TIME ZONE"


def _connection_error(spec: ConnectionSpec, exc: Exception) -> ConnectionFailed:
    name = spec.file_path.name if spec.file_path else spec.database
    message = str(exc).lower()
    if "does not exist" in message or "no such file" in message:
        return ConnectionFailed(f"The file “{name}” does not exist.", retryable=False)
    if "lock" in message:
        return ConnectionFailed(f"The file “{name}” is being written by another program.", retryable=True)
    if "not a valid duckdb database" in message or ("invalid" in message and "database" in message):
        return ConnectionFailed(f"The file “{name}” is not a DuckDB database.", retryable=False)
    return ConnectionFailed(f"The file “{name}” cannot be opened: {_first_line(exc)}", retryable=False)


def _open(spec: ConnectionSpec) -> duckdb.DuckDBPyConnection:
    if spec.file_path is None:
        raise ConnectionFailed("This connection names no database file.", retryable=False)
    try:
        return duckdb.connect(str(spec.file_path), read_only=True, config=dict(CONFIG))
    except duckdb.Error as exc:
        raise _connection_error(spec, exc) from None


def _first_line(exc: Exception) -> str:
    # DuckDB appends the statement with a caret under the error ("LINE 1: ..."): keep the sentence.
    return str(exc).split("\nLINE ", 1)[0].strip()


@contextlib.contextmanager
def _session(
    spec: ConnectionSpec, on_cancel: CancelRegistrar | None = None, *, timeout_s: float | None = None
) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict]]:
    """A fresh read-only connection whose statement is interrupted at the deadline."""
    timeout = float(timeout_s if timeout_s is not None else spec.statement_timeout_s)
    conn = _open(spec)
    state = {"cancelled": False, "timed_out": False}

    def interrupt(reason: str = "cancelled") -> None:
        state[reason] = True
        with contextlib.suppress(duckdb.Error):
            conn.interrupt()

    if on_cancel is not None:
        on_cancel(interrupt)
    timer = threading.Timer(timeout, interrupt, kwargs={"reason": "timed_out"})
    timer.daemon = True
    timer.start()
    try:
        yield conn, state
    except duckdb.Error as exc:
        raise _query_error(exc, state, timeout) from None
    finally:
        timer.cancel()
        conn.close()


def _query_error(exc: duckdb.Error, state: dict, timeout_s: float) -> EngineError:
    message = _first_line(exc)
    if isinstance(exc, duckdb.InterruptException):
        if state["timed_out"] and not state["cancelled"]:
            return QueryTimeout(f"The query ran longer than {timeout_s:g} s and was stopped.")
        return QueryCancelled("The query was stopped.")
    if isinstance(exc, duckdb.PermissionException):
        return QueryFailed(f"DataMind connections may only read this database. {message}")
    if "read-only mode" in message:
        return QueryFailed("The database refused to change data: DataMind connections are read-only.")
    if "configuration has been locked" in message:
        return QueryFailed("Settings cannot be changed on a DataMind connection.")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return QueryFailed("The query needed more memory than DuckDB may use here.")
    return QueryFailed(message or "The database could not run this query.")


def _prepare(conn: duckdb.DuckDBPyConnection, sql_text: str) -> tuple[str, list[ResultColumn]]:
    """The statement to run and its columns, once DuckDB's parser agrees it is a single SELECT."""
    statements = conn.extract_statements(sql_text)
    if len(statements) != 1:
        raise QueryFailed("Only one statement can run at a time.")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise QueryFailed("DataMind connections only run queries (SELECT).")
    query = statements[0].query
    relation = conn.sql(query)  # binds without running: names and types of the result
    types = [str(t) for t in relation.types]
    columns = [ResultColumn(name=name, type=t) for name, t in zip(relation.columns, types, strict=True)]
    if any(_ZONED in t for t in types):
        # Positional references keep duplicate column names apart.
        projection = ", ".join(
            f"CAST(#{i} AS VARCHAR)" if _ZONED in t else f"#{i}" for i, t in enumerate(types, start=1)
        )
        query = relation.project(projection).sql_query()
    return query, columns


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


_TABLES_SQL = """
SELECT schema_name, table_name, false, coalesce(comment, ''), estimated_size
FROM duckdb_tables()
WHERE database_name = current_database() AND NOT internal AND NOT temporary AND ($1 = '' OR schema_name = $1)
UNION ALL
SELECT schema_name, view_name, true, coalesce(comment, ''), NULL
FROM duckdb_views()
WHERE database_name = current_database() AND NOT internal AND NOT temporary AND ($1 = '' OR schema_name = $1)
"""

_COLUMNS_SQL = """
SELECT schema_name, table_name, column_name, column_index, data_type, is_nullable, coalesce(comment, '')
FROM duckdb_columns()
WHERE database_name = current_database() AND NOT internal AND ($1 = '' OR schema_name = $1)
ORDER BY schema_name, table_name, column_index
"""

_KEYS_SQL = """
SELECT schema_name, table_name, constraint_type, constraint_column_names,
       referenced_table, referenced_column_names
FROM duckdb_constraints()
WHERE database_name = current_database() AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY')
  AND ($1 = '' OR schema_name = $1)
"""


@register
class DuckDBEngine(Engine):
    name = "duckdb"
    label = "DuckDB"
    dialect = "duckdb"
    is_file_based = True

    def test(self, spec: ConnectionSpec) -> str:
        with _session(spec) as (conn, _state):
            (version,) = conn.execute("SELECT version()").fetchone()
        return f"DuckDB {str(version).removeprefix('v')}"

    def introspect(self, spec: ConnectionSpec, *, excluded_columns: frozenset[str]) -> list[TableInfo]:
        params = [spec.schema]
        with _session(spec, timeout_s=max(spec.statement_timeout_s, 120)) as (conn, _state):
            tables = {
                (schema, name): TableInfo(schema, name, is_view=is_view, comment=comment, row_estimate=rows)
                for schema, name, is_view, comment, rows in conn.execute(_TABLES_SQL, params).fetchall()
            }
            for schema, table, *column in conn.execute(_COLUMNS_SQL, params).fetchall():
                if (info := tables.get((schema, table))) is not None:
                    name, index, data_type, nullable, comment = column
                    info.columns.append(ColumnInfo(name, index, data_type, nullable, comment=comment))
            columns = {(t.schema, t.name, c.name): c for t in tables.values() for c in t.columns}
            for schema, table, kind, names, f_table, f_names in conn.execute(_KEYS_SQL, params).fetchall():
                for i, name in enumerate(names):
                    if (info := columns.get((schema, table, name))) is None:
                        continue
                    if kind == "PRIMARY KEY":
                        info.is_primary_key = True
                    elif f_table and f_names and i < len(f_names):
                        info.references = f"{schema}.{f_table}.{f_names[i]}"
        if len(tables) <= SAMPLE_MAX_TABLES:
            self._sample(spec, tables.values(), excluded_columns)
        return list(tables.values())

    def _sample(
        self, spec: ConnectionSpec, tables: Iterable[TableInfo], excluded_columns: frozenset[str]
    ) -> None:
        """The most frequent values of each low-cardinality text column: one pass per table
        computes every column's approximate distinct count and top values together."""
        with contextlib.suppress(EngineError), _session(spec, timeout_s=SAMPLE_BUDGET_S) as (conn, _state):
            for table in tables:
                if table.is_view or (table.row_estimate or 0) > SAMPLE_MAX_ROWS:
                    continue
                eligible = [
                    column
                    for column in table.columns
                    if column.data_type.startswith(_TEXT_TYPES)
                    and not is_sensitive_column(column.name)
                    and f"{table.qualified_name}.{column.name}" not in excluded_columns
                ]
                if not eligible:
                    continue
                aggregates = ", ".join(
                    f"approx_count_distinct({_quote(c.name)}), approx_top_k({_quote(c.name)}, {SAMPLE_LIMIT})"
                    for c in eligible
                )
                try:
                    row = conn.execute(
                        f"SELECT {aggregates} FROM {_quote(table.schema)}.{_quote(table.name)}"
                    ).fetchone()
                except duckdb.InterruptException:
                    return  # the budget is spent
                except duckdb.Error:
                    continue
                for i, column in enumerate(eligible):
                    distinct, top = row[2 * i], row[2 * i + 1] or []
                    if distinct <= SAMPLE_MAX_DISTINCT:
                        column.samples = [
                            str(v) for v in top if v is not None and len(str(v)) <= SAMPLE_MAX_LENGTH
                        ][:SAMPLE_LIMIT]

    def execute(
        self, spec: ConnectionSpec, sql_text: str, *, row_cap: int, on_cancel: CancelRegistrar | None = None
    ) -> QueryResult:
        started = time.perf_counter()
        with _session(spec, on_cancel) as (conn, state):
            query, columns = _prepare(conn, sql_text)
            if state["cancelled"]:  # interrupt() finds nothing to stop before the statement starts
                raise QueryCancelled("The query was stopped.")
            rows = conn.execute(query).fetchmany(row_cap + 1)
        return QueryResult.from_fetched(columns, rows, row_cap=row_cap, started=started)

    def stream_rows(
        self, spec: ConnectionSpec, sql_text: str, *, batch_size: int = 5000
    ) -> Iterator[list[ResultColumn] | list[list[Any]]]:
        with _session(spec) as (conn, _state):
            query, columns = _prepare(conn, sql_text)
            result = conn.execute(query)
            batch = result.fetchmany(batch_size)
            yield columns
            while batch:
                yield convert_rows(batch)
                batch = result.fetchmany(batch_size)
