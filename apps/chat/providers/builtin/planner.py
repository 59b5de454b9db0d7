"""From an `Intent` to a `QueryPlan`: choose the tables and columns, and the joins between them.

A measure phrase usually has several readings ("revenue" may be daily_revenue.revenue,
orders.total_amount or order_items.quantity x unit_price); each reading puts the query's base in
another table. Every reading is tried: the groupings, filters and date column must all be
reachable from its base along foreign keys, and a sum or average must not cross a join that
repeats rows (from a row to the many rows referencing it), which would count values twice.
Among the readings that fit, the best-scored wins, then the one with the fewest row-repeating
steps, then the fewest joins, then catalogue order; so answers are deterministic.
"""

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

from apps.chat.providers.builtin.catalogue import Catalogue, CatalogueColumn, CatalogueTable, Edge, Path
from apps.chat.providers.builtin.intent import DimensionSpec, FilterSpec, Intent, TimeSpec, Unanswerable
from apps.chat.providers.builtin.plan import (
    Bound,
    ColumnRef,
    Dimension,
    Filter,
    Measure,
    OrderBy,
    QueryPlan,
    RelativeDate,
    TimeRange,
)
from apps.chat.providers.builtin.vocabulary import (
    AGG_LABELS,
    AVERAGED_COLUMN_WORDS,
    DURATION_COLUMN_WORDS,
    DURATION_WORDS,
    EVENT_DATE_WORDS,
    MONEY_IN_COLUMN_WORDS,
    MONEY_IN_WORDS,
    MONEY_NEUTRAL_COLUMN_WORDS,
    MONEY_NEUTRAL_WORDS,
    MONEY_OUT_COLUMN_WORDS,
    MONEY_OUT_WORDS,
    QUANTITY_COLUMN_WORDS,
    QUANTITY_WORDS,
    SIZE_COLUMN_WORDS,
    SIZE_WORDS,
    UNIT_PRICE_COLUMN_WORDS,
    UNIT_PRICE_WORDS,
    UNLIKELY_EVENT_DATE_WORDS,
    plural,
    singular,
)
from apps.connections.engines.base import SAMPLE_LIMIT

_MAX_DIMENSIONS = 2


def _singular_set(words: frozenset[str]) -> frozenset[str]:
    return frozenset(singular(w) for w in words)


_MONEY_IN = _singular_set(MONEY_IN_WORDS)
_MONEY_OUT = _singular_set(MONEY_OUT_WORDS)
_MONEY_NEUTRAL = _singular_set(MONEY_NEUTRAL_WORDS)
_MONEY_COLUMNS = MONEY_IN_COLUMN_WORDS | MONEY_OUT_COLUMN_WORDS | MONEY_NEUTRAL_COLUMN_WORDS
_UNIT_PRICE = _singular_set(UNIT_PRICE_WORDS)
_QUANTITY = _singular_set(QUANTITY_WORDS)
_DURATION = _singular_set(DURATION_WORDS)
_SIZE = _singular_set(SIZE_WORDS)


class _NoFit(Exception):
    """This reading of the measure cannot carry the rest of the question."""


@dataclass
class _MeasureOption:
    base: CatalogueTable
    aggregation: str
    columns: tuple[CatalogueColumn, ...]
    score: float
    alias: str
    description: str
    order: int = 0

    @property
    def label(self) -> str:
        """The description without its columns: "total revenue"."""
        return self.description.split(" (")[0]


def snake(name: str) -> str:
    """BillingCountry -> billing_country; keeps digits and existing underscores."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return text or "value"


# Measures ----------------------------------------------------------------------------------------


def _family_score(word: str, column: CatalogueColumn) -> float | None:
    """How well a measure-family word ("revenue") fits a numeric column, or None."""
    words = set(column.words)
    exact = 2.0 if word in words else 0.0
    if word in _MONEY_IN | _MONEY_OUT | _MONEY_NEUTRAL:
        if words & UNIT_PRICE_COLUMN_WORDS or not words & _MONEY_COLUMNS:
            return None
        if word in _MONEY_IN and words & MONEY_OUT_COLUMN_WORDS and not words & MONEY_IN_COLUMN_WORDS:
            return None
        if word in _MONEY_OUT and words & MONEY_IN_COLUMN_WORDS:
            return None
        if word in _MONEY_NEUTRAL and word not in words and words & MONEY_OUT_COLUMN_WORDS:
            return None
        return 6 + exact + len(words & _MONEY_COLUMNS) / len(words)
    families = (
        (_UNIT_PRICE, UNIT_PRICE_COLUMN_WORDS, frozenset()),
        (_QUANTITY, QUANTITY_COLUMN_WORDS, UNIT_PRICE_COLUMN_WORDS),
        (_DURATION, DURATION_COLUMN_WORDS, frozenset()),
        (_SIZE, SIZE_COLUMN_WORDS, frozenset()),
    )
    for question_words, column_words, excluded in families:
        if word in question_words and words & column_words and not words & excluded:
            return 6 + exact + len(words & column_words) / len(words)
    return None


def _default_aggregation(column: CatalogueColumn) -> str:
    return "avg" if set(column.words) & AVERAGED_COLUMN_WORDS else "sum"


def _column_option(column: CatalogueColumn, aggregation: str | None, score: float) -> _MeasureOption:
    aggregation = aggregation or _default_aggregation(column)
    name = snake(column.name)
    label = name.replace("_", " ")
    already = {"sum": ("total", "sum"), "avg": ("avg", "average", "mean")}.get(aggregation, ())
    alias = name if aggregation == "sum" or label.startswith(already) else f"{aggregation}_{name}"
    word = AGG_LABELS[aggregation]
    shown = label if label.startswith(already) else f"{word} {label}"
    operation = "sum" if aggregation == "sum" else word
    description = f"{shown} ({operation} of {column.qualified})"
    return _MeasureOption(column.table, aggregation, (column,), score, alias, description)


def _derived_revenue(catalogue: Catalogue) -> list[_MeasureOption]:
    """quantity x unit price, for tables of order lines that store no line total."""
    options = []
    for table in catalogue.tables:
        quantity = next(
            (
                c
                for c in table.columns
                if c.is_measure
                and set(c.words) & QUANTITY_COLUMN_WORDS
                and not set(c.words) & UNIT_PRICE_COLUMN_WORDS
            ),
            None,
        )
        price = next((c for c in table.columns if c.is_measure and "price" in c.words), None)
        if quantity is not None and price is not None:
            description = f"revenue (sum of {quantity.qualified} × {price.name})"
            options.append(_MeasureOption(table, "sum", (quantity, price), 5.0, "revenue", description))
    return options


def _measure_options(intent: Intent, catalogue: Catalogue) -> list[_MeasureOption]:
    spec = intent.measure
    assert spec is not None
    options: list[_MeasureOption] = []
    if spec.count_entity is not None:
        entity = spec.count_entity
        alias = "_".join(entity.words) + "_count"
        noun = plural(entity.noun)
        if spec.related:
            for table, column in catalogue.referencing(entity):
                if table in spec.related:
                    description = f"number of {noun} (distinct {column.qualified})"
                    options.append(_MeasureOption(table, "count_distinct", (column,), 10, alias, description))
        else:
            description = f"number of {noun} (rows of {entity.name})"
            options.append(_MeasureOption(entity, "count", (), 10, alias, description))
    elif spec.distinct_columns:
        for column in spec.distinct_columns:
            alias = snake(column.name) + "_count"
            description = f"number of distinct {plural(' '.join(column.words))} ({column.qualified})"
            options.append(_MeasureOption(column.table, "count_distinct", (column,), 10, alias, description))
    else:
        words = spec.words
        for column in catalogue.columns:
            if not column.is_measure:
                continue
            if column.words == words or (*column.table.words, *column.words) == words:
                options.append(_column_option(column, spec.aggregation, 10))
                continue
            # The best family word sets the score; every other word of the phrase found in the
            # column's or its table's name adds to it ("session length", "order value").
            scored = [(s, word) for word in words if (s := _family_score(word, column)) is not None]
            named = set(column.words) | set(column.table.words)
            if scored:
                score, family_word = max(scored)
                score += 1.5 * len((set(words) - {family_word}) & named)
            elif words[-1] == column.words[-1]:
                # "unique visitors" -> unique_visitors: the head noun, then its qualifiers
                score = 6 + 1.5 * len((set(words[:-1])) & named)
            else:
                continue
            options.append(_column_option(column, spec.aggregation, score))
        money_words = set(words) & (_MONEY_IN | _MONEY_NEUTRAL)
        if money_words and spec.aggregation in (None, "sum"):
            options.extend(_derived_revenue(catalogue))
        if spec.popularity:
            for table in catalogue.tables:
                if any(catalogue.target_of(c) is not None for c in table.columns):
                    alias = "_".join(table.words) + "_count"
                    description = f"number of {plural(table.noun)} (rows of {table.name})"
                    options.append(_MeasureOption(table, "count", (), 4.0, alias, description))
    for option in options:
        if option.base in spec.scope:
            option.score += 1.5
    unique: dict[tuple, _MeasureOption] = {}
    for option in options:
        key = (option.base.key, option.aggregation, tuple(c.name for c in option.columns))
        if key not in unique or unique[key].score < option.score:
            unique[key] = option
    ranked = sorted(
        unique.values(),
        key=lambda o: (-o.score, -(o.base.info.row_estimate or 0) if spec.popularity else 0, o.base.position),
    )
    for order, option in enumerate(ranked):
        option.order = order
    return ranked


# Assembly ----------------------------------------------------------------------------------------


@dataclass
class _Assembly:
    plan: QueryPlan
    cost: tuple


def _ref(column: CatalogueColumn) -> ColumnRef:
    return ColumnRef(column.table.key, column.name)


def _via(path: Path, catalogue: Catalogue) -> str:
    if not path.edges:
        return ""
    first = path.edges[0]
    return f", via {catalogue.table(first.source).name}.{first.source_column}"


def _time_column(
    paths: dict, catalogue: Catalogue, hints: tuple[str, ...]
) -> tuple[CatalogueColumn, Path] | None:
    """The date column a time grain or a date filter applies to: in the measured table or one
    it references (never across a row-repeating join), preferring the column the question
    hinted at ("signed up" -> signup_date), then the table's own event date."""
    best = None
    for key, path in paths.items():
        if path.reverse_steps:
            continue
        table = catalogue.table(key)
        for column in table.date_columns:
            words = set(column.words)
            score = -3.0 * path.hops
            if hints and any(w.startswith(h) or h.startswith(w) for h in hints for w in words if len(w) >= 3):
                score += 20
            if words & UNLIKELY_EVENT_DATE_WORDS:
                score -= 8
            if words & set(table.words):
                score += 2
            if words & EVENT_DATE_WORDS:
                score += 1
            rank = (score, -table.position, -column.info.position)
            if best is None or rank > best[0]:
                best = (rank, column, path)
    return (best[1], best[2]) if best is not None else None


def _path_ok(path: Path | None, allow_reverse: bool) -> bool:
    return path is not None and (allow_reverse or path.reverse_steps == 0)


def _dimension(
    spec: DimensionSpec,
    option: _MeasureOption,
    paths: dict,
    catalogue: Catalogue,
    allow_reverse: bool,
    time_column: tuple[CatalogueColumn, Path] | None,
) -> tuple[Dimension, Path]:
    if spec.grain is not None:
        if time_column is None:
            raise _NoFit(f"I couldn't find a date column for {option.label} to group it by {spec.grain}.")
        column, path = time_column
        description = f"by {spec.grain} (of {column.qualified})"
        return Dimension((_ref(column),), spec.grain, description, grain=spec.grain), path  # type: ignore[arg-type]
    candidates = []
    for table in spec.tables:
        path = paths.get(table.key)
        if _path_ok(path, allow_reverse):
            candidates.append((-10.0, path.cost, table.position, table, None, path))
    for column, score in spec.columns:
        path = paths.get(column.table.key)
        if _path_ok(path, allow_reverse):
            candidates.append((-score, path.cost, column.table.position, None, column, path))
    if not candidates:
        raise _NoFit(
            f"I couldn't connect {option.label} to “{spec.phrase}” through the foreign keys of this database."
        )
    _, _, _, table, column, path = min(candidates, key=lambda c: c[:3])
    if table is not None:
        labels = table.label_columns or ((table.primary_key,) if table.primary_key else ())
        if not labels:
            raise _NoFit(f"The table {table.name} has no name or key column to group by.")
        key = table.primary_key
        extra = (_ref(key),) if key is not None and key not in labels else ()
        shown = " and ".join(c.qualified for c in labels)
        description = f"by {table.noun} ({shown}{_via(path, catalogue)})"
        alias = "_".join(table.words)
        return Dimension(tuple(_ref(c) for c in labels), alias, description, extra_group=extra), path
    assert column is not None
    description = f"by {' '.join(column.words)} ({column.qualified}{_via(path, catalogue)})"
    return Dimension((_ref(column),), snake(column.name), description), path


def _filter(
    spec: FilterSpec, option: _MeasureOption, paths: dict, catalogue: Catalogue, allow_reverse: bool
) -> tuple[Filter, Path]:
    candidates = []
    for filter_option in spec.options:
        path = paths.get(filter_option.column.table.key)
        if _path_ok(path, allow_reverse):
            # The nearest column holding the value wins: "customers in Canada" filters the
            # customer's country, not their support rep's.
            rank = (path.cost, -filter_option.score, filter_option.column.table.position)
            candidates.append((*rank, filter_option, path))
    if not candidates:
        raise _NoFit(
            f"I couldn't connect {option.label} to “{spec.phrase}” through the foreign keys of this database."
        )
    *_, chosen, path = min(candidates, key=lambda c: c[:3])
    values = chosen.values
    shown = " or ".join(values)
    if chosen.case_insensitive:
        description = f"where {chosen.column.qualified} is “{shown}” (ignoring case)"
    else:
        description = f"where {chosen.column.qualified} is {shown}"
    return Filter(_ref(chosen.column), values, chosen.case_insensitive, description), path


def _resolve_bound(bound: Bound | None, today: date | None) -> Bound | None:
    """With a fixed `today` (tests, replays) relative dates become exact days."""
    if today is None or not isinstance(bound, RelativeDate):
        return bound
    day = today
    if bound.unit == "day":
        return day + timedelta(days=bound.offset)
    if bound.unit == "week":
        start = day - timedelta(days=day.weekday()) if bound.truncate else day
        return start + timedelta(weeks=bound.offset)
    if bound.unit == "month":
        index = day.year * 12 + day.month - 1 + bound.offset
        year, month = divmod(index, 12)
        if bound.truncate:
            return date(year, month + 1, 1)
        return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))
    year = day.year + bound.offset
    if bound.truncate:
        return date(year, 1, 1)
    return date(year, day.month, min(day.day, calendar.monthrange(year, day.month)[1]))


def _time_range(spec: TimeSpec, column: CatalogueColumn, today: date | None) -> tuple[TimeRange, str]:
    """The date filter, and for a relative one the note saying what it is relative to."""
    description = f"{spec.label} (on {column.qualified})"
    note = ""
    if spec.relative:
        anchor = f"today ({today.isoformat()})" if today else "today's date (CURRENT_DATE)"
        detail = f"{spec.detail}, " if spec.detail else ""
        note = (
            f"“{spec.label.capitalize()}” means {detail}counted from {anchor}, not from the latest date "
            "in the data, which I can't see offline."
        )
    bounds = _resolve_bound(spec.start, today), _resolve_bound(spec.end, today)
    return TimeRange(_ref(column), bounds[0], bounds[1], description), note


def _assemble(option: _MeasureOption, intent: Intent, catalogue: Catalogue, today: date | None) -> _Assembly:
    paths = catalogue.paths_from(option.base.key)
    allow_reverse = option.aggregation in ("count", "count_distinct", "min", "max")
    used_paths: list[Path] = [Path()]
    time_column = None
    if intent.time is not None or any(d.grain for d in intent.dimensions):
        hints = tuple(h for d in intent.dimensions for h in d.date_hint) + intent.date_hints
        time_column = _time_column(paths, catalogue, hints)
    dimensions: list[Dimension] = []
    for spec in intent.dimensions:
        dimension, path = _dimension(spec, option, paths, catalogue, allow_reverse, time_column)
        if any(d.columns == dimension.columns and d.grain == dimension.grain for d in dimensions):
            continue
        dimensions.append(dimension)
        used_paths.append(path)
    filters = []
    for spec in intent.filters:
        resolved, path = _filter(spec, option, paths, catalogue, allow_reverse)
        filters.append(resolved)
        used_paths.append(path)
    for table in intent.measure.scope if intent.measure else ():
        # "the price of products", "the quantity of products sold": the measure belongs to the
        # table named, or to rows that reference it directly; anything further is a guess.
        path = paths.get(table.key)
        if path is None or path.reverse_steps or path.hops > 1:
            raise _NoFit(f"I couldn't connect {option.label} to {plural(table.noun)}.")
    time_range = None
    if intent.time is not None:
        if time_column is None:
            raise _NoFit(f"I couldn't find a date column for {option.label} to filter by date.")
        time_range, time_note = _time_range(intent.time, time_column[0], today)
        used_paths.append(time_column[1])

    notes: list[str] = [time_note] if time_range is not None and time_note else []
    aggregation, columns, description = option.aggregation, option.columns, option.description
    repeats = any(p.reverse_steps for p in used_paths)
    if aggregation == "count" and repeats:
        key = option.base.primary_key
        if key is None:
            raise _NoFit(f"Counting {plural(option.base.noun)} here would count some rows twice.")
        aggregation, columns = "count_distinct", (key,)
        notes.append(
            f"Each {option.base.noun} is counted once (COUNT DISTINCT {key.qualified}): "
            "the joins repeat its rows."
        )
    joins = _joins(used_paths)
    measure = Measure(aggregation, tuple(_ref(c) for c in columns), option.alias, description)  # type: ignore[arg-type]
    dimensions = _unique_aliases(dimensions, measure.alias)
    plan = QueryPlan(
        base=option.base.key,
        joins=joins,
        measure=measure,
        dimensions=dimensions,
        filters=filters,
        time_range=time_range,
        notes=notes,
    )
    _order_and_limit(plan, intent)
    cost = (
        -option.score,
        sum(p.reverse_steps for p in used_paths),
        len(joins),
        option.order,
    )
    return _Assembly(plan, cost)


def _joins(paths: list[Path]) -> list[Edge]:
    joins: list[Edge] = []
    for path in sorted(paths, key=lambda p: p.hops):
        for edge in path.edges:
            if edge not in joins:
                joins.append(edge)
    return joins


def _unique_aliases(dimensions: list[Dimension], measure_alias: str) -> list[Dimension]:
    taken = {measure_alias}
    result = []
    for dimension in dimensions:
        alias, n = dimension.alias, 2
        while alias in taken:
            alias, n = f"{dimension.alias}_{n}", n + 1
        taken.add(alias)
        result.append(
            Dimension(dimension.columns, alias, dimension.description, dimension.grain, dimension.extra_group)
        )
    return result


def _order_and_limit(plan: QueryPlan, intent: Intent) -> None:
    dimensions = plan.dimensions
    grain_index = next((i for i, d in enumerate(dimensions) if d.grain), None)
    label_index = next((i for i, d in enumerate(dimensions) if not d.grain), None)
    target = intent.order_target
    explicit = intent.order_descending
    if not dimensions:
        return  # one row: nothing to order or cut
    if target == "measure" or (intent.ranking and target is None):
        descending = (
            explicit
            if explicit is not None
            else (intent.descending if intent.descending is not None else True)
        )
        plan.order_by = [OrderBy("measure", 0, descending)]
    elif target == "alphabetical" and label_index is not None:
        plan.order_by = [OrderBy("dimension", label_index, bool(explicit))]
    elif target == "time" and grain_index is not None:
        plan.order_by = [OrderBy("dimension", grain_index, bool(explicit))]
    elif target not in (None, "alphabetical", "time"):
        index = next((i for i, d in enumerate(dimensions) if d.alias == target.replace(" ", "_")), 0)
        plan.order_by = [OrderBy("dimension", index, bool(explicit))]
    elif grain_index is not None:
        plan.order_by = [OrderBy("dimension", grain_index, bool(explicit))]
        plan.order_by += [OrderBy("dimension", i, False) for i in range(len(dimensions)) if i != grain_index]
    elif dimensions:
        plan.order_by = [OrderBy("measure", 0, explicit if explicit is not None else True)]
    if plan.order_by[:1] and plan.order_by[0].target == "measure":
        # Ties are broken by the groupings, so equal values always come out in the same order.
        plan.order_by += [OrderBy("dimension", i, False) for i in range(len(dimensions))]
    plan.limit = intent.limit


# Explanation -------------------------------------------------------------------------------------


def explain(plan: QueryPlan) -> str:
    """One sentence saying how the question was read, naming every column used."""
    text = "I read this as: " + plan.measure.description
    if plan.dimensions:
        text += " " + " and ".join(d.description for d in plan.dimensions)
    details = [f.description for f in plan.filters]
    if plan.time_range is not None:
        details.append(plan.time_range.description)
    if plan.limit is not None:
        descending = not plan.order_by or plan.order_by[0].descending
        if plan.limit == 1:
            details.append("only the " + ("highest" if descending else "lowest"))
        else:
            details.append(f"{'top' if descending else 'bottom'} {plan.limit}")
    elif plan.order_by:
        first = plan.order_by[0]
        if first.target == "measure":
            details.append("highest first" if first.descending else "lowest first")
        else:
            dimension = plan.dimensions[first.index]
            direction = "descending" if first.descending else "ascending"
            details.append(f"sorted by {dimension.alias}, {direction}")
    if details:
        text += ", " + ", ".join(details)
    return " ".join([text + ".", *plan.notes])


_PLACE_LIKE = ("country", "city", "region", "state", "category", "status", "type", "segment", "channel")


def _example_column(catalogue: Catalogue) -> CatalogueColumn | None:
    """A text column whose samples are cut short, best a place or a category, for a hint."""
    columns = [c for c in catalogue.columns if c.is_groupable and len(c.info.samples) >= SAMPLE_LIMIT]
    for word in _PLACE_LIKE:
        for column in columns:
            if word in column.words:
                return column
    return columns[0] if columns else None


def plan_query(intent: Intent, catalogue: Catalogue, *, today: date | None = None) -> QueryPlan:
    if intent.unsupported:
        raise Unanswerable(f"Answering this needs {intent.unsupported}, which is beyond the built-in engine.")
    if intent.unknown_dimensions:
        shown = ", ".join(f"“{p}”" for p in intent.unknown_dimensions)
        raise Unanswerable(
            f"I couldn't find {shown} among the tables and columns of this database, so I can't group by it."
        )
    if intent.unknown:
        words = list(dict.fromkeys(intent.unknown))
        shown = ", ".join(f"“{w}”" for w in words)
        message = (
            f"I didn't understand {shown}: it doesn't match a table, a column or a known value "
            "of this database."
        )
        names = [w for w in words if w[:1].isupper()]
        column = _example_column(catalogue)
        if names and column is not None:
            spoken = snake(column.name).replace("_", " ")
            message += (
                f" If “{names[0]}” is a value in your data, name its column too: "
                f"“… where {spoken} is {names[0]}”."
            )
        raise Unanswerable(message)
    if intent.measure is None:
        raise Unanswerable(
            "I couldn't find what to measure: name a number (revenue, quantity...) or a thing to count."
        )
    if len(intent.dimensions) > _MAX_DIMENSIONS:
        raise Unanswerable("I can group by at most two things at once.")
    options = _measure_options(intent, catalogue)
    if not options:
        raise Unanswerable(f"I couldn't find a column for “{intent.measure.phrase}” in this database.")
    best: _Assembly | None = None
    failures: list[str] = []
    for option in options:
        if best is not None and -option.score > best.cost[0]:
            break
        try:
            assembly = _assemble(option, intent, catalogue, today)
        except _NoFit as error:
            failures.append(str(error))
            continue
        if best is None or assembly.cost < best.cost:
            best = assembly
    if best is None:
        raise Unanswerable(failures[0])
    best.plan.explanation = explain(best.plan)
    return best.plan
