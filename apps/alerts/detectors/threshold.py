"""``threshold``: the latest value is above (or below) a fixed number."""

from __future__ import annotations

import math
from dataclasses import dataclass

from apps.alerts.detectors.base import Condition, ConfigError, Series, Verdict, format_number, is_number

DIRECTIONS = ("above", "below")


@dataclass(frozen=True)
class ThresholdConfig:
    threshold: float
    direction: str = "above"

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"direction must be one of {', '.join(DIRECTIONS)}")
        if not is_number(self.threshold):
            raise ConfigError("the threshold must be a number")


class ThresholdCondition(Condition[ThresholdConfig]):
    """Fires when the value is strictly beyond the threshold in the configured direction.

    The score is how far past the limit the value is, relative to the limit's size (0.1 is
    10% past it); it is negative while the value is on the safe side.
    """

    kind = "threshold"
    label = "Crosses a threshold"
    config_class = ThresholdConfig

    def evaluate(self, series: Series, *, metric: str) -> Verdict:
        value = series.last
        limit = self.config.threshold
        if math.isnan(value):
            return Verdict(False, None, None, None, 0.0, f"{metric} has no value for the latest point.")
        above = self.config.direction == "above"
        margin = (value - limit) if above else (limit - value)
        score = margin / abs(limit) if limit else margin
        triggered = margin > 0
        shown, shown_limit = format_number(value), format_number(limit)
        if triggered:
            side = "above" if above else "below"
            sentence = f"{metric} {shown} is {side} the {shown_limit} threshold."
        else:
            side = "above" if above else "below"
            sentence = f"{metric} {shown} is within the limit: the alert fires {side} {shown_limit}."
        return Verdict(triggered, value, None, None, score, sentence)
