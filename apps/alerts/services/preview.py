""" "Test now": the metric's current value and what the condition would have said over its history."""

from dataclasses import dataclass, field
from typing import Any

from apps.accounts.models import User
from apps.alerts import detectors
from apps.alerts.detectors import Series
from apps.alerts.services.charts import anomaly_points, chart_point, series_chart
from apps.alerts.services.metrics import Metric, metric_read
from apps.connections.models import Connection
from apps.connections.services.execution import sql_make_safe

# Threshold and change verdicts are cheap, but judged point by point; this bounds the work.
PREVIEW_POINTS = 400


@dataclass
class Preview:
    value: float | None
    sentence: str
    triggered: bool
    is_series: bool
    judged: int = 0
    fired: int = 0
    chart: dict[str, Any] = field(default_factory=dict)


def _stepwise_points(metric: Metric, kind: str, config: dict, name: str) -> list[dict[str, Any]]:
    points = []
    start = max(0, len(metric.values) - PREVIEW_POINTS)
    for end in range(start + 1, len(metric.values) + 1):
        series = Series(metric.values[:end], (metric.timestamps or [])[:end])
        verdict = detectors.evaluate(kind, config, series, metric=name)
        low, high = verdict.band or (None, None)
        stamp = metric.timestamps[end - 1].isoformat()
        points.append(chart_point(stamp, metric.values[end - 1], low=low, high=high, fired=verdict.triggered))
    return points


def alert_preview(
    *, user: User, connection: Connection, sql: str, name: str, condition_kind: str, condition_config: dict
) -> Preview:
    """Raises ValidationError (settings), UnsafeSQLError, EngineError or MetricShapeError."""
    sql_make_safe(connection=connection, sql=sql, user=user)
    metric = metric_read(connection=connection, sql=sql)
    verdict = detectors.evaluate(condition_kind, condition_config, metric.series(), metric=name)
    preview = Preview(verdict.value, verdict.sentence, verdict.triggered, metric.is_series)
    if not metric.is_series:
        return preview
    if condition_kind == "anomaly":
        config = detectors.get_condition("anomaly").from_dict(condition_config).config
        points = anomaly_points(metric.values, metric.timestamps or [], config, would_fire=True)
    else:
        points = _stepwise_points(metric, condition_kind, condition_config, name)
    preview.judged = len(points)
    preview.fired = sum(p["fired"] for p in points)
    preview.chart = series_chart(points, metric=name)
    return preview
