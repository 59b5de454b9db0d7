"""Running a widget: its SQL, filtered, through both locks and the results cache, then shown."""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.accounts.models import User
from apps.connections.engines.base import EngineError
from apps.connections.safety import UnsafeSQLError
from apps.connections.services.execution import query_execute
from apps.dashboards.models import Dashboard, Widget, WidgetKind
from apps.dashboards.selectors import dashboard_widgets
from apps.dashboards.services import charts
from apps.dashboards.services.filters import Filters, filtered_sql

# Enough rows for any chart or table on a dashboard; exports fetch everything.
WIDGET_ROW_CAP = 5000
STORED_ROWS = 500
TABLE_ROWS = 50


@dataclass
class WidgetData:
    """What one widget shows now: its rows and how to draw them, or why it failed."""

    widget: Widget
    columns: list[dict] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    row_count: int = 0
    truncated: bool = False
    cached: bool = False
    error: str = ""
    retryable: bool = False
    refreshed_at: dt.datetime | None = None
    spec: dict | None = None
    kpi: dict | None = None

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def table_rows(self) -> list[list[Any]]:
        return self.rows[:TABLE_ROWS]

    @property
    def column_names(self) -> list[str]:
        return [column["name"] for column in self.columns]

    @property
    def spec_dom_id(self) -> str:
        return f"widget-spec-{self.widget.pk}"


def widget_sql(widget: Widget, filters: Filters) -> str:
    """The statement this widget runs under these filters (the SQL export runs it too)."""
    return filtered_sql(
        widget.sql, dialect=widget.connection.dialect, filters=filters, columns=widget.filter_columns
    )


def _present(data: WidgetData) -> WidgetData:
    widget = data.widget
    if widget.kind == WidgetKind.CHART:
        data.spec = charts.chart_spec(widget.chart, data.columns, data.rows)
    elif widget.kind == WidgetKind.KPI:
        data.kpi = charts.kpi(widget.chart, data.columns, data.rows)
    return data


def _remember(widget: Widget, *, result: dict | None, error: str, at: dt.datetime) -> None:
    # One UPDATE, no save(): concurrent viewers refreshing the same widget must not overwrite
    # each other's layout edits made in between.
    Widget.objects.filter(pk=widget.pk).update(last_result=result or {}, last_error=error, refreshed_at=at)


def widget_run(
    *, widget: Widget, filters: Filters | None = None, user: User | None = None, use_cache: bool = True
) -> WidgetData:
    """Run the widget now (or take its result from the cache while it is fresh).

    An unfiltered run that reached the database is remembered on the widget (last result,
    refreshed at, last error): that is what subscriptions and the API show as its latest state.
    """
    filters = filters or Filters()
    if widget.kind == WidgetKind.TEXT:
        return WidgetData(widget=widget)
    if widget.connection is None:
        return WidgetData(
            widget=widget, error="This widget's connection was deleted: choose another in its editor."
        )
    data = WidgetData(widget=widget, refreshed_at=widget.refreshed_at)
    try:
        executed = query_execute(
            connection=widget.connection,
            sql=widget_sql(widget, filters),
            user=user,
            row_cap=WIDGET_ROW_CAP,
            use_cache=use_cache,
        )
    except (UnsafeSQLError, EngineError) as exc:
        data.error, data.retryable = exc.detail, exc.retryable
    except ValidationError as exc:
        data.error = " ".join(exc.messages)
    else:
        result = executed.result
        data.columns = [{"name": c.name, "type": c.type} for c in result.columns]
        data.rows, data.row_count, data.truncated = result.rows, result.row_count, result.truncated
        data.cached = executed.cached
    if not filters.active and not data.cached:
        data.refreshed_at = timezone.now()
        stored = {"columns": data.columns, "rows": data.rows[:STORED_ROWS], "row_count": data.row_count}
        _remember(widget, result=None if data.error else stored, error=data.error, at=data.refreshed_at)
    return _present(data)


def dashboard_results(
    *, dashboard: Dashboard, filters: Filters | None = None, user: User | None = None, use_cache: bool = True
) -> list[WidgetData]:
    """Every widget of the dashboard, in grid order, run one after another."""
    return [
        widget_run(widget=widget, filters=filters, user=user, use_cache=use_cache)
        for widget in dashboard_widgets(dashboard=dashboard)
    ]
