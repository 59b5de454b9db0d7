"""Registry of language-model providers: adding one means adding a module and registering it."""

from importlib import import_module

from apps.chat.providers.base import Provider

_PROVIDERS: dict[str, type[Provider]] = {}


def register(provider_class: type[Provider]) -> type[Provider]:
    _PROVIDERS[provider_class.name] = provider_class
    return provider_class


def provider_class(name: str) -> type[Provider]:
    """The provider called `name`; its module (and SDK) is imported on first use only."""
    if name not in _PROVIDERS:
        try:
            import_module(f"apps.chat.providers.{name}")
        except ModuleNotFoundError:
            raise LookupError(f"No language-model provider named {name!r}.") from None
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise LookupError(f"No language-model provider named {name!r}.") from None
