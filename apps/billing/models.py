from django.conf import settings
from django.db import models
from django.utils.timezone import now


class Purpose(models.TextChoices):
    GENERATION = "generation", "SQL generation"
    REPAIR = "repair", "SQL repair"
    ANALYSIS = "analysis", "Analysis"
    ALERT_EXPLANATION = "alert_explanation", "Alert explanation"
    TEST = "test", "Settings test"


class UsageRecord(models.Model):
    """One language-model call: the ledger every usage total is derived from."""

    org = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="usage_records")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    session = models.ForeignKey(
        "chat.ChatSession", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    message = models.ForeignKey(
        "chat.ChatMessage", on_delete=models.SET_NULL, null=True, blank=True, related_name="usage_records"
    )
    provider = models.CharField(max_length=20)
    model = models.CharField(max_length=120, blank=True)
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    estimated_cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    created_at = models.DateTimeField(default=now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["org", "created_at"])]

    def __str__(self) -> str:
        return f"{self.provider} {self.purpose}: {self.input_tokens}+{self.output_tokens}"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# Plan allowances in tokens per calendar month (in the org's time zone). An admin's override wins.
PLAN_BUDGETS: dict[str, int] = {
    "free": 500_000,
    "starter": 2_000_000,
    "pro": 10_000_000,
    "enterprise": 50_000_000,
}
# The largest override: far above any real month, and low enough that used + reserved + a call's
# reservation can never overflow the counters' 64-bit integers.
MAX_MONTHLY_BUDGET = 10**15


class ModelPrice(models.Model):
    """What one provider charges for one model, per million tokens; used for cost estimates only."""

    provider = models.CharField(max_length=20)
    model = models.CharField(max_length=120)
    input_per_million = models.DecimalField(
        max_digits=10, decimal_places=4, help_text="USD per 1M input tokens"
    )
    output_per_million = models.DecimalField(
        max_digits=10, decimal_places=4, help_text="USD per 1M output tokens"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "model"]
        constraints = [models.UniqueConstraint(fields=["provider", "model"], name="model_price_unique")]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


class BudgetSettings(models.Model):
    """An org's budget choices: an optional monthly override of its plan's allowance, and warnings."""

    org = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="budget_settings"
    )
    monthly_override = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Tokens per month; empty means the plan's allowance"
    )
    warn_at_80 = models.BooleanField(default=True)
    warn_at_100 = models.BooleanField(default=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(default=now)

    class Meta:
        verbose_name_plural = "budget settings"

    def __str__(self) -> str:
        return f"Budget settings of {self.org_id}"


class BudgetPeriod(models.Model):
    """One calendar month of one org's budget, in the org's time zone.

    `budget` is frozen when the period opens (a later plan change applies from the next month;
    an admin's explicit override applies at once). The invariant the reservation protocol keeps is
    `used + reserved <= budget` at the moment of every reservation; `used` may end slightly above
    `budget` because a call can cost more than was reserved for it.
    """

    org = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="budget_periods")
    period_start = models.DateField(help_text="First day of the month, in the org's time zone")
    period_end = models.DateField(help_text="First day of the next month: the day the budget resets")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    budget = models.PositiveBigIntegerField()
    used = models.PositiveBigIntegerField(default=0)
    reserved = models.PositiveBigIntegerField(default=0)
    warned_80_at = models.DateTimeField(null=True, blank=True)
    warned_100_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["org", "period_start"], name="budget_period_unique_month")
        ]

    def __str__(self) -> str:
        return f"{self.org_id} {self.period_start:%Y-%m}: {self.used}/{self.budget}"


class Reservation(models.Model):
    """Tokens held for one call in flight, so concurrent questions cannot overspend together.

    Exactly one of `settled_at` / `released_at` is set once the call ends. A reservation that
    still has neither after `expires_at` belongs to a worker that crashed, and is released.
    """

    org = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    period = models.ForeignKey(BudgetPeriod, on_delete=models.CASCADE, related_name="reservations")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    amount = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    usage_record = models.OneToOneField(
        UsageRecord, on_delete=models.SET_NULL, null=True, blank=True, related_name="reservation"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The expiry sweep only ever looks at open reservations.
            models.Index(
                fields=["expires_at"],
                name="reservation_open_expiry",
                condition=models.Q(settled_at__isnull=True, released_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.amount} tokens for {self.org_id}"

    @property
    def is_open(self) -> bool:
        return self.settled_at is None and self.released_at is None
