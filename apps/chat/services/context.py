"""What the model sees: the relevant slice of the catalogue, rendered as DDL, inside a prompt.

Pure functions over engine objects (`TableInfo`), no ORM and no network, so the pipeline, the
built-in engine, the tests and `bench/chat.py` all call them the same way.

- `schema_link` picks the tables a question needs from a catalogue that may hold thousands;
- `schema_render` writes them as CREATE TABLE statements the model reads best;
- `prompt_for_sql` / `prompt_for_analysis` build the two prompts of the main path;
- `sql_extract` / `chart_spec_extract` read the SQL and the chart back out of a reply.
"""

import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from apps.chat.providers.base import Prompt, QuestionContext, Turn
from apps.connections.engines.base import ColumnInfo, TableInfo

# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------

# English prose runs about 4 characters per token; DDL is denser (short identifiers, punctuation,
# quotes), so we divide by 3.5: over-estimating a little keeps a prompt inside its budget.
CHARS_PER_TOKEN = 3.5


def estimate_tokens(text: str) -> int:
    """Roughly how many tokens `text` costs a model: characters / 3.5, rounded up.

    No tokenizer is loaded: every provider counts differently, and a budget only needs to be
    right within a few per cent, on the safe side.
    """
    return math.ceil(len(text) / CHARS_PER_TOKEN)


# ---------------------------------------------------------------------------------------------
# Words: splitting identifiers and questions into comparable terms
# ---------------------------------------------------------------------------------------------

# "ordered by age", "in descending order": how to sort, not what to read ("order" may be a table).
_ORDERING = re.compile(
    r"\b(?:in\s+)?(?:order(?:ed)?|sort(?:ed)?|rank(?:ed)?)\s+(?:them\s+)?(?:by|of)\b"
    r"|\bin\s+(?:an?\s+|the\s+)?(?:alphabetical|ascending|descending|reverse|increasing|decreasing)\s+order\b",
    re.IGNORECASE,
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[^\W\d_]+|\d+")

STOPWORDS = frozenset(
    (
        "a", "an", "the", "of", "and", "or", "in", "on", "at", "to", "for", "from", "by", "with", "without",
        "per", "as", "about", "into", "onto", "than", "then", "what", "which", "who", "whom", "whose",
        "where", "when", "why", "how", "many", "much", "is", "are", "was", "were", "be", "been", "being",
        "am", "do", "does", "did", "done", "have", "has", "had", "having", "can", "could", "would",
        "should", "will", "shall", "may", "might", "must", "show", "shows", "list", "lists", "give", "find",
        "return", "returns", "tell", "get", "me", "us", "we", "our", "i", "my", "you", "your", "all",
        "each", "every", "any", "some", "that", "this", "these", "those", "there", "their", "its", "it",
        "they", "them", "he", "she", "his", "her", "please", "display", "also", "both", "either", "between",
        "among", "not", "no", "only", "just", "more", "most", "less", "least", "other", "others", "same",
        "such", "very", "whether", "if", "else", "along", "ever", "sort", "sorted", "descending",
        "ascending"
    )
)  # fmt: skip

# Groups of words a question and a catalogue use for the same thing, including the usual
# abbreviations in column names. Matched after stemming, at a lower weight than the word itself.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("revenue", "sales", "sale", "amount", "income", "turnover", "earnings", "sold"),
    ("amount", "amt", "sum", "value"),
    ("customer", "client", "buyer", "purchaser", "cust", "consumer"),
    ("employee", "staff", "worker", "personnel", "emp", "employed", "employer", "hire", "hired"),
    ("product", "item", "goods", "merchandise", "sku", "prod"),
    ("order", "purchase", "booking", "bought"),
    ("price", "cost", "fee", "charge", "expense", "paid", "payment", "pay", "expensive", "cheap"),
    ("country", "nation", "nationality", "countries"),
    ("city", "town", "hometown"),
    ("company", "firm", "business", "organization", "organisation", "enterprise", "org"),
    ("people", "person", "individual", "persons", "human"),
    ("student", "pupil", "learner"),
    ("teacher", "instructor", "professor", "lecturer", "faculty", "tutor"),
    ("course", "class", "lesson"),
    ("car", "vehicle", "automobile", "auto"),
    ("film", "movie"),
    ("song", "track", "tune"),
    ("singer", "artist", "musician", "performer", "vocalist"),
    ("age", "old", "young", "older", "younger", "oldest", "youngest", "birth", "born", "dob"),
    ("location", "place", "address", "located", "situated"),
    ("register", "registration", "registered", "enrol", "enroll", "enrolment", "enrollment", "enrolled"),
    ("salary", "wage", "compensation", "earn", "earns"),
    ("department", "dept", "division"),
    ("region", "area", "territory", "zone", "district"),
    ("manager", "supervisor", "boss", "head", "mgr", "managed"),
    ("shipment", "delivery", "ship", "shipping", "dispatch", "shipped", "delivered"),
    ("description", "desc", "detail", "details", "descr"),
    ("quantity", "qty"),
    ("number", "num", "nbr"),
    ("telephone", "phone", "tel", "cell", "mobile"),
    ("email", "mail"),
    ("year", "yr", "annual", "yearly"),
    ("month", "monthly"),
    ("day", "daily", "date"),
    ("category", "cat", "genre", "kind", "type"),
    ("average", "avg", "mean"),
    ("percent", "percentage", "pct", "ratio", "share"),
    ("height", "tall", "taller", "tallest"),
    ("weight", "weigh", "weighs", "weighing", "heavy", "heavier", "heaviest", "light", "lighter", "lightest"),
    ("length", "long", "longer", "longest"),
    ("population", "populous", "inhabitant", "inhabitants", "resident", "residents"),
    ("language", "speak", "speaks", "spoken", "tongue"),
    ("win", "won", "winner", "winning", "victory", "wins"),
    ("owner", "own", "owned", "owns"),
    ("pet", "animal"),
    ("game", "match"),
    ("team", "club", "squad"),
    ("player", "athlete"),
    ("airline", "carrier"),
    ("document", "doc", "docs"),
    ("size", "big", "bigger", "biggest", "large", "larger", "largest", "small", "smaller", "smallest"),
    ("speed", "fast", "faster", "fastest", "slow", "slowest"),
    ("horsepower", "hp", "power"),
    ("stock", "inventory"),
    ("supplier", "vendor"),
    ("user", "account", "member"),
    ("invoice", "bill", "billing"),
    ("store", "shop", "outlet", "branch"),
    ("campaign", "promotion"),
    ("rating", "score", "grade", "rated", "stars"),
    ("name", "called", "named", "title"),
    ("visit", "visitor", "visited"),
    ("capacity", "seats", "holds"),
    ("dog", "dogs", "puppy"),
)

_PLURAL_EXCEPTIONS = ("ss", "us", "is")


@lru_cache(maxsize=100_000)
def _stem(word: str) -> str:
    """A light, deterministic stemmer: plural and -ing/-ed endings, a doubled last consonant and a
    final 'e'. It need not give real roots, only the same root for a question's word and a
    catalogue's word ('companies'/'company', 'hired'/'hire', 'shipping'/'ship')."""
    w = word
    if len(w) <= 3:
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith(("sses", "shes", "ches", "xes", "zes")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(_PLURAL_EXCEPTIONS):
        w = w[:-1]
    if w.endswith("ing") and len(w) > 5:
        w = w[:-3]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-2]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


_DERIVATIONAL = ("ality", "ation", "ment", "ness", "ship", "ity", "ion", "ist", "ian", "er", "or", "al")


def _root(stem: str) -> str:
    """A stem without its derivational suffix ('nationality' -> 'nation', 'enrolment' -> 'enrol'),
    keeping at least four letters; looser than `_stem`, so its matches count for less."""
    for suffix in _DERIVATIONAL:
        if stem.endswith(suffix) and len(stem) - len(suffix) >= 4:
            return stem[: -len(suffix)]
    return stem


def _words(text: str) -> list[str]:
    """Lowercase words of an identifier or a sentence: snake_case, camelCase, digits and spaces
    all separate words ('IndepYear' -> indep, year; 'order_date2' -> order, date, 2)."""
    return [w.lower() for w in _WORD.findall(_CAMEL.sub(" ", text))]


def _synonym_map(groups: Iterable[Iterable[str]]) -> dict[str, frozenset[str]]:
    related: dict[str, set[str]] = {}
    for group in groups:
        stems = {_stem(w.lower()) for w in group}
        for s in stems:
            related.setdefault(s, set()).update(stems - {s})
    return {s: frozenset(others) for s, others in related.items()}


# ---------------------------------------------------------------------------------------------
# Schema linking
# ---------------------------------------------------------------------------------------------

# How much one occurrence says about a table, by where it occurs.
W_TABLE_NAME = 2.5
W_SCHEMA_NAME = 0.3
W_COLUMN = 1.0
W_KEY_COLUMN = 0.4  # a foreign key column names the *other* table; that table should win
W_COMMENT = 0.6
W_SAMPLE = 0.6
W_SPLIT = 0.6  # a compound word split in parts ('countrylanguage' -> country, language)
# How much a question term counts, by where it comes from.
Q_WORD = 1.0
Q_SYNONYM = 0.55
Q_PREFIX = 0.45  # an abbreviation in the catalogue ('indep' in 'independence', 'mpg')
Q_ROOT = 0.6  # the same root ('nationality'/'nation', 'highschooler'/'high school')
Q_HISTORY = (0.5, 0.3, 0.2)  # the last turns, most recent first
# BM25 constants for the column/comment/sample part of a table; the name part is not saturated.
BM25_K1 = 1.2
BM25_B = 0.4
NEIGHBOUR_BOOST = 0.35
SCHEMA_BOOST = 0.5
HISTORY_SQL_BOOST = 0.6
# Tables scoring under this share of the best one are noise, not context.
RELATIVE_CUTOFF = 0.04

_SQL_TABLE_REF = re.compile(
    r"""\b(?:from|join)\s+((?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[\w$]+)(?:\s*\.\s*(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[\w$]+))*)""",
    re.IGNORECASE,
)


def _reference_parts(references: str) -> tuple[str, str, str]:
    """(schema, table, column) of a ColumnInfo.references: 'schema.table.column', or
    'table.column' / 'table' as SQLite reports them (no schema)."""
    parts = references.split(".")
    if len(parts) == 1:
        return "", parts[0], ""
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ".".join(parts[:-2]), parts[-2], parts[-1]


class SchemaIndex:
    """An inverted index over a catalogue, built once, queried per question.

    Each table is a document: its name (and schema), its columns' names, the comments and the
    sample values, all split into stemmed words (snake_case, camelCase, compounds such as
    'countrylanguage' split against the catalogue's own words, adjacent words run together).
    A term's weight in a table is idf(term) x (a flat weight when the term is in the table's
    *name*, shared out over the name's words, + a BM25-saturated weight for its occurrences in
    columns, comments and samples), precomputed per (term, table): a question costs one pass
    over the postings of its own few dozen terms. `scores` then:

    1. expands the question's words with synonyms, shared roots ('nationality'/'nation'),
       catalogue abbreviations ('indep' for 'independence') and initialisms ('mpg'), each
       counting less than the word itself;
    2. adds recent history: earlier questions' words (weighted lower, older ones less) and a
       boost for the tables the previous SQL read, so a follow-up keeps its tables;
    3. boosts foreign-key neighbours of strong matches, and tables whose schema is relevant as a
       whole (its tables' mean score): the tables that answer one question live together;
    and `link` moves bridge tables up (two strong tables that do not join directly but share a
    neighbour need that link table), then keeps the best within the budget and `max_tables`.
    """

    def __init__(self) -> None:
        self.tables: list[TableInfo] = []
        self.table_tokens: list[int] = []
        self.total_tokens = 0
        self.postings: dict[str, list[tuple[int, float]]] = {}
        self.vocabulary: set[str] = set()
        self.roots: dict[str, list[str]] = {}
        self.neighbours: list[set[int]] = []
        self.schema_of: list[int] = []
        self.schema_sizes: list[int] = []
        self.by_name: dict[str, list[int]] = {}
        self.centrality: list[int] = []
        self.synonyms: dict[str, frozenset[str]] = {}

    @classmethod
    def from_tables(
        cls, tables: Sequence[TableInfo], *, synonyms: Iterable[Iterable[str]] | None = None
    ) -> "SchemaIndex":
        """Index a catalogue. `synonyms` replaces the built-in groups of `SYNONYMS` (with an
        org's own glossary, say; an empty list means none)."""
        index = cls()
        index.tables = list(tables)
        index.synonyms = _synonym_map(SYNONYMS if synonyms is None else synonyms)
        index._index_names()
        index._index_terms()
        index._index_keys()
        for table in index.tables:
            tokens = estimate_tokens(_render_table(table, ""))
            index.table_tokens.append(tokens)
        # Blank lines between tables.
        index.total_tokens = sum(index.table_tokens) + len(index.tables)
        return index

    def _index_names(self) -> None:
        schemas: dict[str, int] = {}
        for i, table in enumerate(self.tables):
            schema_id = schemas.setdefault(table.schema.lower(), len(schemas))
            self.schema_of.append(schema_id)
            self.by_name.setdefault(table.name.lower(), []).append(i)
            if table.schema:
                self.by_name.setdefault(f"{table.schema.lower()}.{table.name.lower()}", []).append(i)
        self.schema_sizes = [0] * len(schemas)
        for schema_id in self.schema_of:
            self.schema_sizes[schema_id] += 1

    def _index_terms(self) -> None:
        # Compound words are split against the catalogue's own vocabulary, so collect it first.
        raw_vocabulary: set[str] = set()
        for table in self.tables:
            raw_vocabulary.update(w for w in _words(table.name) if len(w) >= 3)
            for column in table.columns:
                raw_vocabulary.update(w for w in _words(column.name) if len(w) >= 3)
        # Names, comments and samples repeat across a catalogue (id, created_at, 'EUR'...):
        # each distinct text is split once.
        known: dict[tuple[str, str], list[tuple[str, float]]] = {}

        def add(terms: dict[str, float], text: str, kind: str, weight: float) -> None:
            parts = known.get((kind, text))
            if parts is None:
                if kind == "identifier":
                    parts = _identifier_terms(text, raw_vocabulary)
                else:
                    parts = _prose_terms(text, numbers=kind == "prose")
                known[(kind, text)] = parts
            for term, share in parts:
                terms[term] = terms.get(term, 0.0) + weight * share

        name_terms: list[dict[str, float]] = []
        body_terms: list[dict[str, float]] = []
        lengths: list[float] = []
        for table in self.tables:
            name: dict[str, float] = {}
            # 'students' is a better match for "students" than 'student_notes' is.
            length = sum(1 for w in _words(table.name) if w not in STOPWORDS) or 1
            add(name, table.name, "identifier", W_TABLE_NAME / math.sqrt(length))
            add(name, table.schema, "identifier", W_SCHEMA_NAME)
            body: dict[str, float] = {}
            add(body, table.comment, "prose", W_COMMENT)
            for column in table.columns:
                add(body, column.name, "identifier", W_KEY_COLUMN if column.references else W_COLUMN)
                add(body, column.comment, "prose", W_COMMENT)
                for sample in column.samples:
                    # Numbers in samples (ids, amounts) match any number in a question: noise.
                    add(body, str(sample), "sample", W_SAMPLE)
            name_terms.append(name)
            body_terms.append(body)
            lengths.append(1.0 + len(table.columns))

        count = len(self.tables)
        average = (sum(lengths) / count) if count else 1.0
        document_frequency: dict[str, int] = {}
        for name, body in zip(name_terms, body_terms, strict=True):
            for term in name.keys() | body.keys():
                document_frequency[term] = document_frequency.get(term, 0) + 1
        for i, (name, body) in enumerate(zip(name_terms, body_terms, strict=True)):
            norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths[i] / average)
            for term in name.keys() | body.keys():
                df = document_frequency[term]
                idf = math.log(1 + (count - df + 0.5) / (df + 0.5))
                tf = body.get(term, 0.0)
                weight = name.get(term, 0.0) + tf * (BM25_K1 + 1) / (tf + norm)
                self.postings.setdefault(term, []).append((i, idf * weight))
        self.vocabulary = set(self.postings)
        for term in sorted(self.vocabulary):
            self.roots.setdefault(_root(term), []).append(term)

    def _index_keys(self) -> None:
        self.neighbours = [set() for _ in self.tables]
        referenced = [0] * len(self.tables)
        for i, table in enumerate(self.tables):
            for column in table.columns:
                if not column.references:
                    continue
                j = self._resolve(column.references, table.schema)
                if j is not None and j != i:
                    self.neighbours[i].add(j)
                    self.neighbours[j].add(i)
                    referenced[j] += 1
        # Most referenced first: the catalogue's hubs (customers, products, dates...).
        self.centrality = sorted(range(len(self.tables)), key=lambda i: (-referenced[i], i))

    def _resolve(self, references: str, schema: str) -> int | None:
        ref_schema, ref_table, _ = _reference_parts(references)
        if ref_schema:
            found = self.by_name.get(f"{ref_schema.lower()}.{ref_table.lower()}")
            if found:
                return found[0]
        candidates = self.by_name.get(ref_table.lower(), [])
        same_schema = [j for j in candidates if self.tables[j].schema.lower() == schema.lower()]
        if same_schema:
            return same_schema[0]
        return candidates[0] if len(candidates) == 1 else None

    # -- querying -----------------------------------------------------------------------------

    def _query(self, question: str, history: Sequence[Turn | str], *, expand: bool) -> dict[str, float]:
        """The weighted terms of a question and of the last turns' questions."""
        weights: dict[str, float] = {}

        def add(term: str, weight: float) -> None:
            if weight > weights.get(term, 0.0):
                weights[term] = weight

        def related(term: str, weight: float) -> None:
            for other in self.synonyms.get(term, ()):
                add(other, weight * Q_SYNONYM)
            for other in self.roots.get(_root(term), ()):
                add(other, weight * Q_ROOT)

        sources = [(question, Q_WORD)]
        recent = list(history)[-len(Q_HISTORY) :][::-1]
        sources += [(_turn_question(turn), w) for turn, w in zip(recent, Q_HISTORY, strict=False)]
        for text, weight in sources:
            words = _words(_ORDERING.sub(" ", text))
            kept = [w for w in words if w not in STOPWORDS]
            for word in kept:
                term = _stem(word)
                add(term, weight)
                if expand:
                    related(term, weight)
                    # An abbreviation in the catalogue: 'indep' for 'independence', 'cust' for 'customer'.
                    for cut in range(4, len(word) - 1):
                        prefix = word[:cut]
                        if prefix in self.vocabulary and prefix not in STOPWORDS:
                            add(prefix, weight * Q_PREFIX)
            # 'home town' in a question, 'hometown' in the catalogue (the index holds the reverse).
            for first, second in zip(kept, kept[1:], strict=False):
                term = _stem(first + second)
                add(term, weight)
                if expand:
                    related(term, weight)
            if expand:
                # 'miles per gallon' -> 'mpg'.
                for size in (3, 4):
                    for start in range(len(words) - size + 1):
                        initials = "".join(w[0] for w in words[start : start + size])
                        if initials in self.vocabulary and initials not in STOPWORDS and initials.isalpha():
                            add(initials, weight * Q_PREFIX)
        return weights

    def scores(
        self, question: str, history: Sequence[Turn | str] = (), *, expand: bool = True
    ) -> list[float]:
        """Each table's relevance to the question (0 for no evidence), all steps but the bridges."""
        query = self._query(question, history, expand=expand)
        lexical = [0.0] * len(self.tables)
        for term, weight in query.items():
            for i, value in self.postings.get(term, ()):
                lexical[i] += weight * value
        if not expand:
            return lexical

        top = max(lexical, default=0.0)
        strong = top if top > 0 else 1.0
        for age, turn in enumerate(list(history)[::-1][: len(Q_HISTORY)]):
            for i in self._tables_in_sql(turn.sql if isinstance(turn, Turn) else ""):
                lexical[i] += HISTORY_SQL_BOOST * Q_HISTORY[age] / Q_HISTORY[0] * strong

        final = list(lexical)
        schema_totals = [0.0] * len(self.schema_sizes)
        for i, value in enumerate(lexical):
            schema_totals[self.schema_of[i]] += value
        threshold = 0.25 * max(lexical, default=0.0)
        for i, value in enumerate(lexical):
            if value <= 0 and not self.neighbours[i]:
                continue
            best_neighbour = max((lexical[j] for j in self.neighbours[i]), default=0.0)
            if best_neighbour >= threshold > 0:
                # A neighbour that shares nothing with the question is only half as likely needed.
                final[i] += NEIGHBOUR_BOOST * best_neighbour * (1.0 if value > 0 else 0.5)
            size = self.schema_sizes[self.schema_of[i]]
            if size > 1 and value > 0:
                siblings = schema_totals[self.schema_of[i]] - value
                final[i] += SCHEMA_BOOST * siblings / (size - 1)
        return final

    def _tables_in_sql(self, sql: str) -> set[int]:
        found: set[int] = set()
        for match in _SQL_TABLE_REF.finditer(sql or ""):
            parts = [p.strip().strip('"`[]').lower() for p in match.group(1).split(".")]
            key = ".".join(parts[-2:]) if len(parts) >= 2 else parts[-1]
            found.update(self.by_name.get(key) or self.by_name.get(parts[-1], ()))
        return found

    def link(
        self,
        question: str,
        history: Sequence[Turn | str] = (),
        *,
        token_budget: int = 6000,
        max_tables: int = 25,
        expand: bool = True,
    ) -> list[TableInfo]:
        """The tables to show the model for this question, in catalogue order (see the class
        docstring for the ranking). `expand=False` is plain BM25 on the words as written (no
        synonyms, abbreviations, keys, schemas, bridges or history SQL): the benchmark's baseline."""
        if self.total_tokens <= token_budget:
            return list(self.tables)
        scores = self.scores(question, history, expand=expand)
        top = max(scores, default=0.0)
        if top <= 0:
            # A greeting or "what's in here?": the hubs let the model answer or say what exists.
            ranked = list(self.centrality)
        else:
            ranked = sorted(
                (i for i, s in enumerate(scores) if s >= RELATIVE_CUTOFF * top), key=lambda i: (-scores[i], i)
            )
            if expand:
                ranked = self._with_bridges(ranked, scores)

        query_terms: set[str] | None = None
        chosen: dict[int, TableInfo] = {}
        spent = 0
        for i in ranked:
            if len(chosen) >= max_tables:
                break
            cost = self.table_tokens[i] + 1
            table = self.tables[i]
            if spent + cost > token_budget:
                if cost <= token_budget // 4:
                    continue  # a smaller table further down may still fit
                # A very wide table: keep its keys and the columns the question names.
                if query_terms is None:
                    query_terms = set(self._query(question, history, expand=expand))
                table = _prune_columns(table, query_terms, token_budget - spent)
                if table is None:
                    continue
                cost = estimate_tokens(_render_table(table, "")) + 1
            chosen[i] = table
            spent += cost
        return [chosen[i] for i in sorted(chosen)]

    def _with_bridges(self, ranked: list[int], scores: list[float]) -> list[int]:
        """`ranked` with link tables moved up: when two of the strongest tables do not join
        directly but share a neighbour, that neighbour goes right after the later of the two,
        ahead of weaker matches, since a query using both cannot be written without it."""
        anchors = [i for i in ranked[:6] if scores[i] >= 0.3 * scores[ranked[0]]]
        order = list(ranked)
        for a_pos, a in enumerate(anchors):
            for b in anchors[a_pos + 1 :]:
                if b in self.neighbours[a]:
                    continue
                common = self.neighbours[a] & self.neighbours[b]
                if not common:
                    continue
                bridge = max(common, key=lambda i: (scores[i], -i))
                after = max(order.index(a), order.index(b)) + 1
                if bridge in order:
                    if order.index(bridge) < after:
                        continue
                    order.remove(bridge)
                order.insert(after, bridge)
        return order


def _turn_question(turn: Turn | str) -> str:
    return turn if isinstance(turn, str) else turn.question


def _identifier_terms(name: str, vocabulary: set[str]) -> list[tuple[str, float]]:
    """The terms of an identifier with their share of its weight: each word's stem, the parts of
    a long compound word, and each pair of adjacent words run together."""
    words = [w for w in _words(name) if w not in STOPWORDS]
    terms = []
    for word in words:
        terms.append((_stem(word), 1.0))
        if len(word) >= 8:
            terms += [(_stem(part), W_SPLIT) for part in _split_compound(word, vocabulary)]
    terms += [(_stem(first + second), 1.0) for first, second in zip(words, words[1:], strict=False)]
    return terms


def _prose_terms(text: str, *, numbers: bool) -> list[tuple[str, float]]:
    return [
        (_stem(word), 1.0)
        for word in _words(text)
        if word not in STOPWORDS and (numbers or not word.isdigit())
    ]


def _split_compound(word: str, vocabulary: set[str]) -> list[str]:
    """'countrylanguage' -> ['country', 'language'] when both are words of the catalogue: the
    split into the fewest known parts (two or three, each of 3+ letters), or nothing."""
    n = len(word)
    best: list[list[str] | None] = [None] * (n + 1)
    best[0] = []
    for end in range(3, n + 1):
        for start in range(0, end - 2):
            head = best[start]
            piece = word[start:end]
            if head is None or piece == word or piece not in vocabulary:
                continue
            candidate = [*head, piece]
            current = best[end]
            if current is None or len(candidate) < len(current):
                best[end] = candidate
    parts = best[n]
    return parts if parts is not None and 2 <= len(parts) <= 3 else []


def _prune_columns(table: TableInfo, terms: set[str], budget: int) -> TableInfo | None:
    """The table with its key columns and the columns the question mentions, then the others in
    order while they fit; None when not even the keys fit."""

    def mentioned(column: ColumnInfo) -> bool:
        words = _words(column.name) + _words(column.comment)
        return any(_stem(w) in terms for w in words)

    essential = [c for c in table.columns if c.is_primary_key or c.references or mentioned(c)]
    # Room for the note on what was left out.
    spent = estimate_tokens(_render_table(replace(table, columns=essential), "")) + 10
    if spent > budget:
        return None
    kept = list(essential)
    for column in table.columns:
        if column in essential:
            continue
        definition, remark = _column_definition(column, "")
        spent += estimate_tokens(f"  {definition}, -- {remark}\n" if remark else f"  {definition},\n")
        if spent > budget:
            break
        kept.append(column)
    kept.sort(key=lambda c: c.position)
    shown = f"{len(kept)} of {len(table.columns)} columns shown"
    comment = f"{table.comment} ({shown})" if table.comment else shown.capitalize()
    return replace(table, columns=kept, comment=comment)


# A cache of built indexes, keyed by whatever identifies a catalogue version, e.g.
# (connection_id, catalogue_version). It only saves rebuilding: any replica that misses it
# rebuilds the same index from the catalogue, so no other process ever needs it.
_INDEX_CACHE: OrderedDict[Hashable, SchemaIndex] = OrderedDict()
_INDEX_CACHE_SIZE = 16
_INDEX_CACHE_LOCK = threading.Lock()


def schema_index_cached(key: Hashable) -> SchemaIndex | None:
    """The index cached under `key`, if any: its `tables` are the catalogue it was built from."""
    with _INDEX_CACHE_LOCK:
        return _INDEX_CACHE.get(key)


def schema_index(tables: Sequence[TableInfo], *, key: Hashable | None = None) -> SchemaIndex:
    """The index of a catalogue, from the cache when `key` was seen before. The key must change
    whenever the catalogue does (a catalogue version does)."""
    if key is None:
        return SchemaIndex.from_tables(tables)
    with _INDEX_CACHE_LOCK:
        index = _INDEX_CACHE.get(key)
        if index is not None:
            _INDEX_CACHE.move_to_end(key)
            return index
    # Built outside the lock: two threads may both build it once; neither blocks the other.
    index = SchemaIndex.from_tables(tables)
    with _INDEX_CACHE_LOCK:
        _INDEX_CACHE[key] = index
        _INDEX_CACHE.move_to_end(key)
        while len(_INDEX_CACHE) > _INDEX_CACHE_SIZE:
            _INDEX_CACHE.popitem(last=False)
    return index


def schema_link(
    tables: Sequence[TableInfo],
    question: str,
    history: Sequence[Turn | str] = (),
    *,
    token_budget: int = 6000,
    max_tables: int = 25,
    cache_key: Hashable | None = None,
) -> list[TableInfo]:
    """The tables (and columns) of the catalogue to put in the prompt for `question`.

    When the whole catalogue fits in `token_budget` it is all returned, in catalogue order
    (`max_tables` only caps a ranked selection). Otherwise tables are ranked as `SchemaIndex`
    describes and the best are kept within the budget and `max_tables`. Pass `cache_key` (e.g.
    (connection_id, catalogue_version)) to build the index once per catalogue version.
    """
    if cache_key is None:
        total = sum(estimate_tokens(_render_table(t, "")) + 1 for t in tables)
        if total <= token_budget:
            return list(tables)
    index = schema_index(tables, key=cache_key)
    return index.link(question, history, token_budget=token_budget, max_tables=max_tables)


# ---------------------------------------------------------------------------------------------
# Rendering the schema as DDL
# ---------------------------------------------------------------------------------------------

_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words that cannot be a bare identifier in at least one of our dialects.
_RESERVED = frozenset(
    (
        "all", "alter", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "between",
        "both", "by", "case", "cast", "check", "collate", "column", "condition", "constraint", "create",
        "cross", "current_date", "current_time", "current_timestamp", "current_user", "database", "default",
        "delete", "desc", "describe", "distinct", "div", "drop", "else", "end", "except", "exists", "false",
        "fetch", "for", "foreign", "from", "full", "grant", "group", "groups", "having", "if", "ilike",
        "in", "index", "inner", "insert", "intersect", "interval", "into", "is", "join", "key", "keys",
        "lateral", "leading", "left", "like", "limit", "localtime", "match", "mod", "natural", "not",
        "null", "offset", "on", "only", "or", "order", "outer", "over", "partition", "primary", "qualify",
        "range", "rank", "read", "references", "regexp", "release", "rename", "replace", "right", "row",
        "rows", "select", "session_user", "set", "show", "some", "symmetric", "table", "then", "to",
        "trailing", "true", "union", "unique", "update", "usage", "user", "using", "values", "when",
        "where", "window", "with", "write"
    )
)  # fmt: skip
_SAMPLES_SHOWN = 3
_SAMPLE_CHARS = 40
_NUMERIC_TYPE = re.compile(r"int|num|dec|real|float|double|money|serial", re.IGNORECASE)


@lru_cache(maxsize=100_000)
def quote_identifier(name: str, dialect: str) -> str:
    """`name` as the dialect needs it written: bare when it is safe, else quoted (backticks for
    MySQL, double quotes elsewhere). Postgres folds bare names to lower case, so mixed case is
    quoted there too."""
    bare = _PLAIN_IDENTIFIER.fullmatch(name) is not None and name.lower() not in _RESERVED
    if bare and _dialect(dialect) == "postgres" and name != name.lower():
        bare = False
    if bare:
        return name
    if _dialect(dialect) == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, name: str, dialect: str) -> str:
    if schema:
        return f"{quote_identifier(schema, dialect)}.{quote_identifier(name, dialect)}"
    return quote_identifier(name, dialect)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _approximately(count: int) -> str:
    if count < 100:
        return f"{count:,}"
    digits = len(str(count)) - 2
    return f"about {round(count, -digits):,}"


def _sample_literal(value: str, numeric: bool) -> str:
    text = _one_line(str(value))
    if len(text) > _SAMPLE_CHARS:
        text = text[: _SAMPLE_CHARS - 1] + "…"
    if numeric and re.fullmatch(r"-?\d+(\.\d+)?", text):
        return text
    return "'" + text.replace("'", "''") + "'"


def _column_definition(column: ColumnInfo, dialect: str) -> tuple[str, str]:
    """A column's definition and the remark that follows it as a line comment."""
    definition = quote_identifier(column.name, dialect)
    if column.data_type:
        definition += f" {_one_line(column.data_type).upper()}"
    if not column.nullable:
        definition += " NOT NULL"
    remarks = []
    if column.comment:
        remarks.append(_one_line(column.comment))
    if column.samples:
        numeric = _NUMERIC_TYPE.search(column.data_type or "") is not None
        shown = ", ".join(_sample_literal(s, numeric) for s in column.samples[:_SAMPLES_SHOWN])
        remarks.append(f"e.g. {shown}")
    return definition, "; ".join(remarks)


def _render_table(table: TableInfo, dialect: str) -> str:
    """One CREATE TABLE statement; see `schema_render`."""
    header: list[str] = []
    notes = []
    if table.is_view:
        notes.append("view")
    if table.row_estimate is not None and table.row_estimate >= 0:
        notes.append(f"{_approximately(table.row_estimate)} rows")
    comment = _one_line(table.comment)
    if comment and notes:
        header.append(f"-- {comment} ({'; '.join(notes)})")
    elif comment or notes:
        header.append(f"-- {comment or '; '.join(notes)}")

    # (definition, comment) pairs; commas go between definition and comment.
    columns = sorted(table.columns, key=lambda c: c.position)
    items = [_column_definition(column, dialect) for column in columns]
    keys = [quote_identifier(c.name, dialect) for c in columns if c.is_primary_key]
    if keys:
        items.append((f"PRIMARY KEY ({', '.join(keys)})", ""))
    for column in columns:
        if not column.references:
            continue
        ref_schema, ref_table, ref_column = _reference_parts(column.references)
        if not ref_schema and not ref_table:
            continue
        target = _qualified(ref_schema, ref_table, dialect)
        if ref_column:
            target += f" ({quote_identifier(ref_column, dialect)})"
        items.append((f"FOREIGN KEY ({quote_identifier(column.name, dialect)}) REFERENCES {target}", ""))

    lines = [*header, f"CREATE TABLE {_qualified(table.schema, table.name, dialect)} ("]
    for n, (definition, remark) in enumerate(items):
        comma = "," if n < len(items) - 1 else ""
        lines.append(f"  {definition}{comma}" + (f" -- {remark}" if remark else ""))
    lines.append(");")
    return "\n".join(lines)


def schema_render(tables: Sequence[TableInfo], dialect: str) -> str:
    """The tables as CREATE TABLE statements in `dialect`, separated by blank lines.

    Columns carry their type and NOT NULL; the primary key and foreign keys are table
    constraints; the table comment (with 'view' and a rounded row count) is a SQL comment
    above it; each column's comment and up to three sample values follow it as a line comment,
    e.g. `region TEXT, -- e.g. 'Europe', 'Asia Pacific'`. Names are schema-qualified when the
    table has a schema and quoted only where the dialect needs it. Deterministic: the same
    tables always give the same text (prompt caches depend on it).
    """
    return "\n\n".join(_render_table(table, dialect) for table in tables)


# ---------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DialectRules:
    label: str
    rules: tuple[str, ...]


DIALECT_RULES: Mapping[str, DialectRules] = {
    "postgres": DialectRules(
        "PostgreSQL",
        (
            "Identifiers: quote with double quotes when a name has capitals, spaces or is a keyword "
            '("Order Date"); strings use single quotes.',
            "Dates: date_trunc('month', col), extract(year FROM col), current_date, now(), "
            "col >= current_date - interval '30 days', to_char(col, 'YYYY-MM').",
            "Rows: LIMIT n OFFSET m.",
            "Integer division truncates: cast to numeric for ratios, guard divisors with NULLIF(x, 0); "
            "ILIKE matches case-insensitively.",
        ),
    ),
    "mysql": DialectRules(
        "MySQL",
        (
            "Identifiers: quote with backticks when a name has spaces or is a keyword (`order date`); "
            "strings use single quotes.",
            "Dates: DATE_FORMAT(col, '%Y-%m'), YEAR(col), MONTH(col), CURDATE(), NOW(), "
            "col >= CURDATE() - INTERVAL 30 DAY, DATEDIFF(a, b).",
            "Rows: LIMIT n OFFSET m.",
            "CONCAT(a, b) joins strings (|| is OR); there is no FULL OUTER JOIN; "
            "guard divisors with NULLIF(x, 0).",
        ),
    ),
    "sqlite": DialectRules(
        "SQLite",
        (
            'Identifiers: quote with double quotes when a name has spaces or is a keyword ("Order Date"); '
            "strings use single quotes.",
            "Dates are ISO-8601 text: strftime('%Y-%m', col), date('now', '-30 days'), "
            "CAST(strftime('%Y', col) AS INTEGER), julianday(a) - julianday(b).",
            "Rows: LIMIT n OFFSET m.",
            "Integer division truncates: multiply by 1.0 for ratios; || concatenates; "
            "LIKE is already case-insensitive (there is no ILIKE).",
        ),
    ),
    "duckdb": DialectRules(
        "DuckDB",
        (
            'Identifiers: quote with double quotes when a name has spaces or is a keyword ("Order Date"); '
            "strings use single quotes.",
            "Dates: date_trunc('month', col), year(col), current_date, "
            "col >= current_date - INTERVAL 30 DAY, strftime(col, '%Y-%m'), date_diff('day', a, b).",
            "Rows: LIMIT n OFFSET m; QUALIFY filters on window functions.",
            "/ always returns a decimal (// is integer division); ILIKE matches case-insensitively.",
        ),
    ),
}
_GENERIC_RULES = DialectRules(
    "SQL",
    (
        'Identifiers: quote with double quotes when needed ("Order Date"); strings use single quotes.',
        "Dates: use the standard EXTRACT(YEAR FROM col) and CURRENT_DATE.",
        "Rows: LIMIT n.",
    ),
)
_DIALECT_ALIASES = {"postgresql": "postgres", "pg": "postgres", "mariadb": "mysql", "sqlite3": "sqlite"}

HISTORY_TURNS = 8
PREVIEW_ROWS = 20
PREVIEW_CHARS = 4000
PREVIEW_CELL_CHARS = 40


def _dialect(name: str) -> str:
    lowered = (name or "").lower()
    return _DIALECT_ALIASES.get(lowered, lowered)


def dialect_rules(dialect: str) -> DialectRules:
    return DIALECT_RULES.get(_dialect(dialect), _GENERIC_RULES)


def _fenced_sql(sql: str) -> str:
    return f"```sql\n{sql.strip()}\n```"


def _result_shape(columns: Sequence[str], row_count: int | None) -> str:
    rows = "an unknown number of rows" if row_count is None else f"{row_count:,} row{'s' * (row_count != 1)}"
    return f"It returned {rows} with columns: {', '.join(columns) or '(none)'}."


def _turn_reply(turn: Turn) -> str:
    if not turn.sql:
        return turn.analysis.strip() or "I could not answer that from these tables."
    parts = [_fenced_sql(turn.sql), _result_shape(turn.columns, turn.row_count)]
    if turn.analysis:
        parts.append(_one_line(turn.analysis)[:400])
    return "\n".join(parts)


def prompt_for_sql(context: QuestionContext) -> Prompt:
    """The prompt that asks for one read-only query answering `context.question`.

    The system text holds the rules (dialect specifics included) and the schema, so it stays the
    same while the chosen tables do (providers cache a stable prefix). Earlier turns become
    user/assistant messages (the question; its SQL and the shape of its result) so a follow-up
    ("and by month?") reads naturally. A repair replays each failed attempt as the model's
    answer followed by the database's error.
    """
    rules = dialect_rules(context.dialect)
    schema = schema_render(context.tables, context.dialect) if context.tables else "(no tables available)"
    system = "\n".join(
        [
            f"You are DataMind, a careful data analyst who writes SQL for a {rules.label} database.",
            "",
            "Rules:",
            "- Read-only: write exactly one SELECT statement (WITH ... SELECT is fine). Never modify data "
            "or the schema, and never write several statements.",
            "- Use only the tables and columns of the schema below, exactly as written there.",
            *(f"- {rule}" for rule in rules.rules),
            "- Give output columns readable aliases; ORDER BY when order matters; LIMIT only when the "
            "question asks for a top N (the platform caps the rows it shows).",
            "- Answer with a one-sentence explanation, then the SQL in a ```sql fenced block, "
            "and nothing after it.",
            "- If the question cannot be answered from these tables, say so and why in a sentence or two, "
            "and write no SQL.",
            "- Earlier questions in this conversation come first; a follow-up builds on the latest answer.",
            "",
            f"Schema ({rules.label}):",
            schema,
        ]
    )
    messages: list[dict[str, str]] = []
    for turn in context.history[-HISTORY_TURNS:]:
        messages.append({"role": "user", "content": turn.question})
        messages.append({"role": "assistant", "content": _turn_reply(turn)})
    messages.append({"role": "user", "content": context.question})
    for n, attempt in enumerate(context.attempts, start=1):
        sql = attempt.get("sql", "")
        messages.append({"role": "assistant", "content": _fenced_sql(sql) if sql else "(no SQL)"})
        messages.append(
            {
                "role": "user",
                "content": (
                    f"Attempt {n} failed. The database said:\n{attempt.get('error', '').strip()[:2000]}\n\n"
                    "Fix the query so it answers the same question under the same rules: one sentence on "
                    "what you changed, then the corrected SQL in a ```sql block."
                ),
            }
        )
    return Prompt(task="sql", system=system, messages=messages, context=context)


def _cell(value: Any) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, float):
        text = f"{value:.10g}"
    else:
        text = _one_line(str(value))
    return text if len(text) <= PREVIEW_CELL_CHARS else text[: PREVIEW_CELL_CHARS - 1] + "…"


def result_preview(columns: Sequence[dict[str, str]], rows: Sequence[Sequence[Any]], row_count: int) -> str:
    """A compact, pipe-separated table of the first rows, capped in rows and characters."""
    names = [c.get("name", "") for c in columns]
    lines = [" | ".join(names)]
    size = len(lines[0])
    shown = 0
    for row in rows[:PREVIEW_ROWS]:
        line = " | ".join(_cell(v) for v in row)
        if size + len(line) + 1 > PREVIEW_CHARS:
            break
        lines.append(line)
        size += len(line) + 1
        shown += 1
    total = max(row_count, len(rows))
    described = ", ".join(f"{c.get('name', '')} ({c.get('type', '') or '?'})" for c in columns)
    head = f"{total:,} row{'s' * (total != 1)}"
    if shown < total:
        head += f" (the first {shown} shown)"
    return f"Result: {head}; columns {described}:\n" + "\n".join(lines)


def prompt_for_analysis(context: QuestionContext) -> Prompt:
    """The prompt that asks for a short reading of a result and, if useful, a chart.

    The chart is a Vega-Lite v5 spec with only mark and encoding: the platform injects the rows
    itself, so the model never copies data (nor invents it) and the reply stays short.
    """
    system = "\n".join(
        [
            "You are DataMind, a data analyst explaining a query result to a business user.",
            "- Answer the question in 2 to 4 plain sentences, citing figures from the result as they appear "
            "(rounded sensibly). Never state a figure that is not in the result; if only part of the result "
            "is shown, say what the figures cover.",
            "- If a chart would help, add after the text a Vega-Lite v5 spec in a ```json fenced block "
            'with only "mark", "encoding" and optionally "title": no "data" and no values, the platform '
            "supplies the rows. Use the result's column names as fields with their types (quantitative, "
            "temporal, nominal, ordinal). No chart for a single value.",
        ]
    )
    preview = result_preview(context.columns, context.rows, context.row_count)
    content = f"Question: {context.question}\n\nSQL:\n{_fenced_sql(context.sql)}\n\n{preview}"
    return Prompt(
        task="analysis",
        system=system,
        messages=[{"role": "user", "content": content}],
        context=context,
        max_tokens=800,
    )


# ---------------------------------------------------------------------------------------------
# Reading a reply
# ---------------------------------------------------------------------------------------------

# An unclosed fence runs to the end: a reply cut off at max_tokens still yields its query.
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|```|\Z)", re.DOTALL)
_SQL_TAG = re.compile(r"<sql>(.*?)(?:</sql>|\Z)", re.DOTALL | re.IGNORECASE)
_SQL_LANGUAGES = frozenset({"sql", "postgres", "postgresql", "psql", "mysql", "sqlite", "duckdb", "ansi"})
_JSON_LANGUAGES = frozenset({"json", "vega-lite", "vegalite", "vega", "json5"})
_QUERY_START = re.compile(r"\s*(?:--[^\n]*\n\s*)*\(?\s*(select|with|values|from|table)\b", re.IGNORECASE)
_SQLGLOT_DIALECTS = frozenset({"postgres", "mysql", "sqlite", "duckdb"})


def _clean_sql(sql: str) -> str:
    return sql.strip().rstrip(";").strip()


def _is_query(sql: str, dialect: str) -> bool:
    """One statement that parses as a query (SELECT, WITH, UNION...)."""
    if not _QUERY_START.match(sql):
        return False
    read = _dialect(dialect)
    try:
        statements = [s for s in sqlglot.parse(sql, read=read if read in _SQLGLOT_DIALECTS else None) if s]
    except SqlglotError:
        return False
    return len(statements) == 1 and isinstance(statements[0], exp.Query)


def sql_extract(reply: str, *, dialect: str = "") -> str | None:
    """The query in a model's reply, without trailing semicolons, or None when it wrote none.

    Where it looks, in order: ```sql fenced blocks (or another SQL dialect tag), then <sql>
    tags, then untagged ``` blocks that parse as a query. Within the first kind that has any,
    the last block that parses as one query wins (models put the final version last); when
    none parses, the last non-empty tagged block is still returned so the database's error can
    drive a repair. Untagged blocks must parse: they might be output or prose.
    """
    fenced = [(lang.lower(), _clean_sql(body)) for lang, body in _FENCE.findall(reply or "")]
    tagged = [body for lang, body in fenced if lang in _SQL_LANGUAGES and body]
    in_tags = [_clean_sql(body) for body in _SQL_TAG.findall(reply or "")]
    bare = [body for lang, body in fenced if not lang and body]
    for candidates, must_parse in ((tagged, False), ([b for b in in_tags if b], False), (bare, True)):
        if not candidates:
            continue
        for sql in reversed(candidates):
            if _is_query(sql, dialect):
                return sql
        if not must_parse:
            return candidates[-1]
    return None


def chart_spec_extract(reply: str) -> dict[str, Any] | None:
    """The Vega-Lite spec of a ```json block (the last that parses as an object with a mark or
    an encoding), without any "data" the model wrote: the chart shows the rows that ran."""
    found: dict[str, Any] | None = None
    for lang, body in _FENCE.findall(reply or ""):
        if lang.lower() not in _JSON_LANGUAGES and not (not lang and body.lstrip().startswith("{")):
            continue
        try:
            spec = json.loads(body)
        except ValueError:
            continue
        if isinstance(spec, dict) and ("mark" in spec or "encoding" in spec):
            found = spec
    if found is None:
        return None
    return {k: v for k, v in found.items() if k not in ("data", "datasets")}
