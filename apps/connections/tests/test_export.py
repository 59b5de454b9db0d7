"""Exports: CSV and XLSX files of whole results, streamed or written by a job, on a real Postgres."""

import csv
import datetime as dt
import decimal
import io
import os
import time
import uuid
import zipfile
from pathlib import Path

import openpyxl
import psycopg
import pytest
from asgiref.sync import sync_to_async
from celery.signals import task_retry
from django.core.exceptions import ValidationError
from django.db import connection as db_connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import AuditLog
from apps.connections import tasks
from apps.connections.engines.base import QueryFailed, ResultColumn
from apps.connections.models import ExportJob, ExportStatus
from apps.connections.safety import UnsafeSQLError
from apps.connections.services import export
from apps.connections.services.export import (
    CsvRecordCounter,
    ExportDownload,
    ExportUnavailable,
    csv_chunks,
    export_files_cleanup,
    export_job_create,
    export_job_file,
    export_job_run,
    export_stream,
    xlsx_write,
)
from apps.connections.tests.factories import ConnectionFactory

ROWS = 20_000
SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "autocommit": True}

# Every fifth label is plain; the others carry what CSV and XML writers get wrong.
_ITEMS_SQL = """
CREATE TABLE items (
    id integer PRIMARY KEY,
    amount numeric(12, 2),
    label text,
    day date,
    at timestamp,
    flag boolean,
    ratio double precision,
    note text
);
INSERT INTO items
SELECT g,
       CASE WHEN g % 13 = 0 THEN NULL ELSE (g * 1.25 - 5000)::numeric(12, 2) END,
       CASE g % 5
           WHEN 0 THEN 'plain ' || g
           WHEN 1 THEN 'comma, "quoted" ' || g
           WHEN 2 THEN E'line\\nbreak ' || g
           WHEN 3 THEN 'ünïcödé ✓ 日本 ' || g
           ELSE E'crlf\\r\\nand <tag> & amp ' || g
       END,
       date '2024-01-01' + g % 400,
       timestamp '2023-12-31 08:00:00' + g * interval '37 seconds',
       CASE WHEN g % 17 = 0 THEN NULL ELSE g % 2 = 0 END,
       g / 8.0,
       CASE WHEN g % 7 = 0 THEN NULL WHEN g % 11 = 0 THEN '' ELSE 'n' || g END
FROM generate_series(1, %(rows)s) AS g;
"""


@pytest.fixture(scope="session")
def scratch_database():
    """A throwaway database on the local server with a table of mixed types."""
    name = f"datamind_export_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dbname="postgres", **SERVER) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(dbname=name, **SERVER) as conn:
            conn.execute(_ITEMS_SQL.replace("%(rows)s", str(ROWS)))
            conn.execute("ANALYZE items")
        yield name
    finally:
        with psycopg.connect(dbname="postgres", **SERVER) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def warehouse(personas, scratch_database):
    return ConnectionFactory(org=personas.org, name="Sales warehouse", database=scratch_database)


@pytest.fixture
def exports_dir(settings, tmp_path) -> Path:
    settings.EXPORTS_DIR = tmp_path / "exports"
    return settings.EXPORTS_DIR


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """Export jobs handed to the broker (the task itself is run by the tests, in process)."""
    calls: list[int] = []
    monkeypatch.setattr(tasks.export_job_task, "delay", calls.append)
    return calls


def _as_text(database: str, sql: str) -> list[list[str]]:
    """What Postgres itself prints for each value (NULL as empty, as CSV has no NULL)."""
    with psycopg.connect(dbname=database, **SERVER) as conn:
        rows = conn.execute(sql).fetchall()
    return [["" if value is None else value for value in row] for row in rows]


def _parse_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def _stream(columns: list[ResultColumn], rows: list, batch: int = 3):
    yield columns
    for start in range(0, len(rows), batch):
        yield rows[start : start + batch]


# CSV ----------------------------------------------------------------------------------------


def test_a_csv_export_round_trips_every_value_exactly(warehouse, personas, scratch_database):
    download = export_stream(
        connection=warehouse, sql="SELECT * FROM items ORDER BY id", user=personas.analyst, fmt="csv"
    )
    chunks = list(download)

    assert download.content_type == "text/csv; charset=utf-8"
    assert download.file_name.startswith("sales-warehouse-") and download.file_name.endswith(".csv")
    assert len(chunks) > 1 and all(len(chunk) >= export.CHUNK_SIZE for chunk in chunks[:-1])
    parsed = _parse_csv(b"".join(chunks))
    assert parsed[0] == ["id", "amount", "label", "day", "at", "flag", "ratio", "note"]
    assert parsed[1:] == _as_text(
        scratch_database,
        # COPY prints booleans the way Postgres's own output does: t and f.
        "SELECT id::text, amount::text, label, day::text, at::text, left(flag::text, 1), ratio::text, note"
        " FROM items ORDER BY items.id",
    )
    assert len(parsed) == ROWS + 1


def test_an_export_is_recorded_in_the_audit_log(warehouse, personas):
    b"".join(
        export_stream(connection=warehouse, sql="SELECT id FROM items", user=personas.analyst, fmt="csv")
    )
    entry = AuditLog.objects.get(action="connection.export")
    assert entry.actor == personas.analyst and entry.metadata["format"] == "csv"


def test_an_unsafe_statement_is_refused_before_anything_is_sent(warehouse, personas):
    with pytest.raises(UnsafeSQLError):
        export_stream(connection=warehouse, sql="DELETE FROM items", user=personas.analyst, fmt="csv")
    assert AuditLog.objects.filter(action="sql.refused").count() == 1
    assert not AuditLog.objects.filter(action="connection.export").exists()


def test_a_failing_query_raises_before_the_download_starts(warehouse, personas):
    with pytest.raises(QueryFailed, match="no_such_column"):
        export_stream(
            connection=warehouse, sql="SELECT no_such_column FROM items", user=personas.analyst, fmt="csv"
        )


def test_an_unknown_format_is_refused_as_a_user_error(warehouse, personas):
    with pytest.raises(ValidationError, match="Choose a format"):
        export_stream(connection=warehouse, sql="SELECT 1", user=personas.analyst, fmt="pdf")


def test_closing_a_download_before_reading_it_releases_the_database(warehouse, personas, scratch_database):
    def sessions() -> int:
        with psycopg.connect(dbname="postgres", **SERVER) as conn:
            sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'datamind'"
            return conn.execute(sql, [scratch_database]).fetchone()[0]

    download = export_stream(
        connection=warehouse, sql="SELECT * FROM items", user=personas.analyst, fmt="csv"
    )
    assert sessions() == 1

    download.close()

    assert sessions() == 0


# Closing a response sends request_finished, which tidies the database connection of the thread
# sync_to_async runs in; an earlier test may have left one open there, so the test may touch it.
@pytest.mark.django_db
async def test_a_download_streams_to_an_asgi_server_chunk_by_chunk_and_closes():
    closed: list[bool] = []
    download = ExportDownload(
        iter([b"id\r\n", b"1\r\n", b"2\r\n"]), "x.csv", "text/csv", on_close=lambda: closed.append(True)
    )
    response = StreamingHttpResponse(download.async_chunks(), content_type=download.content_type)

    assert response.is_async
    assert [chunk async for chunk in response] == [b"id\r\n", b"1\r\n", b"2\r\n"]
    await sync_to_async(response.close)()
    assert closed == [True]


def test_csv_chunks_writes_rfc_4180_in_chunks_of_the_asked_size():
    columns = [ResultColumn("n", "int4"), ResultColumn("text", "text"), ResultColumn("ok", "bool")]
    rows = [[i, f'say "hi", {i}\nbye ✓', i % 2 == 0] for i in range(2000)] + [[None, "", {"a": [1]}]]
    chunks = list(csv_chunks(_stream(columns, rows, batch=500), chunk_size=4096))

    assert all(len(chunk) == 4096 for chunk in chunks[:-1]) and 0 < len(chunks[-1]) <= 4096
    data = b"".join(chunks)
    assert data.startswith(b'n,text,ok\r\n0,"say ""hi"", 0\nbye \xe2\x9c\x93",true\r\n')
    parsed = _parse_csv(data)
    assert parsed[1:-1] == [
        [str(i), f'say "hi", {i}\nbye ✓', "true" if i % 2 == 0 else "false"] for i in range(2000)
    ]
    assert parsed[-1] == ["", "", '{"a": [1]}']


def test_the_record_counter_ignores_line_breaks_inside_quoted_fields():
    data = b'id,text\r\n1,"two\nlines"\r\n2,"a ""quoted"" \n word"\r\n3,plain\r\n'
    for size in (1, 2, 3, 7, len(data)):
        counter = CsvRecordCounter()
        for start in range(0, len(data), size):
            counter.feed(data[start : start + size])
        assert counter.records == 4


# XLSX ---------------------------------------------------------------------------------------


def _workbook(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


def test_an_xlsx_export_reads_back_with_the_right_values_and_types(warehouse, personas, scratch_database):
    download = export_stream(
        connection=warehouse,
        sql="SELECT * FROM items ORDER BY id LIMIT 600",
        user=personas.analyst,
        fmt="xlsx",
    )
    data = b"".join(download)

    assert download.file_name.endswith(".xlsx") and download.rows_written == 600 and not download.capped
    workbook = _workbook(data)
    assert workbook.sheetnames == ["Results"]
    sheet = workbook["Results"]
    header = sheet[1]
    assert [cell.value for cell in header] == ["id", "amount", "label", "day", "at", "flag", "ratio", "note"]
    assert all(cell.font.b for cell in header)
    with psycopg.connect(dbname=scratch_database, **SERVER) as conn:
        expected = conn.execute("SELECT * FROM items ORDER BY id LIMIT 600").fetchall()
    for cells, (id_, amount, label, day, at, flag, ratio, note) in zip(
        sheet.iter_rows(min_row=2), expected, strict=True
    ):
        values = [cell.value for cell in cells]
        values += [None] * (8 - len(values))
        assert values[0] == id_ and type(values[0]) is int
        assert (values[1] is None) if amount is None else decimal.Decimal(str(values[1])) == amount
        assert values[2] == label
        assert values[3] == dt.datetime.combine(day, dt.time()) and cells[3].number_format == "yyyy-mm-dd"
        assert values[4] == at and cells[4].number_format == "yyyy-mm-dd hh:mm:ss"
        assert values[5] is flag
        assert values[6] == ratio
        # An empty string and NULL are both an empty cell in a spreadsheet.
        assert values[7] == (note or None)
    assert any(note == "" for *_, note in expected)


def test_the_xlsx_writer_keeps_text_excel_would_mangle_and_strips_what_xml_forbids():
    columns = [ResultColumn("text", "text"), ResultColumn("big", "int8"), ResultColumn("day", "date")]
    rows = [
        ["  padded  ", 12345678901234567, "not a date"],
        ["bell\x07 and \x00nul", -(10**15), "1850-06-01"],
        ["_x0041_ stays", 42, "2024-02-29"],
    ]
    target = io.BytesIO()
    summary = xlsx_write(_stream(columns, rows), target)

    assert summary.rows_written == 3 and not summary.capped
    sheet = _workbook(target.getvalue()).active
    assert [cell.value for cell in sheet[2]] == ["  padded  ", "12345678901234567", "not a date"]
    assert [cell.value for cell in sheet[3]] == ["bell and nul", "-1000000000000000", "1850-06-01"]
    assert sheet["C4"].value == dt.datetime(2024, 2, 29)
    with zipfile.ZipFile(target) as archive:
        # Excel would read a literal _x0041_ as "A" unless its underscore is escaped.
        assert b"_x005F_x0041_ stays" in archive.read("xl/worksheets/sheet1.xml")


def test_the_xlsx_writer_reports_progress_as_rows_are_written(monkeypatch):
    monkeypatch.setattr(export, "PROGRESS_EVERY", 4)
    seen: list[int] = []
    xlsx_write(
        _stream([ResultColumn("n", "int4")], [[i] for i in range(10)]), io.BytesIO(), on_progress=seen.append
    )
    assert seen == [6, 9]


def test_an_xlsx_export_past_the_sheet_limit_is_cut_with_a_notice(warehouse, personas, monkeypatch):
    monkeypatch.setattr(export, "XLSX_MAX_ROWS", 11)
    download = export_stream(
        connection=warehouse, sql="SELECT id, label FROM items ORDER BY id", user=personas.analyst, fmt="xlsx"
    )
    workbook = _workbook(b"".join(download))

    assert download.rows_written == 10 and download.capped
    assert workbook.sheetnames == ["Results", "Notice"]
    assert [row[0] for row in workbook["Results"].iter_rows(min_row=2, values_only=True)] == list(
        range(1, 11)
    )
    notice = workbook["Notice"]["A1"].value + " " + workbook["Notice"]["A2"].value
    assert "Excel's limit of 11 rows" in notice and "CSV" in notice


def test_a_result_that_exactly_fills_the_sheet_is_not_marked_as_cut(warehouse, personas, monkeypatch):
    monkeypatch.setattr(export, "XLSX_MAX_ROWS", 11)
    download = export_stream(
        connection=warehouse,
        sql="SELECT id FROM items ORDER BY id LIMIT 10",
        user=personas.analyst,
        fmt="xlsx",
    )
    workbook = _workbook(b"".join(download))
    assert download.rows_written == 10 and not download.capped
    assert workbook.sheetnames == ["Results"]


# Export jobs --------------------------------------------------------------------------------


def test_an_export_job_is_queued_then_written_to_a_file(
    warehouse, personas, exports_dir, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = export_job_create(
            connection=warehouse, user=personas.analyst, sql="SELECT * FROM items ORDER BY id", fmt="csv"
        )
    assert queued == [job.pk] and job.status == ExportStatus.PENDING and job.org == personas.org

    job = export_job_run(job_id=job.pk)

    assert job.status == ExportStatus.READY and job.rows_written == ROWS and not job.capped
    assert job.finished_at is not None and job.error == ""
    path = export_job_file(job)
    assert path.parent == exports_dir and path.name == job.file_name
    assert len(_parse_csv(path.read_bytes())) == ROWS + 1
    assert [p.name for p in exports_dir.iterdir()] == [job.file_name]


def test_an_xlsx_export_job_writes_a_workbook(warehouse, personas, exports_dir, queued):
    job = export_job_create(
        connection=warehouse, user=personas.analyst, sql="SELECT * FROM items", fmt="xlsx"
    )
    job = export_job_run(job_id=job.pk)

    assert job.status == ExportStatus.READY and job.rows_written == ROWS
    workbook = openpyxl.load_workbook(export_job_file(job), read_only=True)
    assert sum(1 for _ in workbook["Results"].iter_rows(values_only=True)) == ROWS + 1


def test_running_an_export_job_a_second_time_does_nothing(warehouse, personas, exports_dir, queued):
    job = export_job_create(
        connection=warehouse, user=personas.analyst, sql="SELECT id FROM items", fmt="csv"
    )
    first = export_job_run(job_id=job.pk)

    again = export_job_run(job_id=job.pk)

    assert again.status == ExportStatus.READY and again.file_name == first.file_name
    assert len(list(exports_dir.iterdir())) == 1


def test_a_job_already_running_elsewhere_is_left_alone(warehouse, personas, exports_dir, queued):
    job = export_job_create(
        connection=warehouse, user=personas.analyst, sql="SELECT id FROM items", fmt="csv"
    )
    ExportJob.objects.filter(pk=job.pk).update(status=ExportStatus.RUNNING)

    job = export_job_run(job_id=job.pk)

    assert job.status == ExportStatus.RUNNING and not exports_dir.exists()


def test_an_export_job_records_its_progress_while_it_writes(
    warehouse, personas, exports_dir, queued, monkeypatch
):
    monkeypatch.setattr(export, "PROGRESS_EVERY", 5000)
    job = export_job_create(connection=warehouse, user=personas.analyst, sql="SELECT * FROM items", fmt="csv")
    with CaptureQueriesContext(db_connection) as queries:
        export_job_run(job_id=job.pk)
    progress = [q["sql"] for q in queries if "rows_written" in q["sql"] and "'running'" in q["sql"]]
    assert len(progress) >= 3


def test_an_unsafe_statement_is_refused_when_the_job_is_asked_for(
    warehouse, personas, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(UnsafeSQLError):
        export_job_create(connection=warehouse, user=personas.analyst, sql="DROP TABLE items", fmt="csv")
    assert queued == [] and not ExportJob.objects.exists()
    assert AuditLog.objects.filter(action="sql.refused").exists()


def test_a_failing_query_ends_the_job_failed_with_the_database_error(
    warehouse, personas, exports_dir, queued
):
    job = export_job_create(
        connection=warehouse, user=personas.analyst, sql="SELECT no_such_column FROM items", fmt="xlsx"
    )
    job = export_job_run(job_id=job.pk)

    assert job.status == ExportStatus.FAILED and "no_such_column" in job.error and job.finished_at
    assert list(exports_dir.iterdir()) == []
    with pytest.raises(ExportUnavailable, match="not ready"):
        export_job_file(job)


def test_a_job_that_times_out_is_retried_and_then_fails(personas, scratch_database, exports_dir, queued):
    warehouse = ConnectionFactory(
        org=personas.org, database=scratch_database, options={"statement_timeout_s": 1}
    )
    job = export_job_create(
        connection=warehouse,
        user=personas.analyst,
        sql="SELECT count(*) FROM generate_series(1, 1000000000) AS g",
        fmt="csv",
    )
    retries: list[str] = []

    def on_retry(sender, reason, **kwargs):
        retries.append(str(reason))

    task_retry.connect(on_retry, weak=False)
    try:
        tasks.export_job_task.apply(args=[job.pk])
    finally:
        task_retry.disconnect(on_retry)

    job.refresh_from_db()
    assert len(retries) == 3 and all("longer than 1 s" in reason for reason in retries)
    assert job.status == ExportStatus.FAILED and "longer than 1 s" in job.error


def test_old_export_files_are_removed_and_their_jobs_say_so(warehouse, personas, exports_dir, queued):
    old = export_job_run(
        job_id=export_job_create(connection=warehouse, user=None, sql="SELECT 1", fmt="csv").pk
    )
    new = export_job_run(
        job_id=export_job_create(connection=warehouse, user=None, sql="SELECT 2", fmt="csv").pk
    )
    two_days_ago = time.time() - 2 * 86_400
    os.utime(export_job_file(old), (two_days_ago, two_days_ago))

    assert export_files_cleanup() == 1

    assert export_job_file(new).exists()
    with pytest.raises(ExportUnavailable, match="expired"):
        export_job_file(old)


def test_a_job_stuck_running_for_a_day_is_marked_failed(warehouse, personas, exports_dir, queued):
    job = export_job_create(connection=warehouse, user=None, sql="SELECT 1", fmt="csv")
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportStatus.RUNNING, created_at=job.created_at - dt.timedelta(days=2)
    )

    export_files_cleanup()

    job.refresh_from_db()
    assert job.status == ExportStatus.FAILED and "run it again" in job.error
