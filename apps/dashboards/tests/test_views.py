import re

import pytest
from django.urls import reverse

from apps.chat.models import ChatMessage, ChatSession, MessageRole, MessageStatus
from apps.dashboards.models import Dashboard, Visibility, Widget
from apps.dashboards.services.widgets import widget_run
from apps.dashboards.tests.conftest import TOTALS
from apps.dashboards.tests.factories import DashboardFactory, WidgetFactory

pytestmark = pytest.mark.django_db

FORM = {"title": "T", "kind": "chart", "sql": TOTALS, "mark": "bar", "aggregate": "", "width": 6, "height": 1,
        "refresh_interval_s": 0}  # fmt: skip


@pytest.fixture
def as_analyst(client, personas):
    client.force_login(personas.analyst)
    return client


def _widget_url(name: str, widget: Widget, *extra) -> str:
    return reverse(f"dashboards:{name}", args=[widget.pk, *extra])


def test_the_dashboard_page_shows_a_skeleton_per_widget_that_loads_itself(as_analyst, dashboard, widget):
    response = as_analyst.get(reverse("dashboards:dashboard-detail", args=[dashboard.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="skeleton"' in html
    assert f'hx-get="{_widget_url("widget-fragment", widget)}?' in html
    assert 'hx-trigger="load"' in html
    assert f'ws-connect="/ws/dashboards/{dashboard.pk}/"' in html


def test_a_filtered_page_listens_for_refreshes_as_a_filtered_page(as_analyst, dashboard, widget):
    html = as_analyst.get(
        reverse("dashboards:dashboard-detail", args=[dashboard.pk]) + "?f_region=Asia"
    ).content

    assert f'ws-connect="/ws/dashboards/{dashboard.pk}/?filtered=1"'.encode() in html
    assert b'id="dashboard-filters"' in html


def test_the_dashboard_page_costs_the_same_queries_for_one_or_many_widgets(
    client, personas, dashboard, widget, shop_connection, django_assert_num_queries
):
    client.force_login(personas.analyst)
    url = reverse("dashboards:dashboard-detail", args=[dashboard.pk])
    client.get(url)
    # the user with their org, the dashboard (with its org and owner), its widgets' tiles; the
    # session and the bell's unread count come from the cache
    with django_assert_num_queries(3):
        client.get(url)
    WidgetFactory.create_batch(5, dashboard=dashboard, connection=shop_connection, sql=TOTALS)
    with django_assert_num_queries(3):
        assert client.get(url).content.decode().count('class="skeleton"') == 6


def test_the_cached_grid_follows_its_widgets(client, personas, dashboard, widget, shop_connection):
    client.force_login(personas.analyst)
    url = reverse("dashboards:dashboard-detail", args=[dashboard.pk])
    assert widget.title in client.get(url).content.decode()
    widget.title, widget.width = "Renamed", 12
    widget.save()
    page = client.get(url).content.decode()
    assert "Renamed" in page and "w-12" in page
    assert 'class="skeleton"' in client.get(url, {"date_from": "2026-01-01"}).content.decode()
    widget.delete()
    assert "No widgets yet" in client.get(url).content.decode()


def test_the_dashboards_list_costs_the_same_queries_for_many_dashboards(
    client, personas, django_assert_num_queries
):
    client.force_login(personas.analyst)
    DashboardFactory.create_batch(3, org=personas.org, owner=personas.analyst)
    client.get(reverse("dashboards:index"))
    # the user with their org, the dashboards with their widget counts (the session and the
    # bell's count from the cache)
    with django_assert_num_queries(2):
        client.get(reverse("dashboards:index"))


def test_a_warm_widget_fragment_costs_two_queries(as_analyst, widget, django_assert_num_queries):
    url = _widget_url("widget-fragment", widget)
    as_analyst.get(url)  # runs the query and remembers it on the widget

    # the user (the session from the cache), the widget with its dashboard and connection,
    # scoped by the user's org id
    with django_assert_num_queries(2):
        assert as_analyst.get(url).status_code == 200


def test_a_widget_fragment_carries_its_chart(as_analyst, widget):
    response = as_analyst.get(_widget_url("widget-fragment", widget), HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="widget-spec-{widget.pk}"' in html and '"aggregate": "sum"' in html
    assert "Europe" in html


def test_the_fragment_applies_the_filters_in_its_url(as_analyst, widget):
    response = as_analyst.get(_widget_url("widget-fragment", widget) + "?f_region=Asia&date_from=2026-01-01")

    html = response.content.decode()
    assert "Asia" in html and "Europe" not in html
    # The filter stays in the widget's own reload and download links.
    assert "f_region=Asia" in html


def test_a_failing_widget_shows_an_error_card_with_retry(as_analyst, dashboard, shop_connection):
    broken = WidgetFactory(dashboard=dashboard, connection=shop_connection, sql="SELECT nope FROM sales")

    html = as_analyst.get(_widget_url("widget-fragment", broken)).content.decode()

    assert "could not load" in html and "nope" in html and ">Retry</button>" in html


def test_a_widget_reloads_itself_at_the_dashboards_interval(as_analyst, dashboard, widget):
    dashboard.auto_refresh_s = 60
    dashboard.save()

    html = as_analyst.get(_widget_url("widget-fragment", widget)).content.decode()

    assert 'hx-trigger="every 60s"' in html


def test_a_widget_whose_connection_was_deleted_says_so(as_analyst, widget, shop_connection):
    shop_connection.delete()

    html = as_analyst.get(_widget_url("widget-fragment", widget)).content.decode()

    assert "connection was deleted" in html


def test_pinning_from_the_sql_runner_creates_the_dashboard_and_widget(as_analyst, personas, shop_connection):
    form = as_analyst.get(reverse("dashboards:pin") + f"?connection={shop_connection.pk}&sql=SELECT%201")
    assert form.status_code == 200

    response = as_analyst.post(
        reverse("dashboards:pin"),
        {"connection": shop_connection.pk, "sql": TOTALS, "title": "Totals", "kind": "chart", "mark": "bar",
         "new_dashboard_title": "Regions"},
    )  # fmt: skip

    widget = Widget.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(
        f"/dashboards/{widget.dashboard_id}/"
    )
    assert (
        widget.dashboard.title == "Regions"
        and widget.sql == TOTALS
        and widget.dashboard.owner == personas.analyst
    )


def test_pinning_a_chat_answer_from_its_page(as_analyst, personas, shop_connection, dashboard):
    session = ChatSession.objects.create(org=personas.org, user=personas.analyst, connection=shop_connection)
    ChatMessage.objects.create(session=session, role=MessageRole.USER, content="sales by region")
    answer = ChatMessage.objects.create(
        session=session,
        role=MessageRole.ASSISTANT,
        status=MessageStatus.DONE,
        sql=TOTALS,
        chart={"kind": "table"},
    )

    form = as_analyst.get(reverse("dashboards:pin-answer", args=[answer.pk]))
    assert 'value="sales by region"' in form.content.decode()
    as_analyst.post(
        reverse("dashboards:pin"),
        {"message": answer.pk, "title": "By region", "kind": "table", "dashboard": dashboard.pk},
    )

    assert dashboard.widgets.get().title == "By region"


def test_someone_elses_chat_answer_cannot_be_pinned(client, personas, shop_connection):
    session = ChatSession.objects.create(org=personas.org, user=personas.admin, connection=shop_connection)
    answer = ChatMessage.objects.create(
        session=session, role=MessageRole.ASSISTANT, status=MessageStatus.DONE, sql=TOTALS
    )
    client.force_login(personas.analyst)

    assert client.get(reverse("dashboards:pin-answer", args=[answer.pk])).status_code == 404


def test_editing_a_widget_with_unsafe_sql_is_refused_with_the_reason(as_analyst, widget):
    response = as_analyst.post(
        _widget_url("widget-edit", widget),
        {**FORM, "sql": "DROP TABLE sales"},
    )

    assert response.status_code == 422
    assert "refused" in response.content.decode().lower() or "read-only" in response.content.decode().lower()
    widget.refresh_from_db()
    assert widget.sql.startswith("SELECT")


def test_editing_a_widget_saves_title_chart_and_filters(as_analyst, widget):
    response = as_analyst.post(
        _widget_url("widget-edit", widget),
        {**FORM, "title": "Totals", "mark": "line", "x": "region", "y": "total", "width": 12, "height": 2,
         "filter_region": "region"},
    )  # fmt: skip

    assert response.status_code == 302
    widget.refresh_from_db()
    assert (widget.title, widget.chart["mark"], widget.width, widget.height) == ("Totals", "line", 12, 2)
    assert widget.filter_columns == {"region": "region"}


def test_live_validation_says_why_sql_is_refused(as_analyst, widget):
    refused = as_analyst.post(_widget_url("widget-validate", widget), {"sql": "UPDATE sales SET amount = 0"})
    accepted = as_analyst.post(_widget_url("widget-validate", widget), {"sql": TOTALS})

    assert "Refused:" in refused.content.decode()
    assert "One read-only query" in accepted.content.decode()


def test_preview_runs_the_form_without_saving(as_analyst, widget):
    response = as_analyst.post(
        _widget_url("widget-preview", widget),
        {**FORM, "kind": "table"},
    )

    assert "Americas" in response.content.decode() and "<table" in response.content.decode()
    widget.refresh_from_db()
    assert widget.kind == "chart"


def test_the_editor_suggests_the_result_columns_from_the_last_run_and_from_each_preview(as_analyst, widget):
    def suggestions(html: str) -> list[str]:
        datalist = re.search(r'<datalist id="widget-columns"[^>]*>(.*?)</datalist>', html, re.S)
        return re.findall(r'<option value="([^"]*)">', datalist.group(1)) if datalist else []

    editor = as_analyst.get(_widget_url("widget-edit", widget)).content.decode()
    assert suggestions(editor) == [] and 'list="widget-columns"' in editor

    widget_run(widget=widget)  # a run stores the result the editor reads
    editor = as_analyst.get(_widget_url("widget-edit", widget)).content.decode()
    assert suggestions(editor) == ["region", "day", "amount"]
    assert re.search(r'<input[^>]*name="x"[^>]*list="widget-columns"', editor)

    preview = as_analyst.post(
        _widget_url("widget-preview", widget), {**FORM, "sql": "SELECT name AS area, 1 AS n FROM regions"}
    ).content.decode()
    assert suggestions(preview) == ["area", "n"] and 'hx-swap-oob="true"' in preview


def test_adding_a_widget_starts_a_note_and_its_editor_makes_it_a_chart(
    as_analyst, dashboard, shop_connection
):
    response = as_analyst.post(reverse("dashboards:widget-add", args=[dashboard.pk]))

    widget = dashboard.widgets.get()
    assert response.status_code == 302 and response["Location"] == _widget_url("widget-edit", widget)
    as_analyst.post(
        _widget_url("widget-edit", widget), {**FORM, "connection": shop_connection.pk, "title": "Totals"}
    )
    widget.refresh_from_db()
    assert (widget.kind, widget.connection, widget.title) == ("chart", shop_connection, "Totals")


def test_the_move_and_resize_buttons_save_the_layout_at_once(as_analyst, dashboard, widget, shop_connection):
    second = WidgetFactory(dashboard=dashboard, connection=shop_connection, sql=TOTALS)

    response = as_analyst.post(
        _widget_url("widget-layout", second), {"offset": -1, "width": 12, "height": 2}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200 and 'id="widget-grid"' in response.content.decode()
    assert list(dashboard.widgets.values_list("pk", "width", "height")) == [
        (second.pk, 12, 2),
        (widget.pk, 6, 1),
    ]


def test_drag_and_drop_saves_the_new_order(as_analyst, dashboard, widget, shop_connection):
    second = WidgetFactory(dashboard=dashboard, connection=shop_connection, sql=TOTALS)

    response = as_analyst.post(_widget_url("widget-layout", second), {"order": f"{second.pk},{widget.pk}"})

    assert response.status_code == 302
    assert list(dashboard.widgets.values_list("pk", flat=True)) == [second.pk, widget.pk]


def test_refresh_all_reruns_every_widget(as_analyst, dashboard, widget):
    response = as_analyst.post(
        reverse("dashboards:dashboard-refresh", args=[dashboard.pk]), HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200 and 'id="widget-grid"' in response.content.decode()
    widget.refresh_from_db()
    assert widget.refreshed_at is not None


def test_viewers_open_shared_dashboards_but_cannot_change_them(client, personas, dashboard, widget):
    client.force_login(personas.viewer)

    page = client.get(reverse("dashboards:dashboard-detail", args=[dashboard.pk]))
    assert page.status_code == 200
    assert reverse("dashboards:dashboard-edit", args=[dashboard.pk]) not in page.content.decode()
    fragment = client.get(_widget_url("widget-fragment", widget)).content.decode()
    assert "widget-layout" not in fragment and "Edit</a>" not in fragment
    for url in (
        reverse("dashboards:dashboard-edit", args=[dashboard.pk]),
        reverse("dashboards:dashboard-delete", args=[dashboard.pk]),
        reverse("dashboards:widget-add", args=[dashboard.pk]),
        _widget_url("widget-edit", widget),
        _widget_url("widget-layout", widget),
        _widget_url("widget-delete", widget),
        reverse("dashboards:pin"),
    ):
        assert client.post(url, {"offset": 1}).status_code == 403, url
    assert Dashboard.objects.filter(pk=dashboard.pk).exists()


def test_an_analyst_cannot_change_a_colleagues_shared_dashboard(client, personas, widget):
    client.force_login(
        personas.admin.__class__.objects.create_user(
            "other@acme.test", "pw", org=personas.org, role="analyst"
        )
    )

    assert client.post(_widget_url("widget-layout", widget), {"offset": 1}).status_code == 403


def test_a_colleagues_private_dashboard_is_not_found(client, personas, dashboard, widget):
    Dashboard.objects.filter(pk=dashboard.pk).update(visibility=Visibility.PRIVATE)
    client.force_login(personas.viewer)

    assert client.get(reverse("dashboards:dashboard-detail", args=[dashboard.pk])).status_code == 404
    assert client.get(_widget_url("widget-fragment", widget)).status_code == 404


def _every_url(dashboard: Dashboard, widget: Widget) -> list[tuple[str, str]]:
    d, w = [dashboard.pk], [widget.pk]
    return [
        ("get", reverse("dashboards:dashboard-detail", args=d)),
        ("get", reverse("dashboards:dashboard-edit", args=d)),
        ("post", reverse("dashboards:dashboard-delete", args=d)),
        ("post", reverse("dashboards:dashboard-duplicate", args=d)),
        ("post", reverse("dashboards:dashboard-refresh", args=d)),
        ("post", reverse("dashboards:widget-add", args=d)),
        ("get", reverse("dashboards:dashboard-print", args=d)),
        ("get", reverse("dashboards:dashboard-pdf", args=d)),
        ("get", reverse("dashboards:subscriptions", args=d)),
        ("get", reverse("dashboards:widget-fragment", args=w)),
        ("get", reverse("dashboards:widget-edit", args=w)),
        ("post", reverse("dashboards:widget-validate", args=w)),
        ("post", reverse("dashboards:widget-preview", args=w)),
        ("post", reverse("dashboards:widget-layout", args=w)),
        ("post", reverse("dashboards:widget-delete", args=w)),
        ("get", reverse("dashboards:widget-chart", args=[*w, "png"])),
        ("get", reverse("dashboards:widget-data", args=[*w, "csv"])),
    ]


def test_another_orgs_dashboard_and_widget_are_not_found_anywhere(client, personas, dashboard, widget):
    client.force_login(personas.outsider)

    for method, url in _every_url(dashboard, widget):
        assert getattr(client, method)(url).status_code == 404, url
    assert Dashboard.objects.filter(pk=dashboard.pk).exists()


def test_anonymous_visitors_are_sent_to_log_in(client, dashboard, widget):
    for method, url in _every_url(dashboard, widget):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_the_wrong_method_is_refused(as_analyst, dashboard, widget):
    assert as_analyst.get(reverse("dashboards:dashboard-delete", args=[dashboard.pk])).status_code == 405
    assert as_analyst.post(_widget_url("widget-fragment", widget)).status_code == 405


def test_every_page_of_a_dashboard_renders_for_its_owner(as_analyst, dashboard, widget):
    for url in (
        reverse("dashboards:index"),
        reverse("dashboards:dashboard-edit", args=[dashboard.pk]),
        reverse("dashboards:subscriptions", args=[dashboard.pk]),
        reverse("dashboards:dashboard-print", args=[dashboard.pk]),
        _widget_url("widget-edit", widget),
    ):
        assert as_analyst.get(url).status_code == 200, url


def test_the_widget_editor_checks_the_sql_as_it_is_typed(as_analyst, widget):
    html = as_analyst.get(_widget_url("widget-edit", widget)).content.decode()

    assert f'hx-post="{_widget_url("widget-validate", widget)}"' in html
    assert 'hx-trigger="input changed delay:400ms from:#id_sql, load"' in html
    assert 'name="filter_region"' in html  # the dashboard's value filter can be mapped


def test_creating_a_dashboard_with_value_filters(as_analyst, personas):
    response = as_analyst.post(
        reverse("dashboards:dashboard-create"),
        {"title": "Ops", "visibility": "org", "filter_fields": "region: Region, country",
         "auto_refresh_s": 60, "schedule_minutes": 15},
    )  # fmt: skip

    dashboard = Dashboard.objects.get(title="Ops")
    assert response.status_code == 302 and dashboard.owner == personas.analyst
    assert dashboard.filter_fields == [
        {"key": "region", "label": "Region"},
        {"key": "country", "label": "country"},
    ]
    assert dashboard.next_refresh_at is not None
