from typing import Any

from django import forms
from django.conf import settings

from apps.accounts.forms import ServiceForm
from apps.chat.models import LLMSettings, ProviderKind
from apps.chat.services.pipeline import QUESTION_MAX_LENGTH
from apps.connections.models import Connection


class LLMSettingsForm(ServiceForm):
    """The organisation's choice of language model. The key is write-only: never shown again,
    kept when left empty, removed only on request."""

    provider = forms.ChoiceField(label="Provider", choices=ProviderKind.choices)
    model = forms.CharField(label="Model", max_length=120, required=False)
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}, render_value=False),
    )
    remove_key = forms.BooleanField(label="Remove the saved key", required=False)
    base_url = forms.URLField(
        label="Base URL",
        required=False,
        assume_scheme="https",
        help_text="For an OpenAI-compatible server, e.g. http://llm.internal:8000/v1. "
        "Empty uses the server's environment or the provider's public API.",
    )

    def __init__(self, *args: Any, has_key: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.has_key = has_key
        self.fields["model"].help_text = (
            f"Empty uses the default: {settings.ANTHROPIC_MODEL} for Anthropic, "
            f"{settings.OPENAI_MODEL} for OpenAI-compatible."
        )
        self.fields["api_key"].help_text = (
            "A key is saved. Type a new one to replace it, or leave this empty to keep it."
            if has_key
            else "Stored encrypted and never shown again. Self-hosted servers often need none."
        )

    @classmethod
    def for_settings(cls, llm: LLMSettings | None, data: Any = None) -> "LLMSettingsForm":
        if llm is None:
            return cls(data, initial={"provider": ProviderKind.BUILTIN})
        initial = {"provider": llm.provider, "model": llm.model, "base_url": llm.base_url}
        return cls(data, initial=initial, has_key=bool(llm.api_key))

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("api_key") and cleaned.get("remove_key"):
            self.add_error("api_key", "Either type a new key or remove the saved one, not both.")
        return cleaned

    def api_key_change(self) -> str | None:
        """What `llm_settings_update` takes: None keeps the saved key, "" removes it."""
        if self.cleaned_data.get("remove_key"):
            return ""
        return self.cleaned_data.get("api_key") or None


class QuestionForm(forms.Form):
    question = forms.CharField(label="Your question", max_length=QUESTION_MAX_LENGTH, strip=True)


class NewChatForm(forms.Form):
    connection = forms.ModelChoiceField(
        label="Connection", queryset=Connection.objects.none(), empty_label=None
    )
    question = forms.CharField(
        label="Question",
        max_length=QUESTION_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "e.g. total revenue by month in 2026"}),
    )

    def __init__(self, *args, org, connections: list[Connection] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["connection"]
        field.queryset = Connection.objects.filter(org=org).order_by("name")
        if connections is not None:
            # Drawn from the connections the page already has: the queryset's own choices would
            # query twice more (once for the select's required attribute, once for its options).
            # A submitted choice is still checked against the queryset.
            field.choices = [(connection.pk, connection.name) for connection in connections]


class RenameForm(forms.Form):
    title = forms.CharField(max_length=200)


class FeedbackForm(forms.Form):
    helpful = forms.ChoiceField(choices=[("yes", "Helpful"), ("no", "Not helpful")])
    comment = forms.CharField(required=False, max_length=2000)
