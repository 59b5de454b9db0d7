"""Reading a question: English words -> an `Intent` in terms of the catalogue -> a `QueryPlan`.

The parser works on a list of tokens and runs a fixed sequence of passes, each recognising one
kind of phrase and marking the tokens it used: dates first (so "2025" is never a number of rows),
then top-N, ordering, groupings ("by region"), filters on known values ("in Europe"), the measure
("total revenue", "how many customers") and the entities named around it. Whatever no pass used
and is not a filler word is reported back: the engine declines rather than ignore a word it did
not understand, because a silently dropped "Japan" would answer a different question.
"""

from datetime import date

from apps.chat.providers.base import Turn
from apps.chat.providers.builtin.catalogue import Catalogue, CatalogueColumn, CatalogueTable
from apps.chat.providers.builtin.dates import read_dates
from apps.chat.providers.builtin.filters import FilterPasses
from apps.chat.providers.builtin.groupings import GroupingPasses
from apps.chat.providers.builtin.intent import DimensionSpec, Intent, MeasureSpec, Unanswerable, merge
from apps.chat.providers.builtin.plan import QueryPlan
from apps.chat.providers.builtin.planner import plan_query
from apps.chat.providers.builtin.reader import BOUNDARY, SUPERLATIVE_AGGREGATION, SUPERLATIVE_MEASURES
from apps.chat.providers.builtin.tokens import number
from apps.chat.providers.builtin.vocabulary import (
    GRAIN_ADVERBS,
    GRAIN_WORDS,
    MEASURE_WORDS,
    POPULARITY_WORDS,
    STOP_WORDS,
    SUPERLATIVES_ASC,
    SUPERLATIVES_DESC,
    UNCOUNTABLE,
    UNSUPPORTED_WORDS,
    singular,
    verb_stem,
)

__all__ = ["Unanswerable", "interpret", "intent_for", "parse"]

_MAX_HISTORY_DEPTH = 8

_ORDER_KEYWORDS = frozenset({"sorted", "ordered", "ranked", "sort", "order", "sorting", "rank"})
_DESC_FIRST = frozenset({"highest", "largest", "biggest", "most", "greatest", "top", "high"})
_ASC_FIRST = frozenset({"lowest", "smallest", "least", "fewest", "low"})
_FOLLOWUP_LEADS = frozenset({"now", "and", "also", "only", "just", "same", "instead", "but", "then", "plus"})
_ADJECTIVE_MEASURES = frozenset((singular(word),) for word in SUPERLATIVE_MEASURES)
_ADDITIVE_LEADS = frozenset({"and", "also", "plus", "add"})


class _Parser(GroupingPasses, FilterPasses):
    """The passes in order; see the module's docstring."""

    # Passes ------------------------------------------------------------------------------------

    def parse(self) -> Intent:
        if not self.tokens:
            raise Unanswerable("The question is empty.")
        self._unsupported()
        self._followup_markers()
        self._time_filters()
        self._limit()
        self._ordering()
        self._dimensions()
        self._explicit_filters()
        self._value_filters()
        self._named_value_filters()
        self._boolean_filters()
        self._measure()
        self._entities()
        self._activity()
        self._date_hints()
        self._superlatives()
        self._default_limit()
        self._order_phrase()
        self._leftovers()
        return self.intent

    def _unsupported(self) -> None:
        """Words asking for what one aggregation cannot give (why, forecast, median...), unless
        the catalogue itself uses the word."""
        for token in self.tokens:
            if token.low in UNSUPPORTED_WORDS and token.word not in self.catalogue_words:
                self.intent.unsupported = self.intent.unsupported or UNSUPPORTED_WORDS[token.low]
                token.used = True

    def _followup_markers(self) -> None:
        """Marks a follow-up ("now ...", "and by channel", "only Europe", "what about ...", "...
        instead"); "and", "also" and "too" add groupings rather than replace them."""
        lows = [t.low for t in self.tokens]
        first = lows[0]
        if first in _FOLLOWUP_LEADS or lows[:2] in (["what", "about"], ["how", "about"], ["what", "if"]):
            self.intent.followup = True
        if any(word in ("instead", "same", "too") for word in lows) or "as well" in " ".join(lows):
            self.intent.followup = True
        if first in _ADDITIVE_LEADS or lows[-1:] == ["too"] or " as well" in " ".join(lows):
            self.intent.additive = True
        for token in self.tokens:
            if token.low == "add":
                token.used = True
                self.intent.followup = self.intent.additive = True

    def _time_filters(self) -> None:
        self.intent.time, refusal = read_dates(self.tokens)
        self.intent.unsupported = self.intent.unsupported or refusal

    # Ranking and ordering ------------------------------------------------------------------------

    def _limit(self) -> None:
        """Top-N: "top 5", "bottom 3", "the 3 least popular", "5 products", "the 5 longest"."""
        tokens = self.tokens
        for i, token in enumerate(tokens):
            if token.used:
                continue
            nxt = tokens[i + 1] if i + 1 < len(tokens) and not tokens[i + 1].used else None
            count = number(nxt) if nxt is not None else None
            if token.low in ("top", "bottom") or (token.low in ("first", "limit") and count is not None):
                # "top products": ten, unless the noun is singular ("the top region": one)
                descending = None if token.low == "limit" else token.low != "bottom"
                self._rank(count, descending, i, i + (2 if count is not None else 1))
                self.top_without_count = count is None
                return
            count = number(token)
            if count is None or nxt is None:
                continue
            if nxt.low in SUPERLATIVE_MEASURES:
                self._rank(count, None, i, i + 1)  # the adjective is the measure, read later
                return
            if nxt.low in SUPERLATIVES_DESC or nxt.low in SUPERLATIVES_ASC:
                self._rank(count, nxt.low in SUPERLATIVES_DESC, i, i + 2)
                return
            if self._tables_at(i + 1)[0] or self._columns_at(i + 1, numeric=False)[0]:
                self._rank(count, None, i, i + 1)
                return

    def _rank(self, count: int | None, descending: bool | None, start: int, end: int) -> None:
        self.intent.limit, self.intent.ranking = count, True
        if descending is not None:
            self.intent.descending = descending
        self._use(start, end)
        self.ranked_at = end

    def _ordering(self) -> None:
        """Order words: "sorted by ...", "descending", "highest first", "alphabetically"."""
        tokens = self.tokens
        lows = [t.low for t in tokens]
        for i, token in enumerate(tokens):
            if token.used:
                continue
            nxt = lows[i + 1] if i + 1 < len(lows) else ""
            after = lows[i + 2] if i + 2 < len(lows) else ""
            if token.low in _ORDER_KEYWORDS and nxt == "by":
                end = i + 2
                while (
                    end < len(tokens) and end - i < 6 and lows[end] not in BOUNDARY and not tokens[end].used
                ):
                    end += 1
                self.order_phrase = (i + 2, end)
                self._use(i, i + 2)
                # The phrase is resolved once the measure and groupings are known.
                for t in tokens[i + 2 : end]:
                    t.used = True
            elif token.low in ("descending", "desc"):
                self.intent.order_descending = True
                token.used = True
            elif token.low in ("ascending", "asc"):
                self.intent.order_descending = False
                token.used = True
            elif token.low in ("alphabetically", "alphabetical"):
                self.intent.order_target = "alphabetical"
                self.intent.order_descending = False
                token.used = True
            elif token.low in ("chronologically", "chronological"):
                self.intent.order_target = "time"
                self.intent.order_descending = False
                token.used = True
            elif nxt == "first" and token.low in _DESC_FIRST | _ASC_FIRST:
                self.intent.order_descending = token.low in _DESC_FIRST
                self._use(i, i + 2)
            elif nxt == "first" and token.low in ("newest", "latest", "recent", "oldest", "earliest"):
                self.intent.order_target = "time"
                self.intent.order_descending = token.low in ("newest", "latest", "recent")
                self._use(i, i + 2)
            elif nxt == "to" and token.low in _DESC_FIRST | _ASC_FIRST and after in _DESC_FIRST | _ASC_FIRST:
                self.intent.order_descending = token.low in _DESC_FIRST
                start = i - 1 if i > 0 and lows[i - 1] == "from" else i
                self._use(start, i + 3)
            elif token.low == "order" and i > 0 and tokens[i - 1].used:
                token.used = True  # "in descending order", "in alphabetical order"

    def _order_phrase(self) -> None:
        """Resolves "sorted by <phrase>": the measure, a grouping, alphabetical or time order."""
        if self.order_phrase is None:
            return
        start, end = self.order_phrase
        words = self._words(start, end)
        words = tuple(w for w in words if w not in ("the", "a"))
        if not words:
            return
        if words in (("name",), ("label",), ("title",)) or words[-1:] == ("name",):
            self.intent.order_target = "alphabetical"
            return
        if words[-1] in GRAIN_WORDS or words in (("time",), ("period",)):
            self.intent.order_target = "time"
            return
        measure = self.intent.measure
        if measure is not None and (
            set(words) & set(measure.words) or (measure.count_entity is not None and words[-1] == "count")
        ):
            self.intent.order_target = "measure"
            return
        phrase = " ".join(words)
        if any(phrase == d.phrase.lower() for d in self.intent.dimensions):
            self.intent.order_target = phrase
            return
        spec = self._dimension_spec(start, end)
        if spec is not None and not self.intent.dimensions:
            # "revenue sorted by region": a grouping, in its own order
            self.intent.dimensions.append(spec)
            self.intent.order_target = "time" if spec.grain else "alphabetical"
            return
        if measure is None:
            self.intent.unknown.append(self._phrase(start, end))
            return
        # "sorted by revenue" where the measure was named another way ("sales"): still the measure
        spec = self._measure_from_words(start, end)
        if spec is not None:
            self.intent.order_target = "measure"
        else:
            self.intent.unknown.append(self._phrase(start, end))

    # Entities ------------------------------------------------------------------------------------

    def _entity_positions(
        self,
    ) -> list[tuple[int, int, list[CatalogueTable], list[tuple[CatalogueColumn, float]]]]:
        found = []
        i = 0
        while i < len(self.tokens):
            if self.tokens[i].used:
                i += 1
                continue
            tables, length = self._tables_at(i)
            columns: list[tuple[CatalogueColumn, float]] = []
            if not tables:
                columns, length = self._columns_at(i, numeric=False)
                if not columns and self.tokens[i].word not in STOP_WORDS:
                    columns = self._partial_columns(self.tokens[i].word, numeric=False)
                    length = 1 if columns else 0
            grain = self.tokens[i].low in GRAIN_WORDS and self.tokens[i].low not in GRAIN_ADVERBS
            if tables or columns or grain:
                found.append((i, max(length, 1), tables, columns))
                i += max(length, 1)
            else:
                i += 1
        return found

    def _is_ranked_position(self, i: int, length: int) -> bool:
        """Right after a top-N, after "which"/"what", before "by <measure>" or "with the most"."""
        tokens = self.tokens
        if self.ranked_at is not None:
            j = self.ranked_at
            while j < i and (
                tokens[j].used or tokens[j].low in STOP_WORDS or tokens[j].low in POPULARITY_WORDS
            ):
                j += 1
            if j == i:
                return True
        before = i - 1
        while before >= 0 and tokens[before].low in ("the", "a"):
            before -= 1
        if before >= 0 and tokens[before].low in ("which", "what"):
            return True
        if self.by_measure_at is not None and i + length == self.by_measure_at:
            return True
        after = i + length
        return (
            after + 1 < len(tokens)
            and tokens[after].low in ("with", "having", "that", "by")
            and (tokens[after + 1].low in ("the", "most", "highest", "lowest", "least", "fewest", "largest"))
        )

    def _entities(self) -> None:
        """Table and column nouns no other pass took. A noun in a ranking position ("top 5
        products", "which region", "products by revenue") is the grouping being ranked. Of the
        others, a table is what to count when there is no measure yet ("customers by region"),
        the activity a counted entity is counted through ("customers with orders"), or else the
        measure's scope ("the price of products")."""
        positions = self._entity_positions()
        remaining = []
        superlative_present = any(
            not t.used and (t.low in SUPERLATIVES_DESC or t.low in SUPERLATIVES_ASC) for t in self.tokens
        )
        measure = self.intent.measure
        for i, length, tables, columns in positions:
            grain_word = not tables and not columns
            ranked = self._is_ranked_position(i, length)
            if (
                not ranked
                and measure is not None
                and (measure.popularity or measure.superlative or superlative_present)
            ):
                ranked = not grain_word and not any(d.ranked for d in self.intent.dimensions)
                ranked = ranked and (measure.count_entity is None or tables[:1] != [measure.count_entity])
            if ranked:
                phrase = self._phrase(i, i + length)
                if grain_word:
                    spec = DimensionSpec(phrase=phrase, grain=GRAIN_WORDS[self.tokens[i].low], ranked=True)
                else:
                    spec = DimensionSpec(
                        phrase=phrase, tables=tuple(tables), columns=tuple(columns), ranked=True
                    )
                self.intent.dimensions.insert(0, spec)
                self.intent.ranking = True
                last = self.tokens[i + length - 1]
                if self.intent.limit is None and last.low == last.word and last.low not in UNCOUNTABLE:
                    self.intent.limit = 1  # "which region", "the most popular genre": one answer
                self._use(i, i + length)
            else:
                remaining.append((i, length, tables, columns))
        for i, length, tables, _columns in remaining:
            if not tables:
                continue  # a column or grain word outside any phrase: reported as unknown later
            measure = self.intent.measure
            if (
                measure is not None
                and i > 0
                and self.tokens[i - 1].low == "and"
                and measure.count_entity is None
            ):
                self.intent.unsupported = "two measures in one question (ask for them one at a time)"
            if measure is None:
                self.intent.measure = MeasureSpec(phrase=self._phrase(i, i + length), count_entity=tables[0])
            elif measure.count_entity is not None and measure.count_entity not in tables:
                self._add_related(measure, tables)
            else:
                measure.scope = (*measure.scope, *tables)
            self._use(i, i + length)

    def _default_limit(self) -> None:
        if self.top_without_count and self.intent.limit is None:
            self.intent.limit = 10

    def _date_hints(self) -> None:
        """Words naming a date column ("signed up" -> signup_date, "hired" -> HireDate) choose
        the date that time grains and filters apply to."""
        date_words = {w for t in self.catalogue.tables for c in t.date_columns for w in c.words} - {"date"}
        hints = list(self.intent.date_hints)
        for token in self.tokens:
            if token.used or token.low in STOP_WORDS:
                continue
            for stem in (token.word, verb_stem(token.low), token.low[:-1]):
                if len(stem) >= 3 and any(
                    w.startswith(stem) or (len(w) >= 4 and stem.startswith(w)) for w in date_words
                ):
                    hints.append(stem)
                    token.used = True
                    break
        self.intent.date_hints = tuple(hints)

    def _superlatives(self) -> None:
        """Superlatives ("most", "highest", "least"...) give the direction of a ranking, or else
        min/max of the measure ("the highest price"); a superlative measure with a ranked grouping
        is a ranking ("the region with the highest revenue" ranks regions by revenue)."""
        for token in self.tokens:
            if token.used:
                continue
            if token.low in SUPERLATIVES_DESC or token.low in SUPERLATIVES_ASC:
                descending = token.low in SUPERLATIVES_DESC
                measure = self.intent.measure
                if any(d.ranked for d in self.intent.dimensions) or self.intent.ranking:
                    if self.intent.descending is None:
                        self.intent.descending = descending
                elif (
                    measure is not None
                    and measure.aggregation is None
                    and measure.count_entity is None
                    and (measure.words and token.low in SUPERLATIVE_AGGREGATION)
                ):
                    measure.aggregation = SUPERLATIVE_AGGREGATION[token.low]
                elif self.intent.dimensions:
                    self.intent.ranking = True
                    self.intent.descending = descending
                else:
                    continue  # nothing to rank or aggregate: left for the unknown words
                token.used = True
        measure = self.intent.measure
        if measure is not None and measure.superlative and any(d.ranked for d in self.intent.dimensions):
            # "the region with the highest revenue": rank regions by revenue, not max(revenue).
            if self.intent.descending is None:
                self.intent.descending = measure.aggregation == "max"
            measure.aggregation = None
            measure.superlative = False
        elif (
            measure is not None
            and not self.intent.dimensions
            and (measure.popularity or (measure.superlative and measure.words[:1] in _ADJECTIVE_MEASURES))
        ):
            # "the longest", "the most popular" rank things; with nothing named to rank, it is unclear.
            self.intent.unknown.append(measure.phrase)

    def _leftovers(self) -> None:
        """Words no pass used: a second measure is refused as such, anything else as unknown."""
        for i, token in enumerate(self.tokens):
            if token.used or token.low in STOP_WORDS or token.low in (",", "&", "/", "+", "=", "#"):
                continue
            if self.intent.measure is not None and (
                token.word in MEASURE_WORDS or self._columns_at(i, numeric=True)[0]
            ):
                self.intent.unsupported = "two measures in one question (ask for them one at a time)"
            if token.low in _FOLLOWUP_LEADS or token.low in ("what", "about"):
                continue
            self.intent.unknown.append(token.text)


def parse(question: str, catalogue: Catalogue) -> Intent:
    return _Parser(question, catalogue).parse()


# Follow-ups --------------------------------------------------------------------------------------


def intent_for(question: str, catalogue: Catalogue, history: list[Turn], depth: int = 0) -> Intent:
    """The intent of `question`, read as a follow-up of the history when it is one."""
    intent = parse(question, catalogue)
    is_followup = intent.followup or (intent.measure is None and intent.has_delta)
    if not history or not is_followup or depth >= _MAX_HISTORY_DEPTH:
        return intent
    previous = intent_for(history[-1].question, catalogue, history[:-1], depth + 1)
    if previous.readable:
        return merge(previous, intent)
    if intent.measure is None:
        raise Unanswerable("This looks like a follow-up, but I could not read the previous question myself.")
    return intent


def interpret(
    question: str,
    tables: list,
    *,
    history: list[Turn] | None = None,
    today: date | None = None,
    catalogue: Catalogue | None = None,
) -> QueryPlan:
    """The query plan for `question` over `tables` (or an already built `catalogue`), reading it
    as a follow-up of `history` when it is one; raises `Unanswerable` with the reason."""
    catalogue = catalogue or Catalogue(tables)
    if not catalogue.tables:
        raise Unanswerable("This connection has no tables in its catalogue yet.")
    intent = intent_for(question, catalogue, list(history or []))
    return plan_query(intent, catalogue, today=today)
