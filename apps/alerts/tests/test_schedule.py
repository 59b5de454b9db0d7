"""Schedules in the alert's timezone, across daylight-saving changes."""

from datetime import UTC, datetime, time

import pytest
from django.core.exceptions import ValidationError

from apps.alerts.services.schedule import (
    cron_expression,
    last_run_at_or_before,
    next_run_after,
    upcoming_runs,
)


def _utc(moments) -> list[str]:
    return [m.astimezone(UTC).strftime("%m-%d %H:%M") for m in moments]


def test_daily_at_nine_follows_local_time_across_the_spring_change():
    expression = cron_expression(kind="daily", at_time=time(9, 0))
    runs = upcoming_runs(expression, "America/New_York", datetime(2026, 3, 7, 15, 0, tzinfo=UTC), 2)
    assert _utc(runs) == ["03-08 13:00", "03-09 13:00"]  # 09:00 EDT; it was 14:00 UTC the day before
    before = next_run_after(expression, "America/New_York", datetime(2026, 3, 6, 15, 0, tzinfo=UTC))
    assert _utc([before]) == ["03-07 14:00"]


def test_a_time_in_the_spring_forward_gap_runs_once_at_the_first_moment_after_it():
    expression = cron_expression(kind="daily", at_time=time(2, 30))
    runs = upcoming_runs(expression, "America/New_York", datetime(2026, 3, 7, 12, 0, tzinfo=UTC), 3)
    assert _utc(runs) == ["03-08 07:00", "03-09 06:30", "03-10 06:30"]


def test_a_time_repeated_when_clocks_go_back_runs_once():
    expression = cron_expression(kind="daily", at_time=time(1, 30))
    runs = upcoming_runs(expression, "America/New_York", datetime(2026, 10, 31, 12, 0, tzinfo=UTC), 3)
    assert _utc(runs) == ["11-01 05:30", "11-02 06:30", "11-03 06:30"]


def test_minute_schedules_follow_elapsed_time_through_the_repeated_hour():
    expression = cron_expression(kind="minutes", every_minutes=30)
    runs = upcoming_runs(expression, "America/New_York", datetime(2026, 11, 1, 4, 10, tzinfo=UTC), 6)
    assert _utc(runs) == [
        "11-01 04:30",
        "11-01 05:00",
        "11-01 05:30",
        "11-01 06:00",
        "11-01 06:30",
        "11-01 07:00",
    ]


def test_hourly_on_a_half_hour_timezone_runs_at_the_local_minute():
    expression = cron_expression(kind="hourly", at_minute=0)
    runs = upcoming_runs(expression, "Asia/Kolkata", datetime(2026, 6, 1, 0, 10, tzinfo=UTC), 2)
    assert _utc(runs) == ["06-01 00:30", "06-01 01:30"]


def test_cron_is_read_in_the_alerts_timezone():
    runs = upcoming_runs("0 8 * * 1", "Europe/Berlin", datetime(2026, 6, 1, 12, 0, tzinfo=UTC), 2)
    assert _utc(runs) == ["06-08 06:00", "06-15 06:00"]


def test_a_late_dispatch_evaluates_the_latest_slot_only():
    slot = last_run_at_or_before("*/15 * * * *", "UTC", datetime(2026, 6, 1, 12, 7, 30, tzinfo=UTC))
    assert _utc([slot]) == ["06-01 12:00"]
    exact = last_run_at_or_before("*/15 * * * *", "UTC", datetime(2026, 6, 1, 12, 15, tzinfo=UTC))
    assert _utc([exact]) == ["06-01 12:15"]


@pytest.mark.parametrize(
    ("kind", "fields"),
    [("minutes", {"every_minutes": 7}), ("hourly", {"at_minute": 75}), ("cron", {"cron": "every day"})],
)
def test_schedules_that_cannot_run_are_refused(kind, fields):
    with pytest.raises(ValidationError):
        cron_expression(kind=kind, **fields)
