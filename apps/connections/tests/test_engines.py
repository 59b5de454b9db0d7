"""The four engines on real Chinook warehouses: what they return, how they fail, how they stop."""

import csv
import io
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from apps.connections.engines import get_engine
from apps.connections.engines.base import (
    ConnectionFailed,
    ConnectionSpec,
    EngineError,
    QueryCancelled,
    QueryTimeout,
    TableInfo,
)
from apps.connections.tests.conftest import (
    CHINOOK_TABLES,
    GENRE_COMMENT,
    MILLISECONDS_COMMENT,
    Warehouse,
    free_port,
    mysql_admin,
    pg_admin,
)

NETWORK_ENGINES = ["postgresql", "mysql"]
FILE_ENGINES = ["sqlite", "duckdb"]
RECURSIVE_CTE = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
MEDIA_TYPES = {
    "MPEG audio file",
    "Protected AAC audio file",
    "Protected MPEG-4 video file",
    "Purchased AAC audio file",
    "AAC audio file",
}
TIMEOUT_S = 1.0


def columns_of(tables: dict[str, TableInfo], chinook: Warehouse, table: str) -> dict:
    return {c.name: c for c in tables[chinook.ident(table)].columns}


# Connecting ----------------------------------------------------------------------------------


DESCRIPTIONS = {
    "postgresql": r"PostgreSQL \d+\.\d+.*",
    "mysql": r"(MariaDB|MySQL) \d+\.\d+\.\d+",
    "sqlite": r"SQLite 3\.\d+\.\d+",
    "duckdb": r"DuckDB \d+\.\d+\.\d+",
}


def test_testing_a_connection_describes_the_server(chinook: Warehouse) -> None:
    assert re.fullmatch(DESCRIPTIONS[chinook.name], chinook.engine.test(chinook.spec))


def test_every_engine_is_registered_with_its_label_and_dialect() -> None:
    expected = {
        "postgresql": ("PostgreSQL", "postgres", False),
        "mysql": ("MySQL / MariaDB", "mysql", False),
        "sqlite": ("SQLite", "sqlite", True),
        "duckdb": ("DuckDB", "duckdb", True),
    }
    for name, (label, dialect, file_based) in expected.items():
        engine = get_engine(name)
        assert (engine.label, engine.dialect, engine.is_file_based) == (label, dialect, file_based)


@pytest.mark.parametrize("chinook", NETWORK_ENGINES, indirect=True)
def test_a_wrong_password_is_refused_for_good(chinook: Warehouse) -> None:
    try:
        chinook.engine.test(replace(chinook.spec, password="not-the-password"))
    except ConnectionFailed as exc:
        assert exc.detail == "The database refused the user name or password."
        assert not exc.retryable
    else:
        pytest.skip("This server trusts local connections, so no password can be wrong.")


@pytest.mark.parametrize("chinook", NETWORK_ENGINES, indirect=True)
def test_an_unknown_user_is_refused_for_good(chinook: Warehouse) -> None:
    with pytest.raises(ConnectionFailed, match="user") as info:
        chinook.engine.test(replace(chinook.spec, username="nobody_at_all"))
    assert not info.value.retryable


@pytest.mark.parametrize("chinook", NETWORK_ENGINES, indirect=True)
def test_an_unknown_database_is_named_and_not_retried(chinook: Warehouse) -> None:
    with pytest.raises(ConnectionFailed, match="“no_such_database” does not exist") as info:
        chinook.engine.test(replace(chinook.spec, database="no_such_database"))
    assert not info.value.retryable


@pytest.mark.parametrize("chinook", NETWORK_ENGINES, indirect=True)
def test_an_unreachable_server_is_worth_retrying(chinook: Warehouse) -> None:
    port = free_port()
    with pytest.raises(ConnectionFailed, match=f"127.0.0.1:{port}") as info:
        chinook.engine.test(replace(chinook.spec, host="127.0.0.1", port=port, connect_timeout_s=2))
    assert info.value.retryable


@pytest.mark.parametrize("chinook", FILE_ENGINES, indirect=True)
def test_a_missing_file_is_reported_without_creating_it(chinook: Warehouse, tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(ConnectionFailed, match="missing.db") as info:
        chinook.engine.test(replace(chinook.spec, file_path=missing))
    assert not info.value.retryable
    assert not missing.exists()


@pytest.mark.parametrize("chinook", FILE_ENGINES, indirect=True)
def test_a_file_of_another_kind_is_reported(chinook: Warehouse, tmp_path: Path) -> None:
    other = tmp_path / "notes.db"
    other.write_bytes(b"These are not the tables you are looking for.\n" * 200)
    with pytest.raises(ConnectionFailed, match="notes.db") as info:
        chinook.engine.test(replace(chinook.spec, file_path=other))
    assert not info.value.retryable


# Running queries -----------------------------------------------------------------------------


TYPES = {
    "postgresql": ("int4", "varchar"),
    "mysql": ("int", "varchar"),
    "sqlite": ("integer", "text"),
    "duckdb": ("INTEGER", "VARCHAR"),
}


def test_a_query_returns_its_rows_and_typed_columns(chinook: Warehouse) -> None:
    result = chinook.engine.execute(
        chinook.spec,
        chinook.sql("SELECT {Genre.GenreId}, {Genre.Name} FROM {Genre} ORDER BY {Genre.GenreId}"),
        row_cap=100,
    )
    assert [(c.name, c.type) for c in result.columns] == list(
        zip([chinook.ident("GenreId"), chinook.ident("Name")], TYPES[chinook.name], strict=True)
    )
    assert result.row_count == 25 and not result.truncated
    assert list(result.rows[0]) == [1, "Rock"]
    assert list(result.rows[-1]) == [25, "Opera"]
    assert result.elapsed_ms >= 0


def test_every_engine_agrees_on_the_best_selling_countries(chinook: Warehouse) -> None:
    result = chinook.engine.execute(
        chinook.spec,
        chinook.sql(
            "SELECT {Invoice.BillingCountry} AS country, sum({Invoice.Total}) AS sales, count(*) AS invoices"
            " FROM {Invoice} GROUP BY {Invoice.BillingCountry} ORDER BY sales DESC LIMIT 3"
        ),
        row_cap=10,
    )
    assert [row[0] for row in result.rows] == ["USA", "Canada", "France"]
    assert [row[1] for row in result.rows] == pytest.approx([523.06, 303.96, 195.1])
    assert [row[2] for row in result.rows] == [91, 56, 35]


def test_at_most_row_cap_rows_are_kept_and_the_result_says_so(chinook: Warehouse) -> None:
    tracks = chinook.sql("SELECT {Track.TrackId} FROM {Track} ORDER BY {Track.TrackId}")
    capped = chinook.engine.execute(chinook.spec, tracks, row_cap=10)
    assert capped.truncated and capped.row_count == 10
    assert [row[0] for row in capped.rows] == list(range(1, 11))

    genres = chinook.sql("SELECT {Genre.Name} FROM {Genre}")
    assert not chinook.engine.execute(chinook.spec, genres, row_cap=25).truncated
    assert chinook.engine.execute(chinook.spec, genres, row_cap=24).truncated


UUID = "3e1c1c0e-54a3-4b43-8b3e-54a9c0a4e6b1"
# price, exact, at, day, raw, nan, inf, id
JSON_SAFE_ROW = [1.5, 19.99, "2024-05-01T12:30:00", "2024-05-01", "0xdeadbeef", None, None, UUID]
JSON_SAFE_SQL = {
    "postgresql": (
        "SELECT 1.50::numeric(10, 2) AS price, 19.99::numeric(10, 2) AS exact,"
        " timestamp '2024-05-01 12:30:00' AS at, date '2024-05-01' AS day, '\\xdeadbeef'::bytea AS raw,"
        f" 'NaN'::float8 AS nan, 'Infinity'::float8 AS inf, '{UUID}'::uuid AS id"
    ),
    # MariaDB has no NaN nor infinity: a division by zero is its NULL.
    "mysql": (
        "SELECT CAST(1.50 AS DECIMAL(10, 2)) AS price, CAST(19.99 AS DECIMAL(10, 2)) AS exact,"
        " TIMESTAMP '2024-05-01 12:30:00' AS at, DATE '2024-05-01' AS day, X'DEADBEEF' AS raw,"
        f" 1 / 0 AS nan, NULL AS inf, '{UUID}' AS id"
    ),
    # SQLite has no date type and turns NaN into NULL; 9e999 overflows to infinity.
    "sqlite": (
        "SELECT 1.5 AS price, 19.99 AS exact, '2024-05-01T12:30:00' AS at, '2024-05-01' AS day,"
        f" X'DEADBEEF' AS raw, NULL AS nan, 9e999 AS inf, '{UUID}' AS id"
    ),
    "duckdb": (
        "SELECT 1.50::DECIMAL(10, 2) AS price, 19.99::DECIMAL(10, 2) AS exact,"
        " TIMESTAMP '2024-05-01 12:30:00' AS at, DATE '2024-05-01' AS day,"
        " '\\xDE\\xAD\\xBE\\xEF'::BLOB AS raw, 'nan'::DOUBLE AS nan, 'inf'::DOUBLE AS inf,"
        f" '{UUID}'::UUID AS id"
    ),
}


def test_values_come_back_json_safe(chinook: Warehouse) -> None:
    result = chinook.engine.execute(chinook.spec, JSON_SAFE_SQL[chinook.name], row_cap=10)
    row = list(result.rows[0])
    row[2] = row[2].replace(" ", "T")  # Postgres hands timestamps over in its own text format
    assert row == JSON_SAFE_ROW
    json.dumps(result.as_dict(), allow_nan=False)


def test_chinook_dates_and_money_come_back_json_safe(chinook: Warehouse) -> None:
    result = chinook.engine.execute(
        chinook.spec,
        chinook.sql(
            "SELECT {Invoice.InvoiceDate}, {Invoice.Total} FROM {Invoice} WHERE {Invoice.InvoiceId} = 1"
        ),
        row_cap=10,
    )
    day, total = result.rows[0]
    assert day in ("2021-01-01T00:00:00", "2021-01-01 00:00:00")  # SQLite keeps the text it was given
    assert total == pytest.approx(1.98)
    json.dumps(result.as_dict(), allow_nan=False)


def test_streaming_yields_the_columns_then_every_row_in_batches(chinook: Warehouse) -> None:
    stream = chinook.engine.stream_rows(
        chinook.spec,
        chinook.sql("SELECT {Track.TrackId}, {Track.Name} FROM {Track} ORDER BY {Track.TrackId}"),
        batch_size=1000,
    )
    columns = next(stream)
    batches = list(stream)
    assert [c.name for c in columns] == [chinook.ident("TrackId"), chinook.ident("Name")]
    assert [len(batch) for batch in batches] == [1000, 1000, 1000, 503]
    assert [row[0] for batch in batches for row in batch] == list(range(1, 3504))
    assert batches[0][0][1] == "For Those About To Rock (We Salute You)"


def test_a_csv_export_parses_back_to_the_same_rows(chinook: Warehouse) -> None:
    sql = chinook.sql(
        "SELECT {Track.TrackId}, {Track.Name}, {Track.Composer}, {Track.UnitPrice} FROM {Track}"
        " ORDER BY {Track.TrackId}"
    )
    data = b"".join(chinook.engine.stream_csv(chinook.spec, sql))
    records = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    expected = chinook.engine.execute(chinook.spec, sql, row_cap=10_000)
    assert records[0] == [c.name for c in expected.columns]
    assert len(records) == 1 + 3503
    for record, row in zip(records[1:], expected.rows, strict=True):
        assert int(record[0]) == row[0] and record[1] == row[1] and record[2] == (row[2] or "")
        assert float(record[3]) == pytest.approx(row[3])


# The catalogue -------------------------------------------------------------------------------


@pytest.fixture
def catalogue(chinook: Warehouse) -> dict[str, TableInfo]:
    tables = chinook.engine.introspect(chinook.spec, excluded_columns=frozenset())
    return {t.name: t for t in tables}


def test_introspection_finds_the_chinook_tables_with_their_keys(
    chinook: Warehouse, catalogue: dict[str, TableInfo]
) -> None:
    assert {chinook.ident(t) for t in CHINOOK_TABLES} <= set(catalogue)
    assert all(catalogue[chinook.ident(t)].schema == chinook.schema for t in CHINOOK_TABLES)
    album = columns_of(catalogue, chinook, "Album")
    assert album[chinook.ident("AlbumId")].is_primary_key
    assert not album[chinook.ident("Title")].is_primary_key
    assert album[chinook.ident("ArtistId")].references == chinook.qualified("Artist", "ArtistId")
    assert [c.position for c in catalogue[chinook.ident("Album")].columns] == [1, 2, 3]
    assert not album[chinook.ident("Title")].nullable
    playlist_track = columns_of(catalogue, chinook, "PlaylistTrack")
    assert all(c.is_primary_key for c in playlist_track.values())
    assert playlist_track[chinook.ident("TrackId")].references == chinook.qualified("Track", "TrackId")


def test_introspection_reads_comments_and_row_estimates(
    chinook: Warehouse, catalogue: dict[str, TableInfo]
) -> None:
    if chinook.name == "sqlite":
        assert catalogue["Genre"].comment == ""  # SQLite has no comments
    else:
        assert catalogue[chinook.ident("Genre")].comment == GENRE_COMMENT
        track = columns_of(catalogue, chinook, "Track")
        assert track[chinook.ident("Milliseconds")].comment == MILLISECONDS_COMMENT
    # InnoDB's estimate is a guess from sampled pages; the others count (or ANALYZE did).
    assert catalogue[chinook.ident("Track")].row_estimate == pytest.approx(3503, rel=0.5)
    if chinook.name in ("postgresql", "duckdb"):
        assert catalogue["v"].is_view and catalogue["v"].row_estimate is None


def test_introspection_samples_low_cardinality_text_but_never_sensitive_columns(
    chinook: Warehouse, catalogue: dict[str, TableInfo]
) -> None:
    every_country = chinook.engine.execute(
        chinook.spec, chinook.sql("SELECT DISTINCT {Invoice.BillingCountry} FROM {Invoice}"), row_cap=100
    )
    countries = columns_of(catalogue, chinook, "Invoice")[chinook.ident("BillingCountry")].samples
    assert 1 <= len(countries) <= 5 and set(countries) <= {row[0] for row in every_country.rows}
    media_types = columns_of(catalogue, chinook, "MediaType")[chinook.ident("Name")].samples
    assert media_types and set(media_types) <= MEDIA_TYPES
    genres = columns_of(catalogue, chinook, "Genre")[chinook.ident("Name")].samples
    assert genres
    customer = columns_of(catalogue, chinook, "Customer")
    for sensitive in ("Email", "Phone", "Address"):
        assert customer[chinook.ident(sensitive)].samples == []
    # Names of people and track titles have far more than 50 values.
    assert customer[chinook.ident("LastName")].samples == []
    assert columns_of(catalogue, chinook, "Track")[chinook.ident("Name")].samples == []


def test_an_excluded_column_is_never_sampled(chinook: Warehouse) -> None:
    excluded = frozenset({chinook.qualified("MediaType", "Name")})
    tables = {t.name: t for t in chinook.engine.introspect(chinook.spec, excluded_columns=excluded)}
    assert columns_of(tables, chinook, "MediaType")[chinook.ident("Name")].samples == []
    assert columns_of(tables, chinook, "Genre")[chinook.ident("Name")].samples


# Stopping ------------------------------------------------------------------------------------


RUNAWAY = [
    pytest.param(
        "postgresql", "SELECT count(*) FROM generate_series(1, 10000000000)", id="postgresql-series"
    ),
    pytest.param("postgresql", RECURSIVE_CTE, id="postgresql-recursive"),
    # MariaDB stops recursion after max_recursive_iterations (1000) on its own; a cross join runs on.
    pytest.param("mysql", "SELECT count(*) FROM Track AS a, Track AS b, Track AS c", id="mysql-cross-join"),
    pytest.param("sqlite", RECURSIVE_CTE, id="sqlite-recursive"),
    pytest.param("sqlite", "SELECT count(*) FROM Track AS a, Track AS b, Track AS c", id="sqlite-cross-join"),
    pytest.param("duckdb", "SELECT count(*) FROM range(1000000000000)", id="duckdb-range"),
    pytest.param("duckdb", RECURSIVE_CTE, id="duckdb-recursive"),
]


def _timers() -> int:
    return sum(1 for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive())


def _still_running(chinook: Warehouse, sql: str, timers_before: int) -> int:
    """Statements still running on the server; in process, the engine's timer threads left over."""
    if chinook.name == "postgresql":
        with pg_admin() as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state <> 'idle' AND query = %s",
                [chinook.spec.database, sql],
            ).fetchone()[0]
    if chinook.name == "mysql":
        with mysql_admin() as cursor:
            cursor.execute(
                "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = %s AND INFO = %s",
                (chinook.spec.database, sql),
            )
            return cursor.fetchone()[0]
    return max(0, _timers() - timers_before)


def _eventually_zero(probe: Callable[[], int], within_s: float = 2.0) -> int:
    deadline = time.monotonic() + within_s
    while (count := probe()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


@pytest.mark.parametrize(("chinook", "sql"), RUNAWAY, indirect=["chinook"])
def test_a_runaway_query_times_out_within_a_second_of_its_limit_and_leaves_nothing_running(
    chinook: Warehouse, sql: str
) -> None:
    timers = _timers()
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="ran longer than 1 s") as info:
        chinook.engine.execute(chinook.with_timeout(TIMEOUT_S), sql, row_cap=10)
    elapsed = time.monotonic() - started
    print(f"{chinook.name}: {sql!r} timed out after {elapsed:.2f} s")
    assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + 1
    assert info.value.retryable
    assert _eventually_zero(lambda: _still_running(chinook, sql, timers)) == 0


CANCELLABLE = {
    "postgresql": "SELECT pg_sleep(30)",
    "mysql": "SELECT SLEEP(30)",
    "sqlite": RECURSIVE_CTE,
    "duckdb": "SELECT count(*) FROM range(1000000000000)",
}


def _run_in_thread(
    chinook: Warehouse, spec: ConnectionSpec, sql: str
) -> tuple[threading.Thread, list[Callable[[], None]], dict]:
    registered: list[Callable[[], None]] = []
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = chinook.engine.execute(spec, sql, row_cap=10, on_cancel=registered.append)
        except EngineError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not registered and time.monotonic() < deadline:
        time.sleep(0.01)
    return thread, registered, outcome


def test_cancelling_stops_a_running_query_promptly(chinook: Warehouse) -> None:
    sql = CANCELLABLE[chinook.name]
    timers = _timers()
    thread, registered, outcome = _run_in_thread(chinook, chinook.with_timeout(30), sql)
    assert registered, "the engine never registered a way to cancel"
    time.sleep(0.5)  # well into the statement
    started = time.monotonic()
    registered[0]()
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), QueryCancelled)
    assert time.monotonic() - started < 1.5
    assert _eventually_zero(lambda: _still_running(chinook, sql, timers)) == 0


def test_cancelling_before_the_statement_starts_still_stops_it(chinook: Warehouse) -> None:
    """A cancel can arrive while the engine is still connecting; it must not be lost."""
    stop_at_once: list[Callable[[], None]] = []

    def register_and_cancel(cancel: Callable[[], None]) -> None:
        stop_at_once.append(cancel)
        cancel()

    started = time.monotonic()
    with pytest.raises(QueryCancelled):
        chinook.engine.execute(
            chinook.with_timeout(30), CANCELLABLE[chinook.name], row_cap=10, on_cancel=register_and_cancel
        )
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("chinook", ["duckdb"], indirect=True)
def test_duckdb_zoned_timestamps_come_back_as_text(chinook: Warehouse) -> None:
    """DuckDB's Python client needs pytz for zone-aware datetimes; the engine asks for text."""
    result = chinook.engine.execute(
        chinook.spec, "SELECT TIMESTAMPTZ '2024-05-01 12:00:00+00' AS at, 1 AS n, 2 AS n", row_cap=10
    )
    assert [(c.name, c.type) for c in result.columns] == [
        ("at", "TIMESTAMP WITH TIME ZONE"),
        ("n", "INTEGER"),
        ("n", "INTEGER"),
    ]
    at, one, two = result.rows[0]
    assert isinstance(at, str) and at.startswith("2024-05-01") and (one, two) == (1, 2)


@pytest.mark.parametrize("chinook", ["sqlite"], indirect=True)
def test_sqlite_statistics_give_row_estimates_when_analyze_left_them(
    chinook: Warehouse, tmp_path: Path
) -> None:
    path = tmp_path / "analyzed.sqlite"
    path.write_bytes(chinook.spec.file_path.read_bytes())
    with sqlite3.connect(path) as conn:
        conn.execute("ANALYZE")
    tables = chinook.engine.introspect(replace(chinook.spec, file_path=path), excluded_columns=frozenset())
    assert {t.name: t.row_estimate for t in tables}["Track"] == 3503
