"""What a question asks, before a plan: its tokens, and the `Intent` the parser reads from them.

An `Intent` still holds every catalogue match for each phrase ("channel" may be orders.channel or
daily_traffic.channel); the planner picks one combination the foreign keys can join. Follow-ups
are merged at this level (`merge`), before planning: "and by channel" adds a grouping to the
previous question's intent, and the merged intent is planned afresh, so the measure may move to
another table that reaches the new grouping.
"""

from dataclasses import dataclass, field, replace

from apps.chat.providers.builtin.catalogue import CatalogueColumn, CatalogueTable
from apps.chat.providers.builtin.plan import Bound


class Unanswerable(Exception):
    """The question is beyond the engine; the message says why, in the user's terms."""


@dataclass
class MeasureSpec:
    """What to measure, still unresolved: the user's words and what they may refer to.

    `words` name a numeric column or a measure family (revenue, price...); `count_entity` counts
    a table's rows, through `related` tables when it is counted by its activity ("customers who
    ordered"); `distinct_columns` count distinct values; `scope` are tables named alongside
    ("the price of products") that make their columns the likelier reading."""

    phrase: str
    words: tuple[str, ...] = ()
    aggregation: str | None = None
    superlative: bool = False
    count_entity: CatalogueTable | None = None
    distinct_columns: tuple[CatalogueColumn, ...] = ()
    related: tuple[CatalogueTable, ...] = ()
    popularity: bool = False
    scope: tuple[CatalogueTable, ...] = ()


@dataclass
class DimensionSpec:
    """A grouping: a time `grain`, or the tables (by their name column) and columns it may be."""

    phrase: str
    grain: str | None = None
    date_hint: tuple[str, ...] = ()
    tables: tuple[CatalogueTable, ...] = ()
    columns: tuple[tuple[CatalogueColumn, float], ...] = ()
    ranked: bool = False

    @property
    def identity(self) -> tuple:
        return (
            self.grain,
            tuple(t.key for t in self.tables),
            tuple((c.table.key, c.name) for c, _ in self.columns),
        )


@dataclass
class FilterOption:
    column: CatalogueColumn
    values: tuple[str, ...]
    case_insensitive: bool
    score: float


@dataclass
class FilterSpec:
    phrase: str
    options: tuple[FilterOption, ...]

    @property
    def columns(self) -> frozenset:
        return frozenset((o.column.table.key, o.column.name) for o in self.options)


@dataclass
class TimeSpec:
    """start <= date < end; `relative` bounds count from today, which `detail` explains."""

    start: Bound | None
    end: Bound | None
    label: str
    relative: bool
    detail: str = ""


@dataclass
class Intent:
    measure: MeasureSpec | None = None
    dimensions: list[DimensionSpec] = field(default_factory=list)
    filters: list[FilterSpec] = field(default_factory=list)
    time: TimeSpec | None = None
    limit: int | None = None
    descending: bool | None = None
    ranking: bool = False
    order_target: str | None = None  # "measure", "alphabetical", "time" or a grouping's phrase
    order_descending: bool | None = None
    date_hints: tuple[str, ...] = ()
    unknown: list[str] = field(default_factory=list)
    unknown_dimensions: list[str] = field(default_factory=list)
    unsupported: str | None = None
    followup: bool = False
    additive: bool = False

    @property
    def has_delta(self) -> bool:
        return bool(
            self.dimensions or self.filters or self.time or self.limit is not None or self.order_target
        )

    @property
    def readable(self) -> bool:
        return self.measure is not None and not (self.unknown or self.unknown_dimensions or self.unsupported)


def merge(previous: Intent, current: Intent) -> Intent:
    """The previous question's intent with a follow-up's changes applied: a new measure, time
    range or limit replaces the old one; groupings are replaced ("now by month") or added ("and
    by channel"); a filter replaces one on the same column ("what about Asia Pacific") or adds."""
    merged = replace(previous, followup=False, additive=False)
    merged.unknown = current.unknown
    merged.unknown_dimensions = current.unknown_dimensions
    merged.unsupported = current.unsupported or previous.unsupported
    if current.measure is not None:
        merged.measure = current.measure
    if current.dimensions:
        if current.additive:
            seen = {d.identity for d in previous.dimensions}
            merged.dimensions = previous.dimensions + [
                d for d in current.dimensions if d.identity not in seen
            ]
        else:
            merged.dimensions = list(current.dimensions)
            if current.limit is None and not current.ranking:
                merged.limit, merged.ranking, merged.descending = None, False, None
    kept = [f for f in previous.filters if not any(f.columns & c.columns for c in current.filters)]
    merged.filters = kept + current.filters
    merged.time = current.time or previous.time
    if current.limit is not None or current.ranking:
        merged.limit = current.limit if current.limit is not None else previous.limit
        merged.ranking = True
        merged.descending = current.descending if current.descending is not None else previous.descending
    if current.order_target is not None or current.order_descending is not None:
        merged.order_target = current.order_target or previous.order_target
        merged.order_descending = current.order_descending
    merged.date_hints = previous.date_hints + current.date_hints
    return merged
