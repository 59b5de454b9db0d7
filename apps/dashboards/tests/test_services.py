import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from apps.accounts.models import AuditLog
from apps.chat.models import ChatMessage, ChatSession, MessageRole, MessageStatus
from apps.dashboards.models import Visibility, Widget, WidgetKind
from apps.dashboards.services import dashboards as services
from apps.dashboards.services.filters import Filters
from apps.dashboards.services.widgets import widget_run
from apps.dashboards.tests.conftest import TOTALS
from apps.dashboards.tests.factories import WidgetFactory

pytestmark = pytest.mark.django_db


def _totals(data) -> dict[str, float]:
    totals: dict[str, float] = {}
    for region, _day, amount in data.rows:
        totals[region] = totals.get(region, 0) + float(amount)
    return totals


def test_a_widget_runs_its_query_and_builds_its_chart(widget):
    data = widget_run(widget=widget)

    assert data.ok and data.row_count == 300
    assert _totals(data) == {"Americas": 1301, "Asia": 1299, "Europe": 1303}
    assert data.spec["mark"]["type"] == "bar"
    assert data.spec["encoding"]["y"] == {
        "field": "amount",
        "type": "quantitative",
        "axis": {"format": "~s"},
        "aggregate": "sum",
    }
    widget.refresh_from_db()
    assert widget.refreshed_at is not None and widget.last_result["row_count"] == 300


def test_the_date_filter_keeps_only_rows_in_the_range(widget):
    filters = Filters(date_from=dt.date(2026, 1, 1), date_to=dt.date(2026, 1, 10))

    data = widget_run(widget=widget, filters=filters)

    days = {row[1] for row in data.rows}
    assert days and min(days) >= "2026-01-01" and max(days) <= "2026-01-10"
    # Ten of the ninety days, each with 300 / 90 rows or so.
    assert 30 <= data.row_count <= 40


def test_a_value_filter_keeps_only_its_value(widget):
    data = widget_run(widget=widget, filters=Filters(values={"region": "Asia"}))

    assert _totals(data) == {"Asia": 1299}


def test_a_filter_value_containing_sql_is_data_not_code(widget):
    data = widget_run(widget=widget, filters=Filters(values={"region": "Asia' OR '1'='1"}))

    assert data.ok and data.row_count == 0
    assert not AuditLog.objects.filter(action="sql.refused").exists()


def test_a_filtered_run_does_not_replace_the_widgets_latest_result(widget):
    widget_run(widget=widget, filters=Filters(values={"region": "Asia"}))

    widget.refresh_from_db()
    assert widget.refreshed_at is None


def test_a_failing_widget_reports_its_error_and_its_neighbours_still_load(widget, dashboard, shop_connection):
    broken = WidgetFactory(dashboard=dashboard, connection=shop_connection, sql="SELECT nope FROM sales")

    from apps.dashboards.services.widgets import dashboard_results

    results = {data.widget.pk: data for data in dashboard_results(dashboard=dashboard)}

    assert results[widget.pk].ok
    assert "nope" in results[broken.pk].error
    broken.refresh_from_db()
    assert "nope" in broken.last_error


def test_saving_a_widget_with_a_write_is_refused_with_the_reason(widget, personas):
    with pytest.raises(ValidationError) as refused:
        services.widget_update(widget=widget, user=personas.analyst, sql="DELETE FROM sales")

    assert (
        "read-only" in " ".join(refused.value.messages).lower()
        or "delete" in " ".join(refused.value.messages).lower()
    )
    assert AuditLog.objects.filter(action="sql.refused").count() == 1


def test_pinning_a_chat_answer_keeps_its_query_and_chart(personas, shop_connection):
    session = ChatSession.objects.create(org=personas.org, user=personas.analyst, connection=shop_connection)
    ChatMessage.objects.create(session=session, role=MessageRole.USER, content="total sales by region")
    answer = ChatMessage.objects.create(
        session=session,
        role=MessageRole.ASSISTANT,
        status=MessageStatus.DONE,
        sql=TOTALS,
        chart={
            "kind": "vega-lite",
            "spec": {
                "mark": "bar",
                "encoding": {
                    "y": {"field": "region", "type": "nominal"},
                    "x": {"field": "total", "type": "quantitative"},
                },
            },
        },
    )

    widget = services.widget_pin_answer(
        user=personas.analyst,
        message=answer,
        title="Sales by region",
        new_dashboard_title="Sales",
        kind=WidgetKind.CHART,
    )

    assert widget.dashboard.title == "Sales" and widget.dashboard.owner == personas.analyst
    assert widget.sql == TOTALS and widget.connection == shop_connection
    assert widget.chart == {"mark": "bar", "x": "region", "y": "total", "color": "", "aggregate": ""}
    assert widget_run(widget=widget).spec["encoding"]["x"]["field"] == "region"


def test_pinning_an_answer_with_a_date_column_maps_the_date_filter_to_it(
    personas, shop_connection, dashboard
):
    session = ChatSession.objects.create(org=personas.org, user=personas.analyst, connection=shop_connection)
    answer = ChatMessage.objects.create(
        session=session,
        role=MessageRole.ASSISTANT,
        status=MessageStatus.DONE,
        sql="SELECT day, sum(amount) AS total FROM sales GROUP BY 1 ORDER BY 1",
        columns=[{"name": "day", "type": "DATE"}, {"name": "total", "type": "DECIMAL(38,2)"}],
        rows=[["2026-01-01", 10]],
    )

    widget = services.widget_pin_answer(
        user=personas.analyst, message=answer, title="Daily", dashboard=dashboard
    )

    assert widget.filter_columns == {"date": "day"}
    data = widget_run(widget=widget, filters=Filters(date_from=dt.date(2026, 3, 1)))
    assert data.row_count == 31 and min(row[0] for row in data.rows) == "2026-03-01"


def test_pinning_can_change_the_chart_type(personas, shop_connection, dashboard):
    widget = services.widget_pin(
        user=personas.analyst,
        connection=shop_connection,
        sql=TOTALS,
        title="T",
        chart={"mark": "line"},
        dashboard=dashboard,
    )

    assert widget.chart["mark"] == "line" and widget.dashboard == dashboard


def test_a_kpi_shows_the_last_period_against_the_one_before(dashboard, shop_connection):
    widget = WidgetFactory(
        dashboard=dashboard,
        connection=shop_connection,
        kind=WidgetKind.KPI,
        sql="SELECT date_trunc('month', day) AS month, sum(amount) AS total FROM sales GROUP BY 1 ORDER BY 1",
    )

    kpi = widget_run(widget=widget).kpi

    assert kpi["label"] == "total" and kpi["previous"] is not None
    assert kpi["change_pct"] == pytest.approx((kpi["value"] - kpi["previous"]) / kpi["previous"] * 100)
    assert len(kpi["sparkline"].split()) == 3


def test_moving_a_widget_swaps_it_with_its_neighbour(dashboard, widget, shop_connection):
    second = WidgetFactory(dashboard=dashboard, connection=shop_connection, sql=TOTALS)

    services.widget_move(widget=second, offset=-1)

    assert list(dashboard.widgets.values_list("pk", flat=True)) == [second.pk, widget.pk]


def test_duplicating_makes_a_private_copy_with_every_widget(dashboard, widget, personas):
    copy = services.dashboard_duplicate(dashboard=dashboard, user=personas.viewer)

    assert copy.owner == personas.viewer and copy.visibility == Visibility.PRIVATE
    assert list(copy.widgets.values_list("sql", flat=True)) == [widget.sql]
    assert Widget.objects.count() == 2


def test_sharing_a_dashboard_is_audited(dashboard, personas):
    services.dashboard_update(dashboard=dashboard, user=personas.analyst, visibility=Visibility.PRIVATE)

    assert AuditLog.objects.filter(action="dashboard.unshare", target_id=str(dashboard.pk)).exists()


def test_refresh_intervals_have_a_floor(personas, widget):
    with pytest.raises(ValidationError):
        services.dashboard_create(org=personas.org, owner=personas.analyst, title="x", auto_refresh_s=1)
    with pytest.raises(ValidationError):
        services.dashboard_update(dashboard=widget.dashboard, user=personas.analyst, schedule_minutes=1)
    with pytest.raises(ValidationError):
        services.widget_update(widget=widget, user=personas.analyst, refresh_interval_s=2)
