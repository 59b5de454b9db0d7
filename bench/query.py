"""The query path, measured: execution overhead, CSV and XLSX export, the validator, the catalogue.

    .venv/bin/python bench/query.py            # about three minutes
    .venv/bin/python bench/query.py --quick    # smaller sizes, for a smoke run

Every figure is compared in the same run with what it is judged against (the bare driver, a bare
COPY, openpyxl) and printed with its goal and PASS or MISS. The verdicts are information: the
exit status never depends on a timing.

Databases. Everything runs on the Postgres server of the test settings (DATABASE_URL if set,
else postgres@127.0.0.1:5432), in scratch databases this script creates and always drops:
- `…_data`: one table of 1,000,000 generated rows of mixed types (generate_series);
- `…_catalogue`: 2,000 tables with keys, foreign keys and comments;
- `…_django`: DataMind's own database for this run. Connection rows (and the audit entries an
  export writes) need real tables, so DATABASE_URL is pointed at a fresh database before
  `django.setup()` and `migrate` runs on it. A database of its own, rather than the test
  runner's `test_datamind` or a developer's `datamind`, means a bench run never collides with
  a test run going on at the same time and never leaves rows anywhere.

Peak memory of an export is measured in a child process that runs only that export (this same
file with --child-export), reading its own peak RSS at the end (VmHWM on Linux, where
`ru_maxrss` carries the parent's peak across exec; `ru_maxrss` elsewhere).
"""

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datamind.test_settings")

import environ  # noqa: E402
import psycopg  # noqa: E402

SPIDER_GOLD = ROOT.parent / "shared" / "data" / "spider" / "dev_gold.sql"
_SERVER = environ.Env.db_url_config(
    os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/datamind")
)
SERVER = {
    "host": _SERVER.get("HOST") or "127.0.0.1",
    "port": int(_SERVER.get("PORT") or 5432),
    "user": _SERVER.get("USER") or "postgres",
    "password": _SERVER.get("PASSWORD") or "",
}

DATA_SQL = """
CREATE TABLE sales AS
SELECT g AS id,
       g % 5000 AS customer_id,
       (g * 0.37)::numeric(12, 2) AS amount,
       'customer ' || (g % 5000) || CASE WHEN g % 10 = 0 THEN ', "key" account' ELSE '' END AS customer,
       date '2020-01-01' + g % 1500 AS day,
       timestamp '2020-01-01' + g * interval '31 seconds' AS created_at,
       g % 3 = 0 AS active,
       CASE WHEN g % 7 = 0 THEN NULL ELSE substr(md5(g::text), 1, 12) END AS code
FROM generate_series(1, {rows}) AS g;
ALTER TABLE sales ADD PRIMARY KEY (id);
ANALYZE sales;
"""


@dataclass
class Sizes:
    rows: int
    small: int
    large: int
    xlsx: int
    tables: int
    runs_small: int
    runs_large: int
    runs_csv: int


FULL = Sizes(
    rows=1_000_000,
    small=10_000,
    large=100_000,
    xlsx=100_000,
    tables=2_000,
    runs_small=7,
    runs_large=5,
    runs_csv=3,
)
QUICK = Sizes(
    rows=100_000, small=10_000, large=50_000, xlsx=20_000, tables=200, runs_small=3, runs_large=3, runs_csv=1
)


# Scratch databases ----------------------------------------------------------------------------


def _admin() -> psycopg.Connection:
    return psycopg.connect(dbname="postgres", autocommit=True, **SERVER)


def database_create(name: str) -> None:
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def database_drop(name: str) -> None:
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def data_fill(name: str, rows: int) -> None:
    with psycopg.connect(dbname=name, autocommit=True, **SERVER) as conn:
        conn.execute(DATA_SQL.replace("{rows}", str(rows)))


def catalogue_fill(name: str, tables: int) -> None:
    """`tables` tables of eight columns; every third refers to the one before; all commented."""
    statements = []
    for i in range(tables):
        reference = f" REFERENCES t{i - 1:04d} (id)" if i % 3 == 2 else ""
        statements.append(
            f"CREATE TABLE t{i:04d} (id integer PRIMARY KEY, parent_id integer{reference},"
            " name text NOT NULL, amount numeric(12, 2), created_at timestamptz, active boolean,"
            " code varchar(20), note text);"
            f" COMMENT ON TABLE t{i:04d} IS 'Generated table {i}';"
            f" COMMENT ON COLUMN t{i:04d}.amount IS 'Amount in euros';"
        )
    # One transaction per hundred tables: a single one would run out of lock slots.
    with psycopg.connect(dbname=name, autocommit=True, **SERVER) as conn:
        for start in range(0, tables, 100):
            conn.execute("".join(statements[start : start + 100]))


# Measuring ----------------------------------------------------------------------------------


def median_seconds(action: Callable[[], Any], runs: int) -> float:
    action()  # warm up: first connection, plans, imports
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


@dataclass
class Line:
    measure: str
    ours: str
    reference: str = ""
    ratio: str = ""
    goal: str = ""
    verdict: str = ""


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds / 1000:,.0f}k rows/s"


def table_print(lines: list[Line]) -> None:
    headers = Line("measure", "ours", "reference", "ratio", "goal", "")
    columns = ("measure", "ours", "reference", "ratio", "goal", "verdict")
    widths = [max(len(getattr(line, c)) for line in [headers, *lines]) for c in columns]
    for i, line in enumerate([headers, *lines]):
        print("  ".join(getattr(line, c).ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


# The benchmarks -------------------------------------------------------------------------------


def bench_execution(connection: Any, data_db: str, sizes: Sizes) -> list[Line]:
    from apps.connections.services.execution import query_execute

    lines = []
    for rows, runs in ((sizes.small, sizes.runs_small), (sizes.large, sizes.runs_large)):
        sql = f"SELECT * FROM sales WHERE id <= {rows}"

        def ours(sql: str = sql, rows: int = rows) -> None:
            result = query_execute(connection=connection, sql=sql, row_cap=rows, use_cache=False).result
            assert result.row_count == rows

        def raw(sql: str = sql, rows: int = rows) -> None:
            with psycopg.connect(dbname=data_db, **SERVER) as conn:
                assert len(conn.execute(sql).fetchall()) == rows

        ours_s, raw_s = median_seconds(ours, runs), median_seconds(raw, runs)
        ratio = ours_s / raw_s
        lines.append(
            Line(
                f"execute {rows:,} rows (median of {runs})",
                f"{ours_s * 1000:,.1f} ms",
                f"{raw_s * 1000:,.1f} ms psycopg",
                f"{ratio:.2f}x",
                "<= 1.15x",
                verdict(ratio <= 1.15),
            )
        )
    return lines


def bench_csv(connection: Any, data_db: str, sizes: Sizes) -> list[Line]:
    from apps.connections.services.export import export_stream

    def ours() -> None:
        download = export_stream(connection=connection, sql="SELECT * FROM sales", user=None, fmt="csv")
        assert sum(len(chunk) for chunk in download) > sizes.rows

    def raw() -> None:
        copy_sql = "COPY (SELECT * FROM sales) TO STDOUT WITH (FORMAT csv, HEADER true)"
        with psycopg.connect(dbname=data_db, **SERVER) as conn, conn.cursor().copy(copy_sql) as copy:
            assert sum(len(data) for data in copy) > sizes.rows

    ours_s, raw_s = median_seconds(ours, sizes.runs_csv), median_seconds(raw, sizes.runs_csv)
    ratio = raw_s / ours_s
    lines = [
        Line(
            f"CSV export {sizes.rows:,} rows",
            rate(sizes.rows, ours_s),
            f"{rate(sizes.rows, raw_s)} COPY",
            f"{ratio:.2f}x",
            ">= 0.8x",
            verdict(ratio >= 0.8),
        )
    ]
    for fmt in ("csv", "xlsx"):
        peak = child_export_peak(connection.pk, fmt, sizes)
        if peak is None:
            lines.append(Line(f"{fmt.upper()} export peak RSS (child)", "failed: see the error above"))
            continue
        baseline_mb, peak_mb, rows = peak
        lines.append(
            Line(
                f"{fmt.upper()} export {rows:,} rows, peak RSS",
                f"{peak_mb:,.0f} MB",
                f"{baseline_mb:,.0f} MB before",
                "",
                "< 150 MB",
                verdict(peak_mb < 150),
            )
        )
    return lines


def child_export_peak(connection_id: int, fmt: str, sizes: Sizes) -> tuple[float, float, int] | None:
    rows = sizes.rows if fmt == "csv" else sizes.xlsx
    completed = subprocess.run(
        [sys.executable, __file__, "--child-export", fmt, str(connection_id), str(rows)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    if completed.returncode != 0:
        print(completed.stderr[-2000:], file=sys.stderr)
        return None
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return report["baseline_kb"] / 1024, report["peak_kb"] / 1024, report["rows"]


def peak_rss_kb() -> int:
    """This process's peak resident memory. On Linux, from VmHWM: `ru_maxrss` survives exec, so
    a child started by a large parent would report the parent's peak instead of its own."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_export(fmt: str, connection_id: int, rows: int) -> None:
    """Runs in the child: one export, consumed and thrown away, then this process's peak RSS."""
    django_setup()
    from apps.connections.engines import get_engine
    from apps.connections.models import Connection
    from apps.connections.services.export import export_stream

    connection = Connection.objects.select_related("org").get(pk=connection_id)
    get_engine(connection.engine)  # imports every engine's driver: not the export's own memory
    baseline = peak_rss_kb()
    download = export_stream(
        connection=connection, sql=f"SELECT * FROM sales WHERE id <= {rows}", user=None, fmt=fmt
    )
    size = sum(len(chunk) for chunk in download)
    print(json.dumps({"baseline_kb": baseline, "peak_kb": peak_rss_kb(), "bytes": size, "rows": rows}))


def bench_xlsx(connection: Any, sizes: Sizes) -> list[Line]:
    import openpyxl

    from apps.connections.engines import get_engine
    from apps.connections.services.connections import connection_spec
    from apps.connections.services.export import xlsx_write

    stream = list(
        get_engine(connection.engine).stream_rows(
            connection_spec(connection), f"SELECT * FROM sales WHERE id <= {sizes.xlsx}"
        )
    )
    columns, batches = stream[0], stream[1:]

    with tempfile.TemporaryDirectory(prefix="datamind-bench-") as folder:
        ours_path, theirs_path = Path(folder) / "ours.xlsx", Path(folder) / "openpyxl.xlsx"

        def ours() -> None:
            with ours_path.open("wb") as file:
                assert xlsx_write(iter(stream), file).rows_written == sizes.xlsx

        def theirs() -> None:
            workbook = openpyxl.Workbook(write_only=True)
            sheet = workbook.create_sheet("Results")
            sheet.append([column.name for column in columns])
            for batch in batches:
                for row in batch:
                    sheet.append(row)
            workbook.save(theirs_path)

        started = time.perf_counter()
        ours()
        ours_s = time.perf_counter() - started
        started = time.perf_counter()
        theirs()
        theirs_s = time.perf_counter() - started
        ours_mb, theirs_mb = ours_path.stat().st_size / 2**20, theirs_path.stat().st_size / 2**20
    ratio = theirs_s / ours_s
    return [
        Line(
            f"XLSX write {sizes.xlsx:,} rows",
            f"{rate(sizes.xlsx, ours_s)}, {ours_mb:.1f} MB",
            f"{rate(sizes.xlsx, theirs_s)}, {theirs_mb:.1f} MB openpyxl write-only",
            f"{ratio:.2f}x",
            ">= 1.5x",
            verdict(ratio >= 1.5),
        )
    ]


def bench_validator() -> list[Line]:
    try:
        from apps.connections.safety import UnsafeSQLError, validate_readonly
    except ImportError:
        return [Line("validator, Spider dev gold", "skipped: apps.connections.safety is not there yet")]
    if not SPIDER_GOLD.is_file():
        return [Line("validator, Spider dev gold", f"skipped: {SPIDER_GOLD} is missing")]
    statements = [line.split("\t")[0] for line in SPIDER_GOLD.read_text().splitlines() if line.strip()]
    refused = 0
    started = time.perf_counter()
    for sql in statements:
        try:
            validate_readonly(sql, "sqlite")
        except UnsafeSQLError:
            refused += 1
    seconds = time.perf_counter() - started
    return [
        Line(
            f"validator, Spider dev gold ({len(statements):,}, sqlite)",
            f"{len(statements) / seconds:,.0f} statements/s",
            f"{refused} refused",
        )
    ]


def bench_catalogue(org: Any, catalogue_db: str, sizes: Sizes) -> list[Line]:
    from apps.connections.models import CatalogTable, Connection
    from apps.connections.services.catalogue import catalogue_refresh

    started = time.perf_counter()
    catalogue_fill(catalogue_db, sizes.tables)
    created_s = time.perf_counter() - started
    connection = Connection.objects.create(
        org=org, name="Catalogue bench", engine="postgresql", database=catalogue_db, **_connection_fields()
    )
    started = time.perf_counter()
    catalogue_refresh(connection_id=connection.pk)
    seconds = time.perf_counter() - started
    connection.refresh_from_db()
    tables = CatalogTable.objects.filter(connection=connection).count()
    ok = connection.catalogue_status == "ready" and tables == sizes.tables
    return [
        Line(
            f"catalogue refresh, {sizes.tables:,} tables",
            f"{seconds:.2f} s" if ok else f"failed: {connection.catalogue_error or tables}",
            f"(created in {created_s:.0f} s)",
            "",
            "< 10 s",
            verdict(ok and seconds < 10),
        )
    ]


# Wiring -------------------------------------------------------------------------------------


def _connection_fields() -> dict[str, Any]:
    return {
        "host": SERVER["host"],
        "port": SERVER["port"],
        "username": SERVER["user"],
        "password": SERVER["password"],
        "options": {"row_cap": 100_000, "statement_timeout_s": 600, "cache_ttl_s": 0},
    }


def django_setup() -> None:
    import django

    django.setup()


@contextlib.contextmanager
def scratch_databases(prefix: str) -> Iterator[dict[str, str]]:
    names = {kind: f"{prefix}_{kind}" for kind in ("django", "data", "catalogue")}
    try:
        for name in names.values():
            database_create(name)
        yield names
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        for name in names.values():
            try:
                database_drop(name)
            except psycopg.Error as exc:
                print(f"Could not drop the scratch database {name}: {exc}", file=sys.stderr)


def main(sizes: Sizes) -> None:
    prefix = f"datamind_bench_{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    with scratch_databases(prefix) as names:
        os.environ["DATABASE_URL"] = (
            f"postgres://{SERVER['user']}:{SERVER['password']}@{SERVER['host']}:{SERVER['port']}/{names['django']}"
        )
        django_setup()
        from django.core.management import call_command

        from apps.accounts.models import Organization
        from apps.connections.models import Connection

        call_command("migrate", interactive=False, verbosity=0)
        data_fill(names["data"], sizes.rows)
        org = Organization.objects.create(name="Bench", slug="bench")
        connection = Connection.objects.create(
            org=org, name="Bench data", engine="postgresql", database=names["data"], **_connection_fields()
        )
        with psycopg.connect(dbname=names["data"], **SERVER) as conn:
            server = conn.execute("SHOW server_version").fetchone()[0]
        setup_s = time.perf_counter() - started
        print(
            f"DataMind query path: PostgreSQL {server}, {sizes.rows:,} rows,"
            f" Python {platform.python_version()}, {os.cpu_count()} CPUs,"
            f" load average {os.getloadavg()[0]:.1f} (setup {setup_s:.0f} s)"
        )
        benches: list[tuple[str, Callable[[], list[Line]]]] = [
            ("execution", lambda: bench_execution(connection, names["data"], sizes)),
            ("CSV export", lambda: bench_csv(connection, names["data"], sizes)),
            ("XLSX export", lambda: bench_xlsx(connection, sizes)),
            ("validator", bench_validator),
            ("catalogue refresh", lambda: bench_catalogue(org, names["catalogue"], sizes)),
        ]
        lines: list[Line] = []
        for title, bench in benches:
            try:
                lines += bench()
            except Exception as exc:  # one broken measure must not hide the others
                lines.append(Line(title, f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"))
        print()
        table_print(lines)
    print(
        f"\nTotal {time.perf_counter() - started:.0f} s; scratch databases dropped. Goals are informational."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--child-export", nargs=3, metavar=("FORMAT", "CONNECTION_ID", "ROWS"), help=argparse.SUPPRESS
    )
    arguments = parser.parse_args()
    if arguments.child_export:
        fmt, connection_id, rows = arguments.child_export
        child_export(fmt, int(connection_id), int(rows))
    else:
        main(QUICK if arguments.quick else FULL)
