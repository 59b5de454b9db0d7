"""Dashboard filters: a date range and a few value filters, applied to a widget's SQL.

The widget's statement becomes a subquery and the conditions are built as a sqlglot tree in the
connection's dialect, with every value a literal node: sqlglot quotes it for that dialect, so a
value is always data, never code. The result still passes both locks like any other statement.
"""

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import urlencode

import sqlglot
from django.core.exceptions import ValidationError
from sqlglot import exp

MAX_VALUE_FILTERS = 3
DATE_KEY = "date"
_VALUE_PREFIX = "f_"
_ALIAS = "_filtered"


@dataclass(frozen=True)
class Filters:
    """What a viewer chose, as read from the page's query string."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    values: dict[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.date_from or self.date_to or self.values)

    def querystring(self) -> str:
        params: dict[str, str] = {}
        if self.date_from:
            params["date_from"] = self.date_from.isoformat()
        if self.date_to:
            params["date_to"] = self.date_to.isoformat()
        params |= {f"{_VALUE_PREFIX}{key}": value for key, value in sorted(self.values.items())}
        return urlencode(params)


def _date(text: str | None, name: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValidationError({name: "Use a date like 2026-03-31."})


def filters_from_query(query, *, keys: list[str]) -> Filters:
    """Filters from a QueryDict (or dict): date_from, date_to and f_<key> for the dashboard's keys."""
    date_from = _date(query.get("date_from"), "date_from")
    date_to = _date(query.get("date_to"), "date_to")
    if date_from and date_to and date_from > date_to:
        raise ValidationError({"date_to": "The end of the range comes before its start."})
    values = {}
    for key in keys[:MAX_VALUE_FILTERS]:
        value = (query.get(f"{_VALUE_PREFIX}{key}") or "").strip()
        if value:
            values[key] = value[:200]
    return Filters(date_from=date_from, date_to=date_to, values=values)


def _conditions(filters: Filters, columns: dict[str, str]) -> list[exp.Expr]:
    conditions: list[exp.Expr] = []
    date_column = columns.get(DATE_KEY)
    if date_column:
        column = exp.column(date_column, table=_ALIAS, quoted=True)
        if filters.date_from:
            start = exp.cast(exp.Literal.string(filters.date_from.isoformat()), exp.DataType.Type.DATE)
            conditions.append(exp.GTE(this=column.copy(), expression=start))
        if filters.date_to:
            # Half-open, so a timestamp column keeps the whole last day.
            end = filters.date_to + dt.timedelta(days=1)
            upper = exp.cast(exp.Literal.string(end.isoformat()), exp.DataType.Type.DATE)
            conditions.append(exp.LT(this=column.copy(), expression=upper))
    for key, value in filters.values.items():
        if target := columns.get(key):
            # Compared as text, so "42" matches a number column and a text column alike.
            text = exp.cast(exp.column(target, table=_ALIAS, quoted=True), exp.DataType.Type.VARCHAR)
            conditions.append(exp.EQ(this=text, expression=exp.Literal.string(value)))
    return conditions


def filtered_sql(sql: str, *, dialect: str, filters: Filters, columns: dict[str, str]) -> str:
    """`sql` unchanged when no filter applies to it, else wrapped and filtered in `dialect`."""
    conditions = _conditions(filters, columns)
    if not conditions:
        return sql
    try:
        inner = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.ParseError:
        return sql  # the safety check reports the statement's own error when it runs
    subquery = exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(_ALIAS)))
    query = exp.select(exp.Star()).from_(subquery, copy=False).where(exp.and_(*conditions), copy=False)
    return query.sql(dialect=dialect)
