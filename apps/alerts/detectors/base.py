"""What every alert condition shares: the series it judges, the verdict it returns, the registry.

A condition is a class with a ``kind`` (its registry key), a configuration dataclass and an
``evaluate`` method. It judges the last point of a series and says why in one sentence.
Conditions are pure: no database, no clock, no network, so the alert services, the "Test now"
preview and the benchmarks all call the same code.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar, get_type_hints

DAY = 86_400.0
WEEK = 7 * DAY


class ConfigError(ValueError):
    """A condition's configuration is invalid; the message can be shown to the user."""


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def as_datetime(stamp: datetime | date) -> datetime:
    if isinstance(stamp, datetime):
        # Wall-clock time is what "a Monday morning" means to the reader, so a timezone-aware
        # timestamp keeps its local fields and drops the offset.
        return stamp.replace(tzinfo=None)
    return datetime(stamp.year, stamp.month, stamp.day)


def _as_float(value: float | int | None) -> float:
    if value is None:
        return math.nan
    return float(value)


@dataclass(frozen=True)
class Series:
    """Values in time order; the last point is the one a condition judges.

    ``timestamps`` may be omitted (a bare "current vs previous" pair); missing values are
    ``None`` or NaN and are skipped by the detectors.
    """

    values: tuple[float, ...]
    timestamps: tuple[datetime, ...] | None = None

    def __init__(
        self,
        values: Sequence[float | int | None],
        timestamps: Sequence[datetime | date] | None = None,
    ) -> None:
        floats = tuple(_as_float(v) for v in values)
        stamps = None if timestamps is None else tuple(as_datetime(t) for t in timestamps)
        if stamps is not None:
            if len(stamps) != len(floats):
                raise ValueError(f"{len(floats)} values but {len(stamps)} timestamps")
            if any(b < a for a, b in zip(stamps, stamps[1:], strict=False)):
                order = sorted(range(len(stamps)), key=stamps.__getitem__)
                floats = tuple(floats[i] for i in order)
                stamps = tuple(stamps[i] for i in order)
        object.__setattr__(self, "values", floats)
        object.__setattr__(self, "timestamps", stamps)

    @classmethod
    def of(cls, value: float | int | None, previous: float | int | None = None) -> Series:
        """A single reading, optionally with the one before it."""
        return cls([previous, value] if previous is not None else [value])

    def __len__(self) -> int:
        return len(self.values)

    @property
    def last(self) -> float:
        return self.values[-1] if self.values else math.nan

    @property
    def last_timestamp(self) -> datetime | None:
        return self.timestamps[-1] if self.timestamps else None

    def interval(self) -> timedelta | None:
        """The typical spacing of the points (median gap), or None without timestamps."""
        return median_interval(self.timestamps)


def median_interval(timestamps: Sequence[datetime] | None) -> timedelta | None:
    if not timestamps or len(timestamps) < 2:
        return None
    gaps = sorted((b - a) for a, b in zip(timestamps, timestamps[1:], strict=False) if b > a)
    if not gaps:
        return None
    return gaps[len(gaps) // 2]


@dataclass(frozen=True)
class Verdict:
    """What a condition says about the last point.

    ``score`` is kind-specific and grows with how alarming the point is: the robust z-score
    for ``anomaly``, the change in the watched direction for ``change``, the distance past the
    limit for ``threshold``. ``expected`` and ``band`` are what the condition considered
    normal, when it has such a notion.
    """

    triggered: bool
    value: float | None
    expected: float | None
    band: tuple[float, float] | None
    score: float
    sentence: str


ConfigT = TypeVar("ConfigT")


class Condition(ABC, Generic[ConfigT]):
    """One kind of alert condition; subclasses register themselves by ``kind``."""

    kind: ClassVar[str]
    label: ClassVar[str]
    config_class: ClassVar[type[Any]]

    def __init__(self, config: ConfigT) -> None:
        self.config = config

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A class that names its own kind is a concrete condition; helpers in between are not.
        if "kind" in cls.__dict__:
            register(cls)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Condition[Any]:
        return cls(config_from_dict(cls.config_class, data))

    @abstractmethod
    def evaluate(self, series: Series, *, metric: str) -> Verdict:
        """Judge the last point of ``series``; ``metric`` names it in the sentence."""


_REGISTRY: dict[str, type[Condition[Any]]] = {}


def register(cls: type[Condition[Any]]) -> None:
    existing = _REGISTRY.get(cls.kind)
    if existing is not None and existing is not cls:
        raise RuntimeError(f"two conditions claim the kind {cls.kind!r}")
    _REGISTRY[cls.kind] = cls


def registry() -> dict[str, type[Condition[Any]]]:
    return dict(sorted(_REGISTRY.items()))


def config_from_dict(config_class: type[ConfigT], data: Mapping[str, Any]) -> ConfigT:
    """Build a condition's configuration dataclass from stored JSON, refusing unknown keys."""
    fields = {f.name for f in dataclasses.fields(config_class)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    hints = get_type_hints(config_class)
    values = {}
    for name, raw in data.items():
        # JSON has no distinction between 3 and 3.0; the dataclass wants a float.
        if hints.get(name) is float and isinstance(raw, int) and not isinstance(raw, bool):
            raw = float(raw)
        values[name] = raw
    try:
        return config_class(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc


# -- wording -------------------------------------------------------------------------------

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def format_number(value: float) -> str:
    """A number as a person reads it: thousands separators, a few significant digits."""
    if math.isnan(value):
        return "no value"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    magnitude = abs(value)
    if magnitude >= 100 or magnitude == 0:
        return f"{value:,.0f}"
    decimals = 2 - math.floor(math.log10(magnitude))  # three significant digits
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_band(low: float, high: float) -> str:
    """A range rounded to a precision that suits its width ("3,140–3,580")."""
    width = high - low
    if not (width > 0 and math.isfinite(width)):
        return format_number(low) if low == high else f"{format_number(low)}–{format_number(high)}"
    step = 10.0 ** math.floor(math.log10(width / 10))
    lo, hi = round(low / step) * step, round(high / step) * step
    if step >= 1:
        return f"{lo:,.0f}–{hi:,.0f}"
    decimals = -math.floor(math.log10(step))
    return f"{lo:,.{decimals}f}–{hi:,.{decimals}f}"


def format_percent(fraction: float) -> str:
    percent = abs(fraction) * 100
    return f"{percent:,.0f}%" if percent >= 10 else f"{percent:.1f}%".replace(".0%", "%")


def part_of_day(hour: int) -> str:
    if hour < 6:
        return "night"
    if hour < 12:
        return "morning"
    if hour < 18:
        return "afternoon"
    return "evening"


def period_phrase(stamp: datetime, interval: timedelta | None, *, weekly: bool = True) -> str:
    """Name the calendar period a point stands for, at the series' granularity.

    Daily data: "a Monday"; hourly or finer: "14:00 on a Tuesday"; in between (3-12 hour
    buckets): "a Monday morning". Without the weekly pattern only the time of day is named.
    """
    weekday = WEEKDAYS[stamp.weekday()]
    step = interval.total_seconds() if interval else DAY
    if step >= DAY:
        return f"a {weekday}"
    if step >= 3 * 3600:
        return f"a {weekday} {part_of_day(stamp.hour)}" if weekly else f"the {part_of_day(stamp.hour)}"
    clock = f"{stamp:%H:%M}"
    return f"{clock} on a {weekday}" if weekly else clock


def previous_phrase(interval: timedelta | None) -> str:
    """How a person names the point before this one: "the day before", "the hour before"..."""
    if interval is None:
        return "at the previous reading"
    seconds = interval.total_seconds()
    if seconds >= 27 * DAY:
        return "the month before"
    for name, length in (("week", WEEK), ("day", DAY), ("hour", 3600.0)):
        if 0.9 * length <= seconds <= 1.1 * length:
            return f"the {name} before"
    return "at the previous reading"


def last_week_phrase(stamp: datetime, interval: timedelta | None) -> str:
    """The same period one week earlier: "last Monday", "at 14:00 last Tuesday"."""
    weekday = WEEKDAYS[stamp.weekday()]
    step = interval.total_seconds() if interval else DAY
    if step >= DAY:
        return f"last {weekday}"
    if step >= 3 * 3600:
        return f"last {weekday} {part_of_day(stamp.hour)}"
    return f"at {stamp:%H:%M} last {weekday}"
