import datetime

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q

from apps.accounts.models import User
from apps.accounts.tests.factories import UserFactory
from apps.dashboards.models import Dashboard, Visibility, Widget
from apps.dashboards.tests.factories import DashboardFactory, WidgetFactory
from datamind.lib.prepared import Prepared

pytestmark = pytest.mark.django_db


def _visible_widget(org, user, pk):
    return (
        Widget.objects.select_related("dashboard", "connection")
        .defer("last_result")
        .filter(Q(dashboard__org=org) & (Q(dashboard__owner=user) | Q(dashboard__visibility="org")), pk=pk)
    )


def _fields(instance) -> dict:
    return {k: v for k, v in vars(instance).items() if k != "_state"}


def test_the_same_instances_as_the_orm_with_related_objects_and_deferred_fields():
    widget = WidgetFactory(
        dashboard__visibility=Visibility.ORG,
        dashboard__filter_fields=[{"key": "region", "label": "Region"}],
        chart={"mark": "bar", "x": "region"},
    )
    prepared = Prepared(_visible_widget, "org", "user", "pk")
    owner = widget.dashboard.owner

    found = prepared.get(org=owner.org_id, user=owner.pk, pk=widget.pk)
    expected = _visible_widget(owner.org_id, owner.pk, widget.pk).get()

    assert _fields(found) == _fields(expected)
    assert found.get_deferred_fields() == {"last_result"}
    assert _fields(found.dashboard) == _fields(expected.dashboard)
    assert found.connection is None  # a nullable relation left empty stays None
    # The database's values became Python's, as the ORM converts them.
    assert found.dashboard.filter_fields == [{"key": "region", "label": "Region"}]
    assert isinstance(found.dashboard.created_at, datetime.datetime)
    assert found.dashboard.created_at.tzinfo is not None


def test_each_call_takes_its_own_values_and_the_queryset_is_compiled_once(django_assert_num_queries):
    builds = []

    def build(pk):
        builds.append(pk)
        return User.objects.select_related("org").filter(pk=pk)

    prepared = Prepared(build, "pk")
    first, second = UserFactory(), UserFactory()

    with django_assert_num_queries(2):  # through Django's cursor: counted, logged, in the transaction
        assert prepared.get(pk=first.pk).email == first.email
        compiled = len(builds)
        found = prepared.get(pk=second.pk)
    assert found.email == second.email
    assert found.org.name == second.org.name
    assert len(builds) == compiled  # the second call compiled nothing


def test_rows_it_does_not_find_or_finds_twice_raise_as_get_does():
    dashboard = DashboardFactory(visibility=Visibility.PRIVATE)
    stranger = UserFactory(org=dashboard.org)
    prepared = Prepared(
        lambda org, user, pk: Dashboard.objects.filter(
            Q(org=org) & (Q(owner=user) | Q(visibility=Visibility.ORG)), pk=pk
        ),
        "org",
        "user",
        "pk",
    )

    assert prepared.get(org=dashboard.org_id, user=dashboard.owner_id, pk=dashboard.pk) == dashboard
    with pytest.raises(Dashboard.DoesNotExist):  # a colleague's private dashboard
        prepared.get(org=dashboard.org_id, user=stranger.pk, pk=dashboard.pk)
    with pytest.raises(Dashboard.DoesNotExist):  # another org's
        prepared.get(org=UserFactory().org_id, user=dashboard.owner_id, pk=dashboard.pk)
    with pytest.raises(Dashboard.DoesNotExist):  # an id no key can hold (a URL's <int:pk> allows it)
        prepared.get(org=dashboard.org_id, user=dashboard.owner_id, pk=10**30)

    DashboardFactory(org=dashboard.org, owner=dashboard.owner)
    every_one = Prepared(lambda owner: Dashboard.objects.filter(owner=owner), "owner")
    with pytest.raises(Dashboard.MultipleObjectsReturned):
        every_one.get(owner=dashboard.owner_id)


def test_a_value_the_orm_would_change_is_refused_rather_than_guessed():
    user = UserFactory()
    shifted = Prepared(lambda pk: User.objects.filter(pk__in=[pk, pk + 1]), "pk")

    with pytest.raises(ImproperlyConfigured):
        shifted.get(pk=user.pk)


def test_rows_of_a_values_list_come_in_its_order_and_converted():
    dashboard = DashboardFactory()
    later = WidgetFactory(dashboard=dashboard, position=2, chart={"mark": "line"})
    earlier = WidgetFactory(dashboard=dashboard, position=1, chart={"mark": "bar"})
    WidgetFactory(position=0)  # another dashboard's
    tiles = Prepared(
        lambda dashboard: (
            Widget.objects.filter(dashboard=dashboard)
            .order_by("position")
            .values_list("pk", "chart", "created_at")
        ),
        "dashboard",
    )

    rows = tiles.rows(dashboard=dashboard.pk)

    assert [row[:2] for row in rows] == [[earlier.pk, {"mark": "bar"}], [later.pk, {"mark": "line"}]]
    assert all(isinstance(row[2], datetime.datetime) for row in rows)
    assert tiles.rows(dashboard=DashboardFactory().pk) == []
