"""When an alert runs: every schedule kind becomes a cron expression read in the alert's timezone.

Minute and hourly schedules follow elapsed time, so in the hour repeated when clocks go back they
run in both copies of it. A schedule at a named hour ("daily at 01:30") is a wall-clock time,
which happens once a day: the second copy of an ambiguous time is skipped, and a time inside the
spring-forward gap runs at the first moment after it.
"""

from datetime import datetime, time
from zoneinfo import ZoneInfo

from croniter import croniter
from django.core.exceptions import ValidationError

from apps.alerts.models import Alert, ScheduleKind

MINUTE_STEPS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)


def cron_expression(
    *, kind: str, every_minutes: int = 15, at_minute: int = 0, at_time: time | None = None, cron: str = ""
) -> str:
    if kind == ScheduleKind.MINUTES:
        if every_minutes not in MINUTE_STEPS:
            steps = ", ".join(map(str, MINUTE_STEPS))
            raise ValidationError({"every_minutes": f"Choose one of {steps} minutes, or hourly."})
        return f"*/{every_minutes} * * * *"
    if kind == ScheduleKind.HOURLY:
        if not 0 <= at_minute <= 59:
            raise ValidationError({"at_minute": "A minute past the hour, 0 to 59."})
        return f"{at_minute} * * * *"
    if kind == ScheduleKind.DAILY:
        at = at_time or time(9, 0)
        return f"{at.minute} {at.hour} * * *"
    expression = " ".join(cron.split())
    if len(expression.split(" ")) != 5 or not croniter.is_valid(expression):
        raise ValidationError({"cron": "A cron expression has five fields: minute hour day month weekday."})
    return expression


def alert_cron(alert: Alert) -> str:
    return cron_expression(
        kind=alert.schedule_kind,
        every_minutes=alert.every_minutes,
        at_minute=alert.at_minute,
        at_time=alert.at_time if isinstance(alert.at_time, time) else time.fromisoformat(str(alert.at_time)),
        cron=alert.cron,
    )


def _is_second_copy(moment: datetime) -> bool:
    """True for the later instant of a wall-clock time that happens twice (clocks going back)."""
    return moment.replace(fold=0).utcoffset() != moment.utcoffset() and moment.fold == 1


def _wall_clock(expression: str) -> bool:
    return expression.split(" ")[1] != "*"


def next_run_after(expression: str, timezone: str, after: datetime) -> datetime:
    """The first scheduled instant strictly after `after` (aware, in the alert's timezone)."""
    runs = croniter(expression, after.astimezone(ZoneInfo(timezone)))
    while True:
        moment = runs.get_next(datetime)
        if not (_wall_clock(expression) and _is_second_copy(moment)):
            return moment


def last_run_at_or_before(expression: str, timezone: str, at: datetime) -> datetime:
    """The latest scheduled instant not after `at`: the slot a late dispatch evaluates."""
    local = at.astimezone(ZoneInfo(timezone))
    on_a_slot = croniter.match(expression, local) and local.second == 0 and local.microsecond == 0
    if on_a_slot and not (_wall_clock(expression) and _is_second_copy(local)):
        return local
    runs = croniter(expression, local)
    while True:
        moment = runs.get_prev(datetime)
        if not (_wall_clock(expression) and _is_second_copy(moment)):
            return moment


def upcoming_runs(expression: str, timezone: str, after: datetime, count: int = 3) -> list[datetime]:
    runs = []
    for _ in range(count):
        after = next_run_after(expression, timezone, after)
        runs.append(after)
    return runs
