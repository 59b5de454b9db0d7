"""The query plan: what the interpreter understood, in terms of the catalogue, before any SQL.

A plan names tables and columns, never SQL text; `sqlgen` renders it in the connection's dialect.
"""

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from apps.chat.providers.builtin.catalogue import Edge, TableKey

Aggregation = Literal["count", "count_distinct", "sum", "avg", "min", "max"]
Grain = Literal["day", "week", "month", "quarter", "year"]


@dataclass(frozen=True)
class ColumnRef:
    table: TableKey
    column: str

    @property
    def label(self) -> str:
        return f"{self.table[1]}.{self.column}"


@dataclass(frozen=True)
class Measure:
    """`aggregation` over the product of `columns` (one column; two for quantity x unit price;
    none for count(*))."""

    aggregation: Aggregation
    columns: tuple[ColumnRef, ...]
    alias: str
    description: str


@dataclass(frozen=True)
class Dimension:
    """A grouping: the value of `columns` (several are joined with spaces, e.g. first and last
    name), or the `grain` bucket of a date column. `extra_group` keeps rows with equal labels
    apart (two customers called Jane Smith)."""

    columns: tuple[ColumnRef, ...]
    alias: str
    description: str
    grain: Grain | None = None
    extra_group: tuple[ColumnRef, ...] = ()


@dataclass(frozen=True)
class Filter:
    """`column` equal to one of `values`; compared lowercased when the value was typed by the
    user rather than found in the catalogue."""

    column: ColumnRef
    values: tuple[str, ...]
    case_insensitive: bool
    description: str


@dataclass(frozen=True)
class RelativeDate:
    """CURRENT_DATE, truncated to `truncate` when set, then moved by `offset` `unit`s."""

    unit: Literal["day", "week", "month", "year"]
    offset: int = 0
    truncate: bool = False


Bound = date | RelativeDate


@dataclass(frozen=True)
class TimeRange:
    """start <= column < end; either bound may be missing."""

    column: ColumnRef
    start: Bound | None
    end: Bound | None
    description: str


@dataclass(frozen=True)
class OrderBy:
    target: Literal["measure", "dimension"]
    index: int
    descending: bool


@dataclass
class QueryPlan:
    base: TableKey
    joins: list[Edge]
    measure: Measure
    dimensions: list[Dimension] = field(default_factory=list)
    filters: list[Filter] = field(default_factory=list)
    time_range: TimeRange | None = None
    order_by: list[OrderBy] = field(default_factory=list)
    limit: int | None = None
    notes: list[str] = field(default_factory=list)
    explanation: str = ""
