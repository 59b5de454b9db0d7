"""Equality filters: values the catalogue knows ("in Europe", "on mobile", "refunded orders"),
a named column and a typed value ("where status is refunded", "the Rock genre"), and boolean
adjectives ("active products")."""

from dataclasses import replace

from apps.chat.providers.builtin.catalogue import CatalogueColumn, comment_values
from apps.chat.providers.builtin.intent import FilterOption, FilterSpec
from apps.chat.providers.builtin.reader import BOUNDARY, TokenReader
from apps.chat.providers.builtin.tokens import value_key
from apps.chat.providers.builtin.vocabulary import GRAIN_WORDS, MEASURE_WORDS, STOP_WORDS
from apps.connections.engines.base import SAMPLE_LIMIT


class FilterPasses(TokenReader):
    """Reads filters; run after groupings, so "by channel" is never read as a value."""

    def _explicit_filters(self) -> None:
        """A named column and a typed value: "where status is refunded", "genre = Rock"."""
        tokens = self.tokens
        for i, token in enumerate(tokens):
            if token.used or token.low not in ("is", "=", "equals", "equal", "was"):
                continue
            value_start = i + 1
            if value_start < len(tokens) and tokens[value_start].low == "to":
                value_start += 1
            value_end = value_start
            while value_end < len(tokens) and value_end - value_start < 5:
                nxt = tokens[value_end]
                if nxt.used or (nxt.low in BOUNDARY and value_end > value_start) or nxt.low in ("by", "per"):
                    break
                value_end += 1
            if value_end == value_start:
                continue
            for length in (3, 2, 1):
                col_start = i - length
                if col_start < 0 or not self._free(col_start, length):
                    continue
                options = self._filter_columns(col_start, i)
                if not options:
                    continue
                value = self._phrase(value_start, value_end)
                key = value_key(value)
                found = []
                for column in options:
                    exact = [v for v in column.values if value_key(v) == key]
                    if exact:
                        found.append(FilterOption(column, (exact[0],), False, 10.0))
                    elif column.kind == "boolean" and key in (("true",), ("yes",), ("false",), ("no",)):
                        flag = "true" if key[0] in ("true", "yes") else "false"
                        found.append(FilterOption(column, (flag,), False, 9.0))
                    elif column.kind == "text":
                        found.append(FilterOption(column, (value,), True, 8.0))
                if not found:
                    continue
                lead = (
                    col_start - 1
                    if col_start > 0 and tokens[col_start - 1].low in ("where", "with", "whose")
                    else col_start
                )
                self.intent.filters.append(
                    FilterSpec(phrase=f"{self._phrase(col_start, i)} is {value}", options=tuple(found))
                )
                self._use(lead, value_end)
                self._use(i, i + 1)
                break

    def _named_value_filters(self) -> None:
        """A capitalised value next to the noun of a table with one name column, matched ignoring
        case: "tracks in the Rock genre", "artist Iron Maiden"."""
        tokens = self.tokens
        for i, token in enumerate(tokens):
            if token.used:
                continue
            tables, length = self._tables_at(i)
            tables = [t for t in tables if len(t.label_columns) == 1]
            if not tables:
                continue
            for start, end in (self._capitalised_run(i - 1, -1), self._capitalised_run(i + length, 1)):
                if start >= end:
                    continue
                value = self._phrase(start, end)
                column = tables[0].label_columns[0]
                exact = [v for v in column.values if value_key(v) == value_key(value)]
                option = FilterOption(column, (exact[0],) if exact else (value,), not exact, 9.0)
                self.intent.filters.append(FilterSpec(phrase=f"{tables[0].noun} {value}", options=(option,)))
                self._use(start, end)
                self._use(i, i + length)
                break

    def _capitalised_run(self, i: int, step: int) -> tuple[int, int]:
        """The capitalised words (and & / - between them) from token i going in `step`."""
        found = []
        while 0 <= i < len(self.tokens):
            token = self.tokens[i]
            if token.used or not (token.text[:1].isupper() or (found and token.text in ("&", "/"))):
                break
            if token.word in self.catalogue_words or token.low in STOP_WORDS or token.word in MEASURE_WORDS:
                break
            found.append(i)
            i += step
        while found and self.tokens[found[-1]].text in ("&", "/"):
            found.pop()
        if not found:
            return (0, 0)
        return (min(found), max(found) + 1)

    def _filter_columns(self, start: int, end: int) -> list[CatalogueColumn]:
        words = tuple(w for w in self._words(start, end) if w not in ("the",))
        if not words:
            return []
        found = [
            c
            for c in self.catalogue.columns
            if c.kind in ("text", "boolean")
            and not c.is_key
            and (c.words == words or (*c.table.words, *c.words) == words)
        ]
        if found:
            return found
        for table in self.catalogue.tables:
            if table.words == words and len(table.label_columns) == 1:
                found.append(table.label_columns[0])
        return found

    def _value_filters(self) -> None:
        """Values of the catalogue spelt in the question: "in Europe", "refunded orders"."""
        tokens = self.tokens
        i = 0
        while i < len(tokens):
            if tokens[i].used:
                i += 1
                continue
            for length in range(min(6, len(tokens) - i), 0, -1):
                if not self._free(i, length):
                    continue
                key = tuple(t.low for t in tokens[i : i + length])
                hits = self.value_index.get(key)
                if not hits:
                    continue
                if self._columns_at(i, numeric=True)[1] > length:
                    continue  # "refunded amount" names a column; "refunded" alone is a status
                if length == 1 and (key[0] in STOP_WORDS or key[0] in GRAIN_WORDS):
                    continue
                # Short codes ("CA", "EU") only count when written as the catalogue writes them.
                hits = [(c, v) for c, v in hits if len(v) > 2 or self._phrase(i, i + length) == v]
                if not hits:
                    continue
                hits, extra = self._narrow_by_neighbour(hits, i, i + length)
                options = tuple(FilterOption(c, (v,), False, 10.0) for c, v in hits)
                options += self._sibling_options(hits)
                self._add_value_filter(FilterSpec(phrase=self._phrase(i, i + length), options=options))
                self._use(i, i + length)
                for j in extra:
                    tokens[j].used = True
                i += length
                break
            else:
                i += 1

    def _boolean_filters(self) -> None:
        """A boolean column named by its adjective (is_active -> "active products", "inactive
        products")."""
        adjectives: dict[str, list[CatalogueColumn]] = {}
        for column in self.catalogue.columns:
            if column.kind != "boolean":
                continue
            words = tuple(w for w in column.words if w not in ("is", "has", "flag"))
            if len(words) == 1:
                adjectives.setdefault(words[0], []).append(column)
        for i, token in enumerate(self.tokens):
            if token.used:
                continue
            negated = token.low.startswith("in") and token.low[2:] in adjectives
            word = token.low[2:] if negated else token.low
            if word not in adjectives:
                continue
            if i > 0 and self.tokens[i - 1].low == "not" and not self.tokens[i - 1].used:
                negated = True
                self.tokens[i - 1].used = True
            value = "false" if negated else "true"
            options = tuple(FilterOption(c, (value,), False, 10.0) for c in adjectives[word])
            self.intent.filters.append(FilterSpec(phrase=self._phrase(i, i + 1), options=options))
            token.used = True

    def _sibling_options(self, hits: list[tuple[CatalogueColumn, str]]) -> tuple[FilterOption, ...]:
        """Columns of the same name whose samples are cut short may hold the value too: for
        "customers in Canada" when only Employee.Country's samples show Canada."""
        options = []
        hit_columns = {id(c) for c, _ in hits}
        for column, value in hits:
            for other in self.catalogue.columns:
                if (
                    id(other) not in hit_columns
                    and other.words == column.words
                    and other.is_groupable
                    and len(other.info.samples) >= SAMPLE_LIMIT
                    and not comment_values(other.info.comment)  # its comment lists every value
                ):
                    hit_columns.add(id(other))
                    options.append(FilterOption(other, (value,), False, 9.0))
        return tuple(options)

    def _narrow_by_neighbour(
        self, hits: list[tuple[CatalogueColumn, str]], start: int, end: int
    ) -> tuple[list[tuple[CatalogueColumn, str]], list[int]]:
        """Keeps the hits whose column or table a neighbouring word names ("Enterprise plan", not
        the Enterprise segment; "the Classical genre", not the playlist). A column's word is used
        up with the value; a table's stays, as it may be what is counted ("active staff")."""
        for j in (end, start - 1):
            if 0 <= j < len(self.tokens) and not self.tokens[j].used and self.tokens[j].word != "name":
                word = self.tokens[j].word
                by_column = [(c, v) for c, v in hits if word in c.words]
                if by_column:
                    return by_column, [j]
                by_table = [(c, v) for c, v in hits if word in c.table.words]
                if by_table:
                    return by_table, []
        return hits, []

    def _add_value_filter(self, spec: FilterSpec) -> None:
        # "in Europe or North America": two values of one column are one IN filter.
        for existing in self.intent.filters:
            if existing.columns == spec.columns and not any(o.case_insensitive for o in existing.options):
                merged = []
                for option in existing.options:
                    extra = next(o for o in spec.options if o.column is option.column)
                    merged.append(replace(option, values=option.values + extra.values))
                self.intent.filters[self.intent.filters.index(existing)] = FilterSpec(
                    phrase=f"{existing.phrase} or {spec.phrase}", options=tuple(merged)
                )
                return
        self.intent.filters.append(spec)
