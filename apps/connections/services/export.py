"""Whole results leaving DataMind as files: CSV and XLSX, streamed in constant memory.

Two doors: `export_stream` answers a download request directly (CSV streams from the database
as it is read; XLSX is written to a temporary file first, because a zip's directory comes last),
and export jobs write large results to `EXPORTS_DIR` in a worker, reporting progress as they go.
Both validate the statement first (without a row cap: an export is the whole result) and run it
through the engine, so both locks of SQL safety hold.

The XLSX writer is our own: it writes the OOXML parts straight into a zip, rows as they come,
which is several times faster than openpyxl's write-only mode and never holds more than one
batch of rows in memory.
"""

import contextlib
import csv
import datetime as dt
import io
import itertools
import json
import math
import os
import re
import tempfile
import uuid
import zipfile
import zoneinfo
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import structlog
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.models import User
from apps.accounts.services import audit_log_record
from apps.connections.engines import get_engine
from apps.connections.engines.base import EngineError, ResultColumn
from apps.connections.models import Connection, ExportFormat, ExportJob, ExportStatus
from apps.connections.services.connections import connection_spec
from apps.connections.services.execution import sql_make_safe
from datamind.lib.exceptions import DataMindError

logger = structlog.get_logger(__name__)

CHUNK_SIZE = 64 * 1024
# Excel's sheet limit, header row included.
XLSX_MAX_ROWS = 1_048_576
PROGRESS_EVERY = 50_000
EXPORT_MAX_AGE = dt.timedelta(days=1)
# Small XLSX downloads never touch the disk; larger ones roll over to a temporary file.
SPOOL_MAX_SIZE = 2 * 1024 * 1024

CONTENT_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

RowStream = Iterable[list[ResultColumn] | list[Any]]


class ExportUnavailable(DataMindError):
    """The export file is not ready, or has expired."""

    code = "export_unavailable"
    status = 404


# CSV ----------------------------------------------------------------------------------------


def _csv_ready(batch: list) -> list:
    """Booleans as true/false and JSON values as JSON, in the columns that hold them.

    Like `convert_rows`, only columns where some value needs it are touched: most exports are
    numbers and text, which the csv module writes as they are.
    """
    if not batch:
        return batch
    width = len(batch[0])
    needs = [i for i in range(width) if any(type(row[i]) in (bool, list, dict) for row in batch)]
    if not needs:
        return batch
    ready = []
    for row in batch:
        values = list(row)
        for i in needs:
            value = values[i]
            if type(value) is bool:
                values[i] = "true" if value else "false"
            elif isinstance(value, (list, dict)):
                values[i] = json.dumps(value, ensure_ascii=False)
        ready.append(values)
    return ready


def csv_chunks(stream: RowStream, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """CSV (RFC 4180: CRLF, quotes only where needed; UTF-8) with a header row, in chunks of
    `chunk_size` bytes (the last one shorter). Holds one batch of rows at a time."""
    rows = iter(stream)
    try:
        columns = next(rows)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow([column.name for column in columns])
        pending = bytearray()
        for batch in rows:
            writer.writerows(_csv_ready(batch))
            pending += text.getvalue().encode("utf-8", errors="replace")
            text.seek(0)
            text.truncate()
            while len(pending) >= chunk_size:
                yield bytes(pending[:chunk_size])
                del pending[:chunk_size]
        pending += text.getvalue().encode("utf-8", errors="replace")
        if pending:
            yield bytes(pending)
    finally:
        _close(rows)


def rechunked(chunks: Iterable[bytes], *, chunk_size: int = CHUNK_SIZE) -> Generator[bytes, None, None]:
    """The same bytes in chunks of about `chunk_size`: COPY hands out one row per chunk, and a
    write per row would cost a system call per row all the way to the browser."""
    iterator = iter(chunks)
    pending = bytearray()
    try:
        for chunk in iterator:
            pending += chunk
            if len(pending) >= chunk_size:
                yield bytes(pending)
                pending.clear()
        if pending:
            yield bytes(pending)
    finally:
        _close(iterator)


class CsvRecordCounter:
    """Counts the records of a CSV byte stream, header included, chunk by chunk.

    A line feed ends a record unless it sits inside a quoted field; quoted fields double their
    own quotes, so "inside" is simply "after an odd number of quotes". Splitting on quotes keeps
    the work in C, so counting costs next to nothing beside the database's own COPY.
    """

    def __init__(self) -> None:
        self.records = 0
        self._in_quotes = False

    def feed(self, chunk: bytes) -> None:
        if b'"' not in chunk:
            if not self._in_quotes:
                self.records += chunk.count(b"\n")
            return
        parts = chunk.split(b'"')
        self.records += sum(part.count(b"\n") for part in parts[1 if self._in_quotes else 0 :: 2])
        if len(parts) % 2 == 0:
            self._in_quotes = not self._in_quotes


# XLSX ---------------------------------------------------------------------------------------

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

# Cell styles (indices into cellXfs in _STYLES_XML).
_STYLE_HEADER = 1
_STYLE_DATE = 2
_STYLE_DATETIME = 3

_STYLES_XML = (
    _XML_DECLARATION + f'<styleSheet xmlns="{_MAIN_NS}">'
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)

# Characters XML 1.0 forbids, and lone surrogates (UTF-8 cannot encode them).
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Excel reads _xHHHH_ in text as an escaped character; a literal one is escaped as _x005F_xHHHH_.
_EXCEL_ESCAPE = re.compile(r"_(x[0-9A-Fa-f]{4}_)")
_CELL_TEXT_MAX = 32_767
# Excel trims leading and trailing spaces of text unless told to keep them.
_INLINE = '<is><t xml:space="preserve">'
# Integers Excel would round (it keeps 15 significant digits) are written as text, so IDs survive.
_EXACT_INT = 10**15
# Excel's day 0 is 1899-12-30 from 1900-03-01 on; before that its fictional 1900-02-29 shifts it.
_EXCEL_EPOCH = dt.date(1899, 12, 30).toordinal()
_EXCEL_LEAP_BUG_END = dt.date(1900, 3, 1)
_SERIAL_CACHE_SIZE = 4096
_MISSING = object()


@dataclass(frozen=True)
class XlsxSummary:
    rows_written: int
    capped: bool


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _date_style(column_type: str) -> int:
    """The date style for columns whose type says date or date-and-time, else 0 (text)."""
    lowered = column_type.lower()
    if "timestamp" in lowered or "datetime" in lowered:
        return _STYLE_DATETIME
    if lowered.startswith("date"):
        return _STYLE_DATE
    return 0


def _xml_text(value: str) -> str:
    # isprintable() is false for every character _ILLEGAL_XML matches (and for tabs and line
    # feeds): a quick test in C that spares the regex for nearly all values.
    if not value.isprintable():
        value = _ILLEGAL_XML.sub("", value)
    if len(value) > _CELL_TEXT_MAX:
        value = value[:_CELL_TEXT_MAX]
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        # A bare CR would be read back as LF by any XML parser.
        value = value.replace("\r", "&#13;")
    if "_x" in value:
        value = _EXCEL_ESCAPE.sub(r"_x005F_\1", value)
    return value


def _excel_serial(value: str) -> str | None:
    """An ISO date or date-time as Excel's serial day number, or None if it is not one Excel can
    show (unparsable, or before 1900). Time zones are dropped: Excel has none, and the wall-clock
    time is what the database showed."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.year < 1900:
        return None
    days = moment.toordinal() - _EXCEL_EPOCH
    if moment.date() < _EXCEL_LEAP_BUG_END:
        days -= 1
    seconds = moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1_000_000
    return str(days) if not seconds else repr(days + seconds / 86_400)


def _text_cell(ref: str, value: str, style: int = 0) -> str:
    styled = f' s="{style}"' if style else ""
    return f'<c r="{ref}"{styled} t="inlineStr">{_INLINE}{_xml_text(value)}</t></is></c>'


def _rows_xml(batch: list, first_row: int, letters: list[str], styles: list[int], serials: dict) -> str:
    """The <row> elements of one batch. The hot loop of the writer: one type check per value
    and one f-string per cell, nothing else. `serials` remembers recent date conversions: a date
    column repeats the same few values, and parsing is the slowest step of a cell."""
    parts: list[str] = []
    append = parts.append
    number = first_row
    for row in batch:
        r = str(number)
        append(f'<row r="{r}">')
        for letter, style, value in zip(letters, styles, row, strict=False):
            kind = type(value)
            if kind is str:
                if not value:
                    continue
                if style:
                    serial = serials.get(value, _MISSING)
                    if serial is _MISSING:
                        if len(serials) >= _SERIAL_CACHE_SIZE:
                            serials.clear()
                        serial = serials[value] = _excel_serial(value)
                else:
                    serial = None
                if serial is not None:
                    append(f'<c r="{letter}{r}" s="{style}"><v>{serial}</v></c>')
                else:
                    append(f'<c r="{letter}{r}" t="inlineStr">{_INLINE}{_xml_text(value)}</t></is></c>')
            elif value is None:
                continue
            elif kind is int:
                if -_EXACT_INT < value < _EXACT_INT:
                    append(f'<c r="{letter}{r}"><v>{value}</v></c>')
                else:
                    append(_text_cell(letter + r, str(value)))
            elif kind is bool:
                append(f'<c r="{letter}{r}" t="b"><v>{1 if value else 0}</v></c>')
            elif kind is float:
                if math.isfinite(value):
                    append(f'<c r="{letter}{r}"><v>{value!r}</v></c>')
            elif isinstance(value, (list, dict)):
                append(_text_cell(letter + r, json.dumps(value, ensure_ascii=False)))
            else:
                append(_text_cell(letter + r, str(value)))
        append("</row>")
        number += 1
    return "".join(parts)


def _sheet_head(columns: list[ResultColumn], styles: list[int]) -> str:
    widths = []
    for i, (column, style) in enumerate(zip(columns, styles, strict=True), start=1):
        width = max(10, min(60, len(column.name) + 2), 20 if style == _STYLE_DATETIME else 0)
        widths.append(f'<col min="{i}" max="{i}" width="{width}" customWidth="1"/>')
    # The header row stays in view while scrolling.
    view = (
        '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft"'
        ' state="frozen"/><selection pane="bottomLeft"/></sheetView></sheetViews>'
    )
    header = "".join(
        _text_cell(f"{_column_letter(i)}1", column.name, _STYLE_HEADER) for i, column in enumerate(columns)
    )
    return (
        f'{_XML_DECLARATION}<worksheet xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}">{view}'
        f'<sheetFormatPr defaultRowHeight="15"/>{"<cols>" + "".join(widths) + "</cols>" if widths else ""}'
        f'<sheetData><row r="1">{header}</row>'
    )


def _notice_sheet(rows_written: int, max_rows: int) -> str:
    lines = [
        f"This export was cut at Excel's limit of {max_rows:,} rows per sheet: "
        f"the first {rows_written:,} rows of the result are in the Results sheet.",
        "Export as CSV to get every row.",
    ]
    cells = "".join(
        f'<row r="{i}">{_text_cell(f"A{i}", line, _STYLE_HEADER if i == 1 else 0)}</row>'
        for i, line in enumerate(lines, start=1)
    )
    return f'{_XML_DECLARATION}<worksheet xmlns="{_MAIN_NS}"><sheetData>{cells}</sheetData></worksheet>'


def _package_parts(sheet_names: list[str]) -> dict[str, str]:
    """Every part but the sheets themselves, for a workbook of these sheets."""
    sheets = "".join(
        f'<sheet name="{name}" sheetId="{i}" r:id="rId{i}"/>' for i, name in enumerate(sheet_names, start=1)
    )
    sheet_rels = "".join(
        f'<Relationship Id="rId{i}" Type="{_REL_NS}/worksheet" Target="worksheets/sheet{i}.xml"/>'
        for i in range(1, len(sheet_names) + 1)
    )
    sheet_types = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for i in range(1, len(sheet_names) + 1)
    )
    created = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "_rels/.rels": (
            f'{_XML_DECLARATION}<Relationships xmlns="{_PKG_REL_NS}">'
            f'<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
            '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/'
            'metadata/core-properties" Target="docProps/core.xml"/>'
            f'<Relationship Id="rId3" Type="{_REL_NS}/extended-properties" Target="docProps/app.xml"/>'
            "</Relationships>"
        ),
        "docProps/core.xml": (
            f"{_XML_DECLARATION}<cp:coreProperties "
            'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<dc:creator>DataMind</dc:creator>"
            f'<dcterms:created xsi:type="dcterms:W3CDTF">{created}</dcterms:created>'
            "</cp:coreProperties>"
        ),
        "docProps/app.xml": (
            f"{_XML_DECLARATION}<Properties "
            'xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
            "<Application>DataMind</Application></Properties>"
        ),
        "xl/workbook.xml": (
            f'{_XML_DECLARATION}<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}">'
            f"<bookViews><workbookView/></bookViews><sheets>{sheets}</sheets></workbook>"
        ),
        "xl/_rels/workbook.xml.rels": (
            f'{_XML_DECLARATION}<Relationships xmlns="{_PKG_REL_NS}">{sheet_rels}'
            f'<Relationship Id="rId{len(sheet_names) + 1}" Type="{_REL_NS}/styles" Target="styles.xml"/>'
            "</Relationships>"
        ),
        "xl/styles.xml": _STYLES_XML,
        # Written last, like openpyxl does: only now is it known whether a Notice sheet exists.
        "[Content_Types].xml": (
            f"{_XML_DECLARATION}"
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            f"{sheet_types}"
            '<Override PartName="/xl/styles.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            '<Override PartName="/docProps/core.xml" '
            'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
            '<Override PartName="/docProps/app.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
            "</Types>"
        ),
    }


def xlsx_write(
    stream: RowStream,
    target: BinaryIO,
    *,
    max_rows: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> XlsxSummary:
    """Write a result stream (columns, then batches of JSON-safe rows) as an XLSX workbook.

    Numbers are numbers, booleans booleans, text inline strings; ISO dates in a column whose
    type is a date or timestamp become Excel dates. At most `max_rows` rows fit a sheet (header
    included, Excel's limit by default): past it the stream is abandoned, which stops the query,
    and a Notice sheet says the export was cut. `on_progress(rows)` is called every
    PROGRESS_EVERY rows.
    """
    max_rows = max_rows or XLSX_MAX_ROWS
    rows = iter(stream)
    written, capped = 0, False
    try:
        columns: list[ResultColumn] = next(rows)
        letters = [_column_letter(i) for i in range(len(columns))]
        styles = [_date_style(column.type) for column in columns]
        limit = max_rows - 1
        serials: dict[str, str | None] = {}
        # Level 1 deflate: most of the time goes into compression, and level 1 is several times
        # faster than the default for files only ~15% larger.
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
                sheet.write(_encoded(_sheet_head(columns, styles)))
                for batch in rows:
                    if not batch:
                        continue
                    if len(batch) > limit - written:
                        batch, capped = batch[: limit - written], True
                    if batch:
                        sheet.write(_encoded(_rows_xml(batch, written + 2, letters, styles, serials)))
                        before, written = written, written + len(batch)
                        if on_progress is not None and written // PROGRESS_EVERY > before // PROGRESS_EVERY:
                            on_progress(written)
                    if capped:
                        break
                sheet.write(b"</sheetData></worksheet>")
            sheet_names = ["Results"]
            if capped:
                archive.writestr("xl/worksheets/sheet2.xml", _notice_sheet(written, max_rows))
                sheet_names.append("Notice")
            for name, content in _package_parts(sheet_names).items():
                archive.writestr(name, content)
    finally:
        _close(rows)
    return XlsxSummary(rows_written=written, capped=capped)


def _encoded(markup: str) -> bytes:
    return markup.encode("utf-8")


def _close(iterator: Iterator) -> None:
    """Stop a generator early: for an engine's stream this ends the query and its connection."""
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


# Downloads ----------------------------------------------------------------------------------


@dataclass
class ExportDownload:
    """A file to send: iterate for its bytes. `close()` (Django's StreamingHttpResponse calls it
    when the response ends or the client goes away) stops the query or removes the temporary
    file, even if iteration never started."""

    chunks: Iterator[bytes]
    file_name: str
    content_type: str
    rows_written: int | None = None
    capped: bool = False
    on_close: Callable[[], None] | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        _close(self.chunks)
        if self.on_close is not None:
            on_close, self.on_close = self.on_close, None
            on_close()

    def async_chunks(self) -> "AsyncExportChunks":
        """The same bytes for an ASGI server (daphne). Given a synchronous iterator there,
        StreamingHttpResponse reads it whole into memory before sending a byte."""
        return AsyncExportChunks(self)


class AsyncExportChunks:
    """A download as an async iterator, each chunk read in the thread-sensitive executor (where
    the query runs). `close()` is what StreamingHttpResponse calls once the response is over."""

    def __init__(self, download: ExportDownload) -> None:
        self._download = download

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        read = sync_to_async(next, thread_sensitive=True)
        while (chunk := await read(self._download.chunks, None)) is not None:
            yield chunk

    def close(self) -> None:
        self._download.close()


def _export_format(fmt: str) -> ExportFormat:
    try:
        return ExportFormat(fmt)
    except ValueError:
        raise ValidationError({"format": f"Choose a format: {', '.join(ExportFormat.labels)}."})


def export_download_name(*, connection: Connection, fmt: str, at: dt.datetime | None = None) -> str:
    """e.g. sales-warehouse-20250314-0930.csv, in the organisation's time zone."""
    try:
        zone = zoneinfo.ZoneInfo(connection.org.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    stamp = timezone.localtime(at or timezone.now(), zone).strftime("%Y%m%d-%H%M")
    return f"{slugify(connection.name) or 'export'}-{stamp}.{ExportFormat(fmt).value}"


def _export_record(
    *, connection: Connection, user: User | None, sql: str, fmt: str, job: int | None = None
) -> None:
    metadata: dict[str, Any] = {"format": fmt, "statement": sql[:2000]}
    if job is not None:
        metadata["job"] = job
    audit_log_record(
        action="connection.export", org=connection.org, actor=user, target=connection, metadata=metadata
    )


def _primed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Start the query now, so that a failing statement raises here rather than halfway through
    an HTTP response that has already said 200."""
    first = next(chunks, None)
    return itertools.chain([] if first is None else [first], chunks)


def _file_chunks(file: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    try:
        file.seek(0)
        while chunk := file.read(chunk_size):
            yield chunk
    finally:
        file.close()


def export_stream(*, connection: Connection, sql: str, user: User | None, fmt: str) -> ExportDownload:
    """The whole result of one statement as a CSV or XLSX download.

    Raises UnsafeSQLError (refused, audited), ValidationError (the connection may no longer be
    reached) or EngineError (the database failed) before the first byte is handed out.
    """
    fmt = _export_format(fmt)
    safe_sql = sql_make_safe(connection=connection, sql=sql, user=user)
    spec = connection_spec(connection)
    engine = get_engine(connection.engine)
    _export_record(connection=connection, user=user, sql=sql, fmt=fmt)
    name = export_download_name(connection=connection, fmt=fmt)
    if fmt == ExportFormat.CSV:
        chunks = rechunked(engine.stream_csv(spec, safe_sql))
        return ExportDownload(_primed(chunks), name, CONTENT_TYPES[fmt], on_close=chunks.close)
    file = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_SIZE, prefix="datamind-export-")  # noqa: SIM115
    try:
        summary = xlsx_write(engine.stream_rows(spec, safe_sql), file)
    except BaseException:
        file.close()
        raise
    return ExportDownload(
        _file_chunks(file),
        name,
        CONTENT_TYPES[fmt],
        rows_written=summary.rows_written,
        capped=summary.capped,
        on_close=file.close,
    )


# Export jobs --------------------------------------------------------------------------------


def _exports_dir() -> Path:
    path = Path(settings.EXPORTS_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_job_create(*, connection: Connection, user: User | None, sql: str, fmt: str) -> ExportJob:
    """Queue an export of a whole result to a file. A refused statement raises UnsafeSQLError
    now, and nothing is queued."""
    from apps.connections.tasks import export_job_task

    fmt = _export_format(fmt)
    # Outside the transaction below: a refusal is audited, and its record must not be rolled back
    # with the job that was never created.
    sql_make_safe(connection=connection, sql=sql, user=user)
    with transaction.atomic():
        job = ExportJob.objects.create(
            org=connection.org, connection=connection, user=user, sql=sql, format=fmt
        )
        _export_record(connection=connection, user=user, sql=sql, fmt=fmt, job=job.pk)
        transaction.on_commit(lambda: export_job_task.delay(job.pk))
    return job


def _progress_recorder(job_id: int) -> Callable[[int], None]:
    def record(rows: int) -> None:
        ExportJob.objects.filter(pk=job_id, status=ExportStatus.RUNNING).update(rows_written=rows)

    return record


def _write_csv(chunks: Iterable[bytes], file: BinaryIO, on_progress: Callable[[int], None]) -> int:
    counter = CsvRecordCounter()
    reported = 0
    for chunk in chunks:
        file.write(chunk)
        counter.feed(chunk)
        if counter.records - reported >= PROGRESS_EVERY:
            reported = counter.records
            on_progress(max(0, reported - 1))
    return max(0, counter.records - 1)  # the header is a record too


def _job_fail(job_id: int, error: str) -> None:
    ExportJob.objects.filter(pk=job_id).update(
        status=ExportStatus.FAILED, error=error, finished_at=timezone.now()
    )


def export_job_run(*, job_id: int, retry_allowed: bool = False) -> ExportJob:
    """Run a queued export into EXPORTS_DIR. Idempotent: only the run that moves the job from
    pending to running does anything; a second delivery of the same task finds it taken.

    Ends READY (file_name set, rows_written final) or FAILED with a message for a person. With
    `retry_allowed`, an error that another attempt could fix (a timeout, a lost connection)
    puts the job back to pending and is raised again, for the task to retry later.
    """
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportStatus.PENDING).update(
        status=ExportStatus.RUNNING, rows_written=0, error=""
    )
    job = ExportJob.objects.select_related("connection__org", "user").get(pk=job_id)
    if not claimed:
        return job
    name = f"{uuid.uuid4().hex}.{job.format}"
    directory = _exports_dir()
    partial = directory / f".{name}.part"
    on_progress = _progress_recorder(job_id)
    capped = False
    try:
        connection = job.connection
        safe_sql = sql_make_safe(connection=connection, sql=job.sql, user=job.user)
        spec = connection_spec(connection)
        engine = get_engine(connection.engine)
        with partial.open("wb") as file:
            if job.format == ExportFormat.XLSX:
                summary = xlsx_write(engine.stream_rows(spec, safe_sql), file, on_progress=on_progress)
                rows, capped = summary.rows_written, summary.capped
            else:
                rows = _write_csv(rechunked(engine.stream_csv(spec, safe_sql)), file, on_progress)
        os.replace(partial, directory / name)
    except EngineError as exc:
        partial.unlink(missing_ok=True)
        if exc.retryable and retry_allowed:
            ExportJob.objects.filter(pk=job_id, status=ExportStatus.RUNNING).update(
                status=ExportStatus.PENDING, rows_written=0
            )
            logger.info("export_job_retry", job_id=job_id, error=exc.detail)
            raise
        _job_fail(job_id, exc.detail)
    except DataMindError as exc:
        partial.unlink(missing_ok=True)
        _job_fail(job_id, exc.detail)
    except ValidationError as exc:
        partial.unlink(missing_ok=True)
        _job_fail(job_id, " ".join(exc.messages))
    except OSError as exc:
        partial.unlink(missing_ok=True)
        logger.error("export_job_write_failed", job_id=job_id, error=str(exc))
        _job_fail(job_id, f"The export file could not be written ({exc.strerror or exc}).")
    except Exception:
        partial.unlink(missing_ok=True)
        _job_fail(job_id, "The export failed unexpectedly.")
        raise
    else:
        ExportJob.objects.filter(pk=job_id).update(
            status=ExportStatus.READY,
            file_name=name,
            rows_written=rows,
            capped=capped,
            finished_at=timezone.now(),
        )
        logger.info("export_job_ready", job_id=job_id, rows=rows, capped=capped)
    job.refresh_from_db()
    return job


def export_job_file(job: ExportJob) -> Path:
    """The file of a ready export, or ExportUnavailable."""
    if job.status != ExportStatus.READY or not job.file_name:
        raise ExportUnavailable("This export is not ready yet.")
    directory = Path(settings.EXPORTS_DIR).resolve()
    path = (directory / job.file_name).resolve()
    if path.parent != directory or not path.is_file():
        raise ExportUnavailable("This export has expired: run it again.")
    return path


_EXPORT_FILE = re.compile(r"^\.?[0-9a-f]{32}\.(csv|xlsx)(\.part)?$")


def export_files_cleanup(*, max_age: dt.timedelta = EXPORT_MAX_AGE) -> int:
    """Remove export files older than `max_age`; return how many were removed.

    Jobs still running after that long lost their worker (a killed worker's job stays claimed),
    so they are marked failed and their user can run them again.
    """
    cutoff = timezone.now() - max_age
    ExportJob.objects.filter(
        status__in=[ExportStatus.PENDING, ExportStatus.RUNNING], created_at__lt=cutoff
    ).update(
        status=ExportStatus.FAILED,
        error="The export stopped before it finished: run it again.",
        finished_at=timezone.now(),
    )
    directory = Path(settings.EXPORTS_DIR)
    if not directory.is_dir():
        return 0
    removed = 0
    for path in directory.iterdir():
        if not _EXPORT_FILE.match(path.name) or not path.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff.timestamp():
                path.unlink()
                removed += 1
    if removed:
        logger.info("export_files_removed", count=removed)
    return removed
