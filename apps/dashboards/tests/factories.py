import factory

from apps.accounts.tests.factories import OrganizationFactory, UserFactory
from apps.dashboards.models import Dashboard, Widget, WidgetKind


class DashboardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dashboard

    org = factory.SubFactory(OrganizationFactory)
    owner = factory.SubFactory(UserFactory, org=factory.SelfAttribute("..org"))
    title = factory.Sequence(lambda n: f"Dashboard {n}")


class WidgetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Widget

    dashboard = factory.SubFactory(DashboardFactory)
    title = factory.Sequence(lambda n: f"Widget {n}")
    kind = WidgetKind.CHART
    position = factory.Sequence(lambda n: n)
