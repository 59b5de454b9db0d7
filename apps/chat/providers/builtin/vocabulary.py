"""The words the built-in engine knows without looking at a catalogue.

Everything schema-specific comes from the catalogue (table and column names, comments, samples);
this module only holds English: filler words, numbers, months, time grains, aggregations and the
families of synonyms used to recognise a measure ("sales" means a money column).
"""

import re


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Nouns whose plural is the singular.
UNCOUNTABLE = frozenset(
    {"staff", "personnel", "media", "data", "equipment", "software", "news", "series", "species",
     "feedback", "inventory", "stock", "sheep", "fish", "info", "metadata", "analytics"}
)  # fmt: skip


def singular(word: str) -> str:
    """A crude English singular, good enough to match table and column names."""
    if len(word) <= 3 or not word.isalpha() or word in UNCOUNTABLE:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is", "ics")):
        return word
    if word.endswith("s"):
        return word[:-1]
    return word


def plural(word: str) -> str:
    """The plural of a noun or of a phrase's last word: "order item" -> "order items"."""
    if word.rsplit(" ", 1)[-1] in UNCOUNTABLE:
        return word
    if word.endswith("y") and len(word) > 2 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "sh", "ch", "x", "z")):
        return word + "es"
    return word + "s"


def verb_stem(word: str) -> str:
    """ordered -> order, purchased -> purchase, hired -> hire: enough to meet a table's name."""
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)]
    return word


# Words that carry no meaning for the query once the patterns below have had their turn. A word
# that is neither here nor understood makes the engine decline rather than silently drop it.
STOP_WORDS = word_set(
    """
    a an the of to in on at for from with by per and or is are was were be been being do does did
    have has had what what's whats which who whom whose how show shows me give list tell display
    get see return returns compute calculate i we our us my you your please can could would should
    will let lets all each every there their them they it its this that these those as than then
    also just only so such much some any overall altogether together data info information figures
    numbers stats statistics report breakdown broken down grouped group split sorted sort ranked
    rank ranking placed made generated earned recorded done whole entire were where when over
    across s our chart plot graph table view look looking want need
    like know find out same but now instead again too well more here okay ok about if
    per-cent up among between during since until before after sum total sold bought purchased
    sell sells selling
    """
)

NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "twenty-five": 25, "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100, "dozen": 12,
}  # fmt: skip

MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12,
    "dec": 12,
}  # fmt: skip

GRAINS = ("day", "week", "month", "quarter", "year")
# Nouns and adverbs naming a time grain, as a dimension ("by month", "monthly").
GRAIN_WORDS = {
    "day": "day", "days": "day", "daily": "day", "date": "day", "dates": "day",
    "week": "week", "weeks": "week", "weekly": "week",
    "month": "month", "months": "month", "monthly": "month",
    "quarter": "quarter", "quarters": "quarter", "quarterly": "quarter",
    "year": "year", "years": "year", "yearly": "year", "annual": "year", "annually": "year",
}  # fmt: skip
GRAIN_ADVERBS = frozenset({"daily", "weekly", "monthly", "quarterly", "yearly", "annual", "annually"})
# "over time" and "trend" ask for a time series without naming a grain.
TREND_WORDS = frozenset({"trend", "trends", "trending", "evolution", "timeline", "history"})

AGGREGATIONS = {
    "total": "sum", "sum": "sum", "average": "avg", "avg": "avg", "mean": "avg",
    "minimum": "min", "min": "min", "maximum": "max", "max": "max",
}  # fmt: skip
AGG_LABELS = {"sum": "total", "avg": "average", "min": "minimum", "max": "maximum"}

# Superlatives: they rank a named entity ("the region with the highest revenue") or, without
# one, become min/max ("the highest price").
SUPERLATIVES_DESC = frozenset(
    {"top", "highest", "most", "largest", "biggest", "best", "greatest", "maximum", "max"}
)
SUPERLATIVES_ASC = frozenset({"bottom", "lowest", "least", "smallest", "fewest", "worst", "minimum", "min"})
POPULARITY_WORDS = frozenset({"popular", "selling", "seller", "sellers", "bestselling", "bestseller"})
DISTINCT_WORDS = frozenset({"distinct", "unique", "different", "separate", "individual"})

# Verbs that link a counted entity to the table recording what it did ("customers who bought").
ACTIVITY_VERBS = frozenset(
    {"bought", "buy", "buying", "purchased", "purchase", "purchasing", "ordered", "order", "ordering",
     "paid", "shopped", "spent"}
)  # fmt: skip

# Measure families: the words a question uses, and the words of column names that serve them.
# Money flowing in (revenue) or out (spend) is summed over rows; neutral money words (amount,
# total) serve either. A unit price is a rate per item, never a revenue.
MONEY_IN_WORDS = frozenset(
    {"revenue", "revenues", "sales", "sale", "income", "turnover", "earnings", "gmv", "takings",
     "proceeds", "billed", "invoiced"}
)  # fmt: skip
MONEY_OUT_WORDS = frozenset({"spend", "spending", "spent", "expense", "expenses", "expenditure"})
MONEY_NEUTRAL_WORDS = frozenset(
    {"amount", "amounts", "value", "money", "total", "totals", "paid", "payment", "payments"}
)
MONEY_IN_COLUMN_WORDS = frozenset(
    {"revenue", "sale", "income", "turnover", "earning", "gmv", "proceed", "billed", "invoiced"}
)
MONEY_OUT_COLUMN_WORDS = frozenset({"spend", "expense", "expenditure"})
MONEY_NEUTRAL_COLUMN_WORDS = frozenset({"amount", "total", "value", "paid", "payment"})
UNIT_PRICE_WORDS = frozenset({"price", "prices", "cost", "costs", "fee", "fees", "rate", "rates"})
UNIT_PRICE_COLUMN_WORDS = frozenset({"price", "cost", "fee", "rate"})
QUANTITY_WORDS = frozenset({"quantity", "quantities", "units", "unit", "qty", "volume", "volumes"})
QUANTITY_COLUMN_WORDS = frozenset({"quantity", "qty", "unit", "volume"})
DURATION_WORDS = frozenset({"duration", "length", "long", "longest", "shortest", "runtime", "longer"})
DURATION_COLUMN_WORDS = frozenset(
    {"duration", "length", "millisecond", "second", "minute", "m", "ms", "sec", "secs"}
)
SIZE_WORDS = frozenset({"size", "sizes", "bytes", "byte", "heaviest"})
SIZE_COLUMN_WORDS = frozenset({"size", "byte", "kb", "mb"})

MEASURE_WORDS = frozenset(
    singular(word)
    for family in (MONEY_IN_WORDS, MONEY_OUT_WORDS, MONEY_NEUTRAL_WORDS, UNIT_PRICE_WORDS, QUANTITY_WORDS,
                   DURATION_WORDS, SIZE_WORDS)
    for word in family
)  # fmt: skip

# Column words for values that are averaged rather than summed when no aggregation is named.
AVERAGED_COLUMN_WORDS = frozenset(
    {"price", "cost", "fee", "rate", "ratio", "pct", "percent", "percentage", "share", "average",
     "avg", "mean", "score", "rating", "discount", "age", "margin"}
)  # fmt: skip

# Questions that need more than one aggregation, a model or a comparison the engine cannot write.
UNSUPPORTED_WORDS = {
    "why": "explaining why something happened",
    "predict": "predictions",
    "prediction": "predictions",
    "forecast": "forecasts",
    "forecasting": "forecasts",
    "correlation": "correlations",
    "correlate": "correlations",
    "correlated": "correlations",
    "median": "medians and percentiles",
    "percentile": "medians and percentiles",
    "ratio": "ratios between two measures",
    "percentage": "percentages",
    "percent": "percentages",
    "proportion": "percentages",
    "growth": "growth rates",
    "cumulative": "running totals",
    "running": "running totals",
    "retention": "retention and cohorts",
    "churn": "retention and cohorts",
    "cohort": "retention and cohorts",
    "cohorts": "retention and cohorts",
    "compare": "side-by-side comparisons",
    "comparison": "side-by-side comparisons",
    "vs": "side-by-side comparisons",
    "versus": "side-by-side comparisons",
    "difference": "differences between periods",
    "yoy": "period-over-period changes",
    "delete": "changing data",
    "update": "changing data",
    "insert": "changing data",
}

# Other names people give the things a table holds, used only when no table has the name itself.
ENTITY_SYNONYMS: dict[str, tuple[tuple[str, ...], ...]] = {
    "song": (("track",),), "tune": (("track",),), "client": (("customer",),), "shopper": (("customer",),),
    "buyer": (("customer",),), "staff": (("employee",),), "purchase": (("order",), ("invoice",)),
}  # fmt: skip

# Label columns of a table, best first: what a person reads to tell its rows apart.
LABEL_COLUMN_NAMES = (("name",), ("title",), ("label",), ("full", "name"), ("display", "name"))
FIRST_NAME_COLUMNS = (("first", "name"), ("firstname",), ("given", "name"))
LAST_NAME_COLUMNS = (("last", "name"), ("lastname",), ("surname",), ("family", "name"))

# Date columns that rarely are "when it happened".
UNLIKELY_EVENT_DATE_WORDS = frozenset(
    {"birth", "dob", "born", "updated", "modified", "deleted", "expires", "expiry", "expiration", "end"}
)
EVENT_DATE_WORDS = frozenset({"date", "created", "timestamp", "time", "day", "at", "datetime", "on", "when"})

# Phrases rewritten before tokenising, so that one spelling reaches the matchers.
PHRASE_REWRITES = (
    (re.compile(r"\bsign(?:ed|ing)?[ -]ups?\b", re.IGNORECASE), "signup"),
    (re.compile(r"\bsign-ups\b", re.IGNORECASE), "signups"),
    (re.compile(r"\bbest[ -]sell(?:ing|er|ers)\b", re.IGNORECASE), "bestselling"),
    (re.compile(r"\btop[ -]sell(?:ing|er|ers)\b", re.IGNORECASE), "top bestselling"),
    (re.compile(r"\bmonth[ -]over[ -]month\b", re.IGNORECASE), "monthly"),
    (re.compile(r"\bover time\b", re.IGNORECASE), "trend"),
    (re.compile(r"\byear[ -]to[ -]date\b|\bytd\b", re.IGNORECASE), "this year"),
    (re.compile(r"\bmonth[ -]to[ -]date\b|\bmtd\b", re.IGNORECASE), "this month"),
    (re.compile(r"\bhow much\b", re.IGNORECASE), "total"),
)
