"""The demo warehouse: built once per session (a build takes seconds) and then only read."""

import statistics
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from io import StringIO
from pathlib import Path

import duckdb
import pytest
from django.core.management import call_command
from django.test import override_settings

from apps.connections.services import demo_warehouse
from apps.connections.services.demo_warehouse import (
    DEMO_ANOMALIES,
    DEMO_FIRST_DAY,
    DEMO_LAST_DAY,
    DEMO_TABLES,
    DEMO_WAREHOUSE_FILENAME,
    InjectedAnomaly,
    demo_warehouse_build,
    demo_warehouse_row_counts,
)

# The foreign keys the schema declares, as (table, column, referenced table, referenced column).
FOREIGN_KEYS = (
    ("products", "category_id", "categories", "category_id"),
    ("customers", "region_id", "regions", "region_id"),
    ("orders", "customer_id", "customers", "customer_id"),
    ("orders", "region_id", "regions", "region_id"),
    ("order_items", "order_id", "orders", "order_id"),
    ("order_items", "product_id", "products", "product_id"),
    ("daily_revenue", "region_id", "regions", "region_id"),
)


@pytest.fixture(scope="session")
def warehouse_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("warehouses")


@pytest.fixture(scope="session")
def warehouse(warehouse_root: Path) -> Path:
    """Built with no path, so it lands where the settings say file databases live."""
    with override_settings(CONNECTIONS_FILE_ROOT=warehouse_root):
        return demo_warehouse_build()


@pytest.fixture(scope="session")
def con(warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def second_warehouse(tmp_path_factory: pytest.TempPathFactory, warehouse: Path) -> Path:
    return demo_warehouse_build(path=tmp_path_factory.mktemp("second") / "again.duckdb")


def checksums(path: Path) -> dict[str, tuple[int, int]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return {
            table: connection.execute(f"SELECT count(*), sum(hash({table})) FROM {table}").fetchone()
            for table in DEMO_TABLES
        }


def daily_series(con: duckdb.DuckDBPyConnection, anomaly: InjectedAnomaly) -> dict[date, float]:
    if anomaly.table == "daily_revenue":
        rows = con.execute(
            "SELECT date, sum(revenue) FROM daily_revenue JOIN regions USING (region_id)"
            " WHERE $region IS NULL OR regions.name = $region GROUP BY date",
            {"region": anomaly.region},
        ).fetchall()
    else:
        rows = con.execute(
            "SELECT date, sum(visits) FROM daily_traffic"
            " WHERE $channel IS NULL OR channel = $channel GROUP BY date",
            {"channel": anomaly.channel},
        ).fetchall()
    return {day: float(value) for day, value in rows}


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def test_it_builds_the_warehouse_inside_the_connections_file_root(warehouse: Path, warehouse_root: Path):
    assert warehouse == warehouse_root / DEMO_WAREHOUSE_FILENAME
    assert warehouse.is_file()


def test_it_leaves_no_temporary_files_beside_the_warehouse(warehouse: Path, warehouse_root: Path):
    assert sorted(p.name for p in warehouse_root.iterdir()) == [
        f".{DEMO_WAREHOUSE_FILENAME}.version",
        DEMO_WAREHOUSE_FILENAME,
    ]


def test_it_holds_about_a_million_rows(warehouse: Path):
    counts = demo_warehouse_row_counts(path=warehouse)

    assert counts["regions"] == 4
    assert counts["categories"] == 8
    assert counts["products"] == 480
    assert counts["customers"] == 60_000
    assert 250_000 <= counts["orders"] <= 350_000
    assert 1.8 <= counts["order_items"] / counts["orders"] <= 2.6
    days_of_data = (DEMO_LAST_DAY - DEMO_FIRST_DAY).days + 1
    assert days_of_data == 730
    assert counts["daily_revenue"] == days_of_data * 4
    assert counts["daily_traffic"] == days_of_data * 6
    assert 900_000 <= sum(counts.values()) <= 1_100_000


def test_it_contains_only_the_retail_tables_and_nothing_of_ours(con: duckdb.DuckDBPyConnection):
    database = con.execute("SELECT current_database()").fetchone()[0]

    tables = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [database]
    ).fetchall()
    views = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE database_name = ? AND NOT internal", [database]
    ).fetchone()[0]
    macros = con.execute(
        "SELECT count(*) FROM duckdb_functions() WHERE database_name = ? AND NOT internal", [database]
    ).fetchone()[0]

    assert sorted(name for (name,) in tables) == sorted(DEMO_TABLES)
    assert views == 0
    assert macros == 0


def test_two_builds_produce_identical_tables(warehouse: Path, second_warehouse: Path):
    assert checksums(second_warehouse) == checksums(warehouse)


def test_the_data_covers_two_years_ending_on_the_fixed_last_day(con: duckdb.DuckDBPyConnection):
    bounds = con.execute(
        "SELECT min(CAST(order_date AS DATE)), max(CAST(order_date AS DATE)) FROM orders"
    ).fetchone()
    revenue_bounds = con.execute("SELECT min(date), max(date) FROM daily_revenue").fetchone()
    traffic_bounds = con.execute("SELECT min(date), max(date) FROM daily_traffic").fetchone()

    assert bounds == revenue_bounds == traffic_bounds == (DEMO_FIRST_DAY, DEMO_LAST_DAY)


def test_it_declares_primary_and_foreign_keys(con: duckdb.DuckDBPyConnection):
    primary_keys = {
        table
        for (table,) in con.execute(
            "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
        ).fetchall()
    }
    foreign_keys = con.execute(
        "SELECT table_name, constraint_column_names, referenced_table, referenced_column_names"
        " FROM duckdb_constraints() WHERE constraint_type = 'FOREIGN KEY'"
    ).fetchall()

    assert primary_keys == set(DEMO_TABLES)
    assert {
        (table, columns[0], referenced, referenced_columns[0])
        for table, columns, referenced, referenced_columns in foreign_keys
    } == set(FOREIGN_KEYS)


@pytest.mark.parametrize(("table", "column", "referenced", "referenced_column"), FOREIGN_KEYS)
def test_no_row_points_at_a_missing_parent(
    con: duckdb.DuckDBPyConnection, table: str, column: str, referenced: str, referenced_column: str
):
    orphans = con.execute(
        f"SELECT count(*) FROM {table} t LEFT JOIN {referenced} r ON r.{referenced_column} = t.{column}"
        f" WHERE r.{referenced_column} IS NULL"
    ).fetchone()[0]

    assert orphans == 0


def test_customers_order_only_after_signing_up_and_in_their_own_region(con: duckdb.DuckDBPyConnection):
    mismatches = con.execute(
        "SELECT count(*) FROM orders o JOIN customers c USING (customer_id)"
        " WHERE CAST(o.order_date AS DATE) < c.signup_date OR o.region_id <> c.region_id"
    ).fetchone()[0]

    assert mismatches == 0


def test_order_totals_and_daily_revenue_agree_with_the_order_lines(con: duckdb.DuckDBPyConnection):
    wrong_totals = con.execute(
        "SELECT count(*) FROM orders o JOIN ("
        "  SELECT order_id, sum(round(quantity * unit_price * (1 - discount), 2)) AS total"
        "  FROM order_items GROUP BY order_id) i USING (order_id)"
        " WHERE o.total_amount <> i.total"
    ).fetchone()[0]
    orders_revenue = con.execute(
        "SELECT sum(total_amount) FROM orders WHERE status = 'completed'"
    ).fetchone()[0]
    daily_revenue = con.execute("SELECT sum(revenue) FROM daily_revenue").fetchone()[0]

    assert wrong_totals == 0
    assert orders_revenue == daily_revenue


def test_weekends_sell_clearly_less_than_weekdays(con: duckdb.DuckDBPyConnection):
    weekend, weekday = con.execute(
        "SELECT avg(revenue) FILTER (WHERE isodow(date) >= 6), avg(revenue) FILTER (WHERE isodow(date) < 6)"
        " FROM (SELECT date, sum(revenue) AS revenue FROM daily_revenue GROUP BY date)"
    ).fetchone()

    assert weekend / weekday < 0.8


def test_revenue_grows_from_the_first_quarter_to_the_last(con: duckdb.DuckDBPyConnection):
    first, last = con.execute(
        "SELECT sum(revenue) FILTER (WHERE date < DATE '2025-02-01'),"
        " sum(revenue) FILTER (WHERE date >= DATE '2026-08-01') FROM daily_revenue"
    ).fetchone()

    assert last / first > 1.3


@pytest.mark.parametrize("anomaly", DEMO_ANOMALIES, ids=lambda anomaly: anomaly.name)
def test_each_documented_anomaly_lies_within_the_data(anomaly: InjectedAnomaly):
    assert DEMO_FIRST_DAY <= anomaly.first_day <= anomaly.last_day <= DEMO_LAST_DAY
    if anomaly.kind == "level_shift":
        assert anomaly.last_day == DEMO_LAST_DAY
        # Four weeks before and after, to measure the shift against.
        assert DEMO_FIRST_DAY + timedelta(days=28) <= anomaly.first_day <= DEMO_LAST_DAY - timedelta(days=28)
    else:
        assert DEMO_FIRST_DAY + timedelta(weeks=4) <= anomaly.first_day
        assert anomaly.last_day <= DEMO_LAST_DAY - timedelta(weeks=4)


def weekday_ratios(series: dict[date, float]) -> dict[date, float]:
    """Each day against the median of the same weekday in the four weeks either side."""
    ratios = {}
    for day, value in series.items():
        neighbours = [day + timedelta(weeks=w) for w in (-4, -3, -2, -1, 1, 2, 3, 4)]
        if all(n in series for n in neighbours):
            ratios[day] = value / statistics.median(series[n] for n in neighbours)
    return ratios


def shift_ratio(series: dict[date, float], day: date) -> float:
    """Mean of the four weeks from `day` over the mean of the four weeks before it."""
    before = days(day - timedelta(days=28), day - timedelta(days=1))
    after = days(day, day + timedelta(days=27))
    return statistics.fmean(series[d] for d in after) / statistics.fmean(series[d] for d in before)


DROPS_AND_SPIKES = [a for a in DEMO_ANOMALIES if a.kind != "level_shift"]
LEVEL_SHIFTS = [a for a in DEMO_ANOMALIES if a.kind == "level_shift"]
ANOMALOUS_DAYS = {d for a in DEMO_ANOMALIES for d in days(a.first_day, a.last_day)}


@pytest.mark.parametrize("anomaly", DROPS_AND_SPIKES, ids=lambda anomaly: anomaly.name)
def test_each_documented_drop_or_spike_is_far_from_the_same_weekday_around_it(
    con: duckdb.DuckDBPyConnection, anomaly: InjectedAnomaly
):
    ratios = weekday_ratios(daily_series(con, anomaly))
    # Halfway (in ratio) between "no change" and the injected factor.
    threshold = (1 + anomaly.factor) / 2

    for day in days(anomaly.first_day, anomaly.last_day):
        if anomaly.kind == "drop":
            assert ratios[day] < threshold, (day, ratios[day])
        else:
            assert ratios[day] > threshold, (day, ratios[day])


@pytest.mark.parametrize("anomaly", DROPS_AND_SPIKES, ids=lambda anomaly: anomaly.name)
def test_each_documented_drop_or_spike_is_the_most_extreme_day_of_its_series(
    con: duckdb.DuckDBPyConnection, anomaly: InjectedAnomaly
):
    # What an alert benchmark relies on: noise alone never goes as far as an injected day.
    ratios = weekday_ratios(daily_series(con, anomaly))
    injected = [ratios[d] for d in days(anomaly.first_day, anomaly.last_day)]
    ordinary = [ratio for day, ratio in ratios.items() if day not in ANOMALOUS_DAYS]

    if anomaly.kind == "drop":
        assert max(injected) < min(ordinary)
    else:
        assert min(injected) > max(ordinary)


@pytest.mark.parametrize("anomaly", LEVEL_SHIFTS, ids=lambda anomaly: anomaly.name)
def test_each_documented_level_shift_lifts_the_following_weeks(
    con: duckdb.DuckDBPyConnection, anomaly: InjectedAnomaly
):
    series = daily_series(con, anomaly)
    threshold = (1 + anomaly.factor) / 2

    assert shift_ratio(series, anomaly.first_day) > threshold
    # The control: the same day a year earlier (same weekday) shows only the ordinary trend.
    assert shift_ratio(series, anomaly.first_day - timedelta(weeks=52)) < threshold


def test_every_table_and_column_has_a_comment(con: duckdb.DuckDBPyConnection):
    tables = con.execute(
        "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall()
    columns = con.execute(
        "SELECT table_name, column_name, comment FROM duckdb_columns()"
        " WHERE database_name = current_database()"
    ).fetchall()

    assert all(comment for _, comment in tables), tables
    assert len(columns) > 40
    assert [(table, column) for table, column, comment in columns if not comment] == []


def test_personal_data_columns_say_so_in_their_comment(con: duckdb.DuckDBPyConnection):
    comments = dict(
        con.execute(
            "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'customers'"
            " AND column_name IN ('name', 'email')"
        ).fetchall()
    )

    assert "Personal data" in comments["email"]
    assert "Personal data" in comments["name"]


def test_the_warehouse_opens_read_only(warehouse: Path):
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM regions").fetchone()[0] == 4
        with pytest.raises(duckdb.Error):
            connection.execute("DELETE FROM regions")


def test_rerunning_without_force_leaves_the_file_untouched(warehouse: Path):
    before = warehouse.stat()

    assert demo_warehouse_build(path=warehouse) == warehouse

    after = warehouse.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_force_replaces_the_file_with_identical_data(warehouse: Path, second_warehouse: Path):
    before = second_warehouse.stat()

    demo_warehouse_build(path=second_warehouse, force=True)

    assert second_warehouse.stat().st_ino != before.st_ino
    assert checksums(second_warehouse) == checksums(warehouse)


def test_a_warehouse_from_another_version_is_rebuilt(second_warehouse: Path):
    version_file = second_warehouse.with_name(f".{second_warehouse.name}.version")
    version_file.write_text("demo-warehouse-older\n")
    before = second_warehouse.stat()

    demo_warehouse_build(path=second_warehouse)

    assert second_warehouse.stat().st_ino != before.st_ino
    assert version_file.read_text().strip() == demo_warehouse.DEMO_WAREHOUSE_VERSION


def test_a_failed_build_keeps_the_previous_warehouse_and_leaves_no_debris(
    second_warehouse: Path, monkeypatch: pytest.MonkeyPatch
):
    broken = replace(DEMO_ANOMALIES[0], region="Atlantis")
    monkeypatch.setattr(demo_warehouse, "DEMO_ANOMALIES", (broken,))
    before = second_warehouse.stat()
    listing = sorted(second_warehouse.parent.iterdir())

    with pytest.raises(ValueError, match="Atlantis"):
        demo_warehouse_build(path=second_warehouse, force=True)

    assert (second_warehouse.stat().st_ino, second_warehouse.stat().st_mtime_ns) == (
        before.st_ino,
        before.st_mtime_ns,
    )
    assert sorted(second_warehouse.parent.iterdir()) == listing


def test_seed_demo_reports_the_path_and_row_counts(warehouse: Path, warehouse_root: Path):
    out = StringIO()

    with override_settings(CONNECTIONS_FILE_ROOT=warehouse_root):
        call_command("seed_demo", stdout=out)

    output = out.getvalue()
    assert "up to date" in output
    assert str(warehouse) in output
    assert "order_items" in output
    assert "total" in output
