"""The analysis task: a few sentences about a result, citing only numbers it contains.

The narrator reads the SQL that produced the result to tell groupings from measures and to know
whether the measure adds up (a sum or a count can be totalled and shared out; an average,
minimum or maximum cannot). Everything it says is computed from the rows it was given; when it
was given only a preview of a longer result it says so, rather than presenting a partial total
as the whole.
"""

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlglot
from sqlglot import exp

from apps.chat.providers.base import QuestionContext
from apps.chat.providers.builtin.sqlgen import normalise_dialect
from apps.chat.providers.builtin.vocabulary import GRAINS, plural

_ISO_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ]00:00:00(?:\.0+)?(?:[+-]00(?::?00)?|Z)?)?$")


@dataclass
class _Column:
    index: int
    name: str
    is_measure: bool
    additive: bool | None
    grain: str | None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def format_number(value: float) -> str:
    if abs(value - round(value)) < 1e-9 and abs(value) < 1e15:
        return f"{round(value):,}"
    if abs(value) >= 100:
        return f"{value:,.2f}"
    return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"


def _percent(value: float) -> str:
    return f"{value:.1f} %"


def _label_value(value: Any, grain: str | None) -> str:
    """A grouping value as a person reads it: 2025-03-01 by month is "2025-03"."""
    if value is None:
        return "(none)"
    text = str(value)
    match = _ISO_DAY.match(text)
    if match:
        year, month, day = match.groups()
        if grain == "year":
            return year
        if grain == "quarter":
            return f"{year} Q{(int(month) - 1) // 3 + 1}"
        if grain == "month":
            return f"{year}-{month}"
        return f"{year}-{month}-{day}"
    return text


def _unwrapped(tree: exp.Expression | None) -> exp.Expression | None:
    """The query inside SELECT * FROM (<query>) AS _q LIMIT n, as the executor may wrap it."""
    while (
        isinstance(tree, exp.Select)
        and len(tree.expressions) == 1
        and isinstance(tree.expressions[0], exp.Star)
    ):
        source = tree.args.get("from_")
        if source is None or not isinstance(source.this, exp.Subquery):
            break
        tree = source.this.this
    return tree


def _classify(context: QuestionContext) -> list[_Column]:
    names = [c.get("name", "") for c in context.columns]
    aggregates: dict[str, bool] = {}
    try:
        tree = (
            sqlglot.parse_one(context.sql, read=normalise_dialect(context.dialect)) if context.sql else None
        )
    except Exception:  # whatever sqlglot (or an unknown dialect) raises, the values still speak
        tree = None
    tree = _unwrapped(tree)
    if isinstance(tree, exp.Select):
        for projection in tree.expressions:
            inner = projection.this if isinstance(projection, exp.Alias) else projection
            if inner.find(exp.AggFunc) is not None:
                # A distinct count per group does not add up: one customer may be in two groups.
                aggregates[projection.alias_or_name] = isinstance(inner, exp.Sum) or (
                    isinstance(inner, exp.Count) and not isinstance(inner.this, exp.Distinct)
                )
    columns = []
    for index, name in enumerate(names):
        values = [row[index] for row in context.rows if index < len(row)]
        numeric = bool(values) and all(_number(v) is not None for v in values if v is not None)
        if aggregates:
            is_measure = name in aggregates
            additive = aggregates.get(name)
        else:
            is_measure = numeric and index == len(names) - 1
            additive = None
        grain = name if name in GRAINS else None
        if (
            grain is None
            and not is_measure
            and values
            and all(isinstance(v, str) and _ISO_DAY.match(v) for v in values if v)
        ):
            grain = "day"
        columns.append(_Column(index, name, is_measure, additive, grain))
    return columns


def _measure_label(column: _Column) -> str:
    words = column.name.replace("_", " ").strip()
    if words.endswith(" count"):
        return "number of " + plural(words[: -len(" count")])
    for prefix, label in (("avg ", "average "), ("min ", "minimum "), ("max ", "maximum ")):
        if words.startswith(prefix):
            return label + words[len(prefix) :]
    if column.additive and not words.startswith("total"):
        return "total " + words
    return words


def narrate(context: QuestionContext) -> str:
    """A short, deterministic narrative of the result in `context` (columns, rows, row_count)."""
    rows = [list(r) for r in context.rows]
    if not rows:
        return "The query returned no rows: nothing matched the question's filters."
    columns = _classify(context)
    measures = [c for c in columns if c.is_measure]
    dimensions = [c for c in columns if not c.is_measure]
    shown, total_rows = len(rows), max(context.row_count or 0, len(rows))
    preview = (
        f" (These figures cover the first {shown:,} of {total_rows:,} rows.)" if total_rows > shown else ""
    )
    if not measures:
        return f"The query returned {total_rows:,} row{'s' if total_rows != 1 else ''}.{preview}"
    measure = measures[-1]
    label = _measure_label(measure)
    values = [_number(row[measure.index]) for row in rows]
    if not dimensions:
        value = values[0]
        shown_value = format_number(value) if value is not None else "empty (no matching rows)"
        return f"The {label} is {shown_value}.{preview}"
    pairs = [(row, v) for row, v in zip(rows, values, strict=True) if v is not None]
    if not pairs:
        return f"Every {label} in the result is empty.{preview}"
    time = next((d for d in dimensions if d.grain), None)
    if time is not None and len(dimensions) == 1 and len(pairs) >= 2:
        sentences = _time_series(pairs, time, measure, label)
    elif len(dimensions) == 1:
        sentences = _categories(pairs, dimensions[0], measure, label, complete=not preview)
    else:
        sentences = _combinations(pairs, dimensions, measure, label, complete=not preview)
    return " ".join(sentences) + preview


def _time_series(pairs: list, time: _Column, measure: _Column, label: str) -> list[str]:
    ordered = sorted(pairs, key=lambda p: str(p[0][time.index]))
    first_row, first = ordered[0]
    last_row, last = ordered[-1]
    first_period = _label_value(first_row[time.index], time.grain)
    last_period = _label_value(last_row[time.index], time.grain)
    sentence = (
        f"The {label} went from {format_number(first)} in {first_period} "
        f"to {format_number(last)} in {last_period}"
    )
    if first != 0:
        change = (last - first) / abs(first) * 100
        sentence += f" ({'+' if change >= 0 else '−'}{_percent(abs(change))})"
    sentences = [sentence + "."]
    high_row, high = max(ordered, key=lambda p: p[1])
    low_row, low = min(ordered, key=lambda p: p[1])
    sentences.append(
        f"The highest was {format_number(high)} in {_label_value(high_row[time.index], time.grain)}; "
        f"the lowest {format_number(low)} in {_label_value(low_row[time.index], time.grain)}."
    )
    unit = time.grain or "period"
    if measure.additive:
        total = sum(v for _, v in ordered)
        sentences.append(f"Over these {len(ordered)} {plural(unit)} the total is {format_number(total)}.")
    others = sorted(v for _, v in ordered[:-1])
    if (
        len(ordered) >= 3
        and measure.additive
        and others[len(others) // 2] > 0
        and last < 0.5 * others[len(others) // 2]
    ):
        sentences.append(f"The last {unit} is well below the others: it may not be complete yet.")
    return sentences


def _categories(
    pairs: list, dimension: _Column, measure: _Column, label: str, *, complete: bool
) -> list[str]:
    top_row, top = max(pairs, key=lambda p: p[1])
    bottom_row, bottom = min(pairs, key=lambda p: p[1])
    top_name = _label_value(top_row[dimension.index], dimension.grain)
    total = sum(v for _, v in pairs)
    share = ""
    if measure.additive and total > 0 and all(v >= 0 for _, v in pairs) and len(pairs) > 1:
        share = f", {_percent(top / total * 100)} of the total shown"
    if len(pairs) == 1:
        return [f"{top_name}: the {label} is {format_number(top)}."]
    sentences = [f"{top_name} has the highest {label} ({format_number(top)}{share})."]
    bottom_name = _label_value(bottom_row[dimension.index], dimension.grain)
    sentences.append(f"{bottom_name} has the lowest ({format_number(bottom)}).")
    if measure.additive:
        scope = f"the {len(pairs)} rows shown" if not complete else f"all {len(pairs)} rows"
        sentences.append(f"Across {scope} the total is {format_number(total)}.")
    return sentences


def _combinations(
    pairs: list, dimensions: list[_Column], measure: _Column, label: str, *, complete: bool
) -> list[str]:
    def name(row: list) -> str:
        return " / ".join(_label_value(row[d.index], d.grain) for d in dimensions)

    top_row, top = max(pairs, key=lambda p: p[1])
    bottom_row, bottom = min(pairs, key=lambda p: p[1])
    total = sum(v for _, v in pairs)
    share = ""
    if measure.additive and total > 0 and all(v >= 0 for _, v in pairs):
        share = f", {_percent(top / total * 100)} of the total shown"
    sentences = [f"The highest {label} is {name(top_row)} ({format_number(top)}{share})."]
    if len(pairs) > 1:
        sentences.append(f"The lowest is {name(bottom_row)} ({format_number(bottom)}).")
    if measure.additive:
        scope = f"the {len(pairs)} rows shown" if not complete else f"all {len(pairs)} rows"
        sentences.append(f"Across {scope} the total is {format_number(total)}.")
    return sentences
