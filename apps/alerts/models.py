"""Alerts: a metric query watched on a schedule, what each run said, and who was told.

`Alert.next_run_at` is the only thing the dispatcher reads; `AlertEvent` is unique per (alert,
scheduled_for), which is what makes an evaluation safe to run twice.
"""

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from apps.accounts.models import validate_timezone


class ScheduleKind(models.TextChoices):
    MINUTES = "minutes", "Every few minutes"
    HOURLY = "hourly", "Hourly"
    DAILY = "daily", "Daily"
    CRON = "cron", "Cron expression"


class AlertState(models.TextChoices):
    PENDING = "pending", "Not evaluated yet"
    OK = "ok", "OK"
    TRIGGERED = "triggered", "Triggered"
    ERROR = "error", "Failing"


class EventState(models.TextChoices):
    RUNNING = "running", "Running"
    OK = "ok", "OK"
    TRIGGERED = "triggered", "Triggered"
    RESOLVED = "resolved", "Resolved"
    ERROR = "error", "Error"


class Alert(models.Model):
    """A metric (one number, or a (timestamp, value) series) judged by a condition on a schedule.

    `firing` is true from the run that notified a trigger until the run that notified its
    resolution: the alert notifies once per episode, however many runs it lasts.
    """

    org = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="alerts")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts")
    name = models.CharField(max_length=120, help_text="Names the metric in every message.")
    connection = models.ForeignKey("connections.Connection", on_delete=models.CASCADE, related_name="alerts")
    sql = models.TextField(help_text="Returns one number, or rows of (timestamp, value).")
    dimension = models.CharField(
        max_length=120, blank=True, help_text="A column to break the metric down by when it triggers."
    )
    condition_kind = models.CharField(max_length=20, default="anomaly")
    condition_config = models.JSONField(default=dict, blank=True)
    schedule_kind = models.CharField(max_length=10, choices=ScheduleKind.choices, default=ScheduleKind.HOURLY)
    every_minutes = models.PositiveSmallIntegerField(default=15)
    at_minute = models.PositiveSmallIntegerField(default=0)
    at_time = models.TimeField(default="09:00")
    cron = models.CharField(max_length=100, blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    channels = models.JSONField(
        default=list, blank=True, help_text="[{kind, ...settings}], see services/channels"
    )
    cooldown_minutes = models.PositiveIntegerField(default=60)
    is_active = models.BooleanField(default=True)
    muted_until = models.DateTimeField(null=True, blank=True)

    state = models.CharField(max_length=10, choices=AlertState.choices, default=AlertState.PENDING)
    firing = models.BooleanField(default=False)
    last_value = models.FloatField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        indexes = [models.Index(fields=["is_active", "next_run_at"], name="alert_due_idx")]

    def __str__(self) -> str:
        return self.name

    def is_muted(self, at=None) -> bool:
        return self.muted_until is not None and self.muted_until > (at or now())


class AlertEvent(models.Model):
    """One evaluation of an alert for one scheduled time."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    scheduled_for = models.DateTimeField()
    started_at = models.DateTimeField(default=now)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=EventState.choices, default=EventState.RUNNING)
    value = models.FloatField(null=True, blank=True)
    expected = models.FloatField(null=True, blank=True)
    band_low = models.FloatField(null=True, blank=True)
    band_high = models.FloatField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True)
    message = models.TextField(blank=True)
    explanation = models.TextField(blank=True, help_text="What moved, by the alert's dimension")
    points = models.JSONField(default=list, blank=True, help_text="[[timestamp, value]] judged, for charts")
    columns = models.JSONField(default=list, blank=True)
    rows = models.JSONField(default=list, blank=True, help_text="The metric query's result, capped")

    class Meta:
        ordering = ["-scheduled_for"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "scheduled_for"], name="alert_event_once_per_slot")
        ]

    def __str__(self) -> str:
        return f"{self.alert} at {self.scheduled_for:%Y-%m-%d %H:%M}"


class NotificationReason(models.TextChoices):
    TRIGGERED = "triggered", "Triggered"
    RESOLVED = "resolved", "Resolved"
    FAILING = "failing", "Failing"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class AlertDelivery(models.Model):
    """One message of one event through one channel: the notifications log.

    Created with the event's outcome in one transaction; sending claims it with a conditional
    update, so a redelivered task never sends a delivery that is already sent.
    """

    event = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="deliveries")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=20)
    reason = models.CharField(max_length=10, choices=NotificationReason.choices)
    target = models.CharField(max_length=300, blank=True)
    config = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created_at", "position"]
        constraints = [models.UniqueConstraint(fields=["event", "position"], name="alert_delivery_once")]

    def __str__(self) -> str:
        return f"{self.kind} {self.reason} ({self.status})"


class NotificationLevel(models.TextChoices):
    INFO = "info", "Info"
    SUCCESS = "success", "Success"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class Notification(models.Model):
    """An in-app message for one person (alerts today, budget warnings next): bell, toast, page."""

    org = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="notifications")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=500, blank=True)
    level = models.CharField(max_length=10, choices=NotificationLevel.choices, default=NotificationLevel.INFO)
    created_at = models.DateTimeField(default=now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_unread_idx")]

    def __str__(self) -> str:
        return self.title
