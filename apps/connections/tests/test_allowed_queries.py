"""Every statement the SQL-safety corpora allow is accepted and runs.

Each `allow` case of the shared corpus (shared/data/sql-safety/cases.jsonl) and of our own
safety_cases.jsonl goes through `validate_readonly(sql, dialect, row_cap=100)`, and the SQL it
hands back runs through the engine of its dialect on the scratch warehouses of conftest.py (the
same ones the engine-lock tests use), whose corpus objects (foo, orders, t, customers...) hold
rows: the query must run, and return rows unless it is empty by construction. The Spider dev gold
queries do the same, unchanged, on their own SQLite databases.
"""

import json
import re
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.connections.engines import get_engine
from apps.connections.engines.base import ConnectionSpec, QueryFailed, QueryTimeout
from apps.connections.safety import validate_readonly
from apps.connections.tests.conftest import DATA_DIR, ENGINE_OF_DIALECT, WAREHOUSE_FIXTURES, Warehouse

CORPUS = DATA_DIR / "sql-safety" / "cases.jsonl"
OWN_CASES = Path(__file__).with_name("safety_cases.jsonl")
SPIDER = DATA_DIR / "spider"
ROW_CAP = 100
TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Case:
    dialect: str
    sql: str
    why: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.dialect, self.sql.strip())


# The exceptions, keyed by (dialect, SQL) so that they follow a case if the corpus is reordered.
# Every key must name an allow case (see the last test of the first part).

# Queries that return no row whatever the data.
EMPTY_BY_CONSTRUCTION = {
    ("postgres", "SELECT 1 INTERSECT SELECT 2"): "1 and 2 have nothing in common",
    ("mysql", "SELECT * FROM information_schema.columns WHERE table_schema = 'shop'"): (
        "no schema is called shop on the test server, and a test may not create one server-wide"
    ),
}

# Queries written to outrun any time limit: they only read, so the validator lets them through
# and the engine's own time limit must stop them (the corpus's `observed` says the same).
OUTRUN_THE_TIME_LIMIT = {
    ("postgres", "SELECT count(*) FROM generate_series(1, 10000000000)"): "counts ten billion rows",
    (
        "postgres",
        "SELECT repeat('x', 100000000) FROM generate_series(1, 100)",
    ): "builds 100 strings of 100 MB",
    ("sqlite", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"): (
        "counts the rows of an endless recursive CTE"
    ),
}

# Queries no engine session can run, whatever the fixtures hold.
NOT_RUNNABLE = {
    ("postgres", "SELECT currval('public.my_seq')"): (
        "currval() returns what nextval() last gave *this session*; the engine runs every query on a"
        " fresh connection inside BEGIN READ ONLY, where nextval() is refused, so Postgres 15 raises"
        " 'currval of sequence \"my_seq\" is not yet defined in this session' (the corpus observed the same)"
    ),
    # DuckDB runs this on a read-only, sandboxed connection; DataMind's DuckDB engine does not.
    ("duckdb", "SELECT * FROM (PIVOT t ON a USING sum(b))"): (
        "DuckDB's parser types a PIVOT without an IN list as StatementType.MULTI (it first lists the ON"
        " values into a temporary ENUM), and the DuckDB engine's _prepare runs only statements typed"
        " SELECT, so it refuses the query: 'DataMind connections only run queries (SELECT).' A gap in"
        " apps/connections/engines/duckdb.py, not in DuckDB"
    ),
}


def _words(sql: str) -> str:
    return re.sub(r"\W+", "_", sql.lower()).strip("_")[:40]


def _allow_cases() -> list:
    params = []
    if CORPUS.exists():
        with CORPUS.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                case = json.loads(line)
                if case["expect"] == "allow":
                    params.append(
                        _param(
                            Case(case["dialect"], case["sql"], case["why"]),
                            f"corpus-{number:03d}-{case['dialect']}-{_words(case['sql'])}",
                        )
                    )
    else:
        reason = f"The SQL-safety corpus is not at {CORPUS} (shared data folder absent)."
        params.append(pytest.param(None, id="corpus-missing", marks=pytest.mark.skip(reason=reason)))
    for line in OWN_CASES.read_text(encoding="utf-8").splitlines():
        case = json.loads(line) if line.strip() else {}
        if case.get("expect") == "allow":
            params.append(_param(Case(case["dialect"], case["sql"], case["why"]), f"own-{case['id']}"))
    return params


def _param(case: Case, case_id: str) -> object:
    marks = []
    if case.key in NOT_RUNNABLE:
        marks.append(pytest.mark.xfail(raises=QueryFailed, strict=True, reason=NOT_RUNNABLE[case.key]))
    return pytest.param(case, id=case_id, marks=marks)


ALLOW_CASES = _allow_cases()


def _warehouse(request: pytest.FixtureRequest, dialect: str) -> Warehouse:
    return request.getfixturevalue(WAREHOUSE_FIXTURES[ENGINE_OF_DIALECT[dialect]])


@pytest.mark.parametrize("case", ALLOW_CASES)
def test_an_allowed_statement_is_accepted_and_runs_on_its_engine(
    case: Case, request: pytest.FixtureRequest
) -> None:
    warehouse = _warehouse(request, case.dialect)
    sql = validate_readonly(case.sql, case.dialect, row_cap=ROW_CAP)

    if case.key in OUTRUN_THE_TIME_LIMIT:
        started = time.monotonic()
        with pytest.raises(QueryTimeout):
            warehouse.engine.execute(warehouse.with_timeout(TIMEOUT_S), sql, row_cap=ROW_CAP)
        assert time.monotonic() - started < TIMEOUT_S + 2
        return

    result = warehouse.engine.execute(warehouse.spec, sql, row_cap=ROW_CAP)
    assert result.columns, sql
    assert result.row_count == len(result.rows) <= ROW_CAP
    if case.key in EMPTY_BY_CONSTRUCTION:
        assert result.rows == [], f"{sql!r} returned rows, yet {EMPTY_BY_CONSTRUCTION[case.key]}"
    else:
        assert result.rows, f"{sql!r} ran but returned no row"


def test_every_exception_above_names_an_allow_case() -> None:
    if not CORPUS.exists():
        pytest.skip(f"The SQL-safety corpus is not at {CORPUS} (shared data folder absent).")
    keys = {param.values[0].key for param in ALLOW_CASES}
    exceptions = {**EMPTY_BY_CONSTRUCTION, **OUTRUN_THE_TIME_LIMIT, **NOT_RUNNABLE}
    assert set(exceptions) - keys == set()


# Spider dev gold queries, unchanged, on their own SQLite databases -----------------------------


def _spider_gold() -> list:
    """(query, database) for every dev question outside the excluded, empty `wta_1` database."""
    gold_file = SPIDER / "dev_gold.sql"
    if not (gold_file.exists() and (SPIDER / "database").is_dir()):
        reason = f"The Spider dev set is not at {SPIDER} (shared data folder absent)."
        return [pytest.param(None, None, id="spider-missing", marks=pytest.mark.skip(reason=reason))]
    excluded = json.loads((SPIDER / "dev_exclusions.json").read_text(encoding="utf-8"))
    skip = {index for indices in excluded.values() for index in indices}
    params = []
    for index, line in enumerate(gold_file.read_text(encoding="utf-8").splitlines()):
        if index not in skip:
            query, database = line.rsplit("\t", 1)
            params.append(pytest.param(query, database, id=f"spider-{index:04d}-{database}"))
    return params


SPIDER_GOLD = _spider_gold()


def test_the_whole_spider_dev_set_is_run() -> None:
    if SPIDER_GOLD[0].values[0] is None:
        pytest.skip(f"The Spider dev set is not at {SPIDER} (shared data folder absent).")
    assert len(SPIDER_GOLD) == 972


@pytest.mark.parametrize(("query", "database"), SPIDER_GOLD)
def test_a_spider_gold_query_is_accepted_and_runs_on_sqlite(query: str, database: str) -> None:
    path = SPIDER / "database" / database / f"{database}.sqlite"
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as conn:
        conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
        cursor = conn.execute(query)
        expected_rows = len(cursor.fetchall())
        expected_columns = len(cursor.description)

    sql = validate_readonly(query, "sqlite", row_cap=ROW_CAP)
    spec = ConnectionSpec(engine="sqlite", database=path.name, file_path=path)
    result = get_engine("sqlite").execute(spec, sql, row_cap=ROW_CAP)

    assert len(result.columns) == expected_columns
    assert result.row_count == min(expected_rows, ROW_CAP)
    assert result.truncated == (expected_rows > ROW_CAP)
