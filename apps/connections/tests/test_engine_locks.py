"""The engine lock alone: every statement the SQL-safety corpus says must be rejected goes straight
to the engine of its dialect, the validator bypassed, as an over-privileged user, and nothing
lasting may change: table contents, the schema, sequences, large objects, grants, files. The
next query through the same engine must still be read-only and still have its time limit.

Whether a statement fails or runs does not matter here (reading the server version is harmless);
what it leaves behind does. Where the engine refuses a statement before the database sees it
(DuckDB and MySQL accept only queries), the statement also runs on the bare read-only session,
so that the database's own lock is measured too. The summary at the end of the run says, per
engine, how many statements ran and how many were refused, and by what.
"""

import hashlib
import importlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest
from pymysql.constants import CLIENT

from apps.connections.engines import get_engine
from apps.connections.engines.base import ConnectionSpec, EngineError, QueryFailed, QueryTimeout
from apps.connections.tests.conftest import (
    DATA_DIR,
    ENGINE_OF_DIALECT,
    LOCK_OUTCOMES,
    SCRATCH,
    WAREHOUSE_FIXTURES,
    Warehouse,
    mysql_admin,
    pg_admin,
)

CORPUS = DATA_DIR / "sql-safety" / "cases.jsonl"
TIMEOUT_S = 1.0

# A superuser's powers over the server itself act outside any transaction: pg_terminate_backend
# would end every session on the server (other test runs included), lo_export and COPY ... TO
# write files on the database host. No read-only mode stops those; the validator and an account
# that is not a superuser do. These statements run as the database's owner instead: a role that
# may still write, alter and drop every table in it.
SUPERUSER_ONLY = re.compile(r"pg_terminate_backend|lo_export|\bTO\s+'/", re.IGNORECASE)

# Our own additions: statements aimed at each engine's particular gaps. {folder} is the
# warehouse's folder, where nothing may appear; {run} makes a file name this run's own (MariaDB
# refuses to overwrite a file, so one left by an earlier run would hide a write).
EXTRA_CASES = [
    ("postgres", "DO $$ BEGIN COMMIT; DELETE FROM orders; END $$", "transaction control inside a block"),
    ("postgres", "SET transaction_read_only = off", "lifts read-only for the rest of the session"),
    ("postgres", "SELECT set_config('transaction_read_only', 'off', false)", "the same, as a function"),
    ("postgres", "SELECT lo_unlink(12345)", "drops a large object that exists"),
    ("postgres", "SELECT lo_put(12345, 0, '\\x00')", "overwrites a large object that exists"),
    ("mysql", "CREATE TABLE pwned (id INT)", "DDL commits implicitly, then runs outside the transaction"),
    ("mysql", "DROP TABLE orders", "DDL commits implicitly"),
    ("mysql", "TRUNCATE TABLE orders", "DDL commits implicitly"),
    ("mysql", "ALTER TABLE orders ADD COLUMN pwned INT", "DDL commits implicitly"),
    ("mysql", "RENAME TABLE orders TO orders_old", "DDL commits implicitly"),
    ("mysql", "CREATE DATABASE dm_pwned", "DDL commits implicitly"),
    ("mysql", "CREATE USER 'dm_pwned'@'%'", "account management commits implicitly"),
    ("mysql", "CREATE TEMPORARY TABLE scratch (id INT)", "temporary table"),
    ("mysql", "CREATE PROCEDURE pwned() SELECT 1", "routine DDL"),
    ("mysql", "SELECT * FROM orders INTO OUTFILE '/tmp/{run}_outfile.txt'", "writes a server file"),
    ("mysql", "SELECT 'x' INTO DUMPFILE '/tmp/{run}_dumpfile.bin'", "writes a server file"),
    (
        "mysql",
        "/*! SELECT 1 INTO OUTFILE '/tmp/{run}_comment.txt' */",
        "the same, in an executable comment",
    ),
    ("mysql", "SET GLOBAL general_log_file = '/tmp/{run}_general.log'", "changes the server"),
    ("mysql", "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE t1", "reads a file of the app server"),
    ("mysql", "START TRANSACTION READ WRITE", "a read-write transaction"),
    ("mysql", "SET SESSION TRANSACTION READ WRITE", "lifts read-only for the session"),
    ("mysql", "SET SESSION max_statement_time = 0", "lifts the time limit for the session"),
    ("mysql", "DELETE FROM orders", "plain DML"),
    ("sqlite", "VACUUM INTO '{folder}/copy.sqlite'", "writes a whole new database file"),
    ("sqlite", "ATTACH DATABASE '{folder}/new.sqlite' AS n", "creates a file"),
    ("sqlite", "ATTACH DATABASE 'file:{folder}/uri.sqlite?mode=rwc' AS n", "creates a file, by URI"),
    ("sqlite", "PRAGMA query_only = OFF", "lifts query_only"),
    ("sqlite", "CREATE TEMP TABLE scratch (a)", "temporary table"),
    ("sqlite", "BEGIN EXCLUSIVE", "locks other connections out"),
    ("sqlite", "INSERT INTO foo VALUES (3, 'three')", "plain DML"),
    ("duckdb", "SELECT * FROM read_csv('/etc/hostname')", "reads another file"),
    ("duckdb", "SELECT * FROM read_text('/etc/hostname')", "reads another file"),
    ("duckdb", "SELECT nextval('my_seq')", "advances a sequence from a SELECT"),
    ("duckdb", "COPY foo TO '{folder}/foo.csv'", "writes a file"),
    ("duckdb", "EXPORT DATABASE '{folder}/export'", "writes a directory of files"),
    ("duckdb", "ATTACH '{folder}/other.duckdb' AS other", "creates a database file"),
    ("duckdb", "CREATE TEMP TABLE scratch AS SELECT 1 AS a", "temporary table"),
    ("duckdb", "CHECKPOINT", "writes the file"),
    ("duckdb", "SET threads = 1", "changes a setting"),
    ("duckdb", "PRAGMA enable_profiling = 'json'", "writes profiles"),
]


def engine_module(name: str) -> ModuleType:
    """An engine's module, for its private helpers, found through the registry."""
    return importlib.import_module(type(get_engine(name)).__module__)


@dataclass(frozen=True)
class Case:
    dialect: str
    sql: str
    why: str

    @property
    def engine(self) -> str:
        return ENGINE_OF_DIALECT[self.dialect]


def _cases() -> list:
    if not CORPUS.exists():
        return [
            pytest.param(None, marks=pytest.mark.skip(reason=f"The SQL-safety corpus is not at {CORPUS}."))
        ]
    params = []
    with CORPUS.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            case = json.loads(line)
            if case["expect"] == "reject":
                params.append(
                    pytest.param(Case(case["dialect"], case["sql"], case["why"]), id=_id(case, number))
                )
    for number, (dialect, sql, why) in enumerate(EXTRA_CASES, start=1):
        params.append(
            pytest.param(Case(dialect, sql, why), id=_id({"dialect": dialect, "sql": sql}, number, "x"))
        )
    return params


def _id(case: dict, number: int, prefix: str = "") -> str:
    words = re.sub(r"\W+", "_", case["sql"].lower()).strip("_")[:40]
    return f"{case['dialect']}-{prefix}{number:03d}-{words}"


# What must not change ------------------------------------------------------------------------


def _pg_state(warehouse: Warehouse) -> dict:
    owner = warehouse.extra["owner_spec"].username
    with pg_admin(warehouse.spec.database) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'm') ORDER BY 1"
            )
        ]
        checksums = " UNION ALL ".join(
            f"SELECT '{name}', count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
            f' FROM public."{name}" AS t'
            for name in tables
        )
        queries = {
            "tables": checksums,
            "objects": "SELECT n.nspname, c.relname, c.relkind FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1, 2",
            "columns": "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY 1, 2",
            "writes": "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables ORDER BY 1",
            "large objects": "SELECT (SELECT count(*) FROM pg_largeobject_metadata), (SELECT md5(coalesce("
            "string_agg(loid || ':' || pageno || ':' || encode(data, 'hex'), ',' ORDER BY loid, pageno), ''))"
            " FROM pg_largeobject)",
            "sequences": "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2",
            "routines": "SELECT p.proname, p.prokind, p.prosrc FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' ORDER BY 1",
            "extensions": "SELECT extname FROM pg_extension ORDER BY 1",
            "grants": "SELECT grantee, table_name, privilege_type FROM information_schema.role_table_grants"
            " WHERE table_schema = 'public' ORDER BY 1, 2, 3",
            "role settings": "SELECT s.setconfig FROM pg_db_role_setting s"
            " LEFT JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase"
            f" WHERE d.datname = current_database() OR r.rolname IN (current_user, '{owner}') ORDER BY 1",
            "roles": "SELECT rolname, rolsuper, rolcanlogin FROM pg_roles"
            f" WHERE rolname IN (current_user, '{owner}', 'other_role', 'dm_ro') ORDER BY 1",
            "server settings": "SELECT name, setting FROM pg_file_settings"
            " WHERE sourcefile LIKE '%postgresql.auto.conf' ORDER BY 1",
        }
        return {key: conn.execute(query).fetchall() for key, query in queries.items()}


def _mysql_state(warehouse: Warehouse) -> dict:
    database = warehouse.spec.database
    queries = {
        "objects": "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = %(db)s ORDER BY 1",
        "columns": "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %(db)s ORDER BY 1, 2",
        "routines": "SELECT ROUTINE_NAME, ROUTINE_DEFINITION FROM information_schema.ROUTINES"
        " WHERE ROUTINE_SCHEMA = %(db)s ORDER BY 1",
        "databases": "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'dm_pwned'",
        "users": "SELECT User, Host FROM mysql.user WHERE User IN ('dm_pwned', 'x') ORDER BY 1, 2",
        "grants": "SELECT GRANTEE, PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES"
        " WHERE GRANTEE LIKE %(grantee)s ORDER BY 1, 2",
        "plugins": "SELECT name FROM mysql.plugin ORDER BY 1",
        "server settings": "SELECT @@global.autocommit, @@global.read_only, @@global.max_statement_time,"
        " @@global.general_log, @@global.general_log_file",
    }
    state = {}
    with mysql_admin() as cursor:
        for key, query in queries.items():
            cursor.execute(query, {"db": database, "grantee": "'x'@%"})
            state[key] = cursor.fetchall()
        tables = [name for name, kind in state["objects"] if kind == "BASE TABLE"]
        cursor.execute("CHECKSUM TABLE " + ", ".join(f"`{database}`.`{t}`" for t in tables) + " EXTENDED")
        state["tables"] = cursor.fetchall()
    return state


def _folder_state(warehouse: Warehouse) -> dict:
    """Every file in the warehouse's folder, with a digest of its bytes."""
    assert warehouse.folder is not None
    return {
        "files": sorted(
            (str(path.relative_to(warehouse.folder)), hashlib.sha256(path.read_bytes()).hexdigest())
            if path.is_file()
            else (str(path.relative_to(warehouse.folder)), "directory")
            for path in warehouse.folder.rglob("*")
        )
    }


STATE = {"postgres": _pg_state, "mysql": _mysql_state, "sqlite": _folder_state, "duckdb": _folder_state}


def _named_paths(sql: str) -> dict[str, tuple]:
    """Files the statement names (a COPY target, an attached database...), as they are now."""
    named = {}
    for literal in re.findall(r"'([^']+)'", sql):
        path_text = literal.removeprefix("file:").split("?", 1)[0]
        if "/" not in path_text and not re.search(r"\.(db|duckdb|sqlite|csv|parquet|so|bin|txt)$", path_text):
            continue
        path = Path(path_text) if path_text.startswith("/") else Path.cwd() / path_text
        stat = path.stat() if path.exists() else None
        named[str(path)] = (stat.st_size, stat.st_mtime_ns) if stat else None
    return named


# What the next query must still see ----------------------------------------------------------


@dataclass(frozen=True)
class NextQuery:
    """A write the engine must refuse as read-only, and settings the next query must still have."""

    write: str
    refusal: str
    settings: str | None = None
    expected: tuple = ()


NEXT_QUERY = {
    "postgres": NextQuery(
        "INSERT INTO foo VALUES (100, 'lock check')",
        "read-only",
        "SELECT current_setting('transaction_read_only'), current_setting('statement_timeout')",
        ("on", "1s"),
    ),
    # A query the engine lets through and only a read-only transaction refuses.
    "mysql": NextQuery(
        "SELECT * FROM foo FOR UPDATE",
        "read-only",
        "SELECT @@session.tx_read_only, @@session.max_statement_time",
        (1, 1.0),
    ),
    "sqlite": NextQuery("INSERT INTO foo VALUES (100, 'lock check')", "may only read"),
    "duckdb": NextQuery(
        "SELECT nextval('my_seq')",
        "read-only",
        "SELECT current_setting('enable_external_access'), current_setting('lock_configuration'),"
        " current_setting('autoload_known_extensions'), current_setting('autoinstall_known_extensions')",
        (False, True, False, False),
    ),
}

SLEEP_PAST_TIMEOUT = {
    "postgres": "SELECT pg_sleep(5)",
    "mysql": "SELECT SLEEP(5)",
    "sqlite": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    "duckdb": "SELECT count(*) FROM range(1000000000000)",
}


@dataclass
class Lock:
    """One engine under test, with the state nothing may change."""

    warehouse: Warehouse
    dialect: str
    baseline: dict
    spec: ConnectionSpec

    def state(self) -> dict:
        return STATE[self.dialect](self.warehouse)


@pytest.fixture(scope="module")
def locks() -> dict[str, Lock]:
    """Filled on first use per dialect: one baseline per engine for the whole module."""
    return {}


@pytest.fixture
def lock_for(request: pytest.FixtureRequest, locks: dict[str, Lock]) -> Callable[[str], Lock]:
    def get(dialect: str) -> Lock:
        if dialect not in locks:
            warehouse = request.getfixturevalue(WAREHOUSE_FIXTURES[ENGINE_OF_DIALECT[dialect]])
            spec = warehouse.with_timeout(TIMEOUT_S)
            locks[dialect] = Lock(warehouse, dialect, STATE[dialect](warehouse), spec)
        return locks[dialect]

    return get


def _outcome(dialect: str, exc: EngineError | None) -> str:
    if exc is None:
        return "executed"
    if dialect == "duckdb" and ("only run queries" in exc.detail or "one statement" in exc.detail):
        return "refused by DuckDB's parser before running"
    if dialect == "mysql" and ("only run queries" in exc.detail or "write files" in exc.detail):
        return "refused by the engine before running"
    return "refused by the database"


# What MariaDB's read-only session does not stop, and the engine refuses for that reason: these
# are not run bare, or they would write a file on the database host or change the server.
NOT_RUN_BARE = re.compile(r"\b(OUTFILE|DUMPFILE)\b|\bSET\s+GLOBAL\b", re.IGNORECASE)


def _run_in_bare_session(warehouse: Warehouse, sql: str) -> str:
    if NOT_RUN_BARE.search(sql):
        return "not run in the bare session (a file or server write)"
    mysql = engine_module("mysql")
    try:
        with mysql._session(warehouse.with_timeout(TIMEOUT_S)) as (conn, _state), conn.cursor() as cursor:
            cursor.execute(sql)
            cursor.fetchall()
    except EngineError:
        return "refused in the bare session"
    return "executed in the bare session"


def _run_in_bare_sandbox(warehouse: Warehouse, sql: str) -> str:
    conn = engine_module("duckdb")._open(warehouse.spec)
    timer = threading.Timer(TIMEOUT_S, conn.interrupt)
    timer.start()
    try:
        conn.execute(sql)
    except duckdb.Error:
        return "refused"
    finally:
        timer.cancel()
        conn.close()
    return "executed"


def _differences(before: dict, after: dict) -> dict[str, Any]:
    return {
        key: {"before": before[key], "after": after.get(key)}
        for key in before
        if before[key] != after.get(key)
    }


@pytest.mark.parametrize("case", _cases())
def test_a_rejected_statement_leaves_nothing_behind_through_the_engine_alone(
    case: Case, lock_for: Callable[[str], Lock]
) -> None:
    lock = lock_for(case.dialect)
    sql = case.sql.replace("{folder}", str(lock.warehouse.folder)).replace("{run}", SCRATCH)
    spec = lock.spec
    if case.dialect == "postgres" and SUPERUSER_ONLY.search(sql):
        spec = replace(lock.warehouse.extra["owner_spec"], statement_timeout_s=TIMEOUT_S)
    files_before = _named_paths(sql)

    error = None
    try:
        lock.warehouse.engine.execute(spec, sql, row_cap=100)
    except EngineError as exc:
        error = exc
    outcome = _outcome(case.dialect, error)
    print(f"{lock.warehouse.name}: {sql!r} {outcome}{f': {error.detail}' if error else ''}")
    counts = LOCK_OUTCOMES[lock.warehouse.name]
    counts[outcome] += 1
    if spec is not lock.spec:
        counts["run as the database owner"] += 1
    # The DuckDB and MySQL engines refuse what is not a query before the database sees it; run
    # the statement bare as well (DuckDB's sandbox, MariaDB's read-only session), so that the
    # database's own lock is measured alone too.
    if case.dialect == "duckdb":
        counts[f"{_run_in_bare_sandbox(lock.warehouse, sql)} in the bare sandbox"] += 1
    elif case.dialect == "mysql":
        counts[_run_in_bare_session(lock.warehouse, sql)] += 1

    changes = _differences(lock.baseline, lock.state())
    if _named_paths(sql) != files_before:
        changes["files named by the statement"] = {"before": files_before, "after": _named_paths(sql)}
    counts["lasting changes"] += bool(changes)
    assert not changes, f"{case.why}: {sql!r} left changes behind: {changes}"

    next_query = NEXT_QUERY[case.dialect]
    with pytest.raises(QueryFailed, match=next_query.refusal):
        lock.warehouse.engine.execute(lock.spec, next_query.write, row_cap=10)
    if next_query.settings:
        result = lock.warehouse.engine.execute(lock.spec, next_query.settings, row_cap=10)
        assert tuple(result.rows[0]) == next_query.expected


@pytest.mark.parametrize("dialect", list(ENGINE_OF_DIALECT))
def test_after_the_whole_corpus_nothing_changed_and_a_long_query_still_times_out(
    dialect: str, lock_for: Callable[[str], Lock]
) -> None:
    lock = lock_for(dialect)
    time.sleep(0.3)  # statistics of the last backends to exit reach the shared counters
    assert _differences(lock.baseline, lock.state()) == {}
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        lock.warehouse.engine.execute(lock.spec, SLEEP_PAST_TIMEOUT[dialect], row_cap=10)
    assert time.monotonic() - started < TIMEOUT_S + 1


# Each engine's lock, piece by piece ----------------------------------------------------------


def test_a_second_statement_is_refused(chinook: Warehouse) -> None:
    with pytest.raises(QueryFailed) as info:
        chinook.engine.execute(chinook.spec, "SELECT 1; SELECT 2", row_cap=10)
    if chinook.name != "mysql":  # MariaDB reports a syntax error near the second statement
        assert "one statement" in info.value.detail


@pytest.mark.parametrize("chinook", ["postgresql"], indirect=True)
def test_postgres_csv_export_refuses_a_second_statement_spliced_into_copy(chinook: Warehouse) -> None:
    before = _pg_state(chinook)
    spliced = "SELECT 1) TO STDOUT; COMMIT; DROP TABLE foo; COPY (SELECT 1"
    with pytest.raises(QueryFailed):
        b"".join(chinook.engine.stream_csv(chinook.spec, spliced))
    assert _differences(before, _pg_state(chinook)) == {}


@pytest.mark.parametrize("chinook", ["postgresql"], indirect=True)
def test_postgres_csv_export_still_accepts_a_query_ending_in_a_comment(chinook: Warehouse) -> None:
    data = b"".join(chinook.engine.stream_csv(chinook.spec, "SELECT 1 AS one -- the answer"))
    assert data.splitlines() == [b"one", b"1"]


@pytest.mark.parametrize("chinook", ["mysql"], indirect=True)
def test_mysql_connections_ask_for_neither_multiple_statements_nor_local_files(chinook: Warehouse) -> None:
    conn = engine_module("mysql")._connect(chinook.spec)
    try:
        assert not conn.client_flag & CLIENT.MULTI_STATEMENTS
        assert not conn.client_flag & CLIENT.LOCAL_FILES
    finally:
        conn.close()


@pytest.mark.parametrize("chinook", ["mysql"], indirect=True)
def test_mysql_ddl_is_refused_although_it_commits_implicitly(chinook: Warehouse) -> None:
    """DDL commits the read-only transaction it runs in; the read-only session refuses it anyway
    (bypassing the engine's own check, which refuses it before the server sees it)."""
    with pytest.raises(QueryFailed, match="only run queries"):
        chinook.engine.execute(chinook.spec, "CREATE TABLE ddl_probe (id INT)", row_cap=10)
    mysql = engine_module("mysql")
    with (
        pytest.raises(QueryFailed, match="read-only"),
        mysql._session(chinook.spec) as (conn, _state),
        conn.cursor() as cursor,
    ):
        cursor.execute("CREATE TABLE ddl_probe (id INT)")
    with mysql_admin() as cursor:
        cursor.execute("SHOW TABLES LIKE 'ddl_probe'")
        assert cursor.fetchall() == ()


@pytest.mark.parametrize("chinook", ["mysql"], indirect=True)
def test_mysql_an_abandoned_result_is_killed_not_read_to_the_end(chinook: Warehouse) -> None:
    huge = "SELECT a.TrackId FROM Track AS a, Track AS b"  # twelve million rows
    started = time.monotonic()
    result = chinook.engine.execute(chinook.spec, huge, row_cap=5)
    assert result.truncated and result.row_count == 5
    stream = chinook.engine.stream_rows(chinook.spec, huge, batch_size=100)
    next(stream), next(stream)
    stream.close()
    assert time.monotonic() - started < 3
    with mysql_admin() as cursor:
        cursor.execute("SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO = %s", (huge,))
        assert cursor.fetchone()[0] == 0


@pytest.mark.parametrize("chinook", ["sqlite"], indirect=True)
def test_sqlite_authorizer_lets_only_reading_through(chinook: Warehouse, tmp_path: Path) -> None:
    sqlite_engine = engine_module("sqlite")
    conn = sqlite_engine._open(chinook.spec, timeout_s=5, authorizer=sqlite_engine._authorize)
    try:
        assert conn.execute("SELECT count(*) FROM Genre").fetchone() == (25,)
        assert conn.execute("SELECT count(*) FROM json_each('[1, 2, 3]')").fetchone() == (3,)
        for statement in (
            "PRAGMA query_only = OFF",
            "SELECT * FROM pragma_table_info('Genre')",
            f"VACUUM INTO '{tmp_path / 'copy.sqlite'}'",
            f"ATTACH DATABASE '{tmp_path / 'new.sqlite'}' AS n",
            "SELECT load_extension('mod_spatialite')",
            "SELECT fts3_tokenizer('simple')",
            "CREATE TEMP VIEW v AS SELECT 1",
            "BEGIN IMMEDIATE",
        ):
            with pytest.raises(sqlite3.DatabaseError):
                conn.execute(statement)
        assert list(tmp_path.iterdir()) == []
    finally:
        conn.close()


@pytest.mark.parametrize("chinook", ["duckdb"], indirect=True)
def test_duckdb_sandbox_settings_apply_and_cannot_be_lifted(chinook: Warehouse) -> None:
    conn = engine_module("duckdb")._open(chinook.spec)
    try:
        settings = dict(
            conn.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access',"
                " 'autoinstall_known_extensions', 'autoload_known_extensions', 'allow_community_extensions',"
                " 'lock_configuration', 'temp_directory')"
            ).fetchall()
        )
        assert settings == {
            "enable_external_access": "false",
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
            "allow_community_extensions": "false",
            "lock_configuration": "true",
            "temp_directory": "",
        }
        for statement, refusal in (
            ("SET enable_external_access = true", "locked"),
            ("SET autoload_known_extensions = true", "locked"),
            ("RESET lock_configuration", "locked"),
            ("SELECT * FROM read_csv('/etc/hostname')", "disabled by configuration"),
            ("INSTALL httpfs", "disabled by configuration"),
            ("LOAD httpfs", "disabled"),
            ("CREATE TABLE pwned (a INTEGER)", "read-only"),
        ):
            with pytest.raises(duckdb.Error, match=refusal):
                conn.execute(statement)
    finally:
        conn.close()
