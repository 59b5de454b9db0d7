"""Groupings: "by region", "per category and channel", "for each artist", "monthly"."""

from dataclasses import replace

from apps.chat.providers.builtin.catalogue import CatalogueColumn
from apps.chat.providers.builtin.intent import DimensionSpec
from apps.chat.providers.builtin.measures import MeasurePasses
from apps.chat.providers.builtin.reader import BOUNDARY, COUNT_LEADS
from apps.chat.providers.builtin.tokens import number
from apps.chat.providers.builtin.vocabulary import GRAIN_ADVERBS, GRAIN_WORDS, MEASURE_WORDS, TREND_WORDS

_DIMENSION_KEYWORDS: tuple[tuple[str, ...], ...] = (
    ("broken", "down", "by"), ("break", "down", "by"), ("grouped", "by"), ("group", "by"),
    ("split", "by"), ("breakdown", "by"), ("for", "each"), ("for", "every"), ("in", "each"),
    ("in", "every"), ("of", "each"), ("by",), ("per",), ("across",), ("each",),
)  # fmt: skip


class GroupingPasses(MeasurePasses):
    """Reads groupings; a phrase after "by" that names a measure instead ("top 5 products by
    revenue") becomes the measure, which is why groupings build on the measure passes."""

    def _dimensions(self) -> None:
        """Phrases after a grouping keyword, split on "and"; then grain adverbs ("monthly")."""
        tokens = self.tokens
        lows = [t.low for t in tokens]
        i = 0
        while i < len(tokens):
            keyword = next(
                (
                    k
                    for k in _DIMENSION_KEYWORDS
                    if tuple(lows[i : i + len(k)]) == k and self._free(i, len(k))
                ),
                None,
            )
            if keyword is None:
                i += 1
                continue
            start = i + len(keyword)
            start = self._skip(start, {"the", "each", "every", "a"})
            end = start
            # "by number of customers": the "of" of a count belongs to the phrase
            for lead in COUNT_LEADS:
                if tuple(lows[start : start + len(lead)]) == lead:
                    end = start + len(lead)
                    break
            while end < len(tokens) and not tokens[end].used and end - start < 8:
                if lows[end] in BOUNDARY and lows[end] != "and":
                    break
                if number(tokens[end]) is not None and not tokens[end].low.isalpha():
                    break
                end += 1
            if end == start:
                i += 1
                continue
            parts = self._split_parts(start, end)
            resolved_any = False
            for part_start, part_end in parts:
                spec = self._dimension_spec(part_start, part_end)
                if all(w in MEASURE_WORDS for w in self._words(part_start, part_end)):
                    spec = None  # "top region by sales" ranks by money even if a table is called sales
                if spec is not None:
                    self.intent.dimensions.append(spec)
                    self._use(part_start, part_end)
                    resolved_any = True
                    continue
                measure = self._measure_from_words(part_start, part_end)
                if measure is not None and keyword in (("by",), ("per",)) and self.intent.measure is None:
                    self.intent.measure = measure
                    self.by_measure_at = i
                    self._use(part_start, part_end)
                    resolved_any = True
                    continue
                if keyword == ("each",) and not resolved_any:
                    break
                self.intent.unknown_dimensions.append(self._phrase(part_start, part_end))
                self._use(part_start, part_end)
                resolved_any = True
            if resolved_any:
                self._use(i, i + len(keyword))
                for j in range(start, end):
                    if lows[j] in ("and", ","):
                        tokens[j].used = True
            i = end if resolved_any else i + 1
        for token in tokens:
            if token.used:
                continue
            if token.low in GRAIN_ADVERBS and not any(d.grain for d in self.intent.dimensions):
                self.intent.dimensions.append(DimensionSpec(phrase=token.low, grain=GRAIN_WORDS[token.low]))
                token.used = True
            elif token.low in TREND_WORDS and not any(d.grain for d in self.intent.dimensions):
                self.intent.dimensions.append(DimensionSpec(phrase="month", grain="month"))
                token.used = True

    def _split_parts(self, start: int, end: int) -> list[tuple[int, int]]:
        """Splits "region and channel" in two; a whole name with "and" in it stays whole."""
        parts, part_start = [], start
        for j in range(start, end):
            if self.tokens[j].low in ("and",):
                if j > part_start:
                    parts.append((part_start, j))
                part_start = j + 1
        if end > part_start:
            parts.append((part_start, end))
        # "by region and channel" splits, unless the whole phrase names one column or table.
        if len(parts) > 1:
            whole = self._dimension_spec(start, end)
            if whole is not None and whole.grain is None:
                return [(start, end)]
        return parts

    def _dimension_spec(self, start: int, end: int) -> DimensionSpec | None:
        """What the tokens start..end group by: a time grain, a table (by its name column), a
        text column, a foreign key's table, or None."""
        words = tuple(w for w in self._words(start, end) if w not in ("the", "a"))
        if not words:
            return None
        phrase = self._phrase(start, end)
        last_low = self.tokens[end - 1].low
        if last_low in GRAIN_WORDS:
            if "and" in words:
                return None
            return DimensionSpec(phrase=phrase, grain=GRAIN_WORDS[last_low], date_hint=words[:-1])
        tables = tuple(self._tables_named(words))
        columns: list[tuple[CatalogueColumn, float]] = []
        for column in self.catalogue.columns:
            if not column.is_groupable:
                continue
            if column.words == words or (*column.table.words, *column.words) == words:
                columns.append((column, 10.0))
        for table in self.catalogue.tables:
            if len(words) > len(table.words) and words[: len(table.words)] == table.words:
                rest = words[len(table.words) :]
                if table.label_columns and rest in (("name",), ("title",), ("label",)):
                    tables += (table,)
        if not tables and not columns:
            # "by support rep": a foreign key named without its "id" groups by what it references
            for column in self.catalogue.columns:
                target = self.catalogue.target_of(column)
                if target is not None and column.words[-1:] == ("id",) and column.words[:-1] == words:
                    tables += (target,)
        if not tables and not columns and len(words) == 1:
            columns = self._partial_columns(words[0], numeric=False)
        if not tables and not columns and end - start > 1:
            # "product category": the category, reached through products
            for table in self.catalogue.tables:
                size = len(table.words)
                if end - start > size and self._words(start, start + size) == table.words:
                    rest = self._dimension_spec(start + size, end)
                    if rest is not None:
                        return replace(rest, phrase=phrase)
        if not tables and not columns:
            return None
        return DimensionSpec(phrase=phrase, tables=tables, columns=tuple(columns))
