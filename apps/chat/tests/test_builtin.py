"""The built-in offline engine, judged by results: each question's SQL is run on a real database
and must return the same rows as SQL written by hand for that question.

The catalogues come from the project's own engines introspecting the demo warehouse (DuckDB),
Chinook (SQLite) and two small databases of other shapes, exactly as the chat pipeline would see
them. The small help desk is also loaded into PostgreSQL and MariaDB (skipped when unreachable),
where each dialect's SQL must return what SQLite returns. No Django database is needed.
"""

import math
import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pymysql
import pytest
import sqlglot
from django.conf import settings

from apps.chat.providers import provider_class
from apps.chat.providers.base import Prompt, QuestionContext, Turn
from apps.chat.providers.builtin import BuiltinProvider, answer, suggested_questions
from apps.chat.providers.builtin.catalogue import Catalogue, comment_values
from apps.chat.providers.builtin.interpreter import Unanswerable, interpret
from apps.chat.providers.builtin.narrator import narrate
from apps.chat.providers.builtin.sqlgen import render_sql
from apps.connections.engines import get_engine
from apps.connections.engines.base import ConnectionSpec, TableInfo
from apps.connections.safety import validate_readonly
from apps.connections.services.demo_warehouse import demo_warehouse_build

CHINOOK = Path(settings.BASE_DIR).parent / "shared" / "data" / "chinook" / "Chinook_Sqlite.sqlite"
SQL_BLOCK = re.compile(r"```sql\n(.*?)\n```", re.DOTALL)
DIALECTS = ("postgres", "mysql", "sqlite", "duckdb")


@dataclass(frozen=True)
class Case:
    question: str
    expected: str
    construct: str
    ordered: bool = False
    history: tuple[str, ...] = ()
    today: date | None = None

    def __str__(self) -> str:
        return self.question


# Fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_warehouse_build(path=tmp_path_factory.mktemp("builtin") / "demo_warehouse.duckdb")


@pytest.fixture(scope="session")
def demo_tables(demo_path: Path) -> list[TableInfo]:
    spec = ConnectionSpec(engine="duckdb", file_path=demo_path)
    return get_engine("duckdb").introspect(spec, excluded_columns=frozenset())


@pytest.fixture(scope="session")
def demo_db(demo_path: Path):
    with duckdb.connect(str(demo_path), read_only=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def chinook_path() -> Path:
    if not CHINOOK.exists():
        pytest.skip(f"The Chinook sample database is not at {CHINOOK} (shared data folder absent).")
    return CHINOOK


@pytest.fixture(scope="session")
def chinook_tables(chinook_path: Path) -> list[TableInfo]:
    spec = ConnectionSpec(engine="sqlite", file_path=chinook_path)
    return get_engine("sqlite").introspect(spec, excluded_columns=frozenset())


@pytest.fixture(scope="session")
def chinook_db(chinook_path: Path):
    connection = sqlite3.connect(f"file:{chinook_path}?mode=ro", uri=True)
    yield connection
    connection.close()


# Helpers -----------------------------------------------------------------------------------------


def ask(
    question: str, tables: list[TableInfo], dialect: str, *, history=(), today: date | None = None
) -> str:
    """The engine's full reply to a "sql" prompt."""
    context = QuestionContext(
        question=question, dialect=dialect, tables=tables, history=[Turn(question=q) for q in history]
    )
    return "".join(answer(context, today=today))


def sql_of(reply: str) -> str:
    match = SQL_BLOCK.search(reply)
    assert match, f"no SQL in the reply: {reply}"
    return match.group(1)


def _normal(value: Any) -> Any:
    if isinstance(value, datetime) and value.time() == time():
        value = value.date()
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2} 00:00:00", value):
        return value[:10]
    return value


def _sort_key(row: tuple) -> tuple:
    return tuple(
        (2, "") if v is None else (0, round(v, 6), "") if isinstance(v, (int, float)) else (1, 0, str(v))
        for v in row
    )


def assert_same_rows(actual: list, expected: list, *, ordered: bool) -> None:
    got = [tuple(_normal(v) for v in row) for row in actual]
    want = [tuple(_normal(v) for v in row) for row in expected]
    if not ordered:
        got, want = sorted(got, key=_sort_key), sorted(want, key=_sort_key)
    assert len(got) == len(want), f"{len(got)} rows instead of {len(want)}: {got[:5]} vs {want[:5]}"
    for row, other in zip(got, want, strict=True):
        assert len(row) == len(other), f"{row} vs {other}"
        for value, wanted in zip(row, other, strict=True):
            # Sums of floats differ in their last digits; MySQL rounds averages to 4 decimals.
            if isinstance(value, (int, float)) and isinstance(wanted, (int, float)):
                assert math.isclose(value, wanted, rel_tol=1e-6, abs_tol=1e-6), f"{row} vs {other}"
            else:
                assert value == wanted, f"{row} vs {other}"


# The demo warehouse (DuckDB) -------------------------------------------------------------------

REVENUE_BY_CATEGORY = """
    SELECT c.name, sum(oi.quantity * oi.unit_price) FROM order_items oi
    JOIN products p ON p.product_id = oi.product_id JOIN categories c ON c.category_id = p.category_id
"""

DEMO_CASES = [
    # measures
    Case("how many customers", "SELECT count(*) FROM customers", "count"),
    Case("number of orders", "SELECT count(*) FROM orders", "count"),
    Case("count of products", "SELECT count(*) FROM products", "count"),
    Case("total revenue", "SELECT sum(revenue) FROM daily_revenue", "sum"),
    Case("total sales in 2025",
         "SELECT sum(revenue) FROM daily_revenue WHERE date BETWEEN '2025-01-01' AND '2025-12-31'", "sum"),
    Case("what is the average unit price", "SELECT avg(unit_price) FROM order_items", "avg"),
    Case("maximum price", "SELECT max(price) FROM products", "max"),
    Case("what is the lowest price", "SELECT min(price) FROM products", "min"),
    Case("total quantity", "SELECT sum(quantity) FROM order_items", "sum"),
    Case("ad spend by channel", "SELECT channel, sum(ad_spend) FROM daily_traffic GROUP BY channel", "sum"),
    Case("average order value by region",
         "SELECT r.name, avg(d.average_order_value) FROM daily_revenue d JOIN regions r USING (region_id) "
         "GROUP BY r.name", "avg"),
    Case("how many customers ordered", "SELECT count(DISTINCT customer_id) FROM orders", "count_distinct"),
    Case("how many countries", "SELECT count(DISTINCT country) FROM customers", "count_distinct"),
    Case("number of orders by category",
         "SELECT c.name, count(DISTINCT o.order_id) FROM orders o JOIN order_items oi ON oi.order_id = "
         "o.order_id "
         "JOIN products p ON p.product_id = oi.product_id JOIN categories c ON c.category_id = p.category_id "
         "GROUP BY c.name", "count_distinct"),
    # one and two dimensions, foreign-key labels
    Case("total revenue by region",
         "SELECT r.name, sum(d.revenue) FROM daily_revenue d JOIN regions r USING (region_id) "
         "GROUP BY r.name",
         "dimension"),
    Case("revenue by category", REVENUE_BY_CATEGORY + " GROUP BY c.name", "dimension"),
    Case("number of orders by channel", "SELECT channel, count(*) FROM orders GROUP BY channel", "dimension"),
    Case("number of products for each category",
         "SELECT c.name, count(*) FROM products p JOIN categories c USING (category_id) GROUP BY c.name",
         "dimension"),
    Case("revenue per category and channel",
         "SELECT c.name, o.channel, sum(oi.quantity * oi.unit_price) FROM order_items oi "
         "JOIN orders o ON o.order_id = oi.order_id JOIN products p ON p.product_id = oi.product_id "
         "JOIN categories c ON c.category_id = p.category_id GROUP BY c.name, o.channel", "two_dimensions"),
    Case("customers by segment and plan", "SELECT segment, plan, count(*) FROM customers GROUP BY 1, 2",
         "two_dimensions"),
    Case("revenue by region and month",
         "SELECT r.name, date_trunc('month', d.date), sum(d.revenue) FROM daily_revenue d "
         "JOIN regions r USING (region_id) GROUP BY 1, 2", "two_dimensions"),
    # time grains
    Case("orders by day in March 2026",
         "SELECT date_trunc('day', order_date), count(*) FROM orders "
         "WHERE order_date >= DATE '2026-03-01' AND order_date < DATE '2026-04-01' GROUP BY 1 ORDER BY 1",
         "grain_day", ordered=True),
    Case("weekly visits in 2025",
         "SELECT date_trunc('week', date), sum(visits) FROM daily_traffic WHERE year(date) = 2025 "
         "GROUP BY 1 ORDER BY 1", "grain_week", ordered=True),
    Case("monthly revenue in 2025",
         "SELECT date_trunc('month', date), sum(revenue) FROM daily_revenue WHERE year(date) = 2025 "
         "GROUP BY 1 ORDER BY 1", "grain_month", ordered=True),
    Case("revenue by quarter",
         "SELECT date_trunc('quarter', date), sum(revenue) FROM daily_revenue GROUP BY 1 ORDER BY 1",
         "grain_quarter", ordered=True),
    Case("number of orders by year",
         "SELECT date_trunc('year', order_date), count(*) FROM orders GROUP BY 1 ORDER BY 1",
         "grain_year", ordered=True),
    # absolute time filters
    Case("number of orders in March 2026",
         "SELECT count(*) FROM orders WHERE order_date >= '2026-03-01' AND order_date < '2026-04-01'",
         "time_month"),
    Case("revenue between 2025-01-01 and 2025-03-31",
         "SELECT sum(revenue) FROM daily_revenue WHERE date BETWEEN '2025-01-01' AND '2025-03-31'",
         "time_between"),
    Case("orders since 2026", "SELECT count(*) FROM orders WHERE order_date >= '2026-01-01'", "time_since"),
    Case("revenue in Q2 2025",
         "SELECT sum(revenue) FROM daily_revenue WHERE date >= '2025-04-01' AND date < '2025-07-01'",
         "time_quarter"),
    # relative time filters, with today fixed
    Case("revenue in the last 30 days", "SELECT sum(revenue) FROM daily_revenue WHERE date >= '2026-10-02'",
         "time_relative", today=date(2026, 11, 1)),
    Case("orders last month",
         "SELECT count(*) FROM orders WHERE order_date >= '2026-10-01' AND order_date < '2026-11-01'",
         "time_relative", today=date(2026, 11, 1)),
    Case("revenue this year by month",
         "SELECT date_trunc('month', date), sum(revenue) FROM daily_revenue WHERE year(date) = 2026 "
         "GROUP BY 1 ORDER BY 1", "time_relative", ordered=True, today=date(2026, 11, 1)),
    Case("orders last week",
         "SELECT count(*) FROM orders WHERE order_date >= '2026-10-19' AND order_date < '2026-10-26'",
         "time_relative", today=date(2026, 10, 28)),
    Case("units in the past 3 months by region",
         "SELECT r.name, sum(d.units) FROM daily_revenue d JOIN regions r USING (region_id) "
         "WHERE d.date >= '2026-08-01' GROUP BY r.name", "time_relative", today=date(2026, 11, 1)),
    # equality filters: samples, comment lists, through foreign keys
    Case("revenue in Europe",
         "SELECT sum(d.revenue) FROM daily_revenue d JOIN regions r USING (region_id) "
         "WHERE r.name = 'Europe'",
         "filter_fk"),
    Case("number of orders on mobile", "SELECT count(*) FROM orders WHERE channel = 'mobile'", "filter"),
    Case("how many orders where status is refunded", "SELECT count(*) FROM orders WHERE status = 'refunded'",
         "filter_explicit"),
    Case("customers in the Enterprise segment by region",
         "SELECT r.name, count(*) FROM customers c JOIN regions r USING (region_id) "
         "WHERE c.segment = 'Enterprise' GROUP BY r.name", "filter_fk"),
    Case("Enterprise plan customers by region",
         "SELECT r.name, count(*) FROM customers c JOIN regions r USING (region_id) "
         "WHERE c.plan = 'Enterprise' GROUP BY r.name", "filter"),
    Case("orders by channel in Europe or North America",
         "SELECT o.channel, count(*) FROM orders o JOIN regions r USING (region_id) "
         "WHERE r.name IN ('Europe', 'North America') GROUP BY o.channel", "filter_fk"),
    Case("visits from social by month",
         "SELECT date_trunc('month', date), sum(visits) FROM daily_traffic WHERE channel = 'social' "
         "GROUP BY 1 ORDER BY 1", "filter", ordered=True),
    Case("how many active products", "SELECT count(*) FROM products WHERE is_active", "filter"),
    Case("total revenue for North America by year",
         "SELECT date_trunc('year', d.date), sum(d.revenue) FROM daily_revenue d JOIN regions r USING "
         "(region_id) "
         "WHERE r.name = 'North America' GROUP BY 1 ORDER BY 1", "filter_fk", ordered=True),
    # top/bottom N and ordering
    Case("top 5 products by revenue",
         "SELECT p.name, sum(oi.quantity * oi.unit_price) AS revenue FROM order_items oi "
         "JOIN products p USING (product_id) GROUP BY p.product_id, p.name ORDER BY revenue DESC, "
         "p.name LIMIT 5",
         "top_n", ordered=True),
    Case("the 3 least popular categories",
         "SELECT c.name, sum(oi.quantity) AS q FROM order_items oi JOIN products p USING (product_id) "
         "JOIN categories c USING (category_id) GROUP BY c.name ORDER BY q, c.name LIMIT 3",
         "bottom_n", ordered=True),
    Case("which region has the highest revenue",
         "SELECT r.name, sum(d.revenue) AS v FROM daily_revenue d JOIN regions r USING (region_id) "
         "GROUP BY r.name ORDER BY v DESC LIMIT 1", "top_n", ordered=True),
    Case("top 3 regions by number of customers",
         "SELECT r.name, count(*) AS n FROM customers c JOIN regions r USING (region_id) "
         "GROUP BY r.name ORDER BY n DESC, r.name LIMIT 3", "top_n", ordered=True),
    Case("number of orders by channel, sorted alphabetically",
         "SELECT channel, count(*) FROM orders GROUP BY channel ORDER BY channel", "ordering", ordered=True),
    Case("revenue by region, lowest first",
         "SELECT r.name, sum(d.revenue) AS v FROM daily_revenue d JOIN regions r USING (region_id) "
         "GROUP BY r.name ORDER BY v", "ordering", ordered=True),
    # follow-ups
    Case("now by month",
         "SELECT date_trunc('month', date), sum(revenue) FROM daily_revenue GROUP BY 1 ORDER BY 1",
         "followup", ordered=True, history=("total revenue by region",)),
    Case("only Europe",
         "SELECT r.name, sum(d.revenue) FROM daily_revenue d JOIN regions r USING (region_id) "
         "WHERE r.name = 'Europe' GROUP BY r.name", "followup", history=("total revenue by region",)),
    Case("same but for 2025",
         REVENUE_BY_CATEGORY + " JOIN orders o ON o.order_id = oi.order_id "
         "WHERE o.order_date >= '2025-01-01' AND o.order_date < '2026-01-01' GROUP BY c.name",
         "followup", history=("revenue by category",)),
    Case("top 10 instead",
         "SELECT p.name, sum(oi.quantity * oi.unit_price) AS revenue FROM order_items oi "
         "JOIN products p USING (product_id) GROUP BY p.product_id, p.name ORDER BY revenue DESC, "
         "p.name LIMIT 10",
         "followup", ordered=True, history=("top 5 products by revenue",)),
    Case("and by channel",
         "SELECT r.name, o.channel, sum(o.total_amount) FROM orders o JOIN regions r USING (region_id) "
         "GROUP BY 1, 2", "followup", history=("revenue by region",)),
    Case("what about Asia Pacific",
         "SELECT date_trunc('month', d.date), sum(d.revenue) FROM daily_revenue d JOIN regions r USING "
         "(region_id) "
         "WHERE r.name = 'Asia Pacific' GROUP BY 1 ORDER BY 1", "followup", ordered=True,
         history=("revenue by month in Europe",)),
    Case("now by month",
         "SELECT date_trunc('month', order_date), count(*) FROM orders WHERE channel = 'mobile' "
         "GROUP BY 1 ORDER BY 1", "followup", ordered=True,
         history=("number of orders by region", "only mobile")),
    Case("revenue sorted by region",
         "SELECT r.name, sum(d.revenue) FROM daily_revenue d JOIN regions r USING (region_id) "
         "GROUP BY r.name ORDER BY r.name", "ordering", ordered=True),
    Case("what's the average session length per channel",
         "SELECT channel, avg(avg_session_seconds) FROM daily_traffic GROUP BY channel", "avg"),
    Case("total refunded amount by region in 2026",
         "SELECT r.name, sum(d.refunded_amount) FROM daily_revenue d JOIN regions r USING (region_id) "
         "WHERE year(d.date) = 2026 GROUP BY r.name", "filter_fk"),
    Case("which category sold the most units?",
         "SELECT c.name, sum(oi.quantity) AS q FROM order_items oi JOIN products p USING (product_id) "
         "JOIN categories c USING (category_id) GROUP BY c.name ORDER BY q DESC LIMIT 1",
         "top_n", ordered=True),
]  # fmt: skip


# Chinook (SQLite) --------------------------------------------------------------------------------

LINE_REVENUE = "sum(il.UnitPrice * il.Quantity)"
LINES_TO_GENRE = (
    "FROM InvoiceLine il JOIN Track t ON t.TrackId = il.TrackId JOIN Genre g ON g.GenreId = t.GenreId"
)
QUARTER_START = (
    "strftime('%Y', InvoiceDate) || CASE WHEN CAST(strftime('%m', InvoiceDate) AS INTEGER) <= 3 THEN "
    "'-01-01' "
    "WHEN CAST(strftime('%m', InvoiceDate) AS INTEGER) <= 6 THEN '-04-01' "
    "WHEN CAST(strftime('%m', InvoiceDate) AS INTEGER) <= 9 THEN '-07-01' ELSE '-10-01' END"
)

CHINOOK_CASES = [
    Case("how many tracks", "SELECT count(*) FROM Track", "count"),
    Case("how many employees", "SELECT count(*) FROM Employee", "count"),
    Case("total revenue", "SELECT sum(Total) FROM Invoice", "sum"),
    Case("revenue by genre", f"SELECT g.Name, {LINE_REVENUE} {LINES_TO_GENRE} GROUP BY g.GenreId",
         "dimension"),
    Case("average track length by genre",
         "SELECT g.Name, avg(t.Milliseconds) FROM Track t JOIN Genre g USING (GenreId) GROUP BY g.GenreId",
         "avg"),
    Case("average invoice total by billing country, highest first",
         "SELECT BillingCountry, avg(Total) AS a FROM Invoice GROUP BY BillingCountry ORDER BY a DESC, 1",
         "ordering", ordered=True),
    Case("how many customers bought in 2024",
         "SELECT count(DISTINCT CustomerId) FROM Invoice WHERE InvoiceDate >= '2024-01-01' "
         "AND InvoiceDate < '2025-01-01'", "count_distinct"),
    Case("number of tracks per playlist",
         "SELECT p.Name, count(DISTINCT pt.TrackId) FROM Playlist p JOIN PlaylistTrack pt USING (PlaylistId) "
         "GROUP BY p.PlaylistId", "count_distinct"),
    Case("how many tracks per genre",
         "SELECT g.Name, count(*) FROM Track t JOIN Genre g USING (GenreId) GROUP BY g.GenreId", "dimension"),
    Case("how many customers by country", "SELECT Country, count(*) FROM Customer GROUP BY Country",
         "dimension"),
    Case("number of albums for each artist",
         "SELECT ar.Name, count(*) FROM Album al JOIN Artist ar USING (ArtistId) GROUP BY ar.ArtistId",
         "dimension"),
    Case("customers by support rep",
         "SELECT e.FirstName || ' ' || e.LastName, count(*) FROM Customer c "
         "JOIN Employee e ON e.EmployeeId = c.SupportRepId GROUP BY e.EmployeeId", "dimension"),
    Case("sales by genre and media type",
         f"SELECT g.Name, m.Name, {LINE_REVENUE} {LINES_TO_GENRE} JOIN MediaType m ON m.MediaTypeId = "
         f"t.MediaTypeId "
         "GROUP BY g.GenreId, m.MediaTypeId", "two_dimensions"),
    Case("number of invoices by year",
         "SELECT strftime('%Y', InvoiceDate) || '-01-01', count(*) FROM Invoice GROUP BY 1 ORDER BY 1",
         "grain_year", ordered=True),
    Case("revenue by month in 2025",
         "SELECT substr(InvoiceDate, 1, 7) || '-01', sum(Total) FROM Invoice "
         "WHERE substr(InvoiceDate, 1, 4) = '2025' GROUP BY 1 ORDER BY 1", "grain_month", ordered=True),
    Case("quarterly revenue in 2024",
         f"SELECT {QUARTER_START}, sum(Total) FROM Invoice WHERE substr(InvoiceDate, 1, 4) = '2024' "
         "GROUP BY 1 ORDER BY 1", "grain_quarter", ordered=True),
    Case("weekly invoices in March 2025",
         "SELECT date(InvoiceDate, 'weekday 0', '-6 days'), count(*) FROM Invoice "
         "WHERE substr(InvoiceDate, 1, 7) = '2025-03' GROUP BY 1 ORDER BY 1", "grain_week", ordered=True),
    Case("daily revenue between 2025-01-01 and 2025-01-31",
         "SELECT date(InvoiceDate), sum(Total) FROM Invoice WHERE date(InvoiceDate) BETWEEN '2025-01-01' "
         "AND '2025-01-31' GROUP BY 1 ORDER BY 1", "grain_day", ordered=True),
    Case("invoices since 2025", "SELECT count(*) FROM Invoice WHERE InvoiceDate >= '2025-01-01'",
         "time_since"),
    Case("revenue in the last 3 months", "SELECT sum(Total) FROM Invoice WHERE InvoiceDate >= '2025-09-30'",
         "time_relative", today=date(2025, 12, 31)),
    Case("revenue for Blues", f"SELECT {LINE_REVENUE} {LINES_TO_GENRE} WHERE g.Name = 'Blues'", "filter_fk"),
    Case("revenue in Brazil", "SELECT sum(Total) FROM Invoice WHERE BillingCountry = 'Brazil'", "filter"),
    Case("how many tracks where genre is Rock",
         "SELECT count(*) FROM Track t JOIN Genre g USING (GenreId) WHERE g.Name = 'Rock'",
         "filter_explicit"),
    Case("top 5 artists by revenue",
         f"SELECT ar.Name, {LINE_REVENUE} AS v FROM InvoiceLine il JOIN Track t USING (TrackId) "
         "JOIN Album al USING (AlbumId) JOIN Artist ar USING (ArtistId) GROUP BY ar.ArtistId "
         "ORDER BY v DESC, ar.Name LIMIT 5", "top_n", ordered=True),
    Case("the 3 least popular genres",
         f"SELECT g.Name, sum(il.Quantity) AS q {LINES_TO_GENRE} GROUP BY g.GenreId ORDER BY q, g.Name "
         f"LIMIT 3",
         "bottom_n", ordered=True),
    Case("which genre has the most tracks",
         "SELECT g.Name, count(*) AS n FROM Track t JOIN Genre g USING (GenreId) GROUP BY g.GenreId "
         "ORDER BY n DESC LIMIT 1", "top_n", ordered=True),
    Case("the most popular artist",
         "SELECT ar.Name, sum(il.Quantity) AS q FROM InvoiceLine il JOIN Track t USING (TrackId) "
         "JOIN Album al USING (AlbumId) JOIN Artist ar USING (ArtistId) GROUP BY ar.ArtistId "
         "ORDER BY q DESC, ar.Name LIMIT 1", "top_n", ordered=True),
    Case("top 3 instead",
         "SELECT BillingCountry, count(*) AS n FROM Invoice GROUP BY 1 ORDER BY n DESC, 1 LIMIT 3",
         "followup", ordered=True, history=("number of invoices by billing country",)),
    Case("same but for 2024",
         "SELECT substr(InvoiceDate, 1, 7) || '-01', sum(Total) FROM Invoice "
         "WHERE substr(InvoiceDate, 1, 4) = '2024' GROUP BY 1 ORDER BY 1",
         "followup", ordered=True, history=("revenue by month in 2025",)),
    Case("only Blues",
         f"SELECT g.Name, {LINE_REVENUE} {LINES_TO_GENRE} WHERE g.Name = 'Blues' GROUP BY g.GenreId",
         "followup", history=("revenue by genre",)),
    Case("songs per genre",
         "SELECT g.Name, count(*) FROM Track t JOIN Genre g USING (GenreId) GROUP BY g.GenreId", "dimension"),
    Case("number of tracks in the Rock genre",
         "SELECT count(*) FROM Track t JOIN Genre g USING (GenreId) WHERE g.Name = 'Rock'",
         "filter_explicit"),
    Case("the 5 longest tracks",
         "SELECT Name, Milliseconds FROM Track ORDER BY Milliseconds DESC, Name LIMIT 5",
         "top_n", ordered=True),
    Case("how many customers in Canada", "SELECT count(*) FROM Customer WHERE Country = 'Canada'", "filter"),
]  # fmt: skip


@pytest.mark.parametrize("case", DEMO_CASES, ids=str)
def test_it_answers_the_demo_warehouse_like_hand_written_sql(case: Case, demo_tables, demo_db) -> None:
    reply = ask(case.question, demo_tables, "duckdb", history=case.history, today=case.today)
    sql = sql_of(reply)
    actual = demo_db.execute(sql).fetchall()
    expected = demo_db.execute(case.expected).fetchall()
    assert_same_rows(actual, expected, ordered=case.ordered)


@pytest.mark.parametrize("case", CHINOOK_CASES, ids=str)
def test_it_answers_chinook_like_hand_written_sql(case: Case, chinook_tables, chinook_db) -> None:
    reply = ask(case.question, chinook_tables, "sqlite", history=case.history, today=case.today)
    sql = sql_of(reply)
    actual = chinook_db.execute(sql).fetchall()
    expected = chinook_db.execute(case.expected).fetchall()
    assert_same_rows(actual, expected, ordered=case.ordered)


def test_the_cases_cover_every_construct() -> None:
    demo = {c.construct for c in DEMO_CASES}
    chinook = {c.construct for c in CHINOOK_CASES}
    assert len(DEMO_CASES) >= 40 and len(CHINOOK_CASES) >= 20
    for construct in ("count", "count_distinct", "sum", "avg", "dimension", "two_dimensions", "grain_day",
                      "grain_week",
                      "grain_month", "grain_quarter", "grain_year", "time_relative", "filter_fk",
                      "filter_explicit", "top_n", "bottom_n", "ordering", "followup"):  # fmt: skip
        assert construct in demo | chinook, construct
    assert {"min", "max", "time_month", "time_between", "time_since"} <= demo


# Any catalogue: two small databases of other shapes ----------------------------------------------

HELP_DESK_TABLES = {
    "departments": "id INTEGER PRIMARY KEY, title TEXT NOT NULL",
    "staff": "id INTEGER PRIMARY KEY, full_name TEXT, department_id INTEGER REFERENCES departments(id), "
    "hired_on DATE, status TEXT",
    "tickets": "id INTEGER PRIMARY KEY, opened_at TIMESTAMP, closed_at TIMESTAMP, priority TEXT, "
    "assignee_id INTEGER REFERENCES staff(id), minutes_spent INTEGER",
}


def help_desk_rows(today: date) -> dict[str, list[tuple]]:
    """A help desk's rows: tickets through 2025 and early 2026, and some on every third day
    before `today`, so relative dates select something."""
    tickets = []
    for i in range(1, 421):
        if i <= 300:
            opened = datetime(2025, 1, 1) + timedelta(days=i * 3 % 400, hours=i % 24)
            closed = datetime(2025, 1, 2) + timedelta(days=i * 7 % 400)
        else:
            opened = datetime.combine(today - timedelta(days=(i - 301) * 3), time(i % 24))
            closed = opened + timedelta(days=1)
        priority = ("high", "low", "normal")[i % 3]
        tickets.append((i, opened, closed, priority, 1 + i % 5 % 4, 5 + i * 7 % 90))
    return {
        "departments": [(1, "Support"), (2, "Billing"), (3, "Engineering")],
        "staff": [
            (1, "Ann Lee", 1, date(2023, 2, 1), "active"),
            (2, "Bo Chen", 1, date(2024, 5, 1), "active"),
            (3, "Cy Diaz", 2, date(2022, 1, 10), "left"),
            (4, "Di Eze", 3, date(2025, 3, 3), "active"),
        ],
        "tickets": tickets,
    }


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return value.isoformat() if isinstance(value, date) else value


SHOP = [
    "CREATE TABLE regions (region_id INTEGER PRIMARY KEY, name VARCHAR)",
    "INSERT INTO regions VALUES (1, 'Europe'), (2, 'Asia'), (3, 'Americas')",
    "CREATE TABLE sales (sale_id INTEGER PRIMARY KEY, region_id INTEGER REFERENCES regions, day DATE, "
    "amount DECIMAL(10, 2))",
    "INSERT INTO sales SELECT i, 1 + i % 3, DATE '2026-01-01' + INTERVAL (i % 90) DAY, 10 + i % 7 "
    "FROM range(1, 301) t(i)",
]

HELP_DESK_CASES = [
    Case("how many tickets by priority", "SELECT priority, count(*) FROM tickets GROUP BY 1", "dimension"),
    Case(
        "tickets per department",
        "SELECT d.title, count(*) FROM tickets t JOIN staff s ON s.id = t.assignee_id "
        "JOIN departments d ON d.id = s.department_id GROUP BY d.id",
        "dimension",
    ),
    Case(
        "average minutes spent by department",
        "SELECT d.title, avg(t.minutes_spent) FROM tickets t JOIN staff s ON s.id = t.assignee_id "
        "JOIN departments d ON d.id = s.department_id GROUP BY d.id",
        "avg",
    ),
    Case(
        "tickets closed in 2026",
        "SELECT count(*) FROM tickets WHERE closed_at >= '2026-01-01' AND closed_at < '2027-01-01'",
        "time_year",
    ),
    Case(
        "top 3 staff by number of tickets",
        "SELECT s.full_name, count(*) AS n FROM tickets t JOIN staff s ON s.id = t.assignee_id "
        "GROUP BY s.id ORDER BY n DESC, s.full_name LIMIT 3",
        "top_n",
        ordered=True,
    ),
    Case(
        "high priority tickets by month",
        "SELECT strftime('%Y-%m-01', opened_at), count(*) FROM tickets WHERE priority = 'high' "
        "GROUP BY 1 ORDER BY 1",
        "grain_month",
        ordered=True,
    ),
    Case(
        "active staff by department",
        "SELECT d.title, count(*) FROM staff s JOIN departments d ON d.id = s.department_id "
        "WHERE s.status = 'active' GROUP BY d.id",
        "filter_fk",
    ),
    Case(
        "number of tickets by week in 2025",
        "SELECT date(opened_at, 'weekday 0', '-6 days'), count(*) FROM tickets "
        "WHERE opened_at >= '2025-01-01' AND opened_at < '2026-01-01' GROUP BY 1 ORDER BY 1",
        "grain_week",
        ordered=True,
    ),
]
SHOP_CASES = [
    Case("sales by region",
         "SELECT r.name, sum(s.amount) FROM sales s JOIN regions r USING (region_id) GROUP BY 1", "sum"),
    Case("number of sales by region",
         "SELECT r.name, count(*) FROM sales s JOIN regions r USING (region_id) GROUP BY 1", "count"),
    Case("top region by sales",
         "SELECT r.name, sum(s.amount) AS v FROM sales s JOIN regions r USING (region_id) GROUP BY 1 "
         "ORDER BY v DESC LIMIT 1", "top_n", ordered=True),
    Case("total amount by day in March 2026",
         "SELECT day, sum(amount) FROM sales WHERE day BETWEEN '2026-03-01' AND '2026-03-31' "
         "GROUP BY 1 ORDER BY 1", "grain_day", ordered=True),
]  # fmt: skip
OTHER_CASES = [("help_desk", c) for c in HELP_DESK_CASES] + [("shop", c) for c in SHOP_CASES]


@pytest.fixture(scope="session")
def help_desk_data() -> dict[str, list[tuple]]:
    return help_desk_rows(date.today())


@pytest.fixture(scope="session")
def other_databases(tmp_path_factory: pytest.TempPathFactory, help_desk_data) -> dict:
    """A help desk in SQLite and a shop in DuckDB, with their catalogues and connections."""
    folder = tmp_path_factory.mktemp("other")
    with sqlite3.connect(folder / "help_desk.sqlite") as connection:
        for table, rows in help_desk_data.items():
            connection.execute(f"CREATE TABLE {table} ({HELP_DESK_TABLES[table]})")
            marks = ", ".join("?" * len(rows[0]))
            connection.executemany(
                f"INSERT INTO {table} VALUES ({marks})", [tuple(map(_sqlite_value, r)) for r in rows]
            )
    with duckdb.connect(str(folder / "shop.duckdb")) as connection:
        for statement in SHOP:
            connection.execute(statement)
    found = {}
    for name, engine, file in (
        ("help_desk", "sqlite", "help_desk.sqlite"),
        ("shop", "duckdb", "shop.duckdb"),
    ):
        spec = ConnectionSpec(engine=engine, file_path=folder / file)
        tables = get_engine(engine).introspect(spec, excluded_columns=frozenset())
        connect = sqlite3.connect if engine == "sqlite" else duckdb.connect
        found[name] = (engine, tables, connect(str(folder / file)))
    yield found
    for _, _, connection in found.values():
        connection.close()


@pytest.mark.parametrize(("database", "case"), OTHER_CASES, ids=lambda v: v if isinstance(v, str) else str(v))
def test_it_answers_other_catalogues_like_hand_written_sql(
    database: str, case: Case, other_databases
) -> None:
    dialect, tables, connection = other_databases[database]
    sql = sql_of(ask(case.question, tables, dialect, history=case.history, today=case.today))
    assert_same_rows(
        connection.execute(sql).fetchall(), connection.execute(case.expected).fetchall(), ordered=case.ordered
    )


def test_suggested_questions_fit_other_catalogues(other_databases) -> None:
    for dialect, tables, connection in other_databases.values():
        questions = suggested_questions(tables, limit=4)
        assert len(questions) >= 3
        for question in questions:
            connection.execute(sql_of(ask(question, tables, dialect))).fetchall()


# The same help desk on PostgreSQL and MariaDB: each dialect's SQL runs on its own server -------

SCRATCH_PREFIX = "dm_builtin_"
SCRATCH = f"{SCRATCH_PREFIX}{os.getpid()}"
CROSS_DIALECT_QUESTIONS = [case.question for case in HELP_DESK_CASES] + [
    "number of tickets by quarter", "number of tickets by year", "tickets by day in March 2025",
    "tickets in the last 30 days", "tickets last month", "tickets this year by month", "tickets last week",
    "tickets in the past 3 months", "tickets today", "average minutes spent by priority in 2025",
    "top 2 departments by minutes spent", "tickets where priority is HIGH",
]  # fmt: skip


def _left_by_a_dead_run(name: str) -> bool:
    """A scratch database named after a test process that no longer exists (killed mid-run)."""
    pid = name.removeprefix(SCRATCH_PREFIX)
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _load_help_desk(cursor: Any, rows: dict[str, list[tuple]], *, datetime_type: str) -> None:
    for table, columns in HELP_DESK_TABLES.items():
        cursor.execute(f"CREATE TABLE {table} ({columns.replace('TIMESTAMP', datetime_type)})")
        marks = ", ".join(["%s"] * len(rows[table][0]))
        cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", rows[table])


@pytest.fixture(scope="session")
def postgres_help_desk(help_desk_data):
    database = settings.DATABASES["default"]
    params = {
        "host": database.get("HOST") or "127.0.0.1",
        "port": int(database.get("PORT") or 5432),
        "user": database.get("USER") or "postgres",
        "password": database.get("PASSWORD") or "",
    }
    try:
        admin = psycopg.connect(**params, dbname="postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL is not reachable: {error}")
    for (name,) in admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s", [SCRATCH_PREFIX + "%"]
    ):
        if _left_by_a_dead_run(name):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{SCRATCH}"')
    connection = psycopg.connect(**params, dbname=SCRATCH, autocommit=True)
    with connection.cursor() as cursor:
        _load_help_desk(cursor, help_desk_data, datetime_type="TIMESTAMP")
    yield lambda sql: connection.execute(sql).fetchall()
    connection.close()
    admin.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def mysql_help_desk(help_desk_data):
    try:
        connection = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    except pymysql.err.MySQLError as error:
        pytest.skip(f"MariaDB/MySQL is not reachable: {error}")
    cursor = connection.cursor()
    cursor.execute("SHOW DATABASES LIKE %s", (SCRATCH_PREFIX + "%",))
    for (name,) in cursor.fetchall():
        if _left_by_a_dead_run(name):
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    cursor.execute(f"DROP DATABASE IF EXISTS `{SCRATCH}`")
    cursor.execute(f"CREATE DATABASE `{SCRATCH}`")
    cursor.execute(f"USE `{SCRATCH}`")
    _load_help_desk(cursor, help_desk_data, datetime_type="DATETIME")

    def run(sql: str) -> list:
        cursor.execute(sql)
        return list(cursor.fetchall())

    yield run
    cursor.execute(f"DROP DATABASE IF EXISTS `{SCRATCH}`")
    connection.close()


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_each_dialect_gets_the_same_rows_from_its_own_server(dialect: str, request, other_databases) -> None:
    run = request.getfixturevalue(f"{dialect}_help_desk")
    _, tables, sqlite_connection = other_databases["help_desk"]
    for question in CROSS_DIALECT_QUESTIONS:
        reference = sqlite_connection.execute(sql_of(ask(question, tables, "sqlite"))).fetchall()
        assert reference, question
        assert_same_rows(run(sql_of(ask(question, tables, dialect))), reference, ordered=True)


# Every generated query is read-only, deterministic and renders in every dialect ------------------


def test_every_generated_query_passes_the_first_lock(demo_tables, chinook_tables) -> None:
    for cases, tables, dialect in (
        (DEMO_CASES, demo_tables, "duckdb"),
        (CHINOOK_CASES, chinook_tables, "sqlite"),
    ):
        for case in cases:
            sql = sql_of(ask(case.question, tables, dialect, history=case.history, today=case.today))
            validate_readonly(sql, dialect)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_queries_render_and_parse_in_every_dialect(dialect: str, demo_tables, chinook_tables) -> None:
    questions = [
        "revenue by region and month", "weekly visits in 2025", "revenue by quarter", "number of orders "
                                                                                      "by year",
        "orders by day in March 2026", "top 5 products by revenue", "revenue in the last 30 days",
        "orders last month", "orders last week", "revenue this year", "how many customers ordered",
        "orders by channel in Europe or North America", "how many active products",
    ]  # fmt: skip
    for tables, asked in (
        (demo_tables, questions),
        (chinook_tables, ["customers by support rep", "how many tracks where genre is Rock"]),
    ):
        for question in asked:
            sql = sql_of(ask(question, tables, dialect))
            tree = sqlglot.parse_one(sql, read=dialect)
            assert tree.find(sqlglot.exp.Select) is not None
            validate_readonly(sql, dialect)


def test_postgres_quotes_mixed_case_names_and_mysql_uses_its_own_functions(chinook_tables) -> None:
    postgres = sql_of(ask("revenue by genre", chinook_tables, "postgres"))
    assert '"InvoiceLine"' in postgres and '"Genre"."Name"' in postgres
    mysql = sql_of(ask("revenue by month", chinook_tables, "mysql"))
    assert "DATE_FORMAT(Invoice.InvoiceDate, '%Y-%m-01')" in mysql
    sqlite = sql_of(ask("revenue by month", chinook_tables, "sqlite"))
    assert "STRFTIME('%Y-%m-01', Invoice.InvoiceDate)" in sqlite


def test_the_same_question_always_gets_the_same_reply(demo_tables) -> None:
    shuffled = list(reversed(demo_tables))
    for question in ("revenue per category and channel", "top 5 products by revenue", "why did sales fall?"):
        first = ask(question, demo_tables, "duckdb")
        assert ask(question, demo_tables, "duckdb") == first
        assert ask(question, shuffled, "duckdb") == first


# Relative dates without a fixed today ---------------------------------------------------------


def test_relative_dates_use_current_date_and_say_so(demo_tables) -> None:
    rendered = {d: ask("revenue in the last 30 days", demo_tables, d) for d in DIALECTS}
    assert "CURRENT_DATE - INTERVAL '30' DAY" in sql_of(rendered["duckdb"])
    assert "CURRENT_DATE - INTERVAL '30 DAY'" in sql_of(rendered["postgres"])
    assert "DATE_SUB(CURRENT_DATE, INTERVAL 30 DAY)" in sql_of(rendered["mysql"])
    assert "DATE(CURRENT_DATE, '-30 days')" in sql_of(rendered["sqlite"])
    for reply in rendered.values():
        assert "CURRENT_DATE" in reply.split("```")[0]
        assert "latest date in the data" in reply


@pytest.mark.parametrize(
    "question",
    ["revenue in the last 30 days", "revenue last month", "revenue this year", "revenue last week",
     "revenue in the last 2 weeks", "revenue in the past 3 months", "revenue this month",
     "revenue yesterday"],
)  # fmt: skip
def test_relative_dates_in_sql_match_the_same_dates_computed_for_today(question: str, chinook_tables) -> None:
    """What CURRENT_DATE arithmetic selects in the database equals what the engine computes for
    that database's today: run both on rows covering every day around today."""
    with sqlite3.connect(":memory:") as connection:
        (today_text,) = connection.execute("SELECT CURRENT_DATE").fetchone()
        today = date.fromisoformat(today_text)
        connection.execute(
            "CREATE TABLE Invoice (InvoiceId INTEGER PRIMARY KEY, InvoiceDate DATETIME, Total NUMERIC)"
        )
        connection.execute(
            "INSERT INTO Invoice (InvoiceDate, Total) SELECT datetime(julianday(CURRENT_DATE) - value), "
            "value "
            "FROM generate_series(-40, 800)"
            if _has_generate_series(connection)
            else "WITH RECURSIVE n(v) AS (SELECT -40 UNION ALL SELECT v + 1 FROM n WHERE v < 800) "
            "INSERT INTO Invoice (InvoiceDate, Total) SELECT datetime(julianday(CURRENT_DATE) - v), v FROM n"
        )
        tables = [t for t in chinook_tables if t.name == "Invoice"]
        live = connection.execute(sql_of(ask(question, tables, "sqlite"))).fetchall()
        fixed = connection.execute(sql_of(ask(question, tables, "sqlite", today=today))).fetchall()
    assert live == fixed


def _has_generate_series(connection: sqlite3.Connection) -> bool:
    try:
        connection.execute("SELECT * FROM generate_series(1, 1)")
    except sqlite3.OperationalError:
        return False
    return True


def test_relative_dates_in_duckdb_match_the_same_dates_computed_for_today(demo_tables, demo_db) -> None:
    (today,) = demo_db.execute("SELECT CURRENT_DATE").fetchone()
    for question in ("orders in the last 30 days", "orders last month", "orders this year",
                     "orders last week",
                     "orders in the past 3 months", "orders last year"):  # fmt: skip
        live = demo_db.execute(sql_of(ask(question, demo_tables, "duckdb"))).fetchall()
        fixed = demo_db.execute(sql_of(ask(question, demo_tables, "duckdb", today=today))).fetchall()
        assert live == fixed, question


# Questions beyond the engine --------------------------------------------------------------------

OUT_OF_RANGE = [
    "why did revenue drop in March 2026?",
    "predict next month's revenue",
    "revenue by weather",
    "revenue in Japan",
    "what is the median order value",
    "hello there",
    "revenue and quantity per rainbow",
    "average number of orders per customer",
]


@pytest.mark.parametrize("question", OUT_OF_RANGE)
def test_questions_beyond_it_get_an_honest_message_without_sql(question: str, demo_tables) -> None:
    reply = ask(question, demo_tables, "duckdb")
    assert "```" not in reply and "SELECT" not in reply
    assert "I can answer questions like" in reply
    examples = re.findall(r"“([^”]+)”", reply.split("I can answer questions like", 1)[1])
    assert 2 <= len(examples) <= 3
    for example in examples:
        assert "```sql" in ask(example, demo_tables, "duckdb")


def test_it_names_what_it_did_not_understand(demo_tables, chinook_tables) -> None:
    assert "“Japan”" in ask("revenue in Japan", demo_tables, "duckdb")
    assert "“weather”" in ask("revenue by weather", demo_tables, "duckdb")
    assert "region" in ask("revenue by region", chinook_tables, "sqlite")
    assert "needs predictions" in ask("predict next month's revenue", demo_tables, "duckdb")
    assert "two measures" in ask("revenue and quantity by region", demo_tables, "duckdb")


def test_it_declines_a_follow_up_without_a_question_to_follow(demo_tables) -> None:
    reply = ask("only Europe", demo_tables, "duckdb")
    assert "```" not in reply


def test_it_gives_up_instead_of_repeating_sql_that_failed(demo_tables) -> None:
    sql = sql_of(ask("revenue by region", demo_tables, "duckdb"))
    context = QuestionContext(
        question="revenue by region", dialect="duckdb", tables=demo_tables,
        attempts=[{"sql": sql, "error": "Catalog Error: table regions does not exist"}],
    )  # fmt: skip
    reply = "".join(answer(context))
    assert "```" not in reply and "can't repair" in reply


# Suggested questions -------------------------------------------------------------------------------


def test_suggested_questions_are_answerable_and_run(demo_tables, demo_db, chinook_tables, chinook_db) -> None:
    for tables, connection, dialect in (
        (demo_tables, demo_db, "duckdb"),
        (chinook_tables, chinook_db, "sqlite"),
    ):
        questions = suggested_questions(tables, limit=4)
        assert len(questions) == 4 and len(set(questions)) == 4
        for question in questions:
            connection.execute(sql_of(ask(question, tables, dialect))).fetchall()


def test_suggested_questions_are_built_from_the_catalogue(demo_tables, chinook_tables) -> None:
    assert suggested_questions(demo_tables, limit=2) == [
        "total revenue by month",
        "top 5 products by revenue",
    ]
    assert "top 5 tracks by revenue" in suggested_questions(chinook_tables)
    assert suggested_questions([], limit=4) == []


# Catalogue reading ---------------------------------------------------------------------------------


def test_comment_lists_become_values_but_sentences_do_not() -> None:
    assert comment_values("Where the order was placed: web, mobile (the app) or partner (marketplaces).") == (
        "web", "mobile", "partner",
    )  # fmt: skip
    assert comment_values("Product name shown to customers, e.g. 'Pro Wireless Headphones'.") == ()
    assert comment_values("Primary key.") == ()


def test_a_composite_key_column_is_still_a_grouping(demo_tables) -> None:
    catalogue = Catalogue(demo_tables)
    channel = catalogue.column(("main", "daily_traffic"), "channel")
    assert channel.is_groupable and "social" in channel.values


def test_unanswerable_questions_raise_with_a_reason(demo_tables) -> None:
    with pytest.raises(Unanswerable, match="weather"):
        interpret("revenue by weather", demo_tables)
    plan = interpret("revenue by region", demo_tables)
    assert plan.measure.columns[0].label == "daily_revenue.revenue"
    assert "regions.name" in plan.explanation
    assert render_sql(plan, "duckdb") == render_sql(plan, "duckdb")


# The provider ---------------------------------------------------------------------------------------


def _prompt(task: str, context: QuestionContext) -> Prompt:
    return Prompt(task=task, system="", messages=[], context=context)  # type: ignore[arg-type]


async def test_it_is_registered_as_the_builtin_provider() -> None:
    provider = provider_class("builtin")()
    assert provider_class("builtin") is BuiltinProvider
    assert provider.label == "Built-in (offline)"
    assert "no key" in await provider.test()


async def test_it_streams_an_explanation_then_the_sql_for_no_tokens(demo_tables) -> None:
    provider = BuiltinProvider(api_key="ignored")
    context = QuestionContext(
        question="top 5 products by revenue in 2025", dialect="duckdb", tables=demo_tables
    )
    chunks = [chunk async for chunk in provider.stream(_prompt("sql", context))]
    assert len(chunks) >= 2
    assert chunks[0].startswith("I read this as: revenue")
    assert "products.name" in chunks[0] and "in 2025" in chunks[0] and "top 5" in chunks[0]
    assert chunks[-1].startswith("\n\n```sql\nSELECT")
    assert (provider.usage.input_tokens, provider.usage.output_tokens) == (0, 0)


async def test_its_analysis_is_a_narrative_without_sql(demo_tables) -> None:
    provider = BuiltinProvider()
    context = QuestionContext(
        question="revenue by region", dialect="duckdb", tables=demo_tables,
        sql="SELECT regions.name AS region, SUM(daily_revenue.revenue) AS revenue FROM daily_revenue "
        "JOIN regions ON daily_revenue.region_id = regions.region_id GROUP BY regions.name",
        columns=[{"name": "region", "type": "VARCHAR"}, {"name": "revenue", "type": "DECIMAL(38,2)"}],
        rows=[["North America", 400.0], ["Europe", 350.0], ["Asia Pacific", 200.0], ["Latin America", 50.0]],
        row_count=4,
    )  # fmt: skip
    text = "".join([chunk async for chunk in provider.stream(_prompt("analysis", context))])
    assert "```" not in text and "SELECT" not in text
    assert text == (
        "North America has the highest total revenue (400, 40.0 % of the total shown). "
        "Latin America has the lowest (50). Across all 4 rows the total is 1,000."
    )
    assert provider.usage.input_tokens == provider.usage.output_tokens == 0


# The narrator ---------------------------------------------------------------------------------------


def _narrate(sql: str, columns: list[tuple[str, str]], rows: list[list], row_count: int | None = None) -> str:
    context = QuestionContext(
        question="", dialect="duckdb", tables=[], sql=sql,
        columns=[{"name": n, "type": t} for n, t in columns],
        rows=rows, row_count=len(rows) if row_count is None else row_count,
    )  # fmt: skip
    return narrate(context)


def test_the_narrative_of_a_time_series_cites_first_last_extremes_and_total() -> None:
    text = _narrate(
        "SELECT DATE_TRUNC('MONTH', d) AS month, COUNT(*) AS order_count FROM orders GROUP BY 1",
        [("month", "TIMESTAMP"), ("order_count", "BIGINT")],
        [["2025-01-01T00:00:00", 100], ["2025-02-01T00:00:00", 150], ["2025-03-01T00:00:00", 120]],
    )
    assert text == (
        "The number of orders went from 100 in 2025-01 to 120 in 2025-03 (+20.0 %). "
        "The highest was 150 in 2025-02; the lowest 100 in 2025-01. Over these 3 months the total is 370."
    )


def test_the_narrative_warns_about_a_last_period_far_below_the_others() -> None:
    text = _narrate(
        "SELECT DATE_TRUNC('MONTH', d) AS month, SUM(x) AS revenue FROM t GROUP BY 1",
        [("month", "DATE"), ("revenue", "DECIMAL")],
        [["2025-01-01", 100.0], ["2025-02-01", 110.0], ["2025-03-01", 12.5]],
    )
    assert "(−87.5 %)" in text and "may not be complete" in text


def test_the_narrative_of_a_single_value_and_of_no_rows() -> None:
    assert _narrate("SELECT AVG(price) AS avg_price FROM p", [("avg_price", "DOUBLE")], [[12.3456]]) == (
        "The average price is 12.35."
    )
    assert "no rows" in _narrate("SELECT COUNT(*) AS n FROM t", [("n", "BIGINT")], [])


def test_the_narrative_does_not_total_averages_or_distinct_counts() -> None:
    averages = _narrate(
        "SELECT c, AVG(p) AS avg_price FROM t GROUP BY c", [("c", "VARCHAR"), ("avg_price", "DOUBLE")],
        [["a", 10.0], ["b", 30.0]],
    )  # fmt: skip
    assert "total" not in averages and "%" not in averages
    distinct = _narrate(
        "SELECT c, COUNT(DISTINCT k) AS customer_count FROM t GROUP BY c",
        [("c", "VARCHAR"), ("customer_count", "BIGINT")], [["a", 3], ["b", 5]],
    )  # fmt: skip
    assert "total" not in distinct and distinct.startswith("b has the highest number of customers (5)")


def test_the_narrative_reads_through_the_executors_row_cap_wrapper() -> None:
    text = _narrate(
        "SELECT * FROM (SELECT c, SUM(v) AS revenue FROM t GROUP BY c) AS _q LIMIT 1001",
        [("c", "VARCHAR"), ("revenue", "DOUBLE")], [["a", 1.0], ["b", 3.0]],
    )  # fmt: skip
    assert text.endswith("Across all 2 rows the total is 4.")


def test_the_narrative_says_when_it_saw_only_a_preview() -> None:
    text = _narrate(
        "SELECT c, SUM(v) AS revenue FROM t GROUP BY c", [("c", "VARCHAR"), ("revenue", "DOUBLE")],
        [["a", 1.0], ["b", 2.0]], row_count=500,
    )  # fmt: skip
    assert "the 2 rows shown" in text and "first 2 of 500 rows" in text


def test_the_narrative_of_two_groupings_names_the_combination() -> None:
    text = _narrate(
        "SELECT r, ch, SUM(v) AS revenue FROM t GROUP BY 1, 2",
        [("r", "VARCHAR"), ("ch", "VARCHAR"), ("revenue", "DOUBLE")],
        [["Europe", "web", 30.0], ["Europe", "mobile", 10.0], ["Asia", "web", 60.0]],
    )
    assert text.startswith("The highest total revenue is Asia / web (60, 60.0 % of the total shown).")
