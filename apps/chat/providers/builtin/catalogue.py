"""The schema catalogue as the built-in engine reads it: words, kinds, values and join paths.

Built once per question from the `TableInfo` list the pipeline hands over. Names are split into
lowercase singular words (`InvoiceLine` -> invoice, line; `order_items` -> order, item) so that
questions meet them in plain English; text columns carry the values a question may filter on:
the sampled values and the lists written in their comments ("Region name: North America,
Europe, ..."); foreign keys become a graph that joins are planned on.
"""

import heapq
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from apps.chat.providers.builtin.tokens import value_key
from apps.chat.providers.builtin.vocabulary import (
    FIRST_NAME_COLUMNS,
    LABEL_COLUMN_NAMES,
    LAST_NAME_COLUMNS,
    singular,
)
from apps.connections.engines.base import ColumnInfo, TableInfo, is_sensitive_column

TableKey = tuple[str, str]
ColumnKind = Literal["numeric", "text", "date", "boolean", "other"]

_NUMERIC_TYPE = re.compile(
    r"INT|DECIMAL|NUMERIC|NUMBER|REAL|DOUBLE|FLOAT|MONEY|SERIAL|HUGEINT|FIXED|DEC\b", re.IGNORECASE
)
_DATE_TYPE = re.compile(r"DATE|TIMESTAMP", re.IGNORECASE)
_BOOL_TYPE = re.compile(r"BOOL|^BIT$|TINYINT\(1\)", re.IGNORECASE)
_TEXT_TYPE = re.compile(r"CHAR|TEXT|STRING|CLOB|ENUM|UUID|CITEXT|NAME", re.IGNORECASE)
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_PARENTHESES = re.compile(r"\([^)]*\)")
_LIST_SPLIT = re.compile(r",\s*|\s+or\s+|\s+and\s+")

# Joining against a foreign key (one row to many) repeats rows; the path search pays this much
# for such a step, so a path of forward steps wins whenever one exists.
_REVERSE_STEP_COST = 10


def name_words(name: str) -> tuple[str, ...]:
    """Lowercase singular words of an identifier: `avg_session_seconds`, `MediaTypeId`..."""
    words: list[str] = []
    for part in re.split(r"[^A-Za-z0-9]+", name):
        words.extend(piece.lower() for piece in _CAMEL.findall(part))
    return tuple(singular(word) for word in words if word)


def _kind(column: ColumnInfo) -> ColumnKind:
    data_type = column.data_type or ""
    if _BOOL_TYPE.search(data_type):
        return "boolean"
    if _DATE_TYPE.search(data_type):
        return "date"
    if _NUMERIC_TYPE.search(data_type):
        return "numeric"
    if _TEXT_TYPE.search(data_type) or not data_type:
        return "text"
    return "other"


def comment_values(comment: str) -> tuple[str, ...]:
    """Values a comment enumerates, e.g. "Where the order was placed: web, mobile (the app) or
    partner." -> web, mobile, partner. Only short items in a list of at least three words
    separated by commas count, so ordinary sentences yield nothing."""
    text = _PARENTHESES.sub("", comment)
    if ":" in text:
        text = text.rsplit(":", 1)[1]
    text = text.strip().rstrip(".").strip()
    if "," not in text:
        return ()
    items = [item.strip().strip("'\"").strip() for item in _LIST_SPLIT.split(text)]
    items = [item for item in items if item]
    if len(items) < 3 or any(len(item.split()) > 3 or len(item) > 40 for item in items):
        return ()
    return tuple(items)


@dataclass(eq=False)
class CatalogueColumn:
    table: "CatalogueTable"
    info: ColumnInfo
    words: tuple[str, ...]
    kind: ColumnKind
    is_key: bool
    values: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def qualified(self) -> str:
        return f"{self.table.name}.{self.info.name}"

    @cached_property
    def is_measure(self) -> bool:
        return self.kind == "numeric" and not self.is_key

    @cached_property
    def is_groupable(self) -> bool:
        return self.kind in ("text", "boolean") and not self.is_key and not is_sensitive_column(self.name)


@dataclass(eq=False)
class CatalogueTable:
    info: TableInfo
    position: int
    words: tuple[str, ...]
    columns: list[CatalogueColumn] = field(default_factory=list)

    @property
    def key(self) -> TableKey:
        return (self.info.schema, self.info.name)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def primary_key(self) -> CatalogueColumn | None:
        keys = [c for c in self.columns if c.info.is_primary_key]
        return keys[0] if len(keys) == 1 else None

    @property
    def noun(self) -> str:
        """The table's name as a singular English noun: order_items -> order item."""
        return " ".join(self.words)

    @cached_property
    def label_columns(self) -> tuple[CatalogueColumn, ...]:
        """What a person reads to tell rows apart: a name or title, or first and last names."""
        candidates = [
            c for c in self.columns if c.kind == "text" and not c.is_key and not c.info.is_primary_key
        ]
        first = next((c for c in candidates if c.words in FIRST_NAME_COLUMNS), None)
        last = next((c for c in candidates if c.words in LAST_NAME_COLUMNS), None)
        if first is not None and last is not None:
            return (first, last)
        for wanted in LABEL_COLUMN_NAMES:
            for column in candidates:
                if column.words == wanted or column.words == (*self.words, *wanted):
                    return (column,)
        for column in candidates:
            if column.words[-1:] in (("name",), ("title",)):
                return (column,)
        return ()

    @cached_property
    def date_columns(self) -> tuple[CatalogueColumn, ...]:
        return tuple(c for c in self.columns if c.kind == "date")


@dataclass(frozen=True)
class Edge:
    """One join step: from `source` to `target` on source.source_column = target.target_column.
    `forward` when the source column is the foreign key (many rows to one)."""

    source: TableKey
    source_column: str
    target: TableKey
    target_column: str
    forward: bool


@dataclass(frozen=True)
class Path:
    edges: tuple[Edge, ...] = ()

    @property
    def reverse_steps(self) -> int:
        return sum(not edge.forward for edge in self.edges)

    @property
    def hops(self) -> int:
        return len(self.edges)

    @property
    def cost(self) -> tuple[int, int]:
        return (self.reverse_steps, self.hops)


class Catalogue:
    """Tables and columns indexed for matching, and the foreign-key graph for joins."""

    def __init__(self, tables: list[TableInfo]) -> None:
        self.tables: list[CatalogueTable] = []
        for position, info in enumerate(sorted(tables, key=lambda t: (t.schema, t.name))):
            table = CatalogueTable(info=info, position=position, words=name_words(info.name))
            # A column of a composite key (daily_traffic's date and channel) is still data.
            single_key = sum(c.is_primary_key for c in info.columns) == 1
            for column_info in sorted(info.columns, key=lambda c: c.position):
                kind = _kind(column_info)
                words = name_words(column_info.name)
                is_key = (
                    bool(column_info.is_primary_key and single_key)
                    or bool(column_info.references)
                    or words[-1:] == ("id",)
                )
                values: tuple[str, ...] = ()
                if kind == "text" and not is_sensitive_column(column_info.name):
                    found = [str(v) for v in column_info.samples if isinstance(v, str) and v.strip()]
                    found += [v for v in comment_values(column_info.comment) if v not in found]
                    values = tuple(found)
                table.columns.append(
                    CatalogueColumn(
                        table=table, info=column_info, words=words, kind=kind, is_key=is_key, values=values
                    )
                )
            self.tables.append(table)
        self.by_key: dict[TableKey, CatalogueTable] = {t.key: t for t in self.tables}
        self._by_name: dict[str, list[CatalogueTable]] = {}
        for table in self.tables:
            self._by_name.setdefault(table.name.lower(), []).append(table)
        self._edges: dict[TableKey, list[Edge]] = {t.key: [] for t in self.tables}
        self._targets: dict[int, CatalogueTable] = {}
        self._referencing: dict[TableKey, list[tuple[CatalogueTable, CatalogueColumn]]] = {}
        for table in self.tables:
            for column in table.columns:
                target = self._referenced(column.info.references, table.info.schema)
                if target is None:
                    continue
                target_table, target_column = target
                self._targets[id(column)] = target_table
                if target_table is table:
                    continue  # self-references (an employee's manager) never help a grouping
                self._referencing.setdefault(target_table.key, []).append((table, column))
                self._edges[table.key].append(
                    Edge(table.key, column.name, target_table.key, target_column, forward=True)
                )
                self._edges[target_table.key].append(
                    Edge(target_table.key, target_column, table.key, column.name, forward=False)
                )
        self._paths: dict[TableKey, dict[TableKey, Path]] = {}

    def _referenced(self, reference: str, schema: str) -> tuple[CatalogueTable, str] | None:
        """`schema.table.column`, `table.column` or `table` (its primary key)."""
        if not reference:
            return None
        parts = reference.split(".")
        if len(parts) >= 3:
            ref_schema, ref_table, ref_column = parts[-3], parts[-2], parts[-1]
        elif len(parts) == 2:
            ref_schema, ref_table, ref_column = schema, parts[0], parts[1]
        else:
            ref_schema, ref_table, ref_column = schema, parts[0], ""
        matches = self._by_name.get(ref_table.lower(), [])
        exact = [t for t in matches if t.info.schema == ref_schema]
        table = (exact or matches or [None])[0]
        if table is None:
            return None
        if not ref_column:
            key = table.primary_key
            if key is None:
                return None
            ref_column = key.name
        column = next((c for c in table.columns if c.name.lower() == ref_column.lower()), None)
        return (table, column.name) if column is not None else None

    def target_of(self, column: CatalogueColumn) -> CatalogueTable | None:
        """The table a foreign-key column references (None for other columns)."""
        return self._targets.get(id(column))

    def referencing(self, entity: CatalogueTable) -> list[tuple[CatalogueTable, CatalogueColumn]]:
        """Other tables' foreign-key columns that reference `entity`, in catalogue order."""
        return list(self._referencing.get(entity.key, []))

    def table(self, key: TableKey) -> CatalogueTable:
        return self.by_key[key]

    def column(self, key: TableKey, name: str) -> CatalogueColumn:
        return next(c for c in self.by_key[key].columns if c.name == name)

    @cached_property
    def columns(self) -> list[CatalogueColumn]:
        return [column for table in self.tables for column in table.columns]

    @cached_property
    def words(self) -> frozenset[str]:
        """Every word of every table and column name."""
        return frozenset(w for t in self.tables for w in t.words) | frozenset(
            w for c in self.columns for w in c.words
        )

    def columns_named(self, words: tuple[str, ...], *, numeric: bool) -> list[CatalogueColumn]:
        """Measure (or grouping) columns called `words`, alone or after their table's name."""
        return self._names[numeric].get(words, [])

    def columns_ending(self, word: str, *, numeric: bool) -> list[CatalogueColumn]:
        """Measure (or grouping) columns of several words whose last word is `word`."""
        return self._endings[numeric].get(word, [])

    @cached_property
    def _names(self) -> dict[bool, dict[tuple[str, ...], list[CatalogueColumn]]]:
        names: dict[bool, dict[tuple[str, ...], list[CatalogueColumn]]] = {True: {}, False: {}}
        for column in self.columns:
            for numeric, wanted in ((True, column.is_measure), (False, column.is_groupable)):
                if wanted:
                    for spelling in {column.words, (*column.table.words, *column.words)}:
                        names[numeric].setdefault(spelling, []).append(column)
        return names

    @cached_property
    def _endings(self) -> dict[bool, dict[str, list[CatalogueColumn]]]:
        endings: dict[bool, dict[str, list[CatalogueColumn]]] = {True: {}, False: {}}
        for column in self.columns:
            for numeric, wanted in ((True, column.is_measure), (False, column.is_groupable)):
                if wanted and len(column.words) > 1:
                    endings[numeric].setdefault(column.words[-1], []).append(column)
        return endings

    @cached_property
    def value_index(self) -> dict[tuple[str, ...], list[tuple[CatalogueColumn, str]]]:
        """Catalogue values by their lowercase words, for finding them in a question."""

        index: dict[tuple[str, ...], list[tuple[CatalogueColumn, str]]] = {}
        for column in self.columns:
            for value in column.values:
                key = value_key(value)
                if key and any(ch.isalpha() for ch in value):
                    index.setdefault(key, []).append((column, value))
        return index

    def paths_from(self, base: TableKey) -> dict[TableKey, Path]:
        """The cheapest join path from `base` to every reachable table.

        Dijkstra over the foreign-key graph, where a forward step (foreign key to the row it
        references) costs 1 and a reverse step costs `_REVERSE_STEP_COST`: the cheapest path
        repeats rows as little as possible, then is as short as possible. Ties go to the table
        and column met first in catalogue order, so the same catalogue always gives the same
        joins. The result is a tree: the paths to any set of tables share their common steps.
        """
        if base in self._paths:
            return self._paths[base]
        best: dict[TableKey, Path] = {base: Path()}
        costs: dict[TableKey, int] = {base: 0}
        counter = 0
        queue: list[tuple[int, int, TableKey]] = [(0, counter, base)]
        done: set[TableKey] = set()
        while queue:
            cost, _, key = heapq.heappop(queue)
            if key in done:
                continue
            done.add(key)
            edges = sorted(
                self._edges[key],
                key=lambda e: (self.by_key[e.target].position, e.source_column, e.target_column),
            )
            for edge in edges:
                step = 1 if edge.forward else _REVERSE_STEP_COST
                if edge.target in done or cost + step >= costs.get(edge.target, 1 << 30):
                    continue
                costs[edge.target] = cost + step
                best[edge.target] = Path(best[key].edges + (edge,))
                counter += 1
                heapq.heappush(queue, (cost + step, counter, edge.target))
        self._paths[base] = best
        return best
