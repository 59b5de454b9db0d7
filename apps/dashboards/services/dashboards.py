"""Dashboards and their widgets: creating, pinning, editing, arranging, sharing, duplicating."""

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.accounts.models import Organization, User
from apps.accounts.services import audit_log_record
from apps.chat.models import ChatMessage
from apps.chat.services.charts import column_kinds
from apps.connections.models import Connection
from apps.connections.safety import UnsafeSQLError
from apps.connections.services.execution import sql_make_safe
from apps.dashboards.models import Dashboard, Visibility, Widget, WidgetKind
from apps.dashboards.services.charts import AGGREGATES, MARKS, encoding_from_spec
from apps.dashboards.services.filters import DATE_KEY, MAX_VALUE_FILTERS

_DASHBOARD_FIELDS = (
    "title",
    "description",
    "visibility",
    "filter_fields",
    "auto_refresh_s",
    "schedule_minutes",
)
_WIDGET_FIELDS = (
    "title", "kind", "connection", "sql", "text", "chart", "filter_columns",
    "width", "height", "refresh_interval_s",
)  # fmt: skip


def _next_refresh(schedule_minutes: int) -> dt.datetime | None:
    return timezone.now() + dt.timedelta(minutes=schedule_minutes) if schedule_minutes else None


# Faster would let one open page, or one schedule, keep a warehouse busy for everyone.
MIN_AUTO_REFRESH_S = 10
MIN_SCHEDULE_MINUTES = 5


def _check_intervals(auto_refresh_s: int, schedule_minutes: int) -> None:
    if 0 < auto_refresh_s < MIN_AUTO_REFRESH_S:
        raise ValidationError({"auto_refresh_s": f"Reload at most every {MIN_AUTO_REFRESH_S} seconds, or 0."})
    if 0 < schedule_minutes < MIN_SCHEDULE_MINUTES:
        raise ValidationError(
            {"schedule_minutes": f"Refresh at most every {MIN_SCHEDULE_MINUTES} minutes, or 0."}
        )


def _clean_filter_fields(fields: list[dict]) -> list[dict]:
    cleaned, keys = [], set()
    for item in fields or []:
        key = str(item.get("key", "")).strip()
        if not key or not key.isidentifier() or key == DATE_KEY or key in keys:
            raise ValidationError(
                {"filter_fields": f"“{key}” cannot name a filter: use letters and underscores."}
            )
        keys.add(key)
        cleaned.append({"key": key, "label": str(item.get("label") or key)[:60]})
    if len(cleaned) > MAX_VALUE_FILTERS:
        raise ValidationError(
            {"filter_fields": f"A dashboard has at most {MAX_VALUE_FILTERS} value filters."}
        )
    return cleaned


@transaction.atomic
def dashboard_create(*, org: Organization, owner: User, title: str, **fields: Any) -> Dashboard:
    fields["filter_fields"] = _clean_filter_fields(fields.get("filter_fields", []))
    _check_intervals(fields.get("auto_refresh_s", 0), fields.get("schedule_minutes", 0))
    dashboard = Dashboard.objects.create(
        org=org,
        owner=owner,
        title=title,
        next_refresh_at=_next_refresh(fields.get("schedule_minutes", 0)),
        **fields,
    )
    if dashboard.visibility == Visibility.ORG:
        audit_log_record(action="dashboard.share", org=org, actor=owner, target=dashboard)
    return dashboard


@transaction.atomic
def dashboard_update(*, dashboard: Dashboard, user: User, **fields: Any) -> Dashboard:
    was_shared = dashboard.visibility == Visibility.ORG
    if "filter_fields" in fields:
        fields["filter_fields"] = _clean_filter_fields(fields["filter_fields"])
    for name, value in fields.items():
        if name in _DASHBOARD_FIELDS:
            setattr(dashboard, name, value)
    _check_intervals(dashboard.auto_refresh_s, dashboard.schedule_minutes)
    if "schedule_minutes" in fields:
        dashboard.next_refresh_at = _next_refresh(dashboard.schedule_minutes)
    dashboard.full_clean()
    dashboard.save()
    if was_shared != (dashboard.visibility == Visibility.ORG):
        action = "dashboard.share" if dashboard.visibility == Visibility.ORG else "dashboard.unshare"
        audit_log_record(action=action, org=dashboard.org, actor=user, target=dashboard)
    return dashboard


@transaction.atomic
def dashboard_delete(*, dashboard: Dashboard, user: User) -> None:
    audit_log_record(
        action="dashboard.delete",
        org=dashboard.org,
        actor=user,
        target=dashboard,
        metadata={"title": dashboard.title},
    )
    dashboard.delete()


@transaction.atomic
def dashboard_duplicate(*, dashboard: Dashboard, user: User) -> Dashboard:
    """A private copy for `user`, with copies of every widget (results are not copied)."""
    copy = dashboard_create(
        org=dashboard.org,
        owner=user,
        title=f"Copy of {dashboard.title}"[:200],
        description=dashboard.description,
        filter_fields=dashboard.filter_fields,
        auto_refresh_s=dashboard.auto_refresh_s,
    )
    Widget.objects.bulk_create(
        Widget(
            dashboard=copy,
            position=widget.position,
            **{name: getattr(widget, name) for name in _WIDGET_FIELDS},
        )
        for widget in dashboard.widgets.all()
    )
    return copy


def _checked_sql(connection: Connection | None, sql: str, user: User) -> None:
    """The same safety engine as every query: a widget that could not run is not saved. Called
    outside any transaction, so the refusal stays in the audit log."""
    if connection is None or connection.org_id != user.org_id:
        raise ValidationError({"connection": "Choose a connection of your organisation."})
    if not sql.strip():
        raise ValidationError({"sql": "Write the query this widget shows."})
    try:
        sql_make_safe(connection=connection, sql=sql, user=user)
    except UnsafeSQLError as exc:
        raise ValidationError({"sql": exc.detail})


def _checked_widget(widget: Widget, user: User) -> None:
    if 0 < widget.refresh_interval_s < MIN_AUTO_REFRESH_S:
        raise ValidationError(
            {"refresh_interval_s": f"Reload at most every {MIN_AUTO_REFRESH_S} seconds, or 0."}
        )
    if widget.kind != WidgetKind.TEXT:
        _checked_sql(widget.connection, widget.sql, user)
    chart = widget.chart or {}
    if (chart.get("mark") or "bar") not in MARKS or (chart.get("aggregate") or "") not in AGGREGATES:
        raise ValidationError({"chart": "Choose a chart type and aggregation from the lists."})
    if widget.width not in Widget.WIDTHS or widget.height not in Widget.HEIGHTS:
        raise ValidationError({"width": "Choose a size from the lists."})


def widget_create(*, dashboard: Dashboard, user: User, title: str, **fields: Any) -> Widget:
    last = dashboard.widgets.aggregate(last=Max("position"))["last"]
    widget = Widget(dashboard=dashboard, title=title, position=0 if last is None else last + 1)
    for name, value in fields.items():
        if name in _WIDGET_FIELDS:
            setattr(widget, name, value)
    _checked_widget(widget, user)
    widget.save()
    return widget


def widget_update(*, widget: Widget, user: User, **fields: Any) -> Widget:
    for name, value in fields.items():
        if name in _WIDGET_FIELDS:
            setattr(widget, name, value)
    _checked_widget(widget, user)
    widget.save()
    return widget


@transaction.atomic
def widget_delete(*, widget: Widget) -> None:
    widget.delete()


def widget_pin(
    *,
    user: User,
    connection: Connection,
    sql: str,
    title: str,
    chart: dict,
    kind: str = WidgetKind.CHART,
    dashboard: Dashboard | None = None,
    new_dashboard_title: str = "",
    filter_columns: dict[str, str] | None = None,
) -> Widget:
    """Pin a query (a chat answer's or the SQL runner's) to a dashboard, or to a new one."""
    if dashboard is None and not new_dashboard_title.strip():
        raise ValidationError({"dashboard": "Choose a dashboard or name a new one."})
    _checked_sql(connection, sql, user)
    with transaction.atomic():
        if dashboard is None:
            dashboard = dashboard_create(org=user.org, owner=user, title=new_dashboard_title.strip())
        return widget_create(
            dashboard=dashboard,
            user=user,
            title=title,
            kind=kind,
            connection=connection,
            sql=sql,
            chart=chart,
            filter_columns=filter_columns or {},
        )


def widget_pin_answer(*, user: User, message: ChatMessage, mark: str = "", **choices: Any) -> Widget:
    """Pin a chat answer: its SQL, and its chart as the answer drew it unless `mark` changes it."""
    chart = encoding_from_spec(message.chart) if message.chart.get("kind") == "vega-lite" else {}
    if mark:
        chart["mark"] = mark
    # The answer's first date column is what the dashboard's date range most likely means.
    kinds = column_kinds(message.columns, message.rows)
    dates = [
        column["name"] for column, kind in zip(message.columns, kinds, strict=True) if kind == "temporal"
    ]
    return widget_pin(
        user=user,
        connection=message.session.connection,
        sql=message.sql,
        chart=chart,
        filter_columns={DATE_KEY: dates[0]} if dates else {},
        **choices,
    )


@transaction.atomic
def widgets_reorder(*, dashboard: Dashboard, order: list[int]) -> None:
    """Positions in the given order of ids; ids not of this dashboard are ignored."""
    widgets = {w.pk: w for w in dashboard.widgets.select_for_update()}
    ordered = [widgets.pop(pk) for pk in order if pk in widgets] + sorted(
        widgets.values(), key=lambda w: w.position
    )
    for position, widget in enumerate(ordered):
        widget.position = position
    Widget.objects.bulk_update(ordered, ["position"])


@transaction.atomic
def widget_move(*, widget: Widget, offset: int) -> None:
    """Move a widget `offset` places earlier (negative) or later in the grid."""
    order = list(widget.dashboard.widgets.values_list("pk", flat=True))
    index = order.index(widget.pk)
    target = max(0, min(len(order) - 1, index + offset))
    order.insert(target, order.pop(index))
    widgets_reorder(dashboard=widget.dashboard, order=order)


@transaction.atomic
def widget_resize(*, widget: Widget, width: int | None = None, height: int | None = None) -> Widget:
    if width is not None:
        widget.width = width
    if height is not None:
        widget.height = height
    if widget.width not in Widget.WIDTHS or widget.height not in Widget.HEIGHTS:
        raise ValidationError({"width": "That size is not available."})
    Widget.objects.filter(pk=widget.pk).update(width=widget.width, height=widget.height)
    return widget
