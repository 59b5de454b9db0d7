"""Vega-Lite charts of a metric: its values, the band the condition called normal, the fired points.

One spec serves the pages (drawn by vega-embed), the e-mails (rendered to PNG on the server) and
the "Test now" preview. Data is always ours, inline.
"""

import math
from datetime import datetime
from typing import Any

from apps.alerts.detectors import AnomalyConfig, alert_times
from apps.alerts.detectors.anomaly import _orient, _prepare
from apps.alerts.detectors.decomposition import analyse, to_units
from apps.chat.services.charts import VEGA_LITE_SCHEMA

MAX_POINTS = 1000


def chart_point(t: str, value: float | None, *, low=None, high=None, fired: bool = False) -> dict[str, Any]:
    return {"t": t, "value": value, "low": low, "high": high, "fired": fired}


def anomaly_points(
    values: list[float | None], timestamps: list[datetime], config: AnomalyConfig, *, would_fire: bool
) -> list[dict[str, Any]]:
    """Each value with the band the anomaly condition calls normal at that point, judged on the
    history before it; with `would_fire`, the points where it would have notified marked fired."""
    y, times, _ = _prepare(values, timestamps)
    stamps = [t for t, v in zip(timestamps, values, strict=True) if v is not None]
    analysis = analyse(y, times, min_history=config.min_history)
    spreads = config.threshold * analysis.scale
    scores = _orient(analysis.z, config.direction).tolist()
    fired = set(alert_times(scores, stamps, config)) if would_fire else set()
    points = []
    for i, (stamp, value) in enumerate(zip(stamps, y, strict=True)):
        centre, spread = analysis.expected[i], spreads[i]
        low = high = None
        if math.isfinite(centre) and math.isfinite(spread):
            logged = bool(analysis.logged[i])
            low, high = to_units(centre - spread, logged), to_units(centre + spread, logged)
        points.append(chart_point(stamp.isoformat(), float(value), low=low, high=high, fired=i in fired))
    return points


def series_chart(points: list[dict[str, Any]], *, metric: str, height: int = 220) -> dict[str, Any]:
    """A line of `points` ({t, value, low, high, fired}) with the band shaded and fired points red."""
    points = points[-MAX_POINTS:]
    x = {"field": "t", "type": "temporal", "title": None}
    layers: list[dict[str, Any]] = []
    banded = sum(p.get("low") is not None for p in points)
    if banded:
        # One banded point (a notification's judged value) gets a bar; a run of them, an area.
        mark = (
            {"type": "area", "opacity": 0.18}
            if banded > 1
            else {"type": "rule", "strokeWidth": 8, "opacity": 0.3}
        )
        layers.append(
            {
                "mark": {**mark, "color": "#2f6fed"},
                "transform": [{"filter": "datum.low != null"}],
                "encoding": {"x": x, "y": {"field": "low", "type": "quantitative"}, "y2": {"field": "high"}},
            }
        )
    layers.append(
        {
            "mark": {"type": "line", "point": len(points) < 60, "color": "#2f6fed"},
            "encoding": {
                "x": x,
                "y": {"field": "value", "type": "quantitative", "title": metric, "axis": {"format": "~s"}},
                "tooltip": [{"field": "t", "type": "temporal"}, {"field": "value", "type": "quantitative"}],
            },
        }
    )
    layers.append(
        {
            "mark": {"type": "point", "filled": True, "size": 70, "color": "#d93025"},
            "transform": [{"filter": "datum.fired"}],
            "encoding": {"x": x, "y": {"field": "value", "type": "quantitative"}},
        }
    )
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "width": "container",
        "height": height,
        "data": {"values": points},
        "layer": layers,
    }


def sparkline_path(values: list[float | None], *, width: int = 120, height: int = 28) -> str:
    """An SVG polyline's points for a list page: cheap, no script."""
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return ""
    low, high = min(present), max(present)
    span = (high - low) or 1.0
    step = width / (len(values) - 1)
    return " ".join(
        f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}"
        for i, v in enumerate(values)
        if v is not None
    )
