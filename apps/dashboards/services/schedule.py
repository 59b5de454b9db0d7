"""Cron schedules read in an organisation's time zone (the five usual fields).

Celery's crontab parser expands each field into the set of values it allows; the next run is the
first day that matches, then its first matching hour and minute, so it costs a few hundred steps
however sparse the schedule.
"""

import datetime as dt
import zoneinfo

from celery.schedules import crontab
from django.core.exceptions import ValidationError

DAILY = "{minute} {hour} * * *"
WEEKLY = "{minute} {hour} * * {weekday}"
_HORIZON_DAYS = 366 * 4  # 29 February


def cron_parse(expression: str) -> crontab:
    parts = expression.split()
    if len(parts) != 5:
        raise ValidationError({"cron": "Write five fields: minute hour day-of-month month day-of-week."})
    minute, hour, day_of_month, month, day_of_week = parts
    try:
        return crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week
        )
    except (ValueError, TypeError) as exc:
        raise ValidationError({"cron": f"That schedule cannot be read: {exc}"})


def zone_of(name: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def cron_next(expression: str, *, timezone: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after `after` that the schedule names, in UTC."""
    schedule = cron_parse(expression)
    zone = zone_of(timezone)
    start = after.astimezone(zone).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    day = start.date()
    for _ in range(_HORIZON_DAYS):
        # Celery numbers weekdays from Sunday = 0, Python's isoweekday from Monday = 1.
        if (
            day.month in schedule.month_of_year
            and day.day in schedule.day_of_month
            and day.isoweekday() % 7 in schedule.day_of_week
        ):
            for hour in sorted(schedule.hour):
                for minute in sorted(schedule.minute):
                    candidate = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                    if candidate >= start:
                        return candidate.astimezone(dt.UTC)
        day += dt.timedelta(days=1)
    raise ValidationError({"cron": "That schedule never runs."})
