"""Registry of database engines: adding an engine means adding one module here and registering it."""

from importlib import import_module

from apps.connections.engines.base import Engine

_ENGINES: dict[str, Engine] = {}


def register(engine_class: type[Engine]) -> type[Engine]:
    _ENGINES[engine_class.name] = engine_class()
    return engine_class


def get_engine(name: str) -> Engine:
    """The engine called `name`; its module (and its driver) is imported on first use only."""
    if name not in _ENGINES:
        try:
            import_module(f"apps.connections.engines.{name}")
        except ModuleNotFoundError:
            raise LookupError(f"No database engine named {name!r}.") from None
    try:
        return _ENGINES[name]
    except KeyError:
        raise LookupError(f"No database engine named {name!r}.") from None
