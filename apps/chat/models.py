from django.conf import settings
from django.db import models
from django.utils.timezone import now

from datamind.lib.crypto import EncryptedTextField


class ProviderKind(models.TextChoices):
    BUILTIN = "builtin", "Built-in (offline)"
    ANTHROPIC = "anthropic", "Anthropic"
    OPENAI = "openai", "OpenAI-compatible"


class LLMSettings(models.Model):
    """An organisation's choice of language model. Without one, environment defaults apply,
    and with no key anywhere the built-in offline engine answers."""

    org = models.OneToOneField("accounts.Organization", on_delete=models.CASCADE, related_name="llm_settings")
    provider = models.CharField(max_length=20, choices=ProviderKind.choices, default=ProviderKind.BUILTIN)
    model = models.CharField(max_length=120, blank=True)
    api_key = EncryptedTextField(blank=True)
    base_url = models.URLField(blank=True, help_text="For OpenAI-compatible servers, e.g. http://llm:8000/v1")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "LLM settings"
        verbose_name_plural = "LLM settings"

    def __str__(self) -> str:
        return f"{self.get_provider_display()} for {self.org}"


class ChatSession(models.Model):
    """A conversation about one connection."""

    org = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="chat_sessions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    connection = models.ForeignKey(
        "connections.Connection", on_delete=models.SET_NULL, null=True, related_name="chat_sessions"
    )
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now, db_index=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["org", "user", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or "New chat"


class MessageRole(models.TextChoices):
    USER = "user", "Question"
    ASSISTANT = "assistant", "Answer"


class MessageStatus(models.TextChoices):
    DONE = "done", "Answered"
    NO_SQL = "no_sql", "Could not answer"
    ERROR = "error", "Failed"
    CANCELLED = "cancelled", "Stopped"
    REFUSED = "refused", "Refused (budget)"


class ChatMessage(models.Model):
    """One turn: the user's question, or DataMind's answer with everything it did to get there."""

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=MessageRole.choices)
    content = models.TextField(blank=True, help_text="The question, or the analysis of the answer")
    status = models.CharField(max_length=10, choices=MessageStatus.choices, blank=True)
    explanation = models.TextField(blank=True, help_text="What the model said while writing the SQL")
    sql = models.TextField(blank=True)
    attempts = models.JSONField(default=list, blank=True, help_text="[{sql, error}] of every try")
    tables_used = models.JSONField(default=list, blank=True)
    columns = models.JSONField(default=list, blank=True)
    rows = models.JSONField(default=list, blank=True, help_text="Preview, capped")
    row_count = models.PositiveIntegerField(null=True, blank=True)
    truncated = models.BooleanField(default=False)
    chart = models.JSONField(default=dict, blank=True, help_text="Vega-Lite spec (data from our result)")
    provider = models.CharField(max_length=20, blank=True)
    model = models.CharField(max_length=120, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True, help_text="Milliseconds per phase")
    error = models.TextField(blank=True)
    feedback = models.SmallIntegerField(null=True, blank=True, choices=[(1, "Helpful"), (-1, "Not helpful")])
    feedback_comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return (self.content or self.sql or "")[:60]

    @property
    def chart_dom_id(self) -> str:
        return f"chart-spec-{self.pk}"
