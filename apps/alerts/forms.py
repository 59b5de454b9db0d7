"""The alert form: flat fields a person fills in, turned into the condition and channel settings
the services store (and check again)."""

import zoneinfo
from typing import Any

from django import forms

from apps.accounts.forms import ServiceForm
from apps.accounts.models import Organization
from apps.alerts import detectors
from apps.alerts.models import Alert, ScheduleKind
from apps.alerts.services.channels.in_app import AUDIENCES
from apps.alerts.services.channels.webhook import FORMATS
from apps.alerts.services.schedule import MINUTE_STEPS
from apps.connections.models import Connection

DIRECTIONS = [("above", "Above / rises"), ("below", "Below / falls"), ("either", "Either way")]
_TIMEZONES = [(name, name) for name in sorted(zoneinfo.available_timezones())]


class AlertForm(ServiceForm):
    name = forms.CharField(
        label="Metric name", max_length=120, help_text="Names the metric in every message."
    )
    connection = forms.ModelChoiceField(queryset=Connection.objects.none(), label="Connection")
    sql = forms.CharField(
        label="Metric SQL",
        widget=forms.Textarea(attrs={"rows": 6, "class": "sql", "spellcheck": "false"}),
        help_text="One number, or rows of (timestamp, value): the last point is judged against the rest.",
    )
    condition_kind = forms.ChoiceField(label="Condition", initial="anomaly")
    sensitivity = forms.ChoiceField(
        label="Sensitivity",
        choices=[("low", "Low"), ("medium", "Medium"), ("high", "High")],
        initial="medium",
        required=False,
    )
    direction = forms.ChoiceField(label="Direction", choices=DIRECTIONS, initial="either", required=False)
    threshold = forms.FloatField(label="Threshold", required=False, help_text="For above / below.")
    amount = forms.FloatField(label="Change of at least", required=False, min_value=0)
    unit = forms.ChoiceField(
        label="Unit", choices=[("percent", "%"), ("absolute", "in the metric's units")], required=False
    )
    compare_to = forms.ChoiceField(
        label="Compared with",
        choices=[("previous", "the previous value"), ("last_week", "the same time last week")],
        required=False,
    )
    dimension = forms.CharField(
        label="Break down by",
        max_length=120,
        required=False,
        help_text="A column, for the “what moved” paragraph.",
    )
    schedule_kind = forms.ChoiceField(
        label="Check", choices=ScheduleKind.choices, initial=ScheduleKind.HOURLY
    )
    every_minutes = forms.TypedChoiceField(
        label="Every",
        choices=[(m, f"{m} minutes") for m in MINUTE_STEPS],
        coerce=int,
        initial=15,
        required=False,
    )
    at_minute = forms.IntegerField(
        label="Minutes past the hour", min_value=0, max_value=59, initial=0, required=False
    )
    at_time = forms.TimeField(
        label="At", initial="09:00", required=False, widget=forms.TimeInput(attrs={"type": "time"})
    )
    cron = forms.CharField(
        label="Cron", max_length=100, required=False, help_text="minute hour day month weekday"
    )
    timezone = forms.ChoiceField(label="Time zone", choices=_TIMEZONES)
    cooldown_minutes = forms.IntegerField(
        label="Cooldown (minutes)",
        min_value=0,
        initial=60,
        help_text="At least this long between two triggers.",
    )
    notify_in_app = forms.BooleanField(label="Notify in the app", required=False, initial=True)
    in_app_to = forms.ChoiceField(label="In-app recipients", choices=list(AUDIENCES.items()), required=False)
    email_to = forms.CharField(label="E-mail to", required=False, help_text="Addresses separated by commas.")
    webhook_url = forms.URLField(label="Webhook URL", required=False, assume_scheme="https")
    webhook_format = forms.ChoiceField(label="Webhook format", choices=list(FORMATS.items()), required=False)
    webhook_secret = forms.CharField(
        label="Webhook signing secret",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Left empty on an edit, the stored one is kept.",
    )
    is_active = forms.BooleanField(label="Active", required=False, initial=True)

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        connections = Connection.objects.filter(org=org).order_by("name")
        self.fields["connection"].queryset = connections
        if "connection" not in self.initial and len(only := connections[:2]) == 1:
            self.initial["connection"] = only[0].pk
        self.fields["condition_kind"].choices = [
            (k, c.label) for k, c in sorted(detectors.registry().items())
        ]
        self.fields["timezone"].initial = org.timezone

    @classmethod
    def initial_from(cls, alert: Alert) -> dict[str, Any]:
        initial: dict[str, Any] = {
            name: getattr(alert, name)
            for name in (
                "name",
                "sql",
                "dimension",
                "condition_kind",
                "schedule_kind",
                "every_minutes",
                "at_minute",
                "at_time",
                "cron",
                "timezone",
                "cooldown_minutes",
                "is_active",
            )
        }
        initial["connection"] = alert.connection_id
        initial |= {k: v for k, v in alert.condition_config.items() if k in cls.base_fields}
        by_kind = {c["kind"]: c for c in alert.channels}
        initial["notify_in_app"] = "in_app" in by_kind
        initial["in_app_to"] = by_kind.get("in_app", {}).get("to", "org")
        initial["email_to"] = ", ".join(by_kind.get("email", {}).get("to", []))
        initial["webhook_url"] = by_kind.get("webhook", {}).get("url", "")
        initial["webhook_format"] = by_kind.get("webhook", {}).get("format", "json")
        return initial

    def condition_config(self) -> dict[str, Any]:
        data = self.cleaned_data
        kind = data["condition_kind"]
        if kind == "anomaly":
            return {
                "sensitivity": data.get("sensitivity") or "medium",
                "direction": data.get("direction") or "either",
            }
        if kind == "threshold":
            direction = data.get("direction") if data.get("direction") in ("above", "below") else "above"
            return {"threshold": data.get("threshold"), "direction": direction}
        if kind == "change":
            return {
                "amount": data.get("amount"),
                "unit": data.get("unit") or "percent",
                "direction": data.get("direction") or "either",
                "compare_to": data.get("compare_to") or "previous",
            }
        return {}

    def channels(self) -> list[dict[str, Any]]:
        data = self.cleaned_data
        channels: list[dict[str, Any]] = []
        if data.get("notify_in_app"):
            channels.append({"kind": "in_app", "to": data.get("in_app_to") or "org"})
        if data.get("email_to"):
            channels.append({"kind": "email", "to": data["email_to"]})
        if data.get("webhook_url"):
            channels.append(
                {
                    "kind": "webhook",
                    "url": data["webhook_url"],
                    "format": data.get("webhook_format") or "json",
                    "secret": data.get("webhook_secret", ""),
                }
            )
        return channels

    def alert_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        fields = {
            name: data[name]
            for name in (
                "name",
                "sql",
                "dimension",
                "condition_kind",
                "schedule_kind",
                "cron",
                "timezone",
                "cooldown_minutes",
                "is_active",
            )
        }
        fields["every_minutes"] = data.get("every_minutes") or 15
        fields["at_minute"] = data.get("at_minute") or 0
        if data.get("at_time"):
            fields["at_time"] = data["at_time"]
        fields["condition_config"] = self.condition_config()
        fields["channels"] = self.channels()
        return fields


class MuteForm(forms.Form):
    hours = forms.IntegerField(min_value=0, max_value=24 * 30, help_text="0 unmutes.")
