"""Rendering a `QueryPlan` as SQL in the connection's dialect.

The query is built as a sqlglot tree, never by pasting text: values are string literals, names
are identifiers (quoted when they would otherwise change meaning: reserved words, spaces,
capitals in PostgreSQL). Time buckets and relative dates differ by dialect: DATE_TRUNC for
PostgreSQL and DuckDB, STRFTIME/DATE modifiers for SQLite, DATE_FORMAT for MySQL; every bucket is
the first day of its period, so buckets sort in time order in every dialect.
"""

import re
from datetime import date

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from apps.chat.providers.builtin.catalogue import TableKey
from apps.chat.providers.builtin.plan import Bound, ColumnRef, Dimension, Filter, QueryPlan, RelativeDate

DIALECTS = ("postgres", "mysql", "sqlite", "duckdb")
_DIALECT_ALIASES = {"postgresql": "postgres", "mariadb": "mysql"}
_DEFAULT_SCHEMAS = frozenset({"", "main", "public"})
_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOWER_SIMPLE = re.compile(r"[a-z_][a-z0-9_]*")
# Reserved in at least one of the four dialects: such names are always quoted, so one plan
# renders safely everywhere.
_RESERVED = frozenset(
    Dialect.get_or_raise("duckdb").generator_class.RESERVED_KEYWORDS
    | Dialect.get_or_raise("mysql").generator_class.RESERVED_KEYWORDS
    | {"user", "date", "time", "timestamp", "year", "month", "day", "value", "values"}
)
_SQLITE_FORMATS = {"day": "%Y-%m-%d", "month": "%Y-%m-01", "year": "%Y-01-01"}
_MYSQL_FORMATS = {"day": "%Y-%m-%d", "month": "%Y-%m-01", "year": "%Y-01-01"}


def normalise_dialect(dialect: str) -> str:
    name = (dialect or "").lower()
    name = _DIALECT_ALIASES.get(name, name)
    if name not in DIALECTS:
        raise ValueError(f"Unsupported SQL dialect {dialect!r}.")
    return name


class _Renderer:
    def __init__(self, plan: QueryPlan, dialect: str) -> None:
        self.plan = plan
        self.dialect = normalise_dialect(dialect)
        self.aliases: dict[TableKey, str] = {}
        for key in [plan.base, *(edge.target for edge in plan.joins)]:
            alias, n = key[1], 2
            while alias in self.aliases.values():
                alias, n = f"{key[1]}_{n}", n + 1
            self.aliases[key] = alias

    def ident(self, name: str) -> exp.Identifier:
        simple = _LOWER_SIMPLE if self.dialect == "postgres" else _SIMPLE
        quoted = not simple.fullmatch(name) or name.lower() in _RESERVED
        return exp.Identifier(this=name, quoted=quoted)

    def table(self, key: TableKey) -> exp.Table:
        schema, name = key
        alias = self.aliases[key]
        table = exp.Table(this=self.ident(name))
        if schema not in _DEFAULT_SCHEMAS:
            table.set("db", self.ident(schema))
        if alias != name or schema not in _DEFAULT_SCHEMAS:
            table.set("alias", exp.TableAlias(this=self.ident(alias)))
        return table

    def column(self, ref: ColumnRef) -> exp.Column:
        return exp.Column(this=self.ident(ref.column), table=self.ident(self.aliases[ref.table]))

    def native_nulls_first(self, descending: bool) -> bool:
        # Asking for the dialect's own NULL placement keeps sqlglot from spelling it out.
        ordering = Dialect.get_or_raise(self.dialect).NULL_ORDERING
        if ordering == "nulls_are_last":
            return False
        return descending if ordering == "nulls_are_large" else not descending

    # Pieces --------------------------------------------------------------------------------------

    def measure(self) -> exp.Expression:
        measure = self.plan.measure
        columns = [self.column(ref) for ref in measure.columns]
        if measure.aggregation == "count":
            return exp.Count(this=exp.Star())
        if measure.aggregation == "count_distinct":
            return exp.Count(this=exp.Distinct(expressions=columns))
        value: exp.Expression = columns[0]
        for other in columns[1:]:
            value = exp.Mul(this=value, expression=other)
        function = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}[measure.aggregation]
        return function(this=value)

    def dimension(self, dimension: Dimension) -> exp.Expression:
        columns = [self.column(ref) for ref in dimension.columns]
        if dimension.grain is not None:
            return self.bucket(columns[0], dimension.grain)
        if len(columns) == 1:
            return columns[0]
        parts: list[exp.Expression] = []
        for column in columns:
            if parts:
                parts.append(exp.Literal.string(" "))
            parts.append(column)
        return exp.Concat(expressions=parts)

    def bucket(self, column: exp.Expression, grain: str) -> exp.Expression:
        """The first day of `column`'s day/week/month/quarter/year."""
        if self.dialect in ("postgres", "duckdb"):
            return exp.DateTrunc(unit=exp.Literal.string(grain), this=column)
        if self.dialect == "sqlite":
            if grain in _SQLITE_FORMATS:
                return exp.TimeToStr(this=column, format=exp.Literal.string(_SQLITE_FORMATS[grain]))
            if grain == "week":
                return exp.Anonymous(
                    this="DATE",
                    expressions=[column, exp.Literal.string("-6 days"), exp.Literal.string("weekday 1")],
                )
            # quarter: the year, then the quarter's first month (m - (m - 1) % 3)
            month = exp.Cast(
                this=exp.TimeToStr(this=column.copy(), format=exp.Literal.string("%m")),
                to=exp.DataType.build("INT"),
            )
            first_month = exp.Sub(
                this=month,
                expression=exp.Paren(
                    this=exp.Mod(
                        this=exp.Paren(this=exp.Sub(this=month.copy(), expression=exp.Literal.number(1))),
                        expression=exp.Literal.number(3),
                    )
                ),
            )  # fmt: skip
            return exp.DPipe(
                this=exp.DPipe(
                    this=exp.DPipe(
                        this=exp.TimeToStr(this=column, format=exp.Literal.string("%Y")),
                        expression=exp.Literal.string("-"),
                    ),
                    expression=exp.Anonymous(
                        this="PRINTF", expressions=[exp.Literal.string("%02d"), first_month]
                    ),
                ),
                expression=exp.Literal.string("-01"),
            )
        # mysql
        if grain in _MYSQL_FORMATS:
            return exp.TimeToStr(this=column, format=exp.Literal.string(_MYSQL_FORMATS[grain]))
        if grain == "week":
            monday = exp.Sub(
                this=column,
                expression=exp.Interval(
                    this=exp.Anonymous(this="WEEKDAY", expressions=[column.copy()]), unit=exp.var("DAY")
                ),
            )
            return exp.TimeToStr(this=monday, format=exp.Literal.string("%Y-%m-%d"))
        first_month = exp.Add(
            this=exp.Mul(
                this=exp.Paren(
                    this=exp.Sub(this=exp.Quarter(this=column.copy()), expression=exp.Literal.number(1))
                ),
                expression=exp.Literal.number(3),
            ),
            expression=exp.Literal.number(1),
        )
        return exp.Concat(
            expressions=[
                exp.Year(this=column),
                exp.Literal.string("-"),
                exp.Pad(
                    this=first_month,
                    expression=exp.Literal.number(2),
                    fill_pattern=exp.Literal.string("0"),
                    is_left=True,
                ),
                exp.Literal.string("-01"),
            ]
        )

    def bound(self, bound: Bound) -> exp.Expression:
        if isinstance(bound, date):
            literal = exp.Literal.string(bound.isoformat())
            if self.dialect in ("postgres", "duckdb"):
                return exp.Cast(this=literal, to=exp.DataType.build("DATE"))
            return literal  # SQLite stores dates as ISO text; MySQL compares the string as a date
        return self.relative(bound)

    def relative(self, bound: RelativeDate) -> exp.Expression:
        """CURRENT_DATE, truncated to its unit when asked, then moved by `offset` units."""
        unit, offset = bound.unit, bound.offset
        if self.dialect == "sqlite":
            modifiers = []
            if bound.truncate:
                modifiers += {
                    "week": ["-6 days", "weekday 1"],
                    "month": ["start of month"],
                    "year": ["start of year"],
                }.get(unit, [])
            if offset:
                days = offset * 7 if unit == "week" else offset
                name = "days" if unit in ("day", "week") else f"{unit}s"
                modifiers.append(f"{days:+d} {name}")
            return exp.Anonymous(
                this="DATE", expressions=[exp.CurrentDate(), *(exp.Literal.string(m) for m in modifiers)]
            )
        if self.dialect == "mysql":
            value: exp.Expression = exp.CurrentDate()
            if offset:
                function = exp.DateAdd if offset > 0 else exp.DateSub
                value = function(
                    this=value, expression=exp.Literal.number(abs(offset)), unit=exp.var(unit.upper())
                )
            if bound.truncate and unit in ("month", "year"):
                return exp.TimeToStr(this=value, format=exp.Literal.string(_MYSQL_FORMATS[unit]))
            if bound.truncate and unit == "week":
                return exp.DateSub(
                    this=value,
                    expression=exp.Anonymous(this="WEEKDAY", expressions=[value.copy()]),
                    unit=exp.var("DAY"),
                )
            return value
        value = exp.CurrentDate()
        if bound.truncate and unit != "day":
            value = exp.DateTrunc(unit=exp.Literal.string(unit), this=value)
        if offset:
            interval = exp.Interval(this=exp.Literal.string(str(abs(offset))), unit=exp.var(unit.upper()))
            value = (exp.Add if offset > 0 else exp.Sub)(this=value, expression=interval)
        return value

    def condition(self, filter_: Filter) -> exp.Expression:
        column: exp.Expression = self.column(filter_.column)
        values = list(filter_.values)
        if values and all(v in ("true", "false") for v in values) and not filter_.case_insensitive:
            literals: list[exp.Expression] = [exp.Boolean(this=v == "true") for v in values]
        elif filter_.case_insensitive:
            column = exp.Lower(this=column)
            literals = [exp.Literal.string(v.lower()) for v in values]
        else:
            literals = [exp.Literal.string(v) for v in values]
        if len(literals) == 1:
            return exp.EQ(this=column, expression=literals[0])
        return exp.In(this=column, expressions=literals)

    # The statement -------------------------------------------------------------------------------

    def select(self) -> exp.Select:
        plan = self.plan
        select = exp.Select()
        dimension_expressions = [self.dimension(d) for d in plan.dimensions]
        for dimension, expression in zip(plan.dimensions, dimension_expressions, strict=True):
            select = select.select(exp.Alias(this=expression, alias=self.ident(dimension.alias)), copy=False)
        select = select.select(
            exp.Alias(this=self.measure(), alias=self.ident(plan.measure.alias)), copy=False
        )
        select = select.from_(self.table(plan.base), copy=False)
        for edge in plan.joins:
            on = exp.EQ(
                this=self.column(ColumnRef(edge.source, edge.source_column)),
                expression=self.column(ColumnRef(edge.target, edge.target_column)),
            )
            select = select.join(self.table(edge.target), on=on, copy=False)
        conditions = [self.condition(f) for f in plan.filters]
        if plan.time_range is not None:
            column = self.column(plan.time_range.column)
            if plan.time_range.start is not None:
                conditions.append(exp.GTE(this=column, expression=self.bound(plan.time_range.start)))
            if plan.time_range.end is not None:
                conditions.append(exp.LT(this=column.copy(), expression=self.bound(plan.time_range.end)))
        if conditions:
            select = select.where(exp.and_(*conditions), copy=False)
        groups = [e.copy() for e in dimension_expressions]
        groups += [self.column(ref) for d in plan.dimensions for ref in d.extra_group]
        if groups:
            select = select.group_by(*groups, copy=False)
        order = []
        for item in plan.order_by:
            alias = plan.measure.alias if item.target == "measure" else plan.dimensions[item.index].alias
            order.append(
                exp.Ordered(
                    this=exp.Column(this=self.ident(alias)),
                    desc=item.descending,
                    nulls_first=self.native_nulls_first(item.descending),
                )
            )
        if order:
            select = select.order_by(*order, copy=False)
        if plan.limit is not None:
            select = select.limit(exp.Literal.number(plan.limit), copy=False)
        return select


def render_sql(plan: QueryPlan, dialect: str, *, pretty: bool = True) -> str:
    return _Renderer(plan, dialect).select().sql(dialect=normalise_dialect(dialect), pretty=pretty)
