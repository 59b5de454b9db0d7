"""Alert conditions, found through a registry.

Every module of this package that defines a :class:`Condition` subclass registers it by its
``kind``; adding a kind means adding one module. Callers use :func:`get_condition` or
:func:`evaluate` with the kind and configuration stored on the alert::

    verdict = evaluate("anomaly", {"sensitivity": "high"}, Series(values, timestamps), metric="Revenue")
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

from apps.alerts.detectors.base import Condition, ConfigError, Series, Verdict, registry


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_discover()

from apps.alerts.detectors.anomaly import AnomalyConfig, alert_times, score_series  # noqa: E402


def get_condition(kind: str) -> type[Condition[Any]]:
    try:
        return registry()[kind]
    except KeyError:
        raise ConfigError(f"unknown condition kind {kind!r}") from None


def evaluate(kind: str, config: Mapping[str, Any] | object, series: Series, *, metric: str) -> Verdict:
    """Judge the last point of ``series`` with the condition ``kind`` and its configuration
    (the configuration dataclass, or the dict stored on the alert)."""
    condition_class = get_condition(kind)
    condition = condition_class.from_dict(config) if isinstance(config, Mapping) else condition_class(config)
    return condition.evaluate(series, metric=metric)


__all__ = [
    "AnomalyConfig",
    "Condition",
    "ConfigError",
    "Series",
    "Verdict",
    "alert_times",
    "evaluate",
    "get_condition",
    "registry",
    "score_series",
]
