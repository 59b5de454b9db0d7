"""The parser's reading position: the question's tokens, and how they meet the catalogue.

`TokenReader` holds the tokens and the intent being built; the passes that read groupings,
filters and the measure extend it (groupings.py, filters.py, measures.py), and the interpreter
puts them in order. A pass that recognises a phrase marks its tokens `used`, so later passes only
see what is left.
"""

from apps.chat.providers.builtin.catalogue import Catalogue, CatalogueColumn, CatalogueTable
from apps.chat.providers.builtin.intent import Intent
from apps.chat.providers.builtin.tokens import tokenize
from apps.chat.providers.builtin.vocabulary import ENTITY_SYNONYMS, PHRASE_REWRITES, word_set

# Words that end a phrase after "by"/"per" or a filter value.
BOUNDARY = word_set(
    """in for from on at with where since between during of over that who which whose having top
    bottom sorted ordered order sort ranked limit only excluding except than to when while by per
    and or across each every is are was were has have had did do does the"""
)
COUNT_LEADS: tuple[tuple[str, ...], ...] = (
    ("total", "number", "of"), ("how", "many"), ("number", "of"), ("count", "of"), ("#", "of"),
)  # fmt: skip
# Superlatives that are an aggregation when nothing is ranked ("the highest price").
SUPERLATIVE_AGGREGATION = {
    "highest": "max", "largest": "max", "biggest": "max", "greatest": "max", "maximum": "max", "max": "max",
    "lowest": "min", "smallest": "min", "minimum": "min", "min": "min",
}  # fmt: skip
# Superlatives that name their measure too: (aggregation, descending).
SUPERLATIVE_MEASURES = {
    "longest": ("max", True), "shortest": ("min", False), "biggest": ("max", True), "heaviest": ("max", True),
}  # fmt: skip


class TokenReader:
    """The tokens of one question, the intent read so far, and matching against the catalogue."""

    def __init__(self, question: str, catalogue: Catalogue) -> None:
        text = question
        for pattern, replacement in PHRASE_REWRITES:
            text = pattern.sub(replacement, text)
        self.text = text
        self.tokens = tokenize(text)
        self.catalogue = catalogue
        self.intent = Intent()
        # Where a ranked entity may follow ("top 5 |products"), and where "by <measure>" began.
        self.ranked_at: int | None = None
        self.by_measure_at: int | None = None
        # "sorted by ..." tokens, read once the measure and groupings are known.
        self.order_phrase: tuple[int, int] | None = None
        self.popularity_allowed = True
        self.top_without_count = False
        self.value_index = catalogue.value_index
        self.catalogue_words = catalogue.words

    def _free(self, start: int, length: int) -> bool:
        end = start + length
        return start >= 0 and end <= len(self.tokens) and not any(t.used for t in self.tokens[start:end])

    def _use(self, start: int, end: int) -> None:
        for token in self.tokens[start:end]:
            token.used = True

    def _phrase(self, start: int, end: int) -> str:
        if start >= end:
            return ""
        return self.text[self.tokens[start].start : self.tokens[end - 1].end]

    def _words(self, start: int, end: int) -> tuple[str, ...]:
        return tuple(t.word for t in self.tokens[start:end])

    def _tables_at(self, i: int) -> tuple[list[CatalogueTable], int]:
        """Tables whose whole name is spelt from token i on (longest first)."""
        for length in range(min(4, len(self.tokens) - i), 0, -1):
            if not self._free(i, length):
                continue
            found = self._tables_named(self._words(i, i + length))
            if found:
                return found, length
        return [], 0

    def _tables_named(self, words: tuple[str, ...]) -> list[CatalogueTable]:
        """Tables called `words`; else, for a common other name ("songs"), the tables it means."""
        found = [t for t in self.catalogue.tables if t.words == words]
        if not found and len(words) == 1 and words[0] in ENTITY_SYNONYMS:
            found = [t for t in self.catalogue.tables if t.words in ENTITY_SYNONYMS[words[0]]]
        return found

    def _columns_at(self, i: int, *, numeric: bool) -> tuple[list[tuple[CatalogueColumn, float]], int]:
        """Columns spelt from token i: their name, or their table's name and theirs."""
        for length in range(min(5, len(self.tokens) - i), 0, -1):
            if not self._free(i, length):
                continue
            found = self.catalogue.columns_named(self._words(i, i + length), numeric=numeric)
            if found:
                return [(column, 10.0) for column in found], length
        return [], 0

    def _partial_columns(self, word: str, *, numeric: bool) -> list[tuple[CatalogueColumn, float]]:
        """Columns whose name ends with `word` ("country" -> BillingCountry), scored below a
        full name; "first" never means FirstName."""
        return [(column, 6.0) for column in self.catalogue.columns_ending(word, numeric=numeric)]

    def _skip(self, i: int, words: frozenset[str] | set[str]) -> int:
        while i < len(self.tokens) and not self.tokens[i].used and self.tokens[i].low in words:
            i += 1
        return i
