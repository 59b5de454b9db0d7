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
