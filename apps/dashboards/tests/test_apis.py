import io

import pytest
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from apps.accounts.models import AuditLog, User
from apps.dashboards.models import Dashboard, DeliveryStatus, Subscription, SubscriptionDelivery, Widget
from apps.dashboards.tests.conftest import TOTALS

pytestmark = pytest.mark.django_db


def bearer(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def subscription(personas, dashboard) -> Subscription:
    analyst = personas.analyst
    return Subscription.objects.create(
        org=personas.org, dashboard=dashboard, created_by=analyst, recipients=[analyst.email]
    )


def routes(dashboard: Dashboard, widget: Widget, subscription: Subscription) -> list[tuple[str, str]]:
    d, w, s = dashboard.pk, widget.pk, subscription.pk
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
        ("get", reverse("dashboards-api:subscription-list", args=[d])),
        ("post", reverse("dashboards-api:subscription-list", args=[d])),
        ("get", reverse("dashboards-api:subscription-detail", args=[d, s])),
        ("delete", reverse("dashboards-api:subscription-detail", args=[d, s])),
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


def test_a_huge_schedule_is_refused_with_the_range_not_a_server_error(personas):
    response = bearer(personas.analyst).post(
        reverse("dashboards-api:dashboard-list"),
        {"title": "Sales", "schedule_minutes": 10**12},
        format="json",
    )

    assert response.status_code == 400
    assert "5 to 44,640 minutes" in str(response.data["fields"]["schedule_minutes"])
    assert not Dashboard.objects.exists()


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


def test_another_orgs_dashboard_and_widget_are_a_404_everywhere(personas, dashboard, widget, subscription):
    api = bearer(personas.outsider)

    for method, path in routes(dashboard, widget, subscription):
        assert getattr(api, method)(path, {}, format="json").status_code == 404, (method, path)
    assert Dashboard.objects.filter(pk=dashboard.pk).exists() and Widget.objects.filter(pk=widget.pk).exists()
    assert Subscription.objects.filter(pk=subscription.pk).exists()


def test_a_widget_of_another_dashboard_is_not_found_through_this_one(personas, dashboard, widget):
    other = Dashboard.objects.create(org=personas.org, owner=personas.analyst, title="Other")

    response = bearer(personas.analyst).get(
        reverse("dashboards-api:widget-detail", args=[other.pk, widget.pk])
    )

    assert response.status_code == 404


def test_anonymous_calls_are_refused(dashboard, widget, subscription):
    for method, path in routes(dashboard, widget, subscription):
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
        "/api/v1/dashboards/{id}/subscriptions/",
        "/api/v1/dashboards/{id}/subscriptions/{subscription_pk}/",
    ):
        assert f"{path}:" in schema, path


def test_an_analyst_subscribes_a_dashboard_and_reads_its_schedule_back(personas, dashboard):
    personas.org.timezone = "Europe/Paris"
    personas.org.save()
    api = bearer(personas.analyst)

    created = api.post(
        reverse("dashboards-api:subscription-list", args=[dashboard.pk]),
        {"cron": "0  8 * * 1", "recipients": [personas.viewer.email.upper()], "attachment_format": "xlsx"},
        format="json",
    )

    assert created.status_code == 201, created.data
    assert created.data["cron"] == "0 8 * * 1" and created.data["timezone"] == "Europe/Paris"
    assert created.data["recipients"] == [personas.viewer.email]
    assert created.data["attachment_format"] == "xlsx"
    assert created.data["created_by"] == personas.analyst.email
    assert created.data["next_run_at"] and created.data["last_delivery"] is None
    assert AuditLog.objects.filter(action="subscription.create", actor=personas.analyst).exists()
    subscription = Subscription.objects.get(pk=created.data["id"])
    SubscriptionDelivery.objects.create(
        subscription=subscription, scheduled_for=subscription.next_run_at, status=DeliveryStatus.SENT
    )
    listed = api.get(reverse("dashboards-api:subscription-list", args=[dashboard.pk]))
    assert [s["id"] for s in listed.data] == [subscription.pk]
    assert listed.data[0]["last_delivery"]["status"] == "sent"


MEMBER = "<a member's address>"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "every monday", "recipients": [MEMBER]}, "cron"),
        ({"cron": "0 8 31 2 *", "recipients": [MEMBER]}, "cron"),  # never runs
        ({"cron": "0 8 * * *", "recipients": []}, "recipients"),
        ({"cron": "0 8 * * *", "recipients": ["stranger@elsewhere.test"]}, "recipients"),
        ({"cron": "0 8 * * *", "recipients": ["not an address"]}, "recipients"),
    ],
)
def test_a_bad_subscription_is_refused_with_the_reason_and_nothing_saved(personas, dashboard, body, field):
    body["recipients"] = [personas.analyst.email if r == MEMBER else r for r in body["recipients"]]
    response = bearer(personas.analyst).post(
        reverse("dashboards-api:subscription-list", args=[dashboard.pk]), body, format="json"
    )

    assert response.status_code == 400
    assert field in response.json()["fields"], response.json()
    assert not Subscription.objects.exists()


def test_viewers_cannot_see_or_make_subscriptions(personas, dashboard, subscription):
    api = bearer(personas.viewer)

    assert api.get(reverse("dashboards-api:subscription-list", args=[dashboard.pk])).status_code == 403
    assert (
        api.post(
            reverse("dashboards-api:subscription-list", args=[dashboard.pk]),
            {"cron": "0 8 * * *", "recipients": [personas.viewer.email]},
            format="json",
        ).status_code
        == 403
    )


def test_only_its_maker_or_an_admin_deletes_a_subscription(personas, dashboard, subscription):
    path = reverse("dashboards-api:subscription-detail", args=[dashboard.pk, subscription.pk])
    colleague = User.objects.create_user("colleague@acme.test", org=personas.org, role="analyst")

    refused = bearer(colleague).delete(path)
    assert refused.status_code == 403 and Subscription.objects.filter(pk=subscription.pk).exists()
    assert bearer(personas.admin).delete(path).status_code == 204
    assert not Subscription.objects.filter(pk=subscription.pk).exists()
    assert bearer(personas.analyst).get(path).status_code == 404


def test_a_subscription_of_another_dashboard_is_not_found_through_this_one(personas, dashboard, subscription):
    other = Dashboard.objects.create(org=personas.org, owner=personas.analyst, title="Other")

    response = bearer(personas.analyst).get(
        reverse("dashboards-api:subscription-detail", args=[other.pk, subscription.pk])
    )

    assert response.status_code == 404
