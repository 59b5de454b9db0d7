"""Periodic tasks are declared in code, next to the tasks, and installed into django-celery-beat.

Each app's tasks.py lists its `SCHEDULES`; its AppConfig installs them after every `migrate`
(so `make run`, CI and a production upgrade all end with the same entries). Entries are matched
by name and updated in place, so changing a cadence in code changes it in the database.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    every_seconds: int | None = None
    crontab: dict[str, str] = field(default_factory=dict)
    expires_seconds: int | None = None


def schedules_install(schedules: list[Schedule]) -> None:
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    for schedule in schedules:
        defaults: dict = {"task": schedule.task, "expire_seconds": schedule.expires_seconds, "enabled": True}
        if schedule.every_seconds:
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=schedule.every_seconds, period=IntervalSchedule.SECONDS
            )
            defaults |= {"interval": interval, "crontab": None}
        else:
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=schedule.crontab.get("minute", "0"),
                hour=schedule.crontab.get("hour", "*"),
                day_of_week=schedule.crontab.get("day_of_week", "*"),
                day_of_month=schedule.crontab.get("day_of_month", "*"),
                month_of_year=schedule.crontab.get("month_of_year", "*"),
                timezone="UTC",
            )
            defaults |= {"crontab": crontab, "interval": None}
        PeriodicTask.objects.update_or_create(name=schedule.name, defaults=defaults)


def install_after_migrate(app_config) -> None:
    """Connect the app's `tasks.SCHEDULES` to post_migrate (call from AppConfig.ready)."""
    from importlib import import_module

    from django.db.models.signals import post_migrate

    def install(sender, **kwargs) -> None:
        schedules = getattr(import_module(f"{app_config.name}.tasks"), "SCHEDULES", [])
        schedules_install(schedules)

    post_migrate.connect(install, sender=app_config, weak=False, dispatch_uid=f"{app_config.name}.schedules")
