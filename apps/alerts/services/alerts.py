"""Creating, changing, muting and removing alerts (every door calls these)."""

from dataclasses import asdict
from datetime import datetime, time
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.timezone import now

from apps.accounts.models import User
from apps.alerts import detectors
from apps.alerts.models import Alert, AlertState
from apps.alerts.services.channels import channels_clean
from apps.alerts.services.schedule import cron_expression, next_run_after
from apps.connections.models import Connection
from apps.connections.safety import UnsafeSQLError, validate_readonly

EDITABLE_FIELDS = (
    "name",
    "connection",
    "sql",
    "dimension",
    "condition_kind",
    "condition_config",
    "schedule_kind",
    "every_minutes",
    "at_minute",
    "at_time",
    "cron",
    "timezone",
    "channels",
    "cooldown_minutes",
    "is_active",
)


def condition_clean(kind: str, config: Any) -> dict[str, Any]:
    """The condition's settings with their defaults, or ValidationError saying what is wrong."""
    if not isinstance(config, dict):
        raise ValidationError({"condition_config": "The condition's settings are an object."})
    try:
        condition = detectors.get_condition(kind).from_dict(config)
    except (detectors.ConfigError, TypeError) as exc:
        field = (
            "condition_kind"
            if "kind" in str(exc) and kind not in detectors.registry()
            else "condition_config"
        )
        raise ValidationError({field: str(exc)}) from None
    return asdict(condition.config)


def _clean(alert: Alert, previous_channels: list | None) -> None:
    if alert.connection.org_id != alert.org_id:
        raise ValidationError({"connection": "Choose one of your organisation's connections."})
    try:
        validate_readonly(alert.sql, alert.connection.dialect)
    except UnsafeSQLError as exc:
        raise ValidationError({"sql": exc.detail}) from None
    alert.condition_config = condition_clean(alert.condition_kind, alert.condition_config)
    alert.channels = channels_clean(alert.channels, previous=previous_channels)
    if isinstance(alert.at_time, str):
        alert.at_time = time.fromisoformat(alert.at_time)
    alert.cron = " ".join(alert.cron.split())
    expression = cron_expression(
        kind=alert.schedule_kind,
        every_minutes=alert.every_minutes,
        at_minute=alert.at_minute,
        at_time=alert.at_time,
        cron=alert.cron,
    )
    alert.full_clean(exclude=["org", "owner", "connection", "channels", "condition_config"])
    alert.next_run_at = next_run_after(expression, alert.timezone, now()) if alert.is_active else None


@transaction.atomic
def alert_create(*, owner: User, connection: Connection, **fields: Any) -> Alert:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"not editable: {', '.join(sorted(unknown))}")
    fields.setdefault("timezone", owner.org.timezone)
    fields.setdefault("channels", [{"kind": "in_app"}])
    alert = Alert(org_id=owner.org_id, owner=owner, connection=connection, **fields)
    _clean(alert, None)
    alert.save()
    return alert


@transaction.atomic
def alert_update(*, alert: Alert, **fields: Any) -> Alert:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"not editable: {', '.join(sorted(unknown))}")
    previous_channels = alert.channels
    condition_changed = any(
        fields.get(name, getattr(alert, name)) != getattr(alert, name)
        for name in ("sql", "condition_kind", "condition_config", "connection")
    )
    for name, value in fields.items():
        setattr(alert, name, value)
    _clean(alert, previous_channels)
    if condition_changed:
        # A different metric or rule starts a new story: no resolve message for the old one.
        alert.state, alert.firing, alert.consecutive_failures = AlertState.PENDING, False, 0
    alert.save()
    return alert


@transaction.atomic
def alert_mute(*, alert: Alert, until: datetime | None) -> Alert:
    """Snooze notifications until `until` (None unmutes); evaluations and history carry on."""
    if until is not None and until <= now():
        raise ValidationError({"until": "Choose a time in the future."})
    alert.muted_until = until
    alert.save(update_fields=["muted_until", "updated_at"])
    return alert


@transaction.atomic
def alert_delete(*, alert: Alert) -> None:
    alert.delete()


def alert_can_edit(*, user: User, alert: Alert) -> bool:
    """Admins manage every alert of their org; analysts their own; viewers only read."""
    from apps.accounts.models import Role

    return user.org_id == alert.org_id and (
        user.has_role(Role.ADMIN) or (user.has_role(Role.ANALYST) and alert.owner_id == user.pk)
    )


def alert_run_now(*, alert: Alert):
    """Evaluate now, in this process, as its own slot (it never replaces a scheduled one)."""
    from apps.alerts.services.evaluation import alert_evaluate

    return alert_evaluate(alert_id=alert.pk, scheduled_for=now())
