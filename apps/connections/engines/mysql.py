"""MySQL and MariaDB through PyMySQL.

The engine lock: every query runs on a fresh connection opened without CLIENT.MULTI_STATEMENTS
(the server refuses a second statement) and without LOCAL INFILE, with the server's own statement
time limit, in a session whose transactions are all read-only, inside START TRANSACTION READ ONLY,
and is never committed. The session default matters: DDL, GRANT, CREATE USER and friends commit
the current transaction implicitly and then run outside it, so START TRANSACTION READ ONLY alone
lets an over-privileged account drop a table; with `SET SESSION TRANSACTION READ ONLY` the
transaction they run in is read-only too, and the server refuses them.

No transaction mode stops what is not a change to data: an account with the FILE privilege
writes files on the database host with SELECT ... INTO OUTFILE (MariaDB leaves secure_file_priv
empty by default, and a read-only transaction lets it through), and one with SUPER changes the
server with SET GLOBAL, KILL, FLUSH or SHUTDOWN. So the engine also runs only statements that
begin as a query does and never name an output file. It reads words, not a parse tree, and errs
towards refusing; connections should still use an account that may only SELECT.
"""

import contextlib
import re
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pymysql
from pymysql.constants import FIELD_TYPE
from pymysql.cursors import Cursor, SSCursor

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

DEFAULT_PORT = 3306
# Sampling reads the tables themselves (there is no pg_stats to ask), so only small schemas are
# sampled, one short query per column, within one overall budget.
SAMPLE_MAX_TABLES = 200
SAMPLE_BUDGET_S = 10.0
SAMPLE_QUERY_TIMEOUT_S = 2.0
SAMPLE_MAX_ROWS = 5_000_000
_TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"})

# Server error numbers (mysqld_error.h, MariaDB's and MySQL's) and client ones (errmsg.h).
ER_DBACCESS_DENIED = 1044
ER_ACCESS_DENIED = 1045
ER_ACCESS_DENIED_NO_PASSWORD = 1698
ER_BAD_DB = 1049
ER_CON_COUNT = 1040
ER_HOST_BLOCKED = 1129
ER_HOST_NOT_PRIVILEGED = 1130
ER_QUERY_INTERRUPTED = 1317
ER_STATEMENT_TIMEOUT = 1969  # MariaDB max_statement_time
ER_QUERY_TIMEOUT = 3024  # MySQL max_execution_time
ER_READ_ONLY_TRANSACTION = 1792
CR_SERVER_GONE = 2006
CR_SERVER_LOST = 2013
_LOST = (CR_SERVER_GONE, CR_SERVER_LOST)

# Whitespace and comments before the first word; not /*! ... */ nor /*M! ... */, which the server
# executes.
_LEADING_NOISE = re.compile(r"(?:\s+|(?:--[ \t]|#)[^\n]*(?:\n|$)|/\*(?!!|M!)[\s\S]*?\*/)*")
_QUERY_START = re.compile(r"(?:SELECT|WITH|VALUES|TABLE)\b|\(", re.IGNORECASE)
_FILE_WORDS = re.compile(r"\b(?:OUTFILE|DUMPFILE)\b", re.IGNORECASE)

_TYPE_NAMES = {
    FIELD_TYPE.DECIMAL: "decimal",
    FIELD_TYPE.NEWDECIMAL: "decimal",
    FIELD_TYPE.TINY: "tinyint",
    FIELD_TYPE.SHORT: "smallint",
    FIELD_TYPE.INT24: "mediumint",
    FIELD_TYPE.LONG: "int",
    FIELD_TYPE.LONGLONG: "bigint",
    FIELD_TYPE.FLOAT: "float",
    FIELD_TYPE.DOUBLE: "double",
    FIELD_TYPE.BIT: "bit",
    FIELD_TYPE.NULL: "null",
    FIELD_TYPE.DATE: "date",
    FIELD_TYPE.NEWDATE: "date",
    FIELD_TYPE.TIME: "time",
    FIELD_TYPE.DATETIME: "datetime",
    FIELD_TYPE.TIMESTAMP: "timestamp",
    FIELD_TYPE.YEAR: "year",
    FIELD_TYPE.JSON: "json",
    FIELD_TYPE.ENUM: "enum",
    FIELD_TYPE.SET: "set",
    FIELD_TYPE.GEOMETRY: "geometry",
    FIELD_TYPE.VARCHAR: "varchar",
    FIELD_TYPE.VAR_STRING: "varchar",
    FIELD_TYPE.STRING: "char",
    FIELD_TYPE.TINY_BLOB: "text",
    FIELD_TYPE.MEDIUM_BLOB: "text",
    FIELD_TYPE.LONG_BLOB: "text",
    FIELD_TYPE.BLOB: "text",
}
# The protocol reports TEXT and BLOB (and CHAR and BINARY) with the same type codes; the values
# tell them apart, since PyMySQL decodes text and leaves binary as bytes.
_BINARY_NAMES = {"text": "blob", "varchar": "varbinary", "char": "binary"}


def _check_query(sql_text: str) -> None:
    """Refuse what a read-only transaction would let through (see the module's docstring)."""
    start = _LEADING_NOISE.match(sql_text)
    if not _QUERY_START.match(sql_text, start.end() if start else 0):
        raise QueryFailed("DataMind connections only run queries (SELECT) on MySQL and MariaDB.")
    if _FILE_WORDS.search(sql_text):
        raise QueryFailed("DataMind connections may not write files on the database server.")


def _ssl_options(sslmode: str) -> dict[str, Any]:
    if sslmode == "disable":
        return {"ssl_disabled": True}
    if sslmode in ("allow", "prefer"):
        return {}  # PyMySQL's default: TLS when the server offers it, plain otherwise
    context = ssl.create_default_context()
    if sslmode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif sslmode == "verify-ca":
        context.check_hostname = False
    return {"ssl": context}


def _connect(
    spec: ConnectionSpec, *, connect_timeout_s: float | None = None, statement_timeout_s: float | None = None
) -> pymysql.Connection:
    timeout = connect_timeout_s or spec.connect_timeout_s
    # A stalled network must not hang a worker: the server's own limit, plus a margin.
    io_timeout = float(statement_timeout_s or spec.statement_timeout_s) + 10
    try:
        return pymysql.connect(
            host=spec.host,
            port=spec.port or DEFAULT_PORT,
            user=spec.username,
            password=spec.password,
            database=spec.database or None,
            charset="utf8mb4",
            connect_timeout=max(1.0, float(timeout)),
            read_timeout=io_timeout,
            write_timeout=io_timeout,
            autocommit=True,
            client_flag=0,  # never CLIENT.MULTI_STATEMENTS: one statement per call
            local_infile=False,
            program_name="datamind",
            **_ssl_options(spec.sslmode),
        )
    except pymysql.err.MySQLError as exc:
        raise _connection_error(spec, exc) from None


def _error_code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _error_message(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    return str(args[1]) if len(args) > 1 else str(exc)


def _connection_error(spec: ConnectionSpec, exc: Exception) -> ConnectionFailed:
    code, message = _error_code(exc), _error_message(exc)
    where = f"{spec.host}:{spec.port or DEFAULT_PORT}"
    if code in (ER_ACCESS_DENIED, ER_ACCESS_DENIED_NO_PASSWORD):
        return ConnectionFailed("The database refused the user name or password.", retryable=False)
    if code == ER_BAD_DB:
        return ConnectionFailed(f"The database “{spec.database}” does not exist on {where}.", retryable=False)
    if code == ER_DBACCESS_DENIED:
        return ConnectionFailed(
            f"The user “{spec.username}” may not use the database “{spec.database}”.", retryable=False
        )
    if code in (ER_HOST_BLOCKED, ER_HOST_NOT_PRIVILEGED):
        return ConnectionFailed(f"The server at {where} refuses connections from DataMind.", retryable=False)
    if code == ER_CON_COUNT:
        return ConnectionFailed(f"The server at {where} has too many connections.", retryable=True)
    if "timed out" in message.lower():
        return ConnectionFailed(f"Timed out connecting to {where}.", code="timeout", retryable=True)
    if "ssl" in message.lower():
        return ConnectionFailed(f"SSL negotiation with {where} failed: check the SSL mode.", retryable=False)
    if code is not None and code < 2000:  # the server answered (client errors are 2000 and up)
        return ConnectionFailed(f"The server at {where} refused the connection: {message}", retryable=False)
    return ConnectionFailed(f"Could not reach the database server at {where}.", retryable=True)


def _is_mariadb(conn: pymysql.Connection) -> bool:
    return "mariadb" in conn.get_server_info().lower()


def _timeout_statement(conn: pymysql.Connection, timeout_s: float) -> str:
    if _is_mariadb(conn):
        return f"SET SESSION max_statement_time = {max(0.001, float(timeout_s)):.3f}"
    return f"SET SESSION max_execution_time = {max(1, int(timeout_s * 1000))}"


def _begin_read_only(conn: pymysql.Connection, timeout_s: float) -> None:
    with conn.cursor(Cursor) as cursor:
        cursor.execute(_timeout_statement(conn, timeout_s))
        cursor.execute("SET SESSION TRANSACTION READ ONLY")
        cursor.execute("START TRANSACTION READ ONLY")


def _kill_query(spec: ConnectionSpec, thread_id: int) -> None:
    """Stop a statement from a second connection: the first one is busy waiting for it."""
    with (
        contextlib.suppress(Exception),
        _connect(spec, connect_timeout_s=min(5.0, spec.connect_timeout_s)) as killer,
        killer.cursor() as cursor,
    ):
        cursor.execute(f"KILL QUERY {int(thread_id)}")


@contextlib.contextmanager
def _guard(
    spec: ConnectionSpec, thread_id: int, timeout_s: float, on_cancel: CancelRegistrar | None
) -> Iterator[dict]:
    """Kill the statement on the server if it outlives its limit by a second (a server that
    ignores its own limit, a network stall), and let the caller stop it too."""
    state = {"cancelled": False, "timed_out": False, "done": False, "results": None}
    lock = threading.Lock()

    def kill(reason: str = "cancelled") -> None:
        with lock:
            if state["done"]:
                return
            state[reason] = True
        _kill_query(spec, thread_id)

    if on_cancel is not None:
        on_cancel(kill)
    timer = threading.Timer(timeout_s + 1, kill, kwargs={"reason": "timed_out"})
    timer.daemon = True
    timer.start()
    try:
        yield state
    finally:
        with lock:
            state["done"] = True
        timer.cancel()


def _close(conn: pymysql.Connection, spec: ConnectionSpec, results: SSCursor | None) -> None:
    """Finish an unbuffered result, roll back, disconnect.

    The server sends a whole result whether or not it is read, and the protocol has no way to
    say stop: a result left half read is finished by reading it. When the validator capped the
    query at row_cap + 1 rows, only the end marker is left; otherwise the statement is killed
    first, so what remains to read is what was already on the way.
    """
    # A connection that broke mid-result fails in ways PyMySQL does not wrap (its socket is
    # gone); nothing here may hide the error that is already on its way to the caller.
    if results is not None:
        with contextlib.suppress(Exception):
            if results.fetchone() is not None:
                _kill_query(spec, conn.thread_id())
            results.close()
    with contextlib.suppress(Exception), conn.cursor(Cursor) as cursor:
        cursor.execute("ROLLBACK")
    with contextlib.suppress(Exception):
        conn.close()


@contextlib.contextmanager
def _session(
    spec: ConnectionSpec, on_cancel: CancelRegistrar | None = None, *, timeout_s: float | None = None
) -> Iterator[tuple[pymysql.Connection, dict]]:
    """A fresh connection in a read-only transaction with its timeout guard; errors translated."""
    timeout = float(timeout_s if timeout_s is not None else spec.statement_timeout_s)
    conn = _connect(spec, statement_timeout_s=timeout)
    state: dict = {"results": None}
    try:
        try:
            _begin_read_only(conn, timeout)
        except pymysql.err.MySQLError as exc:
            raise _query_error(exc, state, timeout) from None
        with _guard(spec, conn.thread_id(), timeout, on_cancel) as state:
            try:
                yield conn, state
            except pymysql.err.MySQLError as exc:
                raise _query_error(exc, state, timeout) from None
    finally:
        _close(conn, spec, state["results"])


def _query_error(exc: pymysql.err.MySQLError, state: dict, timeout_s: float) -> EngineError:
    code, message = _error_code(exc), _error_message(exc)
    stopped = state.get("cancelled") or state.get("timed_out")
    if code in (ER_STATEMENT_TIMEOUT, ER_QUERY_TIMEOUT) or (
        (code == ER_QUERY_INTERRUPTED or code in _LOST) and stopped
    ):
        if state.get("cancelled"):
            return QueryCancelled("The query was stopped.")
        return QueryTimeout(f"The query ran longer than {timeout_s:g} s and was cancelled on the server.")
    if code == ER_QUERY_INTERRUPTED:
        return QueryCancelled("The query was stopped on the server.")
    if code == ER_READ_ONLY_TRANSACTION:
        return QueryFailed("The database refused to change data: DataMind connections are read-only.")
    if code in _LOST:
        return QueryFailed("The connection to the database was lost during the query.", retryable=True)
    return QueryFailed(message.strip() or "The database could not run this query.")


def _result_columns(description: tuple | None, rows: list[tuple]) -> list[ResultColumn]:
    columns = []
    for i, col in enumerate(description or ()):
        name = _TYPE_NAMES.get(col[1], "unknown")
        if name in _BINARY_NAMES:
            sample = next((row[i] for row in rows if row[i] is not None), None)
            if isinstance(sample, bytes):
                name = _BINARY_NAMES[name]
        columns.append(ResultColumn(name=col[0], type=name))
    return columns


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def _key(table: TableInfo, column: ColumnInfo) -> str:
    return f"{table.qualified_name}.{column.name}"


def _samples(values: Iterable[Any]) -> list[str]:
    texts = sorted(str(v) for v in values if v is not None and len(str(v)) <= SAMPLE_MAX_LENGTH)
    return texts[:SAMPLE_LIMIT]


def _describe_version(version: str) -> str:
    number = version.split("-", 1)[0]
    return f"MariaDB {number}" if "mariadb" in version.lower() else f"MySQL {number}"


_TABLES_SQL = """
SELECT TABLE_NAME, TABLE_TYPE = 'VIEW', TABLE_COMMENT, TABLE_ROWS
FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s
"""

_COLUMNS_SQL = """
SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE = 'YES', COLUMN_KEY = 'PRI',
       COLUMN_COMMENT, DATA_TYPE
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s
ORDER BY TABLE_NAME, ORDINAL_POSITION
"""

_FOREIGN_KEYS_SQL = """
SELECT TABLE_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME
FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = %s AND REFERENCED_TABLE_NAME IS NOT NULL
"""


@register
class MySQLEngine(Engine):
    name = "mysql"
    label = "MySQL / MariaDB"
    dialect = "mysql"
    default_port = DEFAULT_PORT

    def test(self, spec: ConnectionSpec) -> str:
        with _session(spec) as (conn, _state), conn.cursor(Cursor) as cursor:
            cursor.execute("SELECT VERSION()")
            (version,) = cursor.fetchone()
        return _describe_version(str(version))

    def introspect(self, spec: ConnectionSpec, *, excluded_columns: frozenset[str]) -> list[TableInfo]:
        database = spec.database
        with _session(spec, timeout_s=max(spec.statement_timeout_s, 120)) as (conn, _state):
            with conn.cursor(Cursor) as cursor:
                cursor.execute(_TABLES_SQL, (database,))
                tables = {
                    name: TableInfo(
                        database,
                        name,
                        is_view=bool(is_view),
                        comment="" if is_view else (comment or ""),
                        row_estimate=None if rows is None else int(rows),
                    )
                    for name, is_view, comment, rows in cursor.fetchall()
                }
                cursor.execute(_COLUMNS_SQL, (database,))
                kinds: dict[tuple[str, str], str] = {}
                for (
                    table,
                    name,
                    position,
                    column_type,
                    nullable,
                    is_pk,
                    comment,
                    data_type,
                ) in cursor.fetchall():
                    if (info := tables.get(table)) is None:
                        continue
                    info.columns.append(
                        ColumnInfo(
                            name,
                            int(position),
                            column_type,
                            bool(nullable),
                            is_primary_key=bool(is_pk),
                            comment=comment or "",
                        )
                    )
                    kinds[(table, name)] = str(data_type).lower()
                columns = {(t.name, c.name): c for t in tables.values() for c in t.columns}
                cursor.execute(_FOREIGN_KEYS_SQL, (database,))
                for table, column, f_schema, f_table, f_column in cursor.fetchall():
                    if (info := columns.get((table, column))) is not None:
                        info.references = f"{f_schema}.{f_table}.{f_column}"
            if len(tables) <= SAMPLE_MAX_TABLES:
                self._sample(conn, tables.values(), kinds, excluded_columns)
        return list(tables.values())

    def _sample(
        self,
        conn: pymysql.Connection,
        tables: Iterable[TableInfo],
        kinds: dict[tuple[str, str], str],
        excluded_columns: frozenset[str],
    ) -> None:
        """A few values of each low-cardinality text column: one DISTINCT ... LIMIT per column,
        each under a short limit, all within one budget, so a big schema cannot stall a refresh."""
        deadline = time.monotonic() + SAMPLE_BUDGET_S
        with conn.cursor(Cursor) as cursor:
            for table in tables:
                if table.is_view or (table.row_estimate or 0) > SAMPLE_MAX_ROWS:
                    continue
                for column in table.columns:
                    if kinds.get((table.name, column.name)) not in _TEXT_TYPES:
                        continue
                    if is_sensitive_column(column.name) or _key(table, column) in excluded_columns:
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0.05:
                        return
                    try:
                        cursor.execute(_timeout_statement(conn, min(remaining, SAMPLE_QUERY_TIMEOUT_S)))
                        cursor.execute(
                            f"SELECT DISTINCT {_quote(column.name)} FROM {_quote(table.schema)}."
                            f"{_quote(table.name)} LIMIT {SAMPLE_MAX_DISTINCT + 1}"
                        )
                        values = [value for (value,) in cursor.fetchall()]
                    except pymysql.err.MySQLError as exc:
                        if _error_code(exc) in _LOST:
                            raise
                        continue  # over its limit, or unreadable: no samples for this column
                    if len(values) <= SAMPLE_MAX_DISTINCT:
                        column.samples = _samples(values)

    def execute(
        self, spec: ConnectionSpec, sql_text: str, *, row_cap: int, on_cancel: CancelRegistrar | None = None
    ) -> QueryResult:
        _check_query(sql_text)
        started = time.perf_counter()
        with _session(spec, on_cancel) as (conn, state):
            if state["cancelled"]:  # KILL QUERY finds nothing to stop before the statement starts
                raise QueryCancelled("The query was stopped.")
            # Unbuffered: a result is never held in memory beyond the rows kept.
            cursor = state["results"] = conn.cursor(SSCursor)
            cursor.execute(sql_text)
            rows = list(cursor.fetchmany(row_cap + 1)) if cursor.description else []
            columns = _result_columns(cursor.description, rows)
        return QueryResult.from_fetched(columns, rows, row_cap=row_cap, started=started)

    def stream_rows(
        self, spec: ConnectionSpec, sql_text: str, *, batch_size: int = 5000
    ) -> Iterator[list[ResultColumn] | list[list[Any]]]:
        _check_query(sql_text)
        with _session(spec) as (conn, state):
            cursor = state["results"] = conn.cursor(SSCursor)
            cursor.execute(sql_text)
            batch = list(cursor.fetchmany(batch_size)) if cursor.description else []
            yield _result_columns(cursor.description, batch)
            while batch:
                yield convert_rows(batch)
                batch = list(cursor.fetchmany(batch_size))
