"""Real warehouses for the engine tests.

Chinook is loaded into a scratch Postgres database, a scratch MariaDB database, a copy of its
SQLite file and a DuckDB file built from that file, each with the few extra objects the SQL-safety
corpus names (foo, orders, t, my_seq...) so that its statements reach the engine's lock instead of
failing on a missing table, and with rows in the tables its allowed queries read (customers, t1...)
so that those really run and return something. The engines connect as over-privileged users on
purpose (the Postgres superuser, MariaDB's root): whatever stops a write in these tests is
DataMind's lock, not a missing privilege.
"""

import contextlib
import os
import re
import shutil
import socket
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import psycopg
import pymysql
import pytest
from django.conf import settings

from apps.connections.engines import get_engine
from apps.connections.engines.base import ConnectionSpec, Engine

DATA_DIR = settings.BASE_DIR.parent / "shared" / "data"
CHINOOK_DIR = DATA_DIR / "chinook"
CHINOOK_TABLES = (
    "Album", "Artist", "Customer", "Employee", "Genre", "Invoice", "InvoiceLine", "MediaType", "Playlist",
    "PlaylistTrack", "Track",
)  # fmt: skip
GENRE_COMMENT = "Music genres, as iTunes files them"
MILLISECONDS_COMMENT = "Track length in milliseconds"
MYSQL_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
# Every scratch object carries the test run's process id, so parallel runs never collide and a
# later run can tell leftovers of a dead one (killed before its teardown) from live ones.
SCRATCH_PREFIX = "dm_engines_"
SCRATCH = f"{SCRATCH_PREFIX}{os.getpid()}"


def snake(name: str) -> str:
    """Chinook's Postgres script spells InvoiceLine.InvoiceLineId as invoice_line.invoice_line_id."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()


@dataclass
class Warehouse:
    """One engine's Chinook: its spec, and how its names are spelt."""

    engine: Engine
    spec: ConnectionSpec
    schema: str
    snake_case: bool = False
    folder: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.engine.name

    def ident(self, name: str) -> str:
        return snake(name) if self.snake_case else name

    def sql(self, template: str) -> str:
        """Chinook SQL written once: {Album} and {Album.ArtistId} become this engine's spelling."""
        return re.sub(
            r"\{(\w+)(?:\.(\w+))?\}",
            lambda m: ".".join(self.ident(part) for part in m.groups() if part),
            template,
        )

    def qualified(self, table: str, column: str = "") -> str:
        """schema.table[.column] as the catalogue writes it (table.column where there is no schema)."""
        parts = [self.schema, self.ident(table), self.ident(column) if column else ""]
        return ".".join(part for part in parts if part)

    def with_timeout(self, seconds: float) -> ConnectionSpec:
        return replace(self.spec, statement_timeout_s=seconds)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dead_scratch(name: str) -> bool:
    suffix = name.removeprefix(SCRATCH_PREFIX)
    if not suffix.isdigit():
        return False
    try:
        os.kill(int(suffix), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@pytest.fixture(scope="session")
def chinook_dir() -> Path:
    if not (CHINOOK_DIR / "Chinook_Sqlite.sqlite").exists():
        pytest.skip(f"The Chinook sample database is not at {CHINOOK_DIR} (shared data folder absent).")
    return CHINOOK_DIR


# Postgres ------------------------------------------------------------------------------------


PG_CORPUS_OBJECTS = """
CREATE TABLE foo (id int PRIMARY KEY, bar text);
INSERT INTO foo VALUES (1, 'one'), (2, 'two');
CREATE TABLE t (id int PRIMARY KEY, x int, name text, tags text[], data jsonb);
INSERT INTO t VALUES (1, 10, 'a', '{red,blue}', '[1, 2]'), (2, 20, 'b', '{green}', '[{"k": "v"}]');
CREATE TABLE s (id int PRIMARY KEY);
INSERT INTO s VALUES (1), (2);
CREATE TABLE orders (
    id int PRIMARY KEY, customer_id int, amount numeric(10, 2), status text, created_at timestamp
);
INSERT INTO orders SELECT i, i % 7, i * 1.5, CASE WHEN i % 3 = 0 THEN 'pending' ELSE 'shipped' END,
       timestamp '2024-01-01' + i * interval '1 day' FROM generate_series(1, 50) AS i;
CREATE TABLE existing_table (col int);
INSERT INTO existing_table VALUES (1), (2), (3);
CREATE TABLE my_table (id int PRIMARY KEY);
INSERT INTO my_table VALUES (123);
CREATE TABLE people (a int, b int, c int);
CREATE TABLE users (id serial PRIMARY KEY, name text, real_name text);
INSERT INTO users (name, real_name) VALUES ('ada', 'Ada Lovelace'), ('alan', 'Alan Turing'),
       ('grace', 'Grace Hopper');
CREATE TABLE ab_user (id int PRIMARY KEY, active boolean);
INSERT INTO ab_user VALUES (1, false);
CREATE TABLE tbl1 (foo int);
CREATE TABLE tbl2 (bar int);
CREATE TABLE some_table (id int);
CREATE VIEW v AS SELECT * FROM t;
CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS n FROM orders;
CREATE SEQUENCE my_seq;
SELECT nextval('my_seq');
CREATE PROCEDURE my_writing_procedure() LANGUAGE sql AS $$ UPDATE t SET x = x + 1 $$;
SELECT lo_create(12345);
SELECT lo_put(12345, 0, '\\x6461746164617461');
-- What the allowed queries read (test_allowed_queries), one order whose status is SQL included.
INSERT INTO orders VALUES (51, 3, 9.99, 'shipped; DELETE FROM orders', timestamp '2024-03-15');
CREATE TABLE customers (id int PRIMARY KEY, name text);
INSERT INTO customers SELECT i, 'customer ' || i FROM generate_series(0, 6) AS i;
CREATE TABLE accounts (id int PRIMARY KEY, "user" text);
INSERT INTO accounts VALUES (1, 'ada'), (2, 'alan');
CREATE TABLE tbl (foo int);
INSERT INTO tbl VALUES (1), (2);
CREATE TABLE mytable (id int PRIMARY KEY, name text);
INSERT INTO mytable SELECT i, 'row ' || i FROM generate_series(1, 40) AS i;
-- The subquery example: t2 rows whose s1 is 10 match t4's (50, 77), the others count.
CREATE TABLE t1 (s11 int, f1 int);
INSERT INTO t1 VALUES (0, 1), (5, 2);
CREATE TABLE t2 (s1 int);
INSERT INTO t2 VALUES (10), (1);
CREATE TABLE t3 (id int);
INSERT INTO t3 VALUES (1);
CREATE TABLE t4 (s1 int);
INSERT INTO t4 VALUES (7);
CREATE SCHEMA s1;
CREATE TABLE s1.t1 (id int PRIMARY KEY, day_of_week text, resolution text);
INSERT INTO s1.t1 VALUES (1, 'Friday', 'NONE'), (2, 'Friday', 'FIXED'), (3, 'Monday', 'NONE');
CREATE SCHEMA s2;
CREATE TABLE s2.t2 (id int PRIMARY KEY);
INSERT INTO s2.t2 VALUES (1);
"""


def pg_admin_params() -> dict:
    db = settings.DATABASES["default"]
    return {
        "host": db.get("HOST") or "127.0.0.1",
        "port": int(db.get("PORT") or 5432),
        "user": db.get("USER") or "postgres",
        "password": db.get("PASSWORD") or "",
    }


@contextlib.contextmanager
def pg_admin(dbname: str = "postgres") -> Iterator[psycopg.Connection]:
    with psycopg.connect(**pg_admin_params(), dbname=dbname, autocommit=True, connect_timeout=5) as conn:
        yield conn


def _pg_chinook_script(chinook: Path) -> str:
    text = (chinook / "Chinook_PostgreSql.sql").read_text(encoding="utf-8")
    # The script creates and switches to its own database; the fixture already did.
    return "\n".join(
        line for line in text.splitlines() if not re.match(r"\s*(DROP DATABASE|CREATE DATABASE|\\c)\b", line)
    )


@pytest.fixture(scope="session")
def pg_warehouse(chinook_dir: Path) -> Iterator[Warehouse]:
    params = pg_admin_params()
    try:
        admin = psycopg.connect(**params, dbname="postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"Postgres is not reachable at {params['host']}:{params['port']}: {exc}")
    owner = f"{SCRATCH}_owner"
    with admin:
        for (name,) in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [SCRATCH_PREFIX + "%"]
        ):
            if _dead_scratch(name):
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.execute(f'DROP ROLE IF EXISTS "{name}_owner"')
        admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{owner}"')
        # The database's owner may write every table of it; it is used where the superuser's
        # powers over the whole server would reach beyond this test (see test_engine_locks).
        admin.execute(f"CREATE ROLE \"{owner}\" LOGIN PASSWORD 'dm-owner-password'")
        admin.execute(f'CREATE DATABASE "{SCRATCH}" OWNER "{owner}"')
    try:
        with pg_admin(SCRATCH) as conn:
            conn.execute(f'SET ROLE "{owner}"')
            conn.execute(_pg_chinook_script(chinook_dir))
            conn.execute(PG_CORPUS_OBJECTS)
            conn.execute(f"COMMENT ON TABLE genre IS '{GENRE_COMMENT}'")
            conn.execute(f"COMMENT ON COLUMN track.milliseconds IS '{MILLISECONDS_COMMENT}'")
            conn.execute("RESET ROLE")
            conn.execute("ANALYZE")  # pg_stats feeds the samples; reltuples the row estimates
        spec = ConnectionSpec(
            engine="postgresql",
            host=params["host"],
            port=params["port"],
            database=SCRATCH,
            username=params["user"],
            password=params["password"],
            sslmode="disable",
        )
        yield Warehouse(
            engine=get_engine("postgresql"),
            spec=spec,
            schema="public",
            snake_case=True,
            extra={"owner_spec": replace(spec, username=owner, password="dm-owner-password")},
        )
    finally:
        with pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{owner}"')


# MariaDB -------------------------------------------------------------------------------------


MYSQL_CORPUS_OBJECTS = (
    "CREATE TABLE t1 (id INT PRIMARY KEY, col1 INT)",
    "INSERT INTO t1 VALUES (1, 10), (2, 20)",
    "CREATE TABLE foo (id INT PRIMARY KEY, bar VARCHAR(20))",
    "INSERT INTO foo VALUES (1, 'one'), (2, 'two')",
    "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, amount DECIMAL(10, 2), status VARCHAR(20),"
    " created_at DATETIME)",
    "INSERT INTO orders WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)"
    " SELECT i, i % 7, i * 1.5, IF(i % 3 = 0, 'pending', 'shipped'), '2024-01-01' + INTERVAL i DAY FROM n",
    "CREATE TABLE existing_table (col INT)",
    "INSERT INTO existing_table VALUES (1), (2), (3)",
    # A stored procedure that writes: the read-only transaction must refuse what it does.
    "CREATE PROCEDURE evil_proc() DELETE FROM orders",
    # What the allowed queries read (test_allowed_queries).
    "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), doc JSON, tags VARCHAR(100))",
    """INSERT INTO t VALUES (1, 'banana', '{"a": 1, "b": [1, 2]}', 'a,b,c'),"""
    """ (2, 'cherry', '[1, 2, 3]', 'b,c')""",
    "CREATE TABLE a_table (id INT PRIMARY KEY, a_column VARCHAR(20))",
    "INSERT INTO a_table VALUES (1, 'x'), (2, NULL)",
    "CREATE TABLE a_table2 (id INT PRIMARY KEY, a_column VARCHAR(20))",
    "INSERT INTO a_table2 VALUES (3, 'y')",
    "CREATE TABLE `A` (__value__ INT PRIMARY KEY, name VARCHAR(40))",
    "INSERT INTO `A` VALUES (1, 'com.example.US'), (2, 'org.example.FR')",
    "CREATE TABLE metrics (id INT PRIMARY KEY, value INT)",
    "INSERT INTO metrics VALUES (1, 30), (2, 75), (3, 150)",
    "CREATE TABLE logins (id INT PRIMARY KEY, user VARCHAR(40))",
    "INSERT INTO logins VALUES (1, 'ada'), (2, 'alan')",
)


def _mysql_type(declared: str) -> str:
    upper = declared.upper()
    if upper.startswith("NVARCHAR"):
        return upper.removeprefix("N")
    if upper.startswith("NUMERIC"):
        return upper.replace("NUMERIC", "DECIMAL")
    return {"INTEGER": "INT"}.get(upper, upper)


def _sqlite_schema(src: sqlite3.Connection) -> list[tuple[str, list[tuple], list[tuple]]]:
    """(table, columns, foreign keys) of the Chinook file, referenced tables first."""
    tables = {}
    for (name,) in src.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
    ):
        columns = src.execute(f'SELECT name, type, "notnull", pk FROM pragma_table_info("{name}")').fetchall()
        keys = src.execute(f'SELECT "from", "table", "to" FROM pragma_foreign_key_list("{name}")').fetchall()
        tables[name] = (columns, keys)
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name not in ordered:
            for _, target, _ in tables[name][1]:
                if target != name:
                    visit(target)
            ordered.append(name)

    for name in sorted(tables):
        visit(name)
    return [(name, *tables[name]) for name in ordered]


def _copy_rows(src: sqlite3.Connection, table: str, columns: list[tuple]) -> list[list]:
    """Each column's values as one list, in primary-key order."""
    names = ", ".join(f'"{c[0]}"' for c in columns)
    keys = ", ".join(f'"{c[0]}"' for c in sorted((c for c in columns if c[3]), key=lambda c: c[3]))
    rows = src.execute(f'SELECT {names} FROM "{table}" ORDER BY {keys}').fetchall()
    return [list(values) for values in zip(*rows, strict=True)] if rows else [[] for _ in columns]


@pytest.fixture(scope="session")
def mysql_warehouse(chinook_dir: Path) -> Iterator[Warehouse]:
    try:
        admin = pymysql.connect(**MYSQL_ADMIN, autocommit=True, connect_timeout=5)
    except pymysql.err.MySQLError as exc:
        pytest.skip(f"MariaDB/MySQL is not reachable at {MYSQL_ADMIN['host']}:{MYSQL_ADMIN['port']}: {exc}")
    try:
        with admin.cursor() as cursor:
            cursor.execute("SHOW DATABASES LIKE %s", (SCRATCH_PREFIX + "%",))
            for (name,) in cursor.fetchall():
                if _dead_scratch(name):
                    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"DROP DATABASE IF EXISTS `{SCRATCH}`")
            cursor.execute(f"CREATE DATABASE `{SCRATCH}` CHARACTER SET utf8mb4")
            cursor.execute(f"USE `{SCRATCH}`")
            cursor.execute("SET SESSION foreign_key_checks = 0")
            src = sqlite3.connect(f"file:{chinook_dir / 'Chinook_Sqlite.sqlite'}?mode=ro", uri=True)
            with contextlib.closing(src):
                for table, columns, keys in _sqlite_schema(src):
                    definitions = [
                        f"`{name}` {_mysql_type(declared)}{' NOT NULL' if not_null else ''}"
                        for name, declared, not_null, _pk in columns
                    ]
                    primary = ", ".join(
                        f"`{c[0]}`" for c in sorted((c for c in columns if c[3]), key=lambda c: c[3])
                    )
                    definitions.append(f"PRIMARY KEY ({primary})")
                    definitions += [
                        f"FOREIGN KEY (`{source}`) REFERENCES `{target}` (`{column}`)"
                        for source, target, column in keys
                    ]
                    cursor.execute(f"CREATE TABLE `{table}` ({', '.join(definitions)}) ENGINE=InnoDB")
                    values = _copy_rows(src, table, columns)
                    placeholders = ", ".join(["%s"] * len(columns))
                    cursor.executemany(
                        f"INSERT INTO `{table}` VALUES ({placeholders})", list(zip(*values, strict=True))
                    )
            cursor.execute(f"ALTER TABLE Genre COMMENT = '{GENRE_COMMENT}'")
            cursor.execute(
                f"ALTER TABLE Track MODIFY Milliseconds INT NOT NULL COMMENT '{MILLISECONDS_COMMENT}'"
            )
            for statement in MYSQL_CORPUS_OBJECTS:
                cursor.execute(statement)
            cursor.execute("ANALYZE TABLE " + ", ".join(f"`{t}`" for t in CHINOOK_TABLES))
            cursor.fetchall()
        spec = ConnectionSpec(
            engine="mysql",
            host=MYSQL_ADMIN["host"],
            port=MYSQL_ADMIN["port"],
            database=SCRATCH,
            username=MYSQL_ADMIN["user"],
            password=MYSQL_ADMIN["password"],
            sslmode="disable",
        )
        yield Warehouse(engine=get_engine("mysql"), spec=spec, schema=SCRATCH)
    finally:
        with contextlib.suppress(pymysql.err.MySQLError), admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{SCRATCH}`")
        admin.close()


@contextlib.contextmanager
def mysql_admin() -> Iterator[pymysql.cursors.Cursor]:
    with pymysql.connect(**MYSQL_ADMIN, database=SCRATCH, autocommit=True) as conn, conn.cursor() as cursor:
        yield cursor


# SQLite and DuckDB ---------------------------------------------------------------------------


SQLITE_CORPUS_OBJECTS = """
CREATE TABLE foo (id INTEGER PRIMARY KEY, bar TEXT);
INSERT INTO foo VALUES (1, 'one'), (2, 'two');
CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, d TEXT, x REAL, doc TEXT);
INSERT INTO t VALUES (1, 'a', '2024-03-01', 1.5, '[1, 2]'), (2, 'b', '2023-12-31', 2.5, '{"k": "v"}');
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount NUMERIC, created_at TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
INSERT INTO orders SELECT i, i % 7, i * 1.5, date('2024-01-01', '+' || i || ' days') FROM n;
"""


@pytest.fixture(scope="session")
def sqlite_warehouse(chinook_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    folder = tmp_path_factory.mktemp("sqlite-warehouse")
    path = folder / "chinook.sqlite"
    shutil.copyfile(chinook_dir / "Chinook_Sqlite.sqlite", path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(SQLITE_CORPUS_OBJECTS)
        conn.commit()
    spec = ConnectionSpec(engine="sqlite", database=path.name, file_path=path)
    return Warehouse(engine=get_engine("sqlite"), spec=spec, schema="", folder=folder)


DUCKDB_CORPUS_OBJECTS = """
CREATE TABLE foo (id INTEGER PRIMARY KEY, bar VARCHAR);
INSERT INTO foo VALUES (1, 'one'), (2, 'two');
CREATE TABLE t (id INTEGER PRIMARY KEY, x INTEGER, name VARCHAR, a VARCHAR, b INTEGER);
INSERT INTO t VALUES (1, 10, 'a', 'p', 1), (2, 20, 'b', 'q', 2);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, customer_id INTEGER, amount DECIMAL(10, 2), created_at TIMESTAMP
);
INSERT INTO orders SELECT i, i % 7, i * 1.5, TIMESTAMP '2024-01-01' + i * INTERVAL 1 DAY
FROM range(1, 51) AS r(i);
CREATE SEQUENCE my_seq;
CREATE VIEW v AS SELECT * FROM t;
"""


def _duckdb_type(declared: str) -> str:
    upper = declared.upper()
    if upper.startswith("NVARCHAR"):
        return "VARCHAR"
    if upper.startswith("NUMERIC"):
        return upper.replace("NUMERIC", "DECIMAL")
    return {"DATETIME": "TIMESTAMP"}.get(upper, upper)


@pytest.fixture(scope="session")
def duckdb_warehouse(chinook_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    folder = tmp_path_factory.mktemp("duckdb-warehouse")
    path = folder / "chinook.duckdb"
    # DuckDB's sqlite scanner is an extension it would download; copy through Python instead.
    src = sqlite3.connect(f"file:{chinook_dir / 'Chinook_Sqlite.sqlite'}?mode=ro", uri=True)
    with contextlib.closing(src), contextlib.closing(duckdb.connect(str(path))) as conn:
        for table, columns, keys in _sqlite_schema(src):
            definitions = [
                f'"{name}" {_duckdb_type(declared)}{" NOT NULL" if not_null else ""}'
                for name, declared, not_null, _pk in columns
            ]
            primary = ", ".join(f'"{c[0]}"' for c in sorted((c for c in columns if c[3]), key=lambda c: c[3]))
            definitions.append(f"PRIMARY KEY ({primary})")
            definitions += [
                f'FOREIGN KEY ("{source}") REFERENCES "{target}" ("{column}")'
                for source, target, column in keys
            ]
            conn.execute(f'CREATE TABLE "{table}" ({", ".join(definitions)})')
            values = _copy_rows(src, table, columns)
            if any(target == table for _, target, _ in keys):
                # DuckDB checks a self-reference against the rows already there: one row at a time.
                placeholders = ", ".join(["?"] * len(columns))
                conn.executemany(
                    f'INSERT INTO "{table}" VALUES ({placeholders})', list(zip(*values, strict=True))
                )
            else:
                # One INSERT of zipped lists: executemany would take a minute for PlaylistTrack alone.
                unnests = ", ".join(f"unnest(${i})" for i in range(1, len(columns) + 1))
                conn.execute(f'INSERT INTO "{table}" SELECT {unnests}', values)
        conn.execute(f"COMMENT ON TABLE Genre IS '{GENRE_COMMENT}'")
        conn.execute(f"COMMENT ON COLUMN Track.Milliseconds IS '{MILLISECONDS_COMMENT}'")
        conn.execute(DUCKDB_CORPUS_OBJECTS)
    spec = ConnectionSpec(engine="duckdb", database=path.name, file_path=path)
    return Warehouse(engine=get_engine("duckdb"), spec=spec, schema="main", folder=folder)


# The SQL-safety corpus's dialects, and the engine (and so the warehouse) each one runs on.
ENGINE_OF_DIALECT = {"postgres": "postgresql", "mysql": "mysql", "sqlite": "sqlite", "duckdb": "duckdb"}

WAREHOUSE_FIXTURES = {
    "postgresql": "pg_warehouse",
    "mysql": "mysql_warehouse",
    "sqlite": "sqlite_warehouse",
    "duckdb": "duckdb_warehouse",
}


@pytest.fixture(params=list(WAREHOUSE_FIXTURES))
def chinook(request: pytest.FixtureRequest) -> Warehouse:
    """Each test that takes it runs once per engine."""
    return request.getfixturevalue(WAREHOUSE_FIXTURES[request.param])


# What the engine-lock tests saw, per engine, for the summary at the end of the run.
LOCK_OUTCOMES: defaultdict[str, Counter] = defaultdict(Counter)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not LOCK_OUTCOMES:
        return
    terminalreporter.section("engine lock alone: statements the corpus rejects, run without the validator")
    for engine, counts in sorted(LOCK_OUTCOMES.items()):
        outcomes = ", ".join(f"{n} {what}" for what, n in counts.items() if what != "lasting changes")
        terminalreporter.write_line(f"{engine}: {outcomes}; lasting changes: {counts['lasting changes']}")
