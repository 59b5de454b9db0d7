"""Reading an alert's metric: its SQL through both safety locks, its result as a series.

The SQL returns one number (one row, one numeric column) or rows of (timestamp, value): the first
date-like column and the last numeric one. A lone number's history is the alert's own past
events, so either kind is judged against where it has been.
"""

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from apps.alerts.detectors import Series
from apps.connections.models import Connection
from apps.connections.services.execution import query_execute
from datamind.lib.exceptions import DataMindError

ROWS_KEPT = 200
# Enough past points for the anomaly detector's weekly profile on hourly data (8 weeks).
SERIES_MAX_POINTS = 8 * 7 * 24


class MetricShapeError(DataMindError):
    """The metric's SQL must return one number, or rows of a timestamp and a number."""

    code = "metric_shape"


@dataclass
class Metric:
    values: list[float | None]
    timestamps: list[datetime] | None
    columns: list[dict[str, str]] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)

    @property
    def is_series(self) -> bool:
        return self.timestamps is not None

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None

    def series(self) -> Series:
        return Series(self.values, self.timestamps)

    def points(self) -> list[list[Any]]:
        if self.timestamps is None:
            return []
        return [[t.isoformat(), v] for t, v in zip(self.timestamps, self.values, strict=True)]


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def metric_from_rows(columns: list[dict[str, str]], rows: list[list[Any]]) -> Metric:
    kept = {"columns": columns, "rows": rows[:ROWS_KEPT]}
    if not rows or not columns:
        raise MetricShapeError("The metric's query returned no rows.")
    if len(rows) == 1 and len(columns) == 1:
        value = _number(rows[0][0])
        if value is None and rows[0][0] is not None:
            raise MetricShapeError("The metric's query must return a number.")
        return Metric([value], None, **kept)
    first = rows[0]
    time_index = next((i for i, v in enumerate(first) if _timestamp(v) is not None), None)
    value_index = next((i for i in reversed(range(len(first))) if _number(first[i]) is not None), None)
    if time_index is None or value_index is None or time_index == value_index:
        raise MetricShapeError()
    points = sorted(
        ((t, _number(row[value_index])) for row in rows if (t := _timestamp(row[time_index])) is not None),
        key=lambda p: p[0].replace(tzinfo=None),
    )[-SERIES_MAX_POINTS:]
    return Metric([v for _, v in points], [t for t, _ in points], **kept)


def metric_read(*, connection: Connection, sql: str) -> Metric:
    """Run the metric's SQL fresh (never from the results cache: an alert watches the present).

    Raises UnsafeSQLError, EngineError (with `retryable`) or MetricShapeError.
    """
    executed = query_execute(connection=connection, sql=sql, use_cache=False)
    result = executed.result
    columns = [{"name": c.name, "type": c.type} for c in result.columns]
    return metric_from_rows(columns, result.rows)
