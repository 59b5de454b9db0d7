"""Date phrases: "in 2025", "in March 2026", "Q1 2025", "between 2025-01-01 and 2025-03-31",
"since 2026", "last 30 days", "last month", "this year", "today".

Absolute periods become exact half-open ranges of days. Relative ones stay relative to
CURRENT_DATE (`RelativeDate`): offline, the engine cannot know the latest date in the data, so
"last month" means the calendar month before today's, and the explanation says so.
"""

import calendar
import re
from datetime import date, timedelta

from apps.chat.providers.builtin.intent import TimeSpec
from apps.chat.providers.builtin.plan import RelativeDate
from apps.chat.providers.builtin.tokens import Token, is_year, number
from apps.chat.providers.builtin.vocabulary import GRAIN_WORDS, MONTHS

_QUARTER = re.compile(r"q([1-4])")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_RANGE_JOINERS = ("and", "to", "until", "through")
_PERIOD_PREPOSITIONS = ("in", "during", "for", "of", "on", "within")


def add_months(day: date, months: int) -> date:
    """The first day of the month `months` after `day`'s."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _period_at(tokens: list[Token], i: int) -> tuple[date, date, str, int] | None:
    """An absolute period spelt from token i: (first day, day after the last, label, next i)."""
    if i >= len(tokens) or tokens[i].used:
        return None
    token = tokens[i]
    following = tokens[i + 1] if i + 1 < len(tokens) and not tokens[i + 1].used else None
    if _ISO_DAY.fullmatch(token.low):
        try:
            day = date.fromisoformat(token.low)
        except ValueError:
            return None
        return day, day + timedelta(days=1), day.isoformat(), i + 1
    if token.low in MONTHS and following is not None and is_year(following):
        start = date(int(following.low), MONTHS[token.low], 1)
        return start, add_months(start, 1), f"{calendar.month_name[start.month]} {start.year}", i + 2
    quarter = _QUARTER.fullmatch(token.low)
    if quarter and following is not None and is_year(following):
        start = date(int(following.low), 3 * int(quarter.group(1)) - 2, 1)
        return start, add_months(start, 3), f"Q{quarter.group(1)} {following.low}", i + 2
    if is_year(token):
        year = int(token.low)
        return date(year, 1, 1), date(year + 1, 1, 1), token.low, i + 1
    after = tokens[i + 2] if i + 2 < len(tokens) else None
    if token.low == "the" and following is not None and following.low == "year" and after and is_year(after):
        return _period_at(tokens, i + 2)
    return None


def _absolute_at(tokens: list[Token], i: int) -> tuple[TimeSpec, int] | None:
    low = tokens[i].low
    if low in ("between", "from"):
        first = _period_at(tokens, i + 1)
        if first and first[3] < len(tokens) and tokens[first[3]].low in _RANGE_JOINERS:
            second = _period_at(tokens, first[3] + 1)
            if second:
                return TimeSpec(first[0], second[1], f"between {first[2]} and {second[2]}", False), second[3]
    if low in ("since", "after", "from", "before", "until", "till", "through"):
        found = _period_at(tokens, i + 1)
        if found:
            start, end, label, nxt = found
            spec = {
                "since": TimeSpec(start, None, f"since {label}", False),
                "from": TimeSpec(start, None, f"since {label}", False),
                "after": TimeSpec(end, None, f"after {label}", False),
                "before": TimeSpec(None, start, f"before {label}", False),
            }.get(low, TimeSpec(None, end, f"until {label}", False))
            return spec, nxt
    found = _period_at(tokens, i + 1 if low in _PERIOD_PREPOSITIONS else i)
    if found:
        start, end, label, nxt = found
        return TimeSpec(start, end, f"in {label}", False), nxt
    return None


def _relative_at(tokens: list[Token], i: int) -> tuple[TimeSpec | None, int, str | None]:
    """(period, next i, refusal) for "last 30 days", "past 3 months", "last month", "this
    year", "today"...; the period is None when token i starts none of them."""
    low = tokens[i].low
    if low == "today":
        return TimeSpec(RelativeDate("day"), RelativeDate("day", 1), "today", True), i + 1, None
    if low == "yesterday":
        return TimeSpec(RelativeDate("day", -1), RelativeDate("day"), "yesterday", True), i + 1, None
    if low not in ("last", "past", "previous", "trailing", "this", "current"):
        return None, i, None
    j = i + 1
    count = number(tokens[j]) if j < len(tokens) else None
    if count is not None:
        j += 1
    if j >= len(tokens) or tokens[j].used or tokens[j].low not in GRAIN_WORDS or tokens[j].low == "date":
        return None, i, None
    unit = GRAIN_WORDS[tokens[j].low]
    if unit == "quarter":
        return None, i, "relative quarters (say “in Q1 2026” instead)"
    if low in ("this", "current"):
        if count is not None:
            return None, i, None
        start, end = RelativeDate(unit, 0, True), RelativeDate(unit, 1, True)
        return TimeSpec(start, end, f"this {unit}", True, f"the current calendar {unit}"), j + 1, None
    if count is None and low != "past":
        start, end = RelativeDate(unit, -1, True), RelativeDate(unit, 0, True)
        return TimeSpec(start, end, f"last {unit}", True, f"the previous calendar {unit}"), j + 1, None
    count = count or 1
    start = RelativeDate("day", -7 * count) if unit == "week" else RelativeDate(unit, -count)
    units = f"{count} {unit}{'s' if count > 1 else ''}"
    return TimeSpec(start, None, f"the last {units}", True, f"a rolling window of {units}"), j + 1, None


def read_dates(tokens: list[Token]) -> tuple[TimeSpec | None, str | None]:
    """The question's date range, marking its tokens used, and the reason to refuse it if any
    (two ranges, a month without a year...)."""
    found: TimeSpec | None = None
    refusal: str | None = None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.used:
            i += 1
            continue
        spec, nxt = _absolute_at(tokens, i) or (None, i)
        if spec is None:
            spec, nxt, reason = _relative_at(tokens, i)
            refusal = refusal or reason
        if spec is not None:
            if found is not None:
                refusal = refusal or "more than one date range in one question"
            found = spec
            for used in tokens[i:nxt]:
                used.used = True
            i = nxt
            continue
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        # "May" is also a verb; any other month needs its year to mean a period.
        if token.low in MONTHS and token.low != "may" and not (after is not None and is_year(after)):
            refusal = refusal or "a month without its year (say “March 2026”)"
            token.used = True
        i += 1
    return found, refusal
