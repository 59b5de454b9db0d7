import pytest
from django.urls import reverse

from apps.accounts.models import AuditLog
from apps.dashboards.models import ExternalRecipient
from apps.dashboards.tests.factories import DashboardFactory, WidgetFactory

pytestmark = pytest.mark.django_db


def test_an_org_admin_sees_only_their_orgs_dashboards_and_widgets(client, personas):
    ours = DashboardFactory(org=personas.org, owner=personas.analyst, title="Ours")
    theirs = DashboardFactory(org=personas.other_org, owner=personas.outsider, title="Theirs")
    WidgetFactory(dashboard=ours, title="our widget")
    their_widget = WidgetFactory(dashboard=theirs, title="their widget")
    client.force_login(personas.admin)

    dashboards = client.get(reverse("admin:dashboards_dashboard_changelist")).content.decode()
    widgets = client.get(reverse("admin:dashboards_widget_changelist")).content.decode()

    assert "Ours" in dashboards and "Theirs" not in dashboards
    assert "our widget" in widgets and "their widget" not in widgets
    assert client.get(reverse("admin:dashboards_dashboard_change", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("admin:dashboards_widget_change", args=[their_widget.pk])).status_code == 404


def test_allowing_an_external_recipient_is_audited_in_the_admins_org(client, personas):
    client.force_login(personas.admin)

    client.post(reverse("admin:dashboards_externalrecipient_add"), {"address": " Reports@Partner.test "})

    allowed = ExternalRecipient.objects.get()
    assert (allowed.org, allowed.address) == (personas.org, "reports@partner.test")
    assert AuditLog.objects.filter(action="subscription.recipient_allowed", org=personas.org).exists()


def test_analysts_cannot_open_the_admin(client, personas):
    client.force_login(personas.analyst)

    response = client.get(reverse("admin:dashboards_dashboard_changelist"))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
