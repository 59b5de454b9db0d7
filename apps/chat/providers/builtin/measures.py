"""The measure: "total revenue", "average unit price", "how many customers", "number of
customers who ordered", "the most popular genres", "the longest tracks"."""

from apps.chat.providers.builtin.catalogue import CatalogueTable
from apps.chat.providers.builtin.intent import MeasureSpec
from apps.chat.providers.builtin.reader import (
    COUNT_LEADS,
    SUPERLATIVE_AGGREGATION,
    SUPERLATIVE_MEASURES,
    TokenReader,
)
from apps.chat.providers.builtin.vocabulary import (
    ACTIVITY_VERBS,
    AGGREGATIONS,
    DISTINCT_WORDS,
    MEASURE_WORDS,
    POPULARITY_WORDS,
    SUPERLATIVES_ASC,
    SUPERLATIVES_DESC,
    singular,
    verb_stem,
)

_FILLER_AFTER_AGGREGATION = frozenset({"the", "of", "a", "an", "our", "all"})
# These name an aggregation outright; "highest" may instead rank ("the region with the highest").
_EXPLICIT_EXTREMES = frozenset({"maximum", "max", "minimum", "min"})


class MeasurePasses(TokenReader):
    """Reads the measure; run after groupings and filters, so their words are already taken."""

    def _measure_from_words(self, start: int, end: int) -> MeasureSpec | None:
        """A measure spelt by exactly the tokens start..end (for "by revenue", "sorted by ...")."""
        saved = [t.used for t in self.tokens]
        try:
            found = self._measure_at(start, limit=end)
            if found is None:
                return None
            spec, used_end = found
            return spec if used_end >= end else None
        finally:
            for token, was_used in zip(self.tokens, saved, strict=True):
                token.used = was_used

    def _measure(self) -> None:
        if self.intent.measure is not None:
            return
        # "customers who signed up": a word naming a date column of a table the question names
        # says when, it is not the measure (daily_traffic.signups).
        named_dates = {
            w
            for i in range(len(self.tokens))
            for table in self._tables_at(i)[0]
            for column in table.date_columns
            for w in column.words
            if w != "date"
        }
        # Popularity ("best-selling", "sold") only when no measure is named ("sold the most units").
        for popularity in (False, True):
            self.popularity_allowed = popularity
            for i in range(len(self.tokens)):
                if self.tokens[i].used or self.tokens[i].word in named_dates:
                    continue
                found = self._measure_at(i)
                if found is not None:
                    spec, end = found
                    self.intent.measure = spec
                    self._use(i, end)
                    return

    def _measure_at(self, i: int, *, limit: int | None = None) -> tuple[MeasureSpec, int] | None:
        tokens = self.tokens
        stop = len(tokens) if limit is None else limit
        low = tokens[i].low
        lows = [t.low for t in tokens]
        # "how many", "number of", "count of", "total number of"
        for lead in COUNT_LEADS:
            if tuple(lows[i : i + len(lead)]) == lead and self._free(i, len(lead)):
                return self._count_target(i, i + len(lead), stop)
        if low == "count" and i + 1 < stop:
            return self._count_target(i, i + 1, stop)
        # A column named in full wins over the words in it ("average order value").
        columns, length = self._columns_at(i, numeric=True)
        if columns and length > 1 and i + length <= stop:
            return MeasureSpec(
                phrase=self._phrase(i, i + length), words=self._words(i, i + length)
            ), i + length
        tables, length = self._tables_at(i)
        if tables and i + length < stop and lows[i + length] == "count":
            return MeasureSpec(phrase=self._phrase(i, i + length + 1), count_entity=tables[0]), i + length + 1
        aggregation = AGGREGATIONS.get(low) or SUPERLATIVE_AGGREGATION.get(low)
        if aggregation is not None:
            found = self._aggregated(i, aggregation, stop)
            if found is not None or self.intent.unsupported:
                return found
        return self._measure_words(i, stop)

    def _aggregated(self, i: int, aggregation: str, stop: int) -> tuple[MeasureSpec, int] | None:
        """An aggregation and its measure: "total revenue", "the highest price", "total orders"."""
        lows = [t.low for t in self.tokens]
        j = self._skip(i + 1, _FILLER_AFTER_AGGREGATION)
        if tuple(lows[j : j + 2]) in (("number", "of"), ("count", "of"), ("how", "many")):
            if aggregation == "sum":
                return self._count_target(i, j + 2, stop)
            self.intent.unsupported = f"the {lows[i]} of a count (counting per group, then averaging)"
            return None
        if j >= stop:
            return None
        found = self._measure_words(j, stop)
        if found is None:
            tables, length = self._tables_at(j)
            if tables and j + length < stop and self.tokens[j + length].low not in SUPERLATIVE_MEASURES:
                found = self._measure_words(j + length, stop)
                if found is not None:
                    found[0].scope = tuple(tables)  # "average track length": the tracks' length
            if found is None and tables and aggregation == "sum":
                return MeasureSpec(phrase=self._phrase(i, j + length), count_entity=tables[0]), j + length
        if found is None:
            return None
        spec, end = found
        spec.aggregation = aggregation
        spec.superlative = lows[i] in SUPERLATIVE_AGGREGATION and lows[i] not in _EXPLICIT_EXTREMES
        spec.phrase = self._phrase(i, end)
        return spec, end

    def _measure_words(self, i: int, stop: int) -> tuple[MeasureSpec, int] | None:
        """A measure noun at token i: a numeric column's name, a word of a measure family
        (revenue, price, quantity...), a word of a numeric column's name, or popularity."""
        tables, table_length = self._tables_at(i)
        columns, length = self._columns_at(i, numeric=True)
        if columns and i + length <= stop and length > table_length:
            return MeasureSpec(
                phrase=self._phrase(i, i + length), words=self._words(i, i + length)
            ), i + length
        token = self.tokens[i]
        if tables and table_length == 1 and token.word in MEASURE_WORDS:
            # A table named like a measure ("sales by region"): its money, not its row count.
            return MeasureSpec(phrase=token.text, words=(token.word,), scope=tuple(tables)), i + 1
        if tables:
            return None
        if token.used:
            return None
        if token.low in SUPERLATIVE_MEASURES:
            # "the longest tracks": duration, ranked; "the longest track length": its maximum
            aggregation, descending = SUPERLATIVE_MEASURES[token.low]
            j = i + 1
            tables, length = self._tables_at(j)
            after = j + length
            if after < stop and self._free(after, 1) and self.tokens[after].word in MEASURE_WORDS:
                # "the longest track length": the maximum of the length of tracks
                spec = MeasureSpec(
                    phrase=self._phrase(i, after + 1), words=(self.tokens[after].word,),
                    aggregation=aggregation, scope=tuple(tables),
                )  # fmt: skip
                return spec, after + 1
            if self.intent.descending is None:
                self.intent.descending = descending
            spec = MeasureSpec(
                phrase=token.text, words=(token.word,), aggregation=aggregation, superlative=True
            )
            return spec, i + 1
        if self._measure_noun(i, stop) or (self._measure_qualifier(i) and self._measure_noun(i + 1, stop)):
            # "session length", "unique visitors": qualifiers, then the measure's noun(s)
            end = i + 1
            while self._measure_noun(end, stop):
                end += 1
            return MeasureSpec(phrase=self._phrase(i, end), words=self._words(i, end)), end
        if self.popularity_allowed and (token.low in POPULARITY_WORDS or token.low == "sold"):
            start = i
            if (
                i > 0
                and not self.tokens[i - 1].used
                and self.tokens[i - 1].low in SUPERLATIVES_DESC | SUPERLATIVES_ASC
            ):
                start = i - 1
                self.intent.descending = self.tokens[i - 1].low in SUPERLATIVES_DESC
                self.tokens[i - 1].used = True
            self.intent.ranking = True
            if self.intent.descending is None:
                self.intent.descending = True
            return MeasureSpec(phrase=self._phrase(start, i + 1), words=("quantity",), popularity=True), i + 1
        return None

    def _measure_noun(self, i: int, stop: int) -> bool:
        """A free word naming a measure: a family word (revenue, price...) or the last word of a
        numeric column's name ("visitors" for unique_visitors); never a table's name."""
        if i >= stop or not self._free(i, 1) or self._tables_at(i)[0]:
            return False
        word = self.tokens[i].word
        return word in MEASURE_WORDS or bool(self._partial_columns(word, numeric=True))

    def _measure_qualifier(self, i: int) -> bool:
        """A free word of a numeric column's name before its last: "session" (avg_session_seconds)."""
        if not self._free(i, 1) or self._tables_at(i)[0]:
            return False
        word = self.tokens[i].word
        return any(word in c.words[:-1] for c in self.catalogue.columns if c.is_measure)

    def _count_target(self, lead_start: int, j: int, stop: int) -> tuple[MeasureSpec, int] | None:
        """What "how many ..." counts: a table's rows ("how many customers"), a numeric column's
        sum ("number of visits"), or a column's distinct values ("how many countries")."""
        tokens = self.tokens
        while j < stop and (
            tokens[j].used or tokens[j].low in DISTINCT_WORDS or tokens[j].low in ("the", "all")
        ):
            j += 1
        if j >= stop:
            return None
        tables, length = self._tables_at(j)
        numeric, numeric_length = self._columns_at(j, numeric=True)
        if numeric and numeric_length > length:
            self._use(lead_start, j)
            words = self._words(j, j + numeric_length)
            return MeasureSpec(phrase=self._phrase(j, j + numeric_length), words=words), j + numeric_length
        if tables:
            self._use(lead_start, j)
            return MeasureSpec(
                phrase=self._phrase(lead_start, j + length), count_entity=tables[0]
            ), j + length
        columns, length = self._columns_at(j, numeric=False)
        if not columns:
            columns = self._partial_columns(tokens[j].word, numeric=False)
            length = 1 if columns else 0
        if not columns:
            return None
        self._use(lead_start, j)
        phrase = self._phrase(lead_start, j + length)
        return MeasureSpec(phrase=phrase, distinct_columns=tuple(c for c, _ in columns)), j + length

    def _add_related(self, measure: MeasureSpec, tables: list[CatalogueTable]) -> None:
        referencing = (
            {t.key for t, _ in self.catalogue.referencing(measure.count_entity)}
            if measure.count_entity
            else set()
        )
        for table in tables:
            if table.key in referencing:
                measure.related = (*measure.related, table)
            else:
                measure.scope = (*measure.scope, table)

    def _activity(self) -> None:
        """Counts an entity through the table recording its activity, once per entity: "customers
        who ordered", "customers who bought"."""
        measure = self.intent.measure
        if measure is None or measure.count_entity is None:
            return
        referencing: list[CatalogueTable] = []
        for table, _ in self.catalogue.referencing(measure.count_entity):
            if table not in referencing:
                referencing.append(table)
        for token in self.tokens:
            if token.used:
                continue
            stem = verb_stem(token.low)
            named = [t for t in referencing if t.words[:1] in ((stem,), (singular(stem),))]
            if named:
                measure.related = (*measure.related, *[t for t in named if t not in measure.related])
                token.used = True
            elif token.low in ACTIVITY_VERBS and referencing:
                with_dates = [t for t in referencing if t.date_columns] or referencing
                busiest = max(with_dates, key=lambda t: (t.info.row_estimate or 0, -t.position))
                if busiest not in measure.related:
                    measure.related = (*measure.related, busiest)
                token.used = True
