"""Choosing and checking the chart of an answer.

The model may propose a Vega-Lite spec (mark and encoding only). We keep it when every field it
encodes exists in our result; otherwise we choose from the result's shape. Either way the data
in the spec comes from our result, never from the model.
"""

import re
from typing import Any

VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
CHART_MAX_POINTS = 500
_ALLOWED_MARKS = {"bar", "line", "area", "point", "circle", "square", "tick", "rule", "arc", "rect", "text"}
_DATE_LIKE = re.compile(r"^\d{4}-\d{2}(-\d{2})?([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?)?$")
_TEMPORAL_TYPES = ("date", "time", "timestamp")
_NUMERIC_TYPES = (
    "int",
    "numeric",
    "decimal",
    "float",
    "double",
    "real",
    "number",
    "money",
    "bigint",
    "hugeint",
)


def _kind(column: dict[str, str], values: list[Any]) -> str:
    """quantitative, temporal or nominal, from the database type and then the values."""
    type_name = (column.get("type") or "").lower()
    present = [v for v in values if v is not None]
    if any(t in type_name for t in _TEMPORAL_TYPES) and "interval" not in type_name:
        return "temporal"
    if any(t in type_name for t in _NUMERIC_TYPES):
        return "quantitative"
    if present and all(isinstance(v, bool) for v in present):
        return "nominal"
    if present and all(isinstance(v, (int, float)) for v in present):
        return "quantitative"
    if present and all(isinstance(v, str) and _DATE_LIKE.match(v) for v in present):
        return "temporal"
    return "nominal"


def column_kinds(columns: list[dict[str, str]], rows: list[list[Any]]) -> list[str]:
    """The Vega-Lite type (quantitative, temporal, nominal) of each column of a result."""
    return [_kind(c, [r[i] for r in rows]) for i, c in enumerate(columns)]


def _records(columns: list[dict[str, str]], rows: list[list[Any]]) -> list[dict[str, Any]]:
    names = [c["name"] for c in columns]
    return [dict(zip(names, row, strict=False)) for row in rows[:CHART_MAX_POINTS]]


def _field(name: str, kind: str) -> dict[str, Any]:
    encoding: dict[str, Any] = {"field": name, "type": kind}
    if kind == "quantitative":
        encoding["axis"] = {"format": "~s"}
    return encoding


def chart_from_shape(columns: list[dict[str, str]], rows: list[list[Any]]) -> dict[str, Any]:
    """time + measure: line; category + measure: bar; one number: KPI; otherwise a table."""
    if not columns or not rows:
        return {"kind": "table"}
    kinds = column_kinds(columns, rows)
    measures = [i for i, k in enumerate(kinds) if k == "quantitative"]
    if len(rows) == 1 and len(columns) == 1 and measures:
        return {"kind": "kpi", "value": rows[0][0], "label": columns[0]["name"]}
    if not measures:
        return {"kind": "table"}
    measure = measures[-1]
    others = [i for i in range(len(columns)) if i != measure]
    temporal = [i for i in others if kinds[i] == "temporal"]
    nominal = [i for i in others if kinds[i] == "nominal"]
    spec: dict[str, Any]
    if temporal:
        x = temporal[0]
        spec = {
            "mark": {"type": "line", "point": len(rows) <= 60},
            "encoding": {
                "x": _field(columns[x]["name"], "temporal"),
                "y": _field(columns[measure]["name"], "quantitative"),
            },
        }
        if nominal:
            spec["encoding"]["color"] = _field(columns[nominal[0]]["name"], "nominal")
    elif nominal:
        category = nominal[0]
        spec = {
            "mark": "bar",
            "encoding": {
                "y": {**_field(columns[category]["name"], "nominal"), "sort": "-x"},
                "x": _field(columns[measure]["name"], "quantitative"),
            },
        }
        if len(nominal) > 1:
            spec["encoding"]["color"] = _field(columns[nominal[1]]["name"], "nominal")
    elif len(measures) >= 2:
        spec = {
            "mark": "point",
            "encoding": {
                "x": _field(columns[measures[0]]["name"], "quantitative"),
                "y": _field(columns[measures[1]]["name"], "quantitative"),
            },
        }
    else:
        return {"kind": "table"}
    return _with_data(spec, columns, rows)


def _with_data(spec: dict[str, Any], columns: list[dict[str, str]], rows: list[list[Any]]) -> dict[str, Any]:
    return {
        "kind": "vega-lite",
        "spec": {
            "$schema": VEGA_LITE_SCHEMA,
            "width": "container",
            "height": 280,
            **spec,
            "data": {"values": _records(columns, rows)},
        },
    }


def _model_spec_usable(spec: Any, names: set[str]) -> bool:
    if not isinstance(spec, dict) or not isinstance(spec.get("encoding"), dict):
        return False
    mark = spec.get("mark")
    mark_type = mark.get("type") if isinstance(mark, dict) else mark
    if mark_type not in _ALLOWED_MARKS:
        return False
    for channel in spec["encoding"].values():
        if not isinstance(channel, dict):
            return False
        field = channel.get("field")
        if field is not None and field not in names:
            return False
    return True


def chart_for_result(
    columns: list[dict[str, str]], rows: list[list[Any]], model_spec: dict | None = None
) -> dict[str, Any]:
    """The chart to show: the model's proposal if it fits our result, else one from its shape."""
    names = {c["name"] for c in columns}
    if rows and _model_spec_usable(model_spec, names):
        kept = {k: model_spec[k] for k in ("mark", "encoding", "title") if k in model_spec}
        return _with_data(kept, columns, rows)
    return chart_from_shape(columns, rows)
