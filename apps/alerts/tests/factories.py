from datetime import timedelta

import factory
from django.utils.timezone import now

from apps.accounts.tests.factories import UserFactory
from apps.alerts.models import Alert, AlertEvent, EventState, ScheduleKind

# A week of daily values around 100, then today's: the last point is what a condition judges.
DAILY_SERIES_SQL = (
    "SELECT DATE '2026-01-01' + INTERVAL (i) DAY AS day, "
    "CASE WHEN i = 59 THEN {last} ELSE 100 + i % 7 END AS value FROM range(60) t(i)"
)


class AlertFactory(factory.django.DjangoModelFactory):
    """A threshold alert on one number; tests change `sql` to move the number."""

    class Meta:
        model = Alert

    owner = factory.SubFactory(UserFactory)
    org = factory.SelfAttribute("owner.org")
    name = factory.Sequence(lambda n: f"Revenue {n}")
    sql = "SELECT 5 AS value"
    condition_kind = "threshold"
    condition_config = factory.LazyFunction(lambda: {"threshold": 10, "direction": "above"})
    schedule_kind = ScheduleKind.MINUTES
    every_minutes = 1
    timezone = "UTC"
    channels = factory.LazyFunction(lambda: [{"kind": "in_app", "to": "org"}])
    cooldown_minutes = 0

    class Params:
        # Daily, half a day away: a test watching beat across a minute boundary sees one run, not a
        # legitimate second one.
        once_while_watched = factory.Trait(
            schedule_kind=ScheduleKind.DAILY,
            at_time=factory.LazyFunction(lambda: (now() + timedelta(hours=12)).time()),
        )


class AlertEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AlertEvent

    alert = factory.SubFactory(AlertFactory)
    scheduled_for = factory.LazyFunction(now)
    state = EventState.OK
    value = 5.0
