from django.conf import settings
from django.db import models
from django.utils.timezone import now


class Visibility(models.TextChoices):
    PRIVATE = "private", "Only me"
    ORG = "org", "Everyone in the organisation"


class Dashboard(models.Model):
    """An arrangement of widgets, private to its owner or visible to the whole organisation.

    `filter_fields` names the value filters offered above the grid ([{"key", "label"}]); a date
    range is always offered. Each widget says which of its columns a filter applies to.
    """

    org = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="dashboards")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="dashboards"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE)
    filter_fields = models.JSONField(default=list, blank=True)
    auto_refresh_s = models.PositiveIntegerField(
        default=0, help_text="Reload widgets while the page is open, every this many seconds (0: never)."
    )
    schedule_minutes = models.PositiveIntegerField(
        default=0, help_text="Refresh in the background and push to open pages every this many minutes."
    )
    next_refresh_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]
        indexes = [models.Index(fields=["org", "visibility"])]

    def __str__(self) -> str:
        return self.title


class WidgetKind(models.TextChoices):
    CHART = "chart", "Chart"
    TABLE = "table", "Table"
    KPI = "kpi", "KPI"
    TEXT = "text", "Text"


class Widget(models.Model):
    """One tile of a dashboard: a query on a connection and how to show its result.

    `chart` holds the encoding ({"mark", "x", "y", "color", "aggregate"}), never data: the data
    comes from running `sql` (through both locks) each time, or from the results cache.
    `filter_columns` maps a dashboard filter key ("date" or a value filter) to a result column.
    """

    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="widgets")
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=WidgetKind.choices, default=WidgetKind.CHART)
    # A deleted connection leaves its widgets in place, saying why they cannot load.
    connection = models.ForeignKey(
        "connections.Connection", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    sql = models.TextField(blank=True)
    text = models.TextField(blank=True, help_text="The body of a text widget.")
    chart = models.JSONField(default=dict, blank=True)
    filter_columns = models.JSONField(default=dict, blank=True)
    position = models.PositiveIntegerField(default=0)
    width = models.PositiveSmallIntegerField(default=6, help_text="Grid columns out of 12.")
    height = models.PositiveSmallIntegerField(default=1, help_text="Grid rows (1 to 3).")
    refresh_interval_s = models.PositiveIntegerField(
        default=0, help_text="Reload this widget every this many seconds (0: the dashboard's interval)."
    )
    last_result = models.JSONField(default=dict, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    WIDTHS = (3, 4, 6, 8, 12)
    HEIGHTS = (1, 2, 3)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.title

    @property
    def dom_id(self) -> str:
        return f"widget-{self.pk}"


class ExternalRecipient(models.Model):
    """An address outside the organisation that an admin allows subscriptions to send to:
    a whole address, or "@example.com" for a domain."""

    org = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    address = models.CharField(max_length=254)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["address"]
        constraints = [models.UniqueConstraint(fields=["org", "address"], name="external_recipient_unique")]

    def __str__(self) -> str:
        return self.address


class AttachmentFormat(models.TextChoices):
    CSV = "csv", "CSV"
    XLSX = "xlsx", "Excel (XLSX)"


class Subscription(models.Model):
    """A dashboard e-mailed on a schedule: `cron` ("minute hour day-of-month month day-of-week")
    read in the organisation's time zone. Daily and weekly schedules are cron presets."""

    org = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="subscriptions")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    cron = models.CharField(max_length=100, default="0 8 * * *")
    recipients = models.JSONField(default=list, help_text="E-mail addresses.")
    unsubscribed = models.JSONField(default=list, blank=True)
    attachment_format = models.CharField(
        max_length=4, choices=AttachmentFormat.choices, default=AttachmentFormat.CSV
    )
    skip_on_failure = models.BooleanField(
        default=False, help_text="Skip the e-mail when a widget fails (otherwise it is sent with a note)."
    )
    is_active = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["dashboard", "id"]

    def __str__(self) -> str:
        return f"{self.dashboard} ({self.cron})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Waiting"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class SubscriptionDelivery(models.Model):
    """One scheduled send. Unique per (subscription, scheduled time): a second beat tick or a
    redelivered task finds the row and sends nothing."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    scheduled_for = models.DateTimeField()
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    note = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-scheduled_for"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "scheduled_for"], name="delivery_once_per_time")
        ]

    def __str__(self) -> str:
        return f"{self.subscription} at {self.scheduled_for:%Y-%m-%d %H:%M}"
