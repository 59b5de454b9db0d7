"""The alert pages: who sees and changes what, Test now, Why did this happen?, notifications."""

import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from apps.alerts.models import Alert, Notification
from apps.alerts.services.evaluation import alert_evaluate
from apps.alerts.services.notify import notify_users
from apps.alerts.tests.factories import DAILY_SERIES_SQL, AlertFactory
from apps.chat.models import ChatMessage, ChatSession, MessageRole, MessageStatus
from apps.dashboards.models import Visibility
from apps.dashboards.tests.factories import DashboardFactory, WidgetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alert(personas, warehouse) -> Alert:
    return AlertFactory(owner=personas.analyst, connection=warehouse, sql="SELECT 50 AS value")


def _form(warehouse, **overrides) -> dict:
    return {
        "name": "Daily revenue",
        "connection": warehouse.pk,
        "sql": DAILY_SERIES_SQL.format(last=20),
        "condition_kind": "anomaly",
        "sensitivity": "medium",
        "direction": "either",
        "schedule_kind": "daily",
        "at_time": "09:00",
        "timezone": "Europe/Paris",
        "cooldown_minutes": 60,
        "notify_in_app": "on",
        "in_app_to": "org",
        "email_to": "ops@acme.test",
        "is_active": "on",
        **overrides,
    }


def test_the_list_shows_state_last_value_and_a_sparkline(
    client, personas, alert, django_assert_max_num_queries
):
    for day in range(1, 4):
        alert_evaluate(alert_id=alert.pk, scheduled_for=datetime(2026, 11, day, tzinfo=UTC))
    client.force_login(personas.viewer)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("alerts:index"))
    page = response.content.decode()
    assert alert.name in page and "Triggered" in page and "<polyline" in page
    assert "Create alert" not in page  # viewers read only


def test_an_analyst_creates_an_alert_from_the_form(client, personas, warehouse):
    client.force_login(personas.analyst)
    response = client.post(reverse("alerts:create"), _form(warehouse))
    alert = Alert.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("alerts:detail", args=[alert.pk])
    assert alert.owner == personas.analyst and alert.timezone == "Europe/Paris"
    assert alert.channels == [{"kind": "in_app", "to": "org"}, {"kind": "email", "to": ["ops@acme.test"]}]
    assert alert.next_run_at is not None


def test_a_write_query_is_refused_beside_the_sql_field(client, personas, warehouse):
    client.force_login(personas.analyst)
    response = client.post(reverse("alerts:create"), _form(warehouse, sql="DELETE FROM sales"))
    assert response.status_code == 422
    assert Alert.objects.count() == 0


def test_test_now_shows_the_value_and_what_would_have_fired_over_history(client, personas, warehouse):
    client.force_login(personas.analyst)
    response = client.post(reverse("alerts:test"), _form(warehouse), HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Would trigger now" in page and "below" in page
    assert "alert-preview-spec" in page and "60 points" in page


def test_a_viewer_cannot_create_and_an_analyst_cannot_edit_a_colleagues_alert(client, personas, alert):
    client.force_login(personas.viewer)
    assert client.get(reverse("alerts:create")).status_code == 403
    other = AlertFactory(owner=personas.admin, connection=alert.connection)
    client.force_login(personas.analyst)
    assert client.get(reverse("alerts:edit", args=[other.pk])).status_code == 403
    assert client.get(reverse("alerts:edit", args=[alert.pk])).status_code == 200
    client.force_login(personas.admin)
    assert client.get(reverse("alerts:edit", args=[alert.pk])).status_code == 200


@pytest.mark.parametrize("name", ["detail", "edit"])
def test_another_orgs_alert_is_not_found(client, personas, alert, name):
    client.force_login(personas.outsider)
    assert client.get(reverse(f"alerts:{name}", args=[alert.pk])).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client, alert):
    response = client.get(reverse("alerts:detail", args=[alert.pk]))
    assert response.status_code == 302 and "login" in response["Location"]


def test_the_detail_shows_history_and_the_notifications_log(client, personas, alert):
    alert_evaluate(alert_id=alert.pk, scheduled_for=datetime(2026, 11, 1, tzinfo=UTC))
    client.force_login(personas.viewer)
    page = client.get(reverse("alerts:detail", args=[alert.pk])).content.decode()
    assert "alert-history-spec" in page and "Why did this happen?" in page and "in_app" in page
    fragment = client.get(reverse("alerts:detail", args=[alert.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert 'id="event-list"' in fragment and "<html" not in fragment


def test_muting_snoozes_and_zero_hours_unmutes(client, personas, alert):
    client.force_login(personas.analyst)
    client.post(reverse("alerts:mute", args=[alert.pk]), {"hours": 4})
    alert.refresh_from_db()
    assert alert.is_muted()
    client.post(reverse("alerts:mute", args=[alert.pk]), {"hours": 0})
    alert.refresh_from_db()
    assert not alert.is_muted()


def test_deleting_needs_a_post_by_the_owner(client, personas, alert):
    client.force_login(personas.analyst)
    assert client.get(reverse("alerts:delete", args=[alert.pk])).status_code == 405
    client.post(reverse("alerts:delete", args=[alert.pk]))
    assert not Alert.objects.exists()


def test_why_did_this_happen_opens_one_chat_seeded_with_the_metric(client, personas, alert):
    event = alert_evaluate(alert_id=alert.pk, scheduled_for=datetime(2026, 11, 1, tzinfo=UTC))
    client.force_login(personas.viewer)
    first = client.get(reverse("alerts:event-investigate", args=[event.pk]))
    again = client.get(reverse("alerts:event-investigate", args=[event.pk]))
    session = ChatSession.objects.get(user=personas.viewer)
    assert first["Location"] == again["Location"] == reverse("chat:session-detail", args=[session.pk])
    question, answer = session.messages.order_by("pk")
    assert question.content.startswith("Why did this happen?")
    assert answer.sql == alert.sql and answer.rows == [[50]] and event.message in answer.content
    client.force_login(personas.outsider)
    assert client.get(reverse("alerts:event-investigate", args=[event.pk])).status_code == 404


def test_a_chat_answer_that_is_a_number_offers_create_alert_prefilled(client, personas, warehouse):
    session = ChatSession.objects.create(org=personas.org, user=personas.analyst, connection=warehouse)
    ChatMessage.objects.create(session=session, role=MessageRole.USER, content="Total revenue")
    answer = ChatMessage.objects.create(
        session=session,
        role=MessageRole.ASSISTANT,
        status=MessageStatus.DONE,
        sql="SELECT 42 AS revenue",
        columns=[{"name": "revenue", "type": "INTEGER"}],
        rows=[[42]],
        chart={"kind": "kpi", "value": 42, "label": "revenue"},
    )
    client.force_login(personas.analyst)
    page = client.get(reverse("chat:session-detail", args=[session.pk])).content.decode()
    assert f"{reverse('alerts:create')}?message={answer.pk}" in page
    form = client.get(reverse("alerts:create"), {"message": answer.pk}).content.decode()
    assert "SELECT 42 AS revenue" in form and 'value="Total revenue"' in form


def test_a_dashboard_widget_offers_create_alert_prefilled_for_those_who_can_see_it(
    client, personas, warehouse
):
    dashboard = DashboardFactory(org=personas.org, owner=personas.admin, visibility=Visibility.ORG)
    widget = WidgetFactory(
        dashboard=dashboard, connection=warehouse, title="Daily revenue", sql=DAILY_SERIES_SQL
    )
    client.force_login(personas.analyst)
    fragment = client.get(reverse("dashboards:widget-fragment", args=[widget.pk])).content.decode()
    assert f"{reverse('alerts:create')}?widget={widget.pk}" in fragment
    form = client.get(reverse("alerts:create"), {"widget": widget.pk}).content.decode()
    assert 'value="Daily revenue"' in form and "FROM" in form

    dashboard.visibility = Visibility.PRIVATE
    dashboard.save()
    form = client.get(reverse("alerts:create"), {"widget": widget.pk}).content.decode()
    assert "Daily revenue" not in form  # a colleague's private widget prefills nothing


def _badge(client) -> str:
    page = client.get(reverse("dashboards:index")).content.decode()
    return re.search(r'<span id="notification-badge"[^>]*>(\d+)<', page).group(1)


def test_the_bell_counts_unread_and_the_page_marks_them_read(
    client, personas, django_capture_on_commit_callbacks
):
    client.force_login(personas.analyst)
    assert _badge(client) == "0"  # and the count is cached
    with django_capture_on_commit_callbacks(execute=True):
        notify_users([personas.analyst], title="Budget at 80%", body="Two fifths left.", link="/usage/")
    page = client.get(reverse("alerts:notifications")).content.decode()
    assert "Budget at 80%" in page and 'id="notification-badge"' in page and ">1<" in page
    assert _badge(client) == "1"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("alerts:notifications-read-all"))
    assert not Notification.objects.filter(read_at=None).exists()
    assert _badge(client) == "0"


def test_a_notification_of_someone_else_cannot_be_marked_read(client, personas):
    [notification] = notify_users([personas.admin], title="Hello")
    client.force_login(personas.analyst)
    assert client.post(reverse("alerts:notification-read", args=[notification.pk])).status_code == 404
    notification.refresh_from_db()
    assert notification.read_at is None
