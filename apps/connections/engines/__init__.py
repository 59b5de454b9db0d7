"""Registry of database engines: adding an engine means adding one module here and registering it."""

from importlib import import_module

from apps.connections.engines.base import Engine

_ENGINES: dict[str, Engine] = {}
_MODULES = ("postgresql", "mysql", "sqlite", "duckdb")


def register(engine_class: type[Engine]) -> type[Engine]:
    _ENGINES[engine_class.name] = engine_class()
    return engine_class


def get_engine(name: str) -> Engine:
    if not _ENGINES:
        for module in _MODULES:
            import_module(f"apps.connections.engines.{module}")
    try:
        return _ENGINES[name]
    except KeyError:
        raise LookupError(f"No database engine named {name!r}.") from None
