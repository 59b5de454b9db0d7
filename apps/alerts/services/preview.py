""" "Test now": the metric's current value and what the condition would have said over its history."""

import math
from dataclasses import dataclass, field
from typing import Any

from apps.accounts.models import User
from apps.alerts import detectors
from apps.alerts.detectors import AnomalyConfig, Series, alert_times
from apps.alerts.detectors.anomaly import _orient, _prepare
from apps.alerts.detectors.decomposition import analyse, to_units
from apps.alerts.services.charts import chart_point, series_chart
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


def _anomaly_points(metric: Metric, config: AnomalyConfig) -> list[dict[str, Any]]:
    y, times, _ = _prepare(metric.values, metric.timestamps)
    stamps = [t for t, v in zip(metric.timestamps or [], metric.values, strict=True) if v is not None]
    analysis = analyse(y, times, min_history=config.min_history)
    k = config.threshold
    scores = _orient(analysis.z, config.direction)
    fired = set(alert_times(scores.tolist(), stamps, config))
    points = []
    for i, (stamp, value) in enumerate(zip(stamps, y, strict=True)):
        centre, spread = analysis.expected[i], k * analysis.scale[i]
        band = (None, None)
        if math.isfinite(centre) and math.isfinite(spread):
            logged = bool(analysis.logged[i])
            band = (to_units(centre - spread, logged), to_units(centre + spread, logged))
        points.append(
            chart_point(stamp.isoformat(), float(value), low=band[0], high=band[1], fired=i in fired)
        )
    return points


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
        points = _anomaly_points(metric, config)
    else:
        points = _stepwise_points(metric, condition_kind, condition_config, name)
    preview.judged = len(points)
    preview.fired = sum(p["fired"] for p in points)
    preview.chart = series_chart(points, metric=name)
    return preview
