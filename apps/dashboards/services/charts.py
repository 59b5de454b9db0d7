"""How a widget shows its result: the Vega-Lite spec of a chart, a KPI, and server-side images.

A widget keeps only its encoding ({"mark", "x", "y", "color", "aggregate"}); the spec is built
from it and the rows each time, so the chart on the page, the PNG and SVG downloads and the
e-mailed images are drawn from the same spec. Images come from vl-convert (no browser).
"""

from typing import Any

import vl_convert

from apps.chat.services.charts import CHART_MAX_POINTS, VEGA_LITE_SCHEMA, chart_from_shape, column_kinds

MARKS = ("bar", "line", "area", "point", "arc")
AGGREGATES = ("", "sum", "mean", "count", "min", "max")
SPARKLINE_POINTS = 60
SPARKLINE_WIDTH = 120
SPARKLINE_HEIGHT = 32
IMAGE_WIDTH = 640
IMAGE_HEIGHT = 300
PNG_SCALE = 2


def encoding_from_spec(chart: dict) -> dict[str, str]:
    """The editable encoding of a chart as the chat answer chose it (its Vega-Lite spec)."""
    spec = chart.get("spec") or {}
    mark = spec.get("mark")
    mark = mark.get("type") if isinstance(mark, dict) else mark
    encoding = spec.get("encoding") or {}

    def field(channel: str) -> str:
        value = encoding.get(channel)
        return value.get("field", "") if isinstance(value, dict) else ""

    x, y = field("x"), field("y")
    # A horizontal bar puts the category on y; the widget's x is always the category.
    if mark == "bar" and (encoding.get("x") or {}).get("type") == "quantitative":
        x, y = y, x
    return {
        "mark": mark if mark in MARKS else "bar",
        "x": x,
        "y": y,
        "color": field("color"),
        "aggregate": "",
    }


def _records(columns: list[dict], rows: list[list]) -> list[dict[str, Any]]:
    names = [c["name"] for c in columns]
    return [dict(zip(names, row, strict=False)) for row in rows[:CHART_MAX_POINTS]]


def chart_spec(encoding: dict, columns: list[dict], rows: list[list]) -> dict[str, Any] | None:
    """The Vega-Lite spec for a result: the widget's encoding when its fields exist in the result,
    else the one chosen from the result's shape; None when the result is not chartable."""
    names = [c["name"] for c in columns]
    x, y = encoding.get("x"), encoding.get("y")
    if not rows or x not in names or y not in names:
        shaped = chart_from_shape(columns, rows)
        return shaped.get("spec")
    kinds = dict(zip(names, column_kinds(columns, rows), strict=True))
    mark = encoding.get("mark") if encoding.get("mark") in MARKS else "bar"
    measure: dict[str, Any] = {"field": y, "type": "quantitative", "axis": {"format": "~s"}}
    if encoding.get("aggregate") in AGGREGATES[1:]:
        measure["aggregate"] = encoding["aggregate"]
    category = {"field": x, "type": kinds[x]}
    spec_encoding: dict[str, Any]
    if mark == "arc":
        spec_encoding = {"theta": {k: v for k, v in measure.items() if k != "axis"}, "color": category}
    else:
        spec_encoding = {"x": category, "y": measure}
        color = encoding.get("color")
        if color in names and color not in (x, y):
            spec_encoding["color"] = {"field": color, "type": kinds[color]}
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "width": "container",
        "height": 240,
        "mark": {"type": mark, "tooltip": True},
        "encoding": spec_encoding,
        "data": {"values": _records(columns, rows)},
    }


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _sparkline(values: list[float]) -> str:
    """SVG polyline points for a series, scaled into the sparkline's box."""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = SPARKLINE_WIDTH / max(len(values) - 1, 1)
    return " ".join(
        f"{i * step:.1f},{SPARKLINE_HEIGHT - (v - low) / span * SPARKLINE_HEIGHT:.1f}"
        for i, v in enumerate(values)
    )


def kpi(encoding: dict, columns: list[dict], rows: list[list]) -> dict[str, Any] | None:
    """The value, its change against the previous period and a sparkline.

    A series (one row per period, oldest first) gives the last value against the one before; a
    single row with two numbers reads them as this period and the previous one.
    """
    if not rows or not columns:
        return None
    names = [c["name"] for c in columns]
    kinds = column_kinds(columns, rows)
    measures = [i for i, k in enumerate(kinds) if k == "quantitative"]
    if encoding.get("y") in names:
        measures = [names.index(encoding["y"]), *[i for i in measures if names[i] != encoding["y"]]]
    if not measures:
        return None
    first = measures[0]
    series = [v for row in rows if (v := _numeric(row[first])) is not None]
    if not series:
        return None
    value = series[-1]
    previous = None
    if len(rows) > 1 and len(series) > 1:
        previous = series[-2]
    elif len(rows) == 1 and len(measures) > 1:
        previous = _numeric(rows[0][measures[1]])
    change = None
    if previous not in (None, 0):
        change = (value - previous) / abs(previous) * 100
    tail = series[-SPARKLINE_POINTS:]
    return {
        "label": names[first],
        "value": value,
        "previous": previous,
        "change_pct": change,
        "sparkline": _sparkline(tail) if len(tail) > 1 else "",
    }


def image_spec(spec: dict) -> dict:
    # "container" means the page's width; an image needs a fixed one.
    return {**spec, "width": IMAGE_WIDTH, "height": IMAGE_HEIGHT, "background": "white"}


def chart_png(spec: dict) -> bytes:
    return vl_convert.vegalite_to_png(vl_spec=image_spec(spec), scale=PNG_SCALE)


def chart_svg(spec: dict) -> str:
    return vl_convert.vegalite_to_svg(vl_spec=image_spec(spec))
