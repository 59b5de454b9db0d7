"""SQLite through the standard library's sqlite3.

The engine lock: the file is opened with `mode=ro`, so SQLite itself refuses to write to it, and
an authorizer allows nothing but reading: SELECT, reading columns, recursive CTEs and functions
other than a few dangerous ones. `mode=ro` alone is not enough: ATTACH (and VACUUM INTO, which
attaches its target) creates or opens other files, temporary tables, views and triggers live
outside the file, PRAGMA changes the session, and BEGIN IMMEDIATE locks out writers; the
authorizer denies all of them, and the attached-database limit is zero as a second fence.
Extensions cannot be loaded, and the sqlite3 module refuses a second statement. A progress
handler stops a statement at its deadline; `interrupt()` stops it on cancel.
"""

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

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

# Counting rows and sampling values read the tables themselves (unless ANALYZE left sqlite_stat1
# behind), so they are done only for files and schemas small enough to read in a moment.
SMALL_FILE_BYTES = 256 * 1024 * 1024
SAMPLE_MAX_TABLES = 200
SAMPLE_BUDGET_S = 10.0
# How many virtual-machine steps run between two looks at the clock: a few microseconds' worth.
PROGRESS_STEPS = 10_000

_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE})
# load_extension runs native code; fts3_tokenizer hands out a native pointer (a known route to
# code execution); the others are shell functions that touch files, refused should a build have them.
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})
# Read-only pragmas introspection needs (through their table-valued functions); never for users.
_INTROSPECTION_PRAGMAS = frozenset({"table_info", "table_xinfo", "foreign_key_list", "index_list"})
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_schema"})


def _authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if (arg2 or "").lower() in _DENIED_FUNCTIONS else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_UPDATE and arg1 in _SCHEMA_TABLES:
        # Eponymous virtual tables (json_each, the pragma functions) register themselves in the
        # schema on first use; ignoring that update lets them work without writing anything.
        return sqlite3.SQLITE_IGNORE
    return sqlite3.SQLITE_DENY


def _authorize_introspection(
    action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None
) -> int:
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _INTROSPECTION_PRAGMAS:
        return sqlite3.SQLITE_OK
    return _authorize(action, arg1, arg2, db, trigger)


def _connection_error(spec: ConnectionSpec, exc: Exception) -> ConnectionFailed:
    name = spec.file_path.name if spec.file_path else spec.database
    message = str(exc).lower()
    if "not a database" in message or "malformed" in message:
        return ConnectionFailed(f"The file “{name}” is not a SQLite database.", retryable=False)
    if "locked" in message or "busy" in message:
        return ConnectionFailed(f"The file “{name}” is locked by another program.", retryable=True)
    return ConnectionFailed(f"The file “{name}” cannot be opened.", retryable=False)


def _open(spec: ConnectionSpec, *, timeout_s: float, authorizer: Callable[..., int]) -> sqlite3.Connection:
    if spec.file_path is None:
        raise ConnectionFailed("This connection names no database file.", retryable=False)
    try:
        conn = sqlite3.connect(
            f"{spec.file_path.as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,  # no implicit BEGIN from the sqlite3 module
            check_same_thread=False,  # the cancel and timer threads call interrupt()
            timeout=min(5.0, float(timeout_s)),
        )
    except sqlite3.Error as exc:
        raise _connection_error(spec, exc) from None
    try:
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        with contextlib.suppress(AttributeError):  # builds without extension support lack it
            conn.enable_load_extension(False)
        # Functions with side effects may not run from inside the schema (views, triggers).
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.execute("PRAGMA query_only = ON")
        # Reading the schema now turns "not a database" into a connection error, not a query one.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise _connection_error(spec, exc) from None
    conn.set_authorizer(authorizer)
    return conn


@contextlib.contextmanager
def _session(
    spec: ConnectionSpec,
    on_cancel: CancelRegistrar | None = None,
    *,
    timeout_s: float | None = None,
    authorizer: Callable[..., int] = _authorize,
) -> Iterator[tuple[sqlite3.Connection, dict]]:
    """A read-only connection whose statements stop at the deadline; errors translated."""
    timeout = float(timeout_s if timeout_s is not None else spec.statement_timeout_s)
    conn = _open(spec, timeout_s=timeout, authorizer=authorizer)
    state = {"cancelled": False, "timed_out": False, "deadline": time.monotonic() + timeout}

    def should_stop() -> int:
        # Checking the cancel flag here too means a cancel that arrives before the statement
        # starts (when interrupt() would have nothing to stop) still stops it.
        if state["cancelled"]:
            return 1
        if time.monotonic() > state["deadline"]:
            state["timed_out"] = True
            return 1
        return 0

    def cancel(reason: str = "cancelled") -> None:
        state[reason] = True
        with contextlib.suppress(sqlite3.Error):  # already closed: nothing left to stop
            conn.interrupt()

    conn.set_progress_handler(should_stop, PROGRESS_STEPS)
    if on_cancel is not None:
        on_cancel(cancel)
    # The progress handler runs between virtual-machine steps; a single long step (a big sort)
    # is still stopped by interrupt(), which SQLite checks in more places.
    timer = threading.Timer(timeout + 1, cancel, kwargs={"reason": "timed_out"})
    timer.daemon = True
    timer.start()
    try:
        yield conn, state
    except (sqlite3.Error, sqlite3.Warning) as exc:
        raise _query_error(exc, state, timeout) from None
    finally:
        timer.cancel()
        conn.close()


def _query_error(exc: Exception, state: dict, timeout_s: float) -> EngineError:
    message = str(exc)
    lowered = message.lower()
    if "interrupted" in lowered:
        if state["cancelled"]:
            return QueryCancelled("The query was stopped.")
        if state["timed_out"]:
            return QueryTimeout(f"The query ran longer than {timeout_s:g} s and was stopped.")
        return QueryCancelled("The query was stopped.")
    if "one statement at a time" in lowered:
        return QueryFailed("Only one statement can run at a time.")
    if "not authorized" in lowered or "authorization denied" in lowered or "readonly database" in lowered:
        return QueryFailed("The database refused this statement: DataMind connections may only read.")
    if "too many attached databases" in lowered:
        return QueryFailed("The database refused to open another file: DataMind connections may only read.")
    return QueryFailed(message.strip() or "The database could not run this query.")


_VALUE_TYPES = {int: "integer", float: "real", str: "text", bytes: "blob"}


def _result_columns(description: tuple | None, rows: list[tuple]) -> list[ResultColumn]:
    """SQLite columns have no fixed type; name each after the storage class of its first value."""
    columns = []
    for i, col in enumerate(description or ()):
        sample = next((row[i] for row in rows if row[i] is not None), None)
        columns.append(ResultColumn(name=col[0], type=_VALUE_TYPES.get(type(sample), "null")))
    return columns


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _has_text_affinity(declared: str) -> bool:
    # SQLite's own rule (datatype3.html, 3.1): a declared type containing CHAR, CLOB or TEXT.
    upper = declared.upper()
    return any(part in upper for part in ("CHAR", "CLOB", "TEXT"))


_USER_OBJECTS = "m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"

_TABLES_SQL = f"SELECT m.name, m.type = 'view' FROM sqlite_master AS m WHERE {_USER_OBJECTS} ORDER BY m.name"

_COLUMNS_SQL = f"""
SELECT m.name, p.cid, p.name, p.type, p."notnull", p.pk
FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p
WHERE {_USER_OBJECTS} ORDER BY m.name, p.cid
"""

_FOREIGN_KEYS_SQL = f"""
SELECT m.name, f."from", f."table", f."to", f.seq
FROM sqlite_master AS m JOIN pragma_foreign_key_list(m.name) AS f
WHERE {_USER_OBJECTS}
"""


@register
class SQLiteEngine(Engine):
    name = "sqlite"
    label = "SQLite"
    dialect = "sqlite"
    is_file_based = True

    def test(self, spec: ConnectionSpec) -> str:
        with _session(spec) as (conn, _state):
            (version,) = conn.execute("SELECT sqlite_version()").fetchone()
        return f"SQLite {version}"

    def introspect(self, spec: ConnectionSpec, *, excluded_columns: frozenset[str]) -> list[TableInfo]:
        timeout = max(spec.statement_timeout_s, 120)
        with _session(spec, timeout_s=timeout, authorizer=_authorize_introspection) as (conn, state):
            tables = {
                name: TableInfo("", name, is_view=bool(is_view))
                for name, is_view in conn.execute(_TABLES_SQL)
            }
            kinds: dict[tuple[str, str], str] = {}
            primary_keys: dict[str, list[tuple[int, str]]] = {}
            for table, cid, name, declared, not_null, pk in conn.execute(_COLUMNS_SQL):
                if (info := tables.get(table)) is None:
                    continue
                declared = declared or ""
                info.columns.append(ColumnInfo(name, cid + 1, declared, not not_null, is_primary_key=pk > 0))
                kinds[(table, name)] = declared
                if pk:
                    primary_keys.setdefault(table, []).append((pk, name))
            columns = {(t.name, c.name): c for t in tables.values() for c in t.columns}
            for table, column, f_table, f_column, seq in conn.execute(_FOREIGN_KEYS_SQL):
                if (info := columns.get((table, column))) is None:
                    continue
                if f_column is None:
                    # REFERENCES t without a column list points at t's primary key.
                    keys = [name for _, name in sorted(primary_keys.get(f_table, []))]
                    f_column = keys[seq] if seq < len(keys) else ""
                info.references = f"{f_table}.{f_column}" if f_column else f_table
            small = spec.file_path is not None and spec.file_path.stat().st_size <= SMALL_FILE_BYTES
            self._estimate_rows(conn, tables, small=small)
            if small and len(tables) <= SAMPLE_MAX_TABLES:
                state["deadline"] = min(state["deadline"], time.monotonic() + SAMPLE_BUDGET_S)
                self._sample(conn, state, tables.values(), kinds, excluded_columns)
        return list(tables.values())

    def _estimate_rows(self, conn: sqlite3.Connection, tables: dict[str, TableInfo], *, small: bool) -> None:
        """sqlite_stat1 when ANALYZE left one (its first number is the row count), else count(*)
        for small files, in one compound query per hundred tables."""
        has_stats = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
        ).fetchone()[0]
        if has_stats:
            for table, rows in conn.execute(
                "SELECT tbl, max(CAST(stat AS INTEGER)) FROM sqlite_stat1 GROUP BY tbl"
            ):
                if (info := tables.get(table)) is not None and not info.is_view:
                    info.row_estimate = rows
        if not small:
            return
        missing = [t.name for t in tables.values() if not t.is_view and t.row_estimate is None]
        for start in range(0, len(missing), 100):
            chunk = missing[start : start + 100]
            query = " UNION ALL ".join(f"SELECT ?, count(*) FROM {_quote(name)}" for name in chunk)
            for table, rows in conn.execute(query, chunk):
                tables[table].row_estimate = rows

    def _sample(
        self,
        conn: sqlite3.Connection,
        state: dict,
        tables: Iterable[TableInfo],
        kinds: dict[tuple[str, str], str],
        excluded_columns: frozenset[str],
    ) -> None:
        """A few values of each low-cardinality text column, all within one time budget: when the
        progress handler stops a statement, the columns not reached yet keep no samples."""
        for table in tables:
            if table.is_view:
                continue
            for column in table.columns:
                if not _has_text_affinity(kinds.get((table.name, column.name), "")):
                    continue
                if (
                    is_sensitive_column(column.name)
                    or f"{table.qualified_name}.{column.name}" in excluded_columns
                ):
                    continue
                try:
                    values = [
                        value
                        for (value,) in conn.execute(
                            f"SELECT DISTINCT {_quote(column.name)} FROM {_quote(table.name)}"
                            f" LIMIT {SAMPLE_MAX_DISTINCT + 1}"
                        )
                    ]
                except sqlite3.OperationalError:
                    if state["timed_out"]:
                        return
                    continue
                if len(values) > SAMPLE_MAX_DISTINCT:
                    continue
                texts = sorted(str(v) for v in values if v is not None and len(str(v)) <= SAMPLE_MAX_LENGTH)
                column.samples = texts[:SAMPLE_LIMIT]

    def execute(
        self, spec: ConnectionSpec, sql_text: str, *, row_cap: int, on_cancel: CancelRegistrar | None = None
    ) -> QueryResult:
        started = time.perf_counter()
        with _session(spec, on_cancel) as (conn, _state):
            cursor = conn.execute(sql_text)
            rows = cursor.fetchmany(row_cap + 1) if cursor.description else []
            columns = _result_columns(cursor.description, rows)
        return QueryResult.from_fetched(columns, rows, row_cap=row_cap, started=started)

    def stream_rows(
        self, spec: ConnectionSpec, sql_text: str, *, batch_size: int = 5000
    ) -> Iterator[list[ResultColumn] | list[list[Any]]]:
        with _session(spec) as (conn, _state):
            cursor = conn.execute(sql_text)
            batch = cursor.fetchmany(batch_size) if cursor.description else []
            yield _result_columns(cursor.description, batch)
            while batch:
                yield convert_rows(batch)
                batch = cursor.fetchmany(batch_size)
