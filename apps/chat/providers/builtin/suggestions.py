"""First questions to suggest for a catalogue, each one checked against the engine itself."""

from itertools import zip_longest

from apps.chat.providers.builtin.catalogue import Catalogue, CatalogueColumn, CatalogueTable
from apps.chat.providers.builtin.interpreter import Unanswerable, interpret
from apps.chat.providers.builtin.planner import snake
from apps.chat.providers.builtin.vocabulary import plural
from apps.connections.engines.base import TableInfo

_MEASURE_WORDS = ("revenue", "sales", "amount", "quantity")


def _spoken(name: str) -> str:
    return snake(name).replace("_", " ")


def _answerable(question: str, catalogue: Catalogue) -> bool:
    try:
        interpret(question, [], catalogue=catalogue)
    except Unanswerable:
        return False
    return True


def _measure_phrase(catalogue: Catalogue) -> str | None:
    for word in _MEASURE_WORDS:
        if _answerable(f"total {word}", catalogue):
            return word
    facts = sorted(catalogue.tables, key=lambda t: (-(t.info.row_estimate or 0), t.position))
    for table in facts:
        for column in table.columns:
            phrase = _spoken(column.name)
            if column.is_measure and _answerable(f"total {phrase}", catalogue):
                return phrase
    return None


def _fact_table(catalogue: Catalogue) -> CatalogueTable | None:
    """The biggest table that records events: it has a date and references other tables."""
    facts = [t for t in catalogue.tables if t.date_columns and any(catalogue.target_of(c) for c in t.columns)]
    facts = facts or [t for t in catalogue.tables if t.date_columns] or catalogue.tables
    return max(facts, key=lambda t: (t.info.row_estimate or 0, -t.position)) if facts else None


def _ranked_entities(catalogue: Catalogue) -> list[CatalogueTable]:
    """Tables worth a top 5: named rows, referenced by others, neither tiny nor huge."""
    incoming: dict[tuple[str, str], int] = {}
    for table in catalogue.tables:
        for column in table.columns:
            target = catalogue.target_of(column)
            if target is not None:
                incoming[target.key] = incoming.get(target.key, 0) + 1
    named = [t for t in catalogue.tables if t.label_columns and incoming.get(t.key)]

    def rank(table: CatalogueTable) -> tuple:
        rows = table.info.row_estimate
        sized = rows is None or 10 <= rows <= 10_000
        return (not sized, -incoming[table.key], table.position)

    return sorted(named, key=rank)


def _groupings(catalogue: Catalogue, fact: CatalogueTable) -> list[str]:
    """Things to group the fact table by: its own categorical columns, then small named tables."""
    found = []
    columns: list[CatalogueColumn] = [c for c in fact.columns if c.is_groupable and c.values]
    # Columns of words (countries, channels) read better than columns of codes (states).
    columns.sort(key=lambda c: all(len(v) <= 3 for v in c.values))
    found += [_spoken(c.name) for c in columns]
    for table in catalogue.tables:
        rows = table.info.row_estimate
        if table.label_columns and rows is not None and rows <= 50:
            found.append(table.noun)
    return found


def suggested_questions(tables: list[TableInfo], limit: int = 4) -> list[str]:
    """Up to `limit` first questions about this catalogue, all of which the engine can answer."""
    catalogue = Catalogue(tables)
    if not catalogue.tables:
        return []
    measure = _measure_phrase(catalogue)
    fact = _fact_table(catalogue)
    # One question of each kind first (a trend, a top 5, a breakdown, a filter), then seconds.
    trends, tops, breakdowns, filtered = [], [], [], []
    if measure:
        trends.append(f"total {measure} by month")
        tops += [f"top 5 {plural(t.noun)} by {measure}" for t in _ranked_entities(catalogue)[:2]]
    if fact is not None:
        breakdowns += [f"number of {plural(fact.noun)} by {g}" for g in _groupings(catalogue, fact)[:2]]
        if measure:
            small = [t for t in _ranked_entities(catalogue) if (t.info.row_estimate or 0) <= 50]
            values = [
                t.label_columns[0].values[0]
                for t in small
                if len(t.label_columns) == 1 and t.label_columns[0].values
            ]
            filtered += [f"total {measure} for {v}" for v in values[:2]]
        trends.append(f"number of {plural(fact.noun)} by month")
    candidates = [q for group in zip_longest(trends, tops, breakdowns, filtered) for q in group if q]
    largest = max(catalogue.tables, key=lambda t: (t.info.row_estimate or 0, -t.position))
    candidates.append(f"how many {plural(largest.noun)}")
    chosen: list[str] = []
    for question in candidates:
        if len(chosen) >= limit:
            break
        if question not in chosen and _answerable(question, catalogue):
            chosen.append(question)
    return chosen
