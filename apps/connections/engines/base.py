"""The interface every database engine implements, and the errors it raises.

Engines know nothing of Django models: they receive a `ConnectionSpec` (plain values, password
decrypted) so they can run in a worker thread, a Celery task or a benchmark alike. Each engine is
the *second lock* of SQL safety: whatever SQL reaches it runs inside the database's own read-only
mode with a timeout, even if the validator (the first lock) were bypassed.
"""

import datetime as dt
import decimal
import math
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from math import isfinite
from pathlib import Path
from typing import Any, ClassVar

from datamind.lib.exceptions import DataMindError

# Text columns whose values are never sampled into the catalogue (or shown to an LLM).
SENSITIVE_NAME_PARTS = (
    "password", "passwd", "secret", "token", "apikey", "api_key", "hash", "salt", "email", "phone",
    "mobile", "ssn", "social_security", "passport", "iban", "card", "credit", "cvv", "address",
    "birth", "dob", "salary", "ip_address",
)  # fmt: skip
SAMPLE_LIMIT = 5
SAMPLE_MAX_DISTINCT = 50
SAMPLE_MAX_LENGTH = 60


class EngineError(DataMindError):
    """A database said no. `retryable` tells whether trying again later could help."""

    code = "database_error"
    status = 400


class ConnectionFailed(EngineError):
    """Could not connect to the database."""

    code = "connection_failed"


class QueryFailed(EngineError):
    """The database refused or failed the query."""

    code = "query_error"


class QueryTimeout(EngineError):
    """The query ran past its time limit and was cancelled on the server."""

    code = "timeout"
    retryable = True


class QueryCancelled(EngineError):
    """The query was stopped."""

    code = "cancelled"


@dataclass(frozen=True)
class ConnectionSpec:
    """Everything an engine needs to reach one database (secrets included: never log it)."""

    engine: str
    host: str = ""
    port: int | None = None
    database: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    sslmode: str = "prefer"
    schema: str = ""
    statement_timeout_s: float = 30
    connect_timeout_s: float = 10
    file_path: Path | None = None


@dataclass
class ResultColumn:
    name: str
    type: str


@dataclass
class QueryResult:
    columns: list[ResultColumn]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    elapsed_ms: int

    @classmethod
    def from_fetched(
        cls,
        columns: list[ResultColumn],
        fetched: list,
        *,
        row_cap: int,
        started: float,
        convert: Callable[[list], list] | None = None,
    ) -> "QueryResult":
        """The result of `fetched` (at most row_cap + 1 rows: one more than the cap shows that it
        was cut), made JSON-safe by `convert` (convert_rows unless the engine knows better)."""
        rows = (convert or convert_rows)(fetched[:row_cap])
        return cls(
            columns=columns,
            rows=rows,
            row_count=len(rows),
            truncated=len(fetched) > row_cap,
            elapsed_ms=round((time.perf_counter() - started) * 1000),
        )

    def as_dict(self) -> dict:
        return {
            "columns": [{"name": c.name, "type": c.type} for c in self.columns],
            "rows": self.rows,
            "row_count": self.row_count,
            "truncated": self.truncated,
            "elapsed_ms": self.elapsed_ms,
        }


@dataclass
class ColumnInfo:
    name: str
    position: int
    data_type: str
    nullable: bool = True
    is_primary_key: bool = False
    references: str = ""
    comment: str = ""
    samples: list[str] = field(default_factory=list)


@dataclass
class TableInfo:
    schema: str
    name: str
    is_view: bool = False
    comment: str = ""
    row_estimate: int | None = None
    columns: list[ColumnInfo] = field(default_factory=list)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


# Registers a function that stops the running query (called from another thread).
CancelRegistrar = Callable[[Callable[[], None]], None]


class Engine(ABC):
    """One database engine. Subclasses register themselves with `engines.register`."""

    name: ClassVar[str]
    label: ClassVar[str]
    dialect: ClassVar[str]
    default_port: ClassVar[int | None] = None
    is_file_based: ClassVar[bool] = False

    @abstractmethod
    def test(self, spec: ConnectionSpec) -> str:
        """Connect and run a trivial read; return the server's description. Raises EngineError."""

    @abstractmethod
    def introspect(self, spec: ConnectionSpec, *, excluded_columns: frozenset[str]) -> list[TableInfo]:
        """Tables, views and columns with keys, comments, estimates and samples, in a few queries."""

    @abstractmethod
    def execute(
        self, spec: ConnectionSpec, sql: str, *, row_cap: int, on_cancel: CancelRegistrar | None = None
    ) -> QueryResult:
        """Run one validated query read-only with the spec's timeout; keep at most row_cap rows
        (the validator asked for row_cap + 1 so `truncated` is detectable)."""

    @abstractmethod
    def stream_rows(
        self, spec: ConnectionSpec, sql: str, *, batch_size: int = 5000
    ) -> Iterator[list[ResultColumn] | list[list[Any]]]:
        """Yield the columns first, then batches of JSON-safe rows, in constant memory."""

    def stream_csv(self, spec: ConnectionSpec, sql: str) -> Iterator[bytes]:
        """CSV with a header row, in chunks. Engines with a native COPY override this."""
        from apps.connections.services.export import csv_chunks

        return csv_chunks(self.stream_rows(spec, sql))


def json_safe(value: Any) -> Any:
    """A value a JSON encoder accepts and a person reads the same way the database meant it."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if _is_text(raw):
            return raw.decode("utf-8")
        return "0x" + raw[:64].hex() + ("…" if len(raw) > 64 else "")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)


_PASS_THROUGH = (type(None), bool, int, str)


def convert_rows(rows: list[tuple]) -> list:
    """Rows made JSON-safe, converting only the columns that need it.

    Most columns hold ints and strings that need nothing; checking every value of every row
    would double the cost of a large result, so a column is converted only if some value in it
    is of another type. Rows that need no conversion stay tuples (JSON encodes them as arrays).
    """
    if not rows:
        return []
    width = len(rows[0])
    needs = [i for i in range(width) if any(type(row[i]) not in _PASS_THROUGH for row in rows)]
    if not needs:
        return rows
    converted = []
    for row in rows:
        values = list(row)
        for i in needs:
            values[i] = json_safe(values[i])
        converted.append(values)
    return converted


def finite_rows(rows: list, float_columns: list[int]) -> list:
    """Rows whose NaN and infinite floats (which JSON cannot carry) are replaced by None.

    Only the float columns are looked at, and rows are copied only when one holds such a value.
    """
    if not float_columns or all(
        isfinite(row[i]) for row in rows for i in float_columns if row[i] is not None
    ):
        return rows
    return [
        [None if i in float_columns and v is not None and not isfinite(v) else v for i, v in enumerate(row)]
        for row in rows
    ]


def _is_text(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def is_sensitive_column(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SENSITIVE_NAME_PARTS)
