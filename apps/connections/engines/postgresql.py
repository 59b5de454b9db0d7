"""PostgreSQL through psycopg 3.

The engine lock: every query runs on a fresh connection (never pooled, so no `set_config`,
`SET SESSION CHARACTERISTICS` or large object survives into another query), inside
`BEGIN READ ONLY` with `SET LOCAL statement_timeout` and `idle_in_transaction_session_timeout`,
through the extended protocol (`prepare=True`) so the server refuses a second statement, and
the transaction is always rolled back, never committed.
"""

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.types.numeric import FloatLoader
from psycopg.types.string import TextLoader

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
    QueryCancelled,
    QueryFailed,
    QueryResult,
    QueryTimeout,
    ResultColumn,
    TableInfo,
    convert_rows,
    finite_rows,
    is_sensitive_column,
)

_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

_TABLES_SQL = """
SELECT n.nspname, c.relname, c.relkind IN ('v', 'm'), coalesce(obj_description(c.oid, 'pg_class'), ''),
       CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND NOT c.relispartition
  AND n.nspname <> ALL(%(system)s) AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast%%'
  AND (%(schema)s = '' OR n.nspname = %(schema)s)
  AND has_table_privilege(c.oid, 'SELECT')
"""

_COLUMNS_SQL = """
SELECT n.nspname, c.relname, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       coalesce(col_description(c.oid, a.attnum), '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'm', 'p', 'f') AND NOT c.relispartition
  AND n.nspname <> ALL(%(system)s) AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast%%'
  AND (%(schema)s = '' OR n.nspname = %(schema)s)
ORDER BY n.nspname, c.relname, a.attnum
"""

_KEYS_SQL = """
SELECT n.nspname, c.relname, con.contype, a.attname, fn.nspname, fc.relname, fa.attname
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(con.conkey, coalesce(con.confkey, con.conkey))
     WITH ORDINALITY AS k(attnum, fattnum, i)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
LEFT JOIN pg_class fc ON fc.oid = con.confrelid LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
LEFT JOIN pg_attribute fa ON fa.attrelid = fc.oid AND fa.attnum = k.fattnum
WHERE con.contype IN ('p', 'f') AND n.nspname <> ALL(%(system)s)
  AND (%(schema)s = '' OR n.nspname = %(schema)s)
"""

# pg_stats holds what ANALYZE learnt: the most common values of every column, without scanning.
# A column whose values are all distinct has no most common values; when there are few of them
# (a lookup table's names) the histogram bounds list them all instead.
_STATS_SQL = """
SELECT s.schemaname, s.tablename, s.attname, coalesce(s.most_common_vals::text, s.histogram_bounds::text)
FROM pg_stats s
JOIN pg_namespace n ON n.nspname = s.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
WHERE s.schemaname <> ALL(%(system)s) AND (%(schema)s = '' OR s.schemaname = %(schema)s)
  AND (s.most_common_vals IS NOT NULL OR s.histogram_bounds IS NOT NULL)
  AND (s.n_distinct BETWEEN 1 AND %(max_distinct)s
       OR (s.n_distinct < 0 AND (s.n_distinct >= -0.05 OR -s.n_distinct * c.reltuples <= %(max_distinct)s)))
"""

_TEXT_TYPES = ("text", "character varying", "character", "citext", "name")

# Values of these types arrive JSON-ready thanks to the loaders below, so a result made only of
# them needs no per-value conversion (which would cost more than the fetch itself).
_JSON_READY_TYPES = frozenset(
    ("int2", "int4", "int8", "oid", "text", "varchar", "bpchar", "char", "name", "bool", "float4", "float8")
    + ("numeric", "date", "time", "timetz", "timestamp", "timestamptz", "interval", "uuid", "json", "jsonb")
)
_FLOAT_TYPES = frozenset(("float4", "float8", "numeric"))
_AS_TEXT_TYPES = ("date", "time", "timetz", "timestamp", "timestamptz", "interval", "uuid")


def _json_ready_loaders(conn: psycopg.Connection) -> None:
    for type_name in _AS_TEXT_TYPES:
        conn.adapters.register_loader(type_name, TextLoader)
    # JSON has no decimals: numeric arrives as a float, parsed in C (NaN and infinities are
    # replaced afterwards, see base.finite_rows).
    conn.adapters.register_loader("numeric", FloatLoader)


def _connect(spec: ConnectionSpec, **kwargs: Any) -> psycopg.Connection:
    try:
        conn = psycopg.connect(
            host=spec.host,
            port=spec.port or PostgresEngine.default_port,
            dbname=spec.database,
            user=spec.username,
            password=spec.password,
            sslmode=spec.sslmode,
            connect_timeout=max(1, int(spec.connect_timeout_s)),
            application_name="datamind",
            autocommit=True,
            **kwargs,
        )
    except psycopg.OperationalError as exc:
        raise _connection_error(spec, exc) from None
    _json_ready_loaders(conn)
    return conn


def _connection_error(spec: ConnectionSpec, exc: Exception) -> ConnectionFailed:
    message = str(exc).lower()
    where = f"{spec.host}:{spec.port or PostgresEngine.default_port}"
    if "password authentication failed" in message or "no password supplied" in message:
        return ConnectionFailed("The database refused the user name or password.", retryable=False)
    if "does not exist" in message and "database" in message:
        return ConnectionFailed(f"The database “{spec.database}” does not exist on {where}.", retryable=False)
    if "role" in message and "does not exist" in message:
        return ConnectionFailed(f"The user “{spec.username}” does not exist on {where}.", retryable=False)
    if "no pg_hba.conf entry" in message or "permission denied" in message:
        return ConnectionFailed(f"The server at {where} refuses this user.", retryable=False)
    if "timeout" in message:
        return ConnectionFailed(f"Timed out connecting to {where}.", code="timeout", retryable=True)
    if "ssl" in message:
        return ConnectionFailed(f"SSL negotiation with {where} failed: check the SSL mode.", retryable=False)
    return ConnectionFailed(f"Could not reach the database server at {where}.", retryable=True)


@contextlib.contextmanager
def _read_only(conn: psycopg.Connection, timeout_s: float) -> Iterator[psycopg.Connection]:
    timeout_ms = max(1, int(timeout_s * 1000))
    conn.execute("BEGIN READ ONLY")
    conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(timeout_ms))
    conn.execute(sql.SQL("SET LOCAL idle_in_transaction_session_timeout = {}").format(timeout_ms + 5000))
    try:
        yield conn
    finally:
        # Never commit: whatever the statement did (a large object, a sequence) is discarded.
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")


@contextlib.contextmanager
def _guard(conn: psycopg.Connection, timeout_s: float, on_cancel: CancelRegistrar | None) -> Iterator[dict]:
    """Cancel on the server if the statement outlives its timeout by a second (a network stall
    the server's own timer cannot see), and let the caller stop it too."""
    state = {"cancelled": False, "timed_out": False}

    def cancel(reason: str = "cancelled") -> None:
        state[reason] = True
        with contextlib.suppress(Exception):
            conn.cancel_safe(timeout=2)

    if on_cancel is not None:
        on_cancel(cancel)
    timer = threading.Timer(timeout_s + 1, cancel, kwargs={"reason": "timed_out"})
    timer.daemon = True
    timer.start()
    try:
        yield state
    finally:
        timer.cancel()


@contextlib.contextmanager
def _session(
    spec: ConnectionSpec, on_cancel: CancelRegistrar | None = None
) -> Iterator[tuple[psycopg.Connection, dict]]:
    """A fresh connection in a read-only transaction with its timeout guard; errors translated."""
    with (
        _connect(spec) as conn,
        _read_only(conn, spec.statement_timeout_s),
        _guard(conn, spec.statement_timeout_s, on_cancel) as state,
    ):
        try:
            yield conn, state
        except psycopg.Error as exc:
            raise _query_error(exc, state, spec.statement_timeout_s) from None


def _query_error(exc: psycopg.Error, state: dict, timeout_s: float) -> Exception:
    if isinstance(exc, errors.QueryCanceled):
        if state["cancelled"]:
            return QueryCancelled("The query was stopped.")
        return QueryTimeout(f"The query ran longer than {timeout_s:g} s and was cancelled on the server.")
    if isinstance(exc, errors.ReadOnlySqlTransaction):
        return QueryFailed("The database refused to change data: DataMind connections are read-only.")
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        return QueryFailed("The connection to the database was lost during the query.", retryable=True)
    if "cannot insert multiple commands" in str(exc):
        return QueryFailed("Only one statement can run at a time.")
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag and diag.message_primary else str(exc)).strip()
    return QueryFailed(message or "The database could not run this query.")


def _json_ready_converter(columns: list[ResultColumn]) -> Callable[[list], list]:
    """Rows of JSON-ready types need only their NaNs and infinities replaced; others convert."""
    if any(c.type not in _JSON_READY_TYPES for c in columns):
        return convert_rows
    floats = [i for i, c in enumerate(columns) if c.type in _FLOAT_TYPES]
    return lambda rows: finite_rows(rows, floats)


def _result_columns(conn: psycopg.Connection, cursor: psycopg.Cursor) -> list[ResultColumn]:
    columns = []
    for col in cursor.description or []:
        info = conn.adapters.types.get(col.type_code)
        columns.append(ResultColumn(name=col.name, type=info.name if info else "unknown"))
    return columns


@register
class PostgresEngine(Engine):
    name = "postgresql"
    label = "PostgreSQL"
    dialect = "postgres"
    default_port = 5432

    def test(self, spec: ConnectionSpec) -> str:
        with _connect(spec) as conn, _read_only(conn, spec.statement_timeout_s):
            version = conn.execute("SHOW server_version").fetchone()[0]
            superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        if superuser and superuser[0]:
            # A superuser can write server files (COPY TO, lo_export) and end other sessions even
            # inside a read-only transaction: only the validator stops that, so say so.
            return (
                f"PostgreSQL {version}, but as a superuser: create a read-only role for DataMind "
                "(see the instructions on this page)"
            )
        return f"PostgreSQL {version}"

    def introspect(self, spec: ConnectionSpec, *, excluded_columns: frozenset[str]) -> list[TableInfo]:
        params = {"system": list(_SYSTEM_SCHEMAS), "schema": spec.schema, "max_distinct": SAMPLE_MAX_DISTINCT}
        with _connect(spec) as conn, _read_only(conn, max(spec.statement_timeout_s, 120)):
            tables = {
                (schema, name): TableInfo(schema, name, is_view=is_view, comment=comment, row_estimate=rows)
                for schema, name, is_view, comment, rows in conn.execute(_TABLES_SQL, params)
            }
            for schema, table, *column in conn.execute(_COLUMNS_SQL, params):
                if (info := tables.get((schema, table))) is not None:
                    name, position, data_type, nullable, comment = column
                    info.columns.append(ColumnInfo(name, position, data_type, nullable, comment=comment))
            columns = {(t.schema, t.name, c.name): c for t in tables.values() for c in t.columns}
            for schema, table, kind, column, f_schema, f_table, f_column in conn.execute(_KEYS_SQL, params):
                if (info := columns.get((schema, table, column))) is None:
                    continue
                if kind == "p":
                    info.is_primary_key = True
                elif f_table:
                    info.references = f"{f_schema}.{f_table}.{f_column}"
            for schema, table, column, values in conn.execute(_STATS_SQL, params):
                info = columns.get((schema, table, column))
                if info is None or not info.data_type.startswith(_TEXT_TYPES):
                    continue
                if is_sensitive_column(column) or f"{schema}.{table}.{column}" in excluded_columns:
                    continue
                info.samples = _parse_pg_array(values)[:SAMPLE_LIMIT]
        return list(tables.values())

    def execute(
        self, spec: ConnectionSpec, sql_text: str, *, row_cap: int, on_cancel: CancelRegistrar | None = None
    ) -> QueryResult:
        started = time.perf_counter()
        with _session(spec, on_cancel) as (conn, state):
            if state["cancelled"]:  # a cancel before the statement starts has nothing to stop yet
                raise QueryCancelled("The query was stopped.")
            cursor = conn.cursor()
            cursor.execute(sql_text, prepare=True)
            rows = cursor.fetchmany(row_cap + 1) if cursor.description else []
            columns = _result_columns(conn, cursor)
        return QueryResult.from_fetched(
            columns, rows, row_cap=row_cap, started=started, convert=_json_ready_converter(columns)
        )

    def stream_rows(
        self, spec: ConnectionSpec, sql_text: str, *, batch_size: int = 5000
    ) -> Iterator[list[ResultColumn] | list[list[Any]]]:
        with _session(spec) as (conn, _state):
            cursor = conn.cursor(name="datamind_stream")
            cursor.execute(sql_text)
            batch = cursor.fetchmany(batch_size)
            columns = _result_columns(conn, cursor)
            convert = _json_ready_converter(columns)
            yield columns
            while batch:
                yield convert(batch)
                batch = cursor.fetchmany(batch_size)
            cursor.close()

    def stream_csv(self, spec: ConnectionSpec, sql_text: str) -> Iterator[bytes]:
        """COPY (query) TO STDOUT inside the same read-only transaction: the server writes CSV.

        COPY travels over the simple protocol, which runs every statement of the string, and the
        query is spliced into it: `SELECT 1) TO STDOUT; COMMIT; DROP TABLE t; COPY (SELECT 1`
        would end the read-only transaction and drop the table outside it. Preparing the query
        on its own first, over the extended protocol, proves it is one statement.
        """
        copy_sql = sql.SQL("COPY ({}\n) TO STDOUT WITH (FORMAT csv, HEADER true)").format(sql.SQL(sql_text))
        with _session(spec) as (conn, _state):
            conn.execute(sql.SQL("PREPARE datamind_copy AS {}").format(sql.SQL(sql_text)), prepare=True)
            with conn.cursor().copy(copy_sql) as copy:
                for chunk in copy:
                    yield bytes(chunk)


def _parse_pg_array(text: str) -> list[str]:
    """Values of a Postgres text array literal such as {a,"b c",NULL}, short ones only."""
    values, current, quoted, escaped, in_quotes = [], [], False, False, False
    for char in text.strip()[1:-1]:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            in_quotes, quoted = not in_quotes, True
        elif char == "," and not in_quotes:
            values.append(("".join(current), quoted))
            current, quoted = [], False
        else:
            current.append(char)
    if current or quoted:
        values.append(("".join(current), quoted))
    return [v for v, was_quoted in values if (was_quoted or v != "NULL") and len(v) <= SAMPLE_MAX_LENGTH]
