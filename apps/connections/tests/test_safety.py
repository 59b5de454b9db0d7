"""The first SQL lock: which statements `validate_readonly` accepts, which it refuses, what it returns.

Pure tests: nothing here touches Django's database. The public corpora live beside the project
(`../shared/data`); the tests that read them skip with the path they looked at when it is absent.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections import Counter
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from apps.connections import safety
from apps.connections.safety import MAX_SQL_BYTES, SUPPORTED_DIALECTS, UnsafeSQLError, validate_readonly
from datamind.lib.exceptions import DataMindError

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
CORPUS = DATA / "sql-safety" / "cases.jsonl"
SPIDER = DATA / "spider"

QUERY_ROOTS = (exp.Select, exp.SetOperation, exp.Values, exp.Subquery)


def parse_single(sql: str, dialect: str) -> exp.Expr:
    statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    assert len(statements) == 1, sql
    return statements[0]


def refusal(sql: str | bytes, dialect: str, **kwargs: Any) -> UnsafeSQLError:
    with pytest.raises(UnsafeSQLError) as caught:
        validate_readonly(sql, dialect, **kwargs)
    return caught.value


# The public corpus -----------------------------------------------------------------------------


def _corpus_params() -> list[Any]:
    if not CORPUS.exists():
        reason = f"SQL safety corpus not found at {CORPUS}"
        return [pytest.param(None, id="corpus-missing", marks=pytest.mark.skip(reason=reason))]
    cases = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        pytest.param(case, id=f"{number:03d}-{case['dialect']}-{case['category']}-{case['expect']}")
        for number, case in enumerate(cases)
    ]


@pytest.mark.parametrize("case", _corpus_params())
def test_it_gives_every_corpus_case_its_expected_verdict(case: dict[str, str]) -> None:
    if case["expect"] == "reject":
        error = refusal(case["sql"], case["dialect"], row_cap=100)
        assert error.detail and error.rule
        return
    capped = validate_readonly(case["sql"], case["dialect"], row_cap=100)
    assert isinstance(parse_single(capped, case["dialect"]), exp.Select)
    uncapped = validate_readonly(case["sql"], case["dialect"])
    assert isinstance(parse_single(uncapped, case["dialect"]), QUERY_ROOTS)


# Spider dev gold queries ---------------------------------------------------------------------


def _spider_gold() -> list[tuple[str, str]]:
    """(query, database) for every dev question outside the excluded, empty `wta_1` database."""
    excluded = json.loads((SPIDER / "dev_exclusions.json").read_text())
    skip = {index for indices in excluded.values() for index in indices}
    lines = (SPIDER / "dev_gold.sql").read_text(encoding="utf-8").splitlines()
    gold = []
    for index, line in enumerate(lines):
        if index not in skip:
            query, database = line.rsplit("\t", 1)
            gold.append((query, database))
    return gold


needs_spider = pytest.mark.skipif(
    not (SPIDER / "dev_gold.sql").exists(), reason=f"Spider dev set not found at {SPIDER}"
)


@needs_spider
def test_it_accepts_every_spider_gold_query_as_sqlite() -> None:
    gold = _spider_gold()
    refused = []
    for query, _ in gold:
        try:
            validate_readonly(query, "sqlite", row_cap=1000)
        except UnsafeSQLError as error:
            refused.append((query, error.detail))
    assert len(gold) == 972
    assert refused == []


@needs_spider
def test_the_sql_it_returns_gives_the_same_rows_as_the_spider_gold_query() -> None:
    # The returned SQL is rendered from the checked tree, not the user's text: prove the rendering
    # means the same thing by running both on the real Spider databases.
    different = []
    for query, database in _spider_gold():
        path = SPIDER / "database" / database / f"{database}.sqlite"
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            connection.text_factory = lambda raw: raw.decode("utf-8", "replace")
            expected = Counter(map(repr, connection.execute(query).fetchall()))
            rendered = Counter(map(repr, connection.execute(validate_readonly(query, "sqlite")).fetchall()))
            capped = connection.execute(validate_readonly(query, "sqlite", row_cap=3)).fetchall()
        if rendered != expected or len(capped) != min(expected.total(), 4):
            different.append(query)
    assert different == []


@needs_spider
@pytest.mark.parametrize("dialect", ["postgres", "duckdb", "mysql"])
def test_it_accepts_a_sample_of_spider_queries_in_the_other_dialects(dialect: str) -> None:
    # Spider writes string values in double quotes, which these dialects read as identifiers;
    # the sample keeps the queries whose syntax means the same there.
    sample = [query for query, _ in _spider_gold()[::5] if '"' not in query]
    assert len(sample) > 100
    for query in sample:
        validate_readonly(query, dialect, row_cap=10)


# Our own cases ---------------------------------------------------------------------------------
#
# safety_cases.jsonl beside this file: one case per line with the verdict we owe it, the rule a
# refusal must name, and why; grouped by the spec's bullets for every dialect.

OWN_CASES = [
    json.loads(line)
    for line in (Path(__file__).with_name("safety_cases.jsonl")).read_text(encoding="utf-8").splitlines()
    if line.strip()
]


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=case["id"]) for case in OWN_CASES if case["expect"] == "reject"]
)
def test_it_refuses(case: dict[str, str]) -> None:
    error = refusal(case["sql"], case["dialect"])
    assert error.rule == case["rule"], error.detail


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=case["id"]) for case in OWN_CASES if case["expect"] == "allow"]
)
def test_it_accepts(case: dict[str, str]) -> None:
    capped = validate_readonly(case["sql"], case["dialect"], row_cap=10)
    assert isinstance(parse_single(capped, case["dialect"]), exp.Select)


# Raw text --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", SUPPORTED_DIALECTS)
def test_it_refuses_a_nul_byte(dialect: str) -> None:
    assert refusal("SELECT 1\x00; DROP TABLE t", dialect).rule == "raw_text"


@pytest.mark.parametrize("dialect", SUPPORTED_DIALECTS)
def test_it_refuses_bytes_that_are_not_utf8(dialect: str) -> None:
    assert refusal(b"SELECT '\xff\xfe'", dialect).rule == "raw_text"


def test_it_refuses_text_that_cannot_be_encoded_as_utf8() -> None:
    assert refusal("SELECT '\ud800'", "postgres").rule == "raw_text"


def test_it_accepts_utf8_bytes() -> None:
    assert validate_readonly("SELECT 'café'".encode(), "postgres") == "SELECT 'café'"


@pytest.mark.parametrize("dialect", SUPPORTED_DIALECTS)
def test_it_refuses_a_200_kb_statement(dialect: str) -> None:
    sql = "SELECT '" + "x" * 200_000 + "'"
    assert refusal(sql, dialect).rule == "raw_text"
    assert refusal(sql.encode(), dialect).rule == "raw_text"


def test_it_measures_the_size_cap_in_bytes() -> None:
    fits = "SELECT '" + "x" * (MAX_SQL_BYTES - 9) + "'"
    too_big = "SELECT '" + "é" * (MAX_SQL_BYTES // 2) + "'"
    validate_readonly(fits, "sqlite")
    assert refusal(too_big, "sqlite").rule == "raw_text"


@pytest.mark.parametrize("dialect", SUPPORTED_DIALECTS)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 /*!50000 UNION SELECT password FROM users */",
        "SELECT 1 /*M!100000 , SLEEP(5) */",
        "SELECT 1 AS x; /*! SET @pwned = 1 */",
    ],
)
def test_it_refuses_mysql_executable_comments(dialect: str, sql: str) -> None:
    assert refusal(sql, dialect).rule == "raw_text"


def test_it_drops_comments_from_the_sql_it_returns() -> None:
    assert validate_readonly("SELECT 1 /* note */ -- more\n", "postgres") == "SELECT 1"


# The row cap -----------------------------------------------------------------------------------

WRAPPED = [
    pytest.param("SELECT name FROM singer", id="plain"),
    pytest.param("SELECT name FROM singer ORDER BY age DESC LIMIT 3", id="own-order-by-and-limit"),
    pytest.param("SELECT name FROM singer UNION SELECT country FROM singer", id="union"),
    pytest.param("WITH young AS (SELECT * FROM singer WHERE age < 30) SELECT name FROM young", id="with"),
    pytest.param("(SELECT name FROM singer)", id="parenthesised"),
]


@pytest.mark.parametrize("sql", WRAPPED)
def test_the_row_cap_wraps_the_query_in_a_subquery_limited_to_one_extra_row(sql: str) -> None:
    wrapped = parse_single(validate_readonly(sql, "sqlite", row_cap=50), "sqlite")

    assert isinstance(wrapped, exp.Select)
    assert [type(e) for e in wrapped.expressions] == [exp.Star]
    assert wrapped.args["limit"].expression.to_py() == 51
    subquery = wrapped.args["from_"].this
    assert isinstance(subquery, exp.Subquery)
    assert subquery.alias == "_q"
    assert subquery.this.sql("sqlite") == parse_single(sql, "sqlite").unnest().sql("sqlite")


def test_the_row_cap_lets_the_caller_see_that_rows_were_cut() -> None:
    query = "WITH n(i) AS (VALUES (1), (2), (3), (4), (5)) SELECT i FROM n ORDER BY i DESC"
    with closing(sqlite3.connect(":memory:")) as connection:
        cut = connection.execute(validate_readonly(query, "sqlite", row_cap=3)).fetchall()
        whole = connection.execute(validate_readonly(query, "sqlite", row_cap=5)).fetchall()
    assert [i for (i,) in cut] == [5, 4, 3, 2]
    assert [i for (i,) in whole] == [5, 4, 3, 2, 1]


def test_the_row_cap_works_for_a_bare_values_list() -> None:
    sql = "VALUES (1), (2), (3)"
    with closing(sqlite3.connect(":memory:")) as lite, duckdb.connect() as duck:
        assert len(lite.execute(validate_readonly(sql, "sqlite", row_cap=1)).fetchall()) == 2
        assert len(duck.execute(validate_readonly(sql, "duckdb", row_cap=1)).fetchall()) == 2


def test_the_row_cap_keeps_the_querys_own_limit() -> None:
    query = "SELECT value FROM json_each('[1, 2, 3, 4]') ORDER BY value LIMIT 2"
    with closing(sqlite3.connect(":memory:")) as connection:
        assert connection.execute(validate_readonly(query, "sqlite", row_cap=10)).fetchall() == [(1,), (2,)]


@pytest.mark.parametrize(
    ("dialect", "sql", "expected"),
    [
        ("postgres", 'SELECT "a" FROM "t"', 'SELECT * FROM (SELECT "a" FROM "t") AS _q LIMIT 1'),
        ("mysql", "SELECT `a` FROM `t`", "SELECT * FROM (SELECT `a` FROM `t`) AS _q LIMIT 1"),
        ("sqlite", 'SELECT "a" FROM "t"', 'SELECT * FROM (SELECT "a" FROM "t") AS _q LIMIT 1'),
        ("duckdb", 'SELECT "a" FROM "t"', 'SELECT * FROM (SELECT "a" FROM "t") AS _q LIMIT 1'),
    ],
)
def test_the_row_cap_is_rendered_in_the_connections_dialect(dialect: str, sql: str, expected: str) -> None:
    assert validate_readonly(sql, dialect, row_cap=0) == expected


def test_without_a_row_cap_it_returns_the_query_alone() -> None:
    expected = "SELECT a FROM t ORDER BY a LIMIT 5"
    assert validate_readonly("select a from t order by a limit 5", "postgres") == expected


def test_a_negative_row_cap_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="row_cap"):
        validate_readonly("SELECT 1", "postgres", row_cap=-1)


# Dialects and the error ------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["postgresql", "PostgreSQL", "POSTGRES"])
def test_it_accepts_other_spellings_of_postgres(dialect: str) -> None:
    assert validate_readonly("SELECT 1", dialect) == "SELECT 1"


def test_an_unknown_dialect_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="oracle"):
        validate_readonly("SELECT 1", "oracle")


def test_the_error_says_why_in_words_and_as_a_rule() -> None:
    error = refusal("UPDATE t SET x = 1", "postgres")

    assert isinstance(error, DataMindError)
    assert error.code == "unsafe_sql"
    assert error.rule == "write_node"
    assert error.detail == "Only read-only queries can run: this statement contains UPDATE."


@pytest.mark.parametrize(
    ("dialect", "sql", "detail"),
    [
        ("postgres", "SELECT pg_sleep(1)", "Function pg_sleep is not allowed."),
        ("postgres", "SELECT 1; SELECT 2", "Only one statement can run at a time."),
        ("postgres", "SELECT (", "Could not parse this SQL as PostgreSQL: "),
        ("mysql", "SELECT FROM FROM", "Could not parse this SQL as MySQL: "),
        ("duckdb", "SELECT * FROM 'x.csv'", "'x.csv' looks like a file or URL"),
    ],
)
def test_the_reason_is_short_and_specific(dialect: str, sql: str, detail: str) -> None:
    error = refusal(sql, dialect)
    assert error.detail.startswith(detail)
    assert len(error.detail) < 200
    assert "sqlglot" not in error.detail


# The denylists stay a net under the allowlists -----------------------------------------------

DENIED_CALLS = [
    ("postgres", "pg_sleep_for('1 hour')"), ("postgres", "set_config('a', 'b', false)"),
    ("postgres", "lo_import('/etc/passwd')"), ("postgres", "dblink_connect('host=x')"),
    ("postgres", "table_to_xml('t', true, true, '')"), ("postgres", "pg_read_file('x')"),
    ("postgres", "pg_advisory_unlock_all()"), ("postgres", "setval('s', 1)"),
    ("postgres", "pg_notify('c', 'x')"), ("postgres", "version()"), ("postgres", "current_database()"),
    ("mysql", "load_file('x')"), ("mysql", "sleep(1)"), ("mysql", "benchmark(1, 1)"), ("mysql", "user()"),
    ("mysql", "database()"), ("sqlite", "load_extension('x')"), ("sqlite", "readfile('x')"),
    ("sqlite", "writefile('x', 'y')"), ("sqlite", "sqlite_source_id()"), ("duckdb", "read_json_auto('x')"),
    ("duckdb", "read_text('x')"), ("duckdb", "glob('*')"), ("duckdb", "sniff_csv('x')"),
    ("duckdb", "getenv('HOME')"), ("duckdb", "parquet_metadata('x')"),
]  # fmt: skip


@pytest.mark.parametrize(("dialect", "call"), DENIED_CALLS)
@pytest.mark.parametrize(
    "place", ["SELECT {call}", "SELECT * FROM {call}", "SELECT 1 FROM t WHERE {call} IS NULL"]
)
def test_a_denied_function_is_refused_in_any_place_and_spelling(dialect: str, call: str, place: str) -> None:
    for spelling in (call, call.upper()):
        error = refusal(place.format(call=spelling), dialect)
        assert error.rule in {"function", "server_object"}, error.detail


# Properties ------------------------------------------------------------------------------------

VALID_QUERIES = [
    "SELECT 1",
    "SELECT a, count(*) FROM t GROUP BY a",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "SELECT 1 UNION ALL SELECT 2",
    "(SELECT a FROM t ORDER BY a LIMIT 1)",
]
WRITES = [
    "INSERT INTO t VALUES (1)",
    "UPDATE t SET a = 1",
    "DELETE FROM t",
    "DROP TABLE t",
    "CREATE TABLE x (a INT)",
    "ALTER TABLE t ADD COLUMN b INT",
    "TRUNCATE TABLE t",
    "GRANT ALL ON t TO public",
    "SET a = 1",
    "COMMIT",
    "BEGIN",
    "ATTACH 'x.db' AS x",
    "PRAGMA writable_schema = ON",
    "COPY t TO '/tmp/x'",
    "CALL p()",
    "VACUUM",
]
SEPARATORS = [";", " ; ", ";\n", ";\n-- note\n", "; /* note */ ", "\n;"]
dialects = st.sampled_from(SUPPORTED_DIALECTS)
property_settings = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@property_settings
@given(
    dialects,
    st.sampled_from(VALID_QUERIES),
    st.sampled_from(SEPARATORS),
    st.sampled_from(WRITES),
    st.booleans(),
)
def test_a_write_after_a_valid_query_is_always_refused(
    dialect: str, query: str, separator: str, write: str, trailing: bool
) -> None:
    sql = query + separator + write + (";" if trailing else "")
    with pytest.raises(UnsafeSQLError):
        validate_readonly(sql, dialect)


names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
EXECUTABLE_COMMENT = re.compile(r"/\*[mM]?!")


def string_literal(value: str, dialect: str) -> str:
    if dialect == "mysql":
        value = value.replace("\\", "\\\\")
    return "'" + value.replace("'", "''") + "'"


@property_settings
@given(dialects, names, names, texts, st.integers(-(10**12), 10**12))
def test_a_select_with_any_identifiers_and_literals_is_accepted(
    dialect: str, column: str, table: str, text: str, number: int
) -> None:
    sql = (
        f"SELECT c_{column}, {string_literal(text, dialect)} AS label FROM t_{table} "
        f"WHERE c_{column} = {number} ORDER BY c_{column}"
    )
    assume(not EXECUTABLE_COMMENT.search(sql))
    assert isinstance(parse_single(validate_readonly(sql, dialect, row_cap=5), dialect), exp.Select)


@property_settings
@given(texts)
def test_string_literals_mean_the_same_after_rendering(text: str) -> None:
    # Quotes and backslashes are where a renderer's escaping could turn data into code; running the
    # returned SQL on the real engines shows each literal still holds exactly the original text.
    assume(not EXECUTABLE_COMMENT.search(text))
    with closing(sqlite3.connect(":memory:")) as connection:
        sql = validate_readonly(f"SELECT {string_literal(text, 'sqlite')} AS s", "sqlite", row_cap=1)
        assert connection.execute(sql).fetchall() == [(text,)]
    with duckdb.connect() as connection:
        sql = validate_readonly(f"SELECT {string_literal(text, 'duckdb')} AS s", "duckdb", row_cap=1)
        assert connection.execute(sql).fetchall() == [(text,)]


@property_settings
@given(dialects, st.text())
def test_any_text_is_either_accepted_or_refused_with_unsafe_sql_error(dialect: str, text: str) -> None:
    with suppress(UnsafeSQLError):
        validate_readonly(text, dialect, row_cap=10)


@property_settings
@given(dialects, st.binary(max_size=200))
def test_any_bytes_are_either_accepted_or_refused_with_unsafe_sql_error(dialect: str, raw: bytes) -> None:
    with suppress(UnsafeSQLError):
        validate_readonly(raw, dialect)


def test_a_statement_checked_again_is_not_parsed_again_but_a_refusal_is_checked_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []
    parse = safety._parse_single
    monkeypatch.setattr(
        safety, "_parse_single", lambda text, policy: parsed.append(text) or parse(text, policy)
    )
    marker = uuid.uuid4().hex  # a statement no earlier test has checked
    accepted = f"SELECT '{marker}' AS marker"
    first = validate_readonly(accepted, "duckdb", row_cap=10)
    assert validate_readonly(accepted, "duckdb", row_cap=10) == first
    assert validate_readonly(accepted, "duckdb", row_cap=20) != first  # the cap is part of the verdict
    assert len(parsed) == 2

    refused = f"DELETE FROM t WHERE marker = '{marker}'"
    for _ in range(2):
        with pytest.raises(UnsafeSQLError):
            validate_readonly(refused, "duckdb")
    assert len(parsed) == 4
