import io

import pytest
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from apps.accounts.models import User
from apps.dashboards.models import Dashboard, Widget
from apps.dashboards.tests.conftest import TOTALS

pytestmark = pytest.mark.django_db


def bearer(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def routes(dashboard: Dashboard, widget: Widget) -> list[tuple[str, str]]:
    d, w = dashboard.pk, widget.pk
    return [
        ("get", reverse("dashboards-api:dashboard-detail", args=[d])),
        ("patch", reverse("dashboards-api:dashboard-detail", args=[d])),
        ("delete", reverse("dashboards-api:dashboard-detail", args=[d])),
        ("post", reverse("dashboards-api:dashboard-refresh", args=[d])),
        ("get", reverse("dashboards-api:widget-list", args=[d])),
        ("post", reverse("dashboards-api:widget-list", args=[d])),
        ("get", reverse("dashboards-api:widget-detail", args=[d, w])),
        ("patch", reverse("dashboards-api:widget-detail", args=[d, w])),
        ("delete", reverse("dashboards-api:widget-detail", args=[d, w])),
        ("get", reverse("dashboards-api:widget-data", args=[w])),
        ("get", reverse("dashboards-api:widget-chart", args=[w, "png"])),
    ]


def test_an_analyst_creates_a_dashboard_and_a_widget(personas, shop_connection):
    api = bearer(personas.analyst)

    created = api.post(
        reverse("dashboards-api:dashboard-list"),
        {"title": "Sales", "visibility": "org", "filter_fields": [{"key": "region", "label": "Region"}]},
        format="json",
    )
    widget = api.post(
        reverse("dashboards-api:widget-list", args=[created.data["id"]]),
        {"title": "Totals", "kind": "chart", "connection": shop_connection.pk, "sql": TOTALS,
         "chart": {"mark": "bar", "x": "region", "y": "total"}, "filter_columns": {"region": "region"}},
        format="json",
    )  # fmt: skip

    assert created.status_code == 201 and created.data["owner"] == personas.analyst.email
    assert widget.status_code == 201 and widget.data["connection"] == shop_connection.pk
    listed = api.get(reverse("dashboards-api:dashboard-list"))
    assert [d["title"] for d in listed.data["results"]] == ["Sales"]


def test_a_widget_with_unsafe_sql_is_refused_with_the_reason(personas, dashboard, shop_connection):
    response = bearer(personas.analyst).post(
        reverse("dashboards-api:widget-list", args=[dashboard.pk]),
        {"title": "x", "connection": shop_connection.pk, "sql": "DELETE FROM sales"},
        format="json",
    )

    assert response.status_code == 400 and response.data["fields"]["sql"]


def test_a_widget_cannot_use_another_orgs_connection(personas, dashboard):
    from apps.connections.tests.factories import ConnectionFactory

    theirs = ConnectionFactory(org=personas.other_org)
    response = bearer(personas.analyst).post(
        reverse("dashboards-api:widget-list", args=[dashboard.pk]),
        {"title": "x", "connection": theirs.pk, "sql": "SELECT 1"},
        format="json",
    )

    assert response.status_code == 400 and "connection" in response.data["fields"]


def test_widget_data_applies_the_filter_params(personas, widget):
    response = bearer(personas.viewer).get(
        reverse("dashboards-api:widget-data", args=[widget.pk]), {"f_region": "Asia", "date_to": "2026-01-31"}
    )

    assert response.status_code == 200 and response.data["error"] == ""
    assert {row[0] for row in response.data["rows"]} == {"Asia"}
    assert max(row[1] for row in response.data["rows"]) <= "2026-01-31"


def test_a_bad_filter_date_is_a_400(personas, widget):
    response = bearer(personas.viewer).get(
        reverse("dashboards-api:widget-data", args=[widget.pk]), {"date_from": "x"}
    )

    assert response.status_code == 400 and "date_from" in response.data["fields"]


def test_the_chart_endpoints_return_images(personas, widget):
    api = bearer(personas.viewer)

    png = api.get(reverse("dashboards-api:widget-chart", args=[widget.pk, "png"]))
    svg = api.get(reverse("dashboards-api:widget-chart", args=[widget.pk, "svg"]))

    assert png["Content-Type"] == "image/png" and Image.open(io.BytesIO(png.content)).width >= 640
    assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content


def test_refresh_reruns_every_widget(personas, dashboard, widget):
    response = bearer(personas.viewer).post(reverse("dashboards-api:dashboard-refresh", args=[dashboard.pk]))

    assert response.status_code == 200 and response.data[0]["row_count"] == 300
    widget.refresh_from_db()
    assert widget.refreshed_at is not None


def test_viewers_read_but_cannot_change(personas, dashboard, widget):
    api = bearer(personas.viewer)

    assert api.get(reverse("dashboards-api:dashboard-detail", args=[dashboard.pk])).status_code == 200
    assert (
        api.patch(reverse("dashboards-api:dashboard-detail", args=[dashboard.pk]), {"title": "x"}).status_code
        == 403
    )
    assert (
        api.delete(reverse("dashboards-api:widget-detail", args=[dashboard.pk, widget.pk])).status_code == 403
    )
    assert api.post(reverse("dashboards-api:dashboard-list"), {"title": "x"}).status_code == 403


def test_another_orgs_dashboard_and_widget_are_a_404_everywhere(personas, dashboard, widget):
    api = bearer(personas.outsider)

    for method, path in routes(dashboard, widget):
        assert getattr(api, method)(path, {}, format="json").status_code == 404, (method, path)
    assert Dashboard.objects.filter(pk=dashboard.pk).exists() and Widget.objects.filter(pk=widget.pk).exists()


def test_a_widget_of_another_dashboard_is_not_found_through_this_one(personas, dashboard, widget):
    other = Dashboard.objects.create(org=personas.org, owner=personas.analyst, title="Other")

    response = bearer(personas.analyst).get(
        reverse("dashboards-api:widget-detail", args=[other.pk, widget.pk])
    )

    assert response.status_code == 404


def test_anonymous_calls_are_refused(dashboard, widget):
    for method, path in routes(dashboard, widget):
        assert getattr(APIClient(), method)(path).status_code == 401, (method, path)


def test_the_endpoints_are_in_the_openapi_schema(client):
    schema = client.get(reverse("api-schema")).content.decode()

    for path in (
        "/api/v1/dashboards/",
        "/api/v1/dashboards/{id}/widgets/",
        "/api/v1/dashboards/{id}/widgets/{widget_pk}/",
        "/api/v1/dashboards/{id}/refresh/",
        "/api/v1/widgets/{id}/data/",
        "/api/v1/widgets/{id}/chart.{fmt}",
    ):
        assert f"{path}:" in schema, path
