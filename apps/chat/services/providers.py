"""Which language model answers an organisation's questions, and its settings page's writes.

An organisation's own LLMSettings win. Without them the environment decides: LLM_PROVIDER if set,
else Anthropic when ANTHROPIC_API_KEY is set, else an OpenAI-compatible server when OPENAI_BASE_URL
is set, else the built-in offline engine, which needs no key. A key or base URL the organisation
left empty falls back to the environment's, and with none there to the SDK's own variables.
"""

import ipaddress
import socket
from dataclasses import dataclass
from typing import Literal, TypedDict
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.accounts.models import Organization, User
from apps.accounts.services import audit_log_record
from apps.chat.models import LLMSettings, ProviderKind
from apps.chat.providers import provider_class
from apps.chat.providers.base import Provider, ProviderError

Source = Literal["organisation", "environment", "built-in"]


class ProviderDescription(TypedDict):
    name: str
    label: str
    model: str
    is_builtin: bool
    source: Source


@dataclass(frozen=True)
class _Choice:
    name: str
    model: str
    api_key: str
    base_url: str
    source: Source


def _environment(name: str) -> tuple[str, str, str]:
    """(model, api_key, base_url) the environment gives a provider."""
    if name == ProviderKind.ANTHROPIC:
        return settings.ANTHROPIC_MODEL, settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL
    if name == ProviderKind.OPENAI:
        return settings.OPENAI_MODEL, settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL
    return "", "", ""


def _environment_provider() -> str:
    if settings.LLM_PROVIDER:
        return settings.LLM_PROVIDER
    if settings.ANTHROPIC_API_KEY:
        return ProviderKind.ANTHROPIC.value
    if settings.OPENAI_BASE_URL:
        return ProviderKind.OPENAI.value
    return ProviderKind.BUILTIN.value


def _choice(llm: LLMSettings | None) -> _Choice:
    if llm is not None:
        model, api_key, base_url = _environment(llm.provider)
        return _Choice(
            name=llm.provider,
            model=llm.model or model,
            api_key=llm.api_key or api_key,
            base_url=llm.base_url or base_url,
            source="organisation",
        )
    name = _environment_provider()
    model, api_key, base_url = _environment(name)
    source: Source = "built-in" if name == ProviderKind.BUILTIN else "environment"
    return _Choice(name=name, model=model, api_key=api_key, base_url=base_url, source=source)


def _check_base_url(base_url: str) -> None:
    """Refuse link-local addresses: the test button makes this server call the base URL, and
    169.254.169.254 is where clouds hand out their machines' credentials."""
    host = urlsplit(base_url).hostname
    if not host:
        return
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError):
        # Not resolvable from here (yet): the request will fail later with a clear error.
        return
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
            raise ValidationError({"base_url": "Link-local and metadata addresses are not allowed."})


def llm_settings_get(org: Organization) -> LLMSettings | None:
    return LLMSettings.objects.filter(org=org).first()


def provider_for_org(org: Organization) -> Provider:
    """The provider that answers this organisation's questions, ready to stream."""
    return provider_for_settings(llm_settings_get(org))


def provider_for_settings(llm: LLMSettings | None) -> Provider:
    """The provider for an organisation's saved settings (None: it saved none), for a caller that
    loaded them along with something else."""
    choice = _choice(llm)
    return provider_class(choice.name)(model=choice.model, api_key=choice.api_key, base_url=choice.base_url)


def provider_description(org: Organization) -> ProviderDescription:
    """What the UI says about the language model in use, and where that choice comes from."""
    choice = _choice(llm_settings_get(org))
    return ProviderDescription(
        name=choice.name,
        label=provider_class(choice.name).label,
        model=choice.model,
        is_builtin=choice.name == ProviderKind.BUILTIN,
        source=choice.source,
    )


@transaction.atomic
def llm_settings_update(
    *,
    org: Organization,
    actor: User,
    provider: str,
    model: str,
    base_url: str,
    api_key: str | None = None,
) -> LLMSettings:
    """Save the organisation's choice of model. `api_key`: None keeps the saved key, "" removes it.

    The key is write-only in the UI, so it must never follow a change of provider or server it was
    not given for: an admin could otherwise point the base URL at a server of theirs and receive
    the saved key. Such a change without a new key removes the old one.
    """
    if provider not in ProviderKind.values:
        raise ValidationError({"provider": "Choose Built-in, Anthropic or OpenAI-compatible."})
    llm = LLMSettings.objects.select_for_update().filter(org=org).first() or LLMSettings(org=org)
    model, base_url = model.strip(), base_url.strip()
    previous_key = llm.api_key
    if api_key is not None:
        llm.api_key = api_key.strip()
    elif llm.pk is not None and (llm.provider != provider or llm.base_url != base_url):
        llm.api_key = ""
    key_change = "unchanged" if llm.api_key == previous_key else "set" if llm.api_key else "removed"
    if provider == ProviderKind.ANTHROPIC and not (llm.api_key or settings.ANTHROPIC_API_KEY):
        raise ValidationError(
            {"api_key": "Enter an Anthropic API key: none is saved and the server has none."}
        )
    llm.provider, llm.model, llm.base_url, llm.updated_by = provider, model, base_url, actor
    llm.full_clean(exclude=["org"])
    _check_base_url(base_url)
    llm.save()
    audit_log_record(
        action="llm.settings_update",
        org=org,
        actor=actor,
        target=llm,
        metadata={"provider": provider, "model": model, "base_url": base_url, "api_key": key_change},
    )
    return llm


async def llm_settings_test(*, org: Organization) -> tuple[bool, str]:
    """Send the saved settings' provider a tiny request: (worked, what happened)."""
    provider = await sync_to_async(provider_for_org)(org)
    try:
        return True, await provider.test()
    except ProviderError as error:
        return False, error.detail


def warm_up_providers() -> None:
    """Import every provider's SDK ahead of the first question (called at ASGI start-up)."""
    from apps.chat.providers import provider_class

    for kind in ProviderKind.values:
        provider_class(kind)
