"""``change``: the latest value moved too much since the previous one or since last week."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from apps.alerts.detectors.base import (
    Condition,
    ConfigError,
    Series,
    Verdict,
    format_number,
    format_percent,
    is_number,
    last_week_phrase,
    previous_phrase,
)

COMPARE_TO = ("previous", "last_week")
UNITS = ("percent", "absolute")
DIRECTIONS = ("above", "below", "either")


@dataclass(frozen=True)
class ChangeConfig:
    """``amount`` is in percent (20 means 20%) or in the metric's units, per ``unit``.

    ``direction`` "above" watches rises, "below" falls, "either" both.
    """

    amount: float
    unit: str = "percent"
    direction: str = "either"
    compare_to: str = "previous"

    def __post_init__(self) -> None:
        for name, allowed in (("unit", UNITS), ("direction", DIRECTIONS), ("compare_to", COMPARE_TO)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}")
        if not (is_number(self.amount) and self.amount >= 0):
            raise ConfigError("the amount must be a positive number")


class ChangeCondition(Condition[ChangeConfig]):
    """Fires when the change reaches ``amount`` in a watched direction.

    The score is the change in the watched direction, in the configured unit (percent points
    or metric units); ``expected`` is the reference value it is compared with.
    """

    kind = "change"
    label = "Changes by more than"
    config_class = ChangeConfig

    def evaluate(self, series: Series, *, metric: str) -> Verdict:
        value = series.last
        if math.isnan(value):
            return Verdict(False, None, None, None, 0.0, f"{metric} has no value for the latest point.")
        reference, when = self._reference(series)
        if reference is None or math.isnan(reference):
            return Verdict(
                False,
                value,
                None,
                None,
                0.0,
                f"{metric} {format_number(value)}: no value {when} to compare with.",
            )

        difference = value - reference
        if self.config.unit == "percent":
            if reference == 0:
                change = 0.0 if difference == 0 else math.copysign(math.inf, difference)
            else:
                change = difference / abs(reference) * 100
        else:
            change = difference
        score = {"above": change, "below": -change, "either": abs(change)}[self.config.direction]
        triggered = score >= self.config.amount and difference != 0

        if difference == 0:
            movement = f"is unchanged from {when}"
        else:
            verb = "up" if difference > 0 else "down"
            size = (
                format_percent(change / 100)
                if self.config.unit == "percent" and math.isfinite(change)
                else format_number(abs(difference))
            )
            movement = f"is {verb} {size} from {format_number(reference)} {when}"
        sentence = f"{metric} {format_number(value)} {movement}"
        watched = {"above": difference > 0, "below": difference < 0, "either": True}[self.config.direction]
        if difference != 0 and not watched:
            sentence += f"; only {'rises' if self.config.direction == 'above' else 'falls'} are watched"
        elif not triggered:
            allowed = (
                format_percent(self.config.amount / 100)
                if self.config.unit == "percent"
                else format_number(self.config.amount)
            )
            sentence += f", within the {allowed} allowed"
        return Verdict(triggered, value, reference, None, score, sentence + ".")

    def _reference(self, series: Series) -> tuple[float | None, str]:
        if self.config.compare_to == "previous":
            when = previous_phrase(series.interval())
            return (series.values[-2] if len(series) >= 2 else None), when
        stamp = series.last_timestamp
        if stamp is None:
            return None, "the same time last week"
        interval = series.interval()
        when = last_week_phrase(stamp, interval)
        target = stamp - timedelta(days=7)
        # Accept the nearest point within half a sampling interval of exactly one week ago.
        tolerance = (interval or timedelta(0)) / 2
        assert series.timestamps is not None
        best = min(
            range(len(series) - 1),
            key=lambda i: abs(series.timestamps[i] - target),  # type: ignore[index]
            default=None,
        )
        if best is None or abs(series.timestamps[best] - target) > tolerance:
            return None, when
        return series.values[best], when
