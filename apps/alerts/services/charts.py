"""Vega-Lite charts of a metric: its values, the band the condition called normal, the fired points.

One spec serves the pages (drawn by vega-embed), the e-mails (rendered to PNG on the server) and
the "Test now" preview. Data is always ours, inline.
"""

from typing import Any

from apps.chat.services.charts import VEGA_LITE_SCHEMA

MAX_POINTS = 1000


def chart_point(t: str, value: float | None, *, low=None, high=None, fired: bool = False) -> dict[str, Any]:
    return {"t": t, "value": value, "low": low, "high": high, "fired": fired}


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
