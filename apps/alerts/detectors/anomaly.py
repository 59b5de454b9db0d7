"""``anomaly``: the latest value is far from what this metric usually does at this time.

The numbers come from :mod:`apps.alerts.detectors.decomposition` (robust trend + seasonal
profile + median/MAD of past residuals); this module turns them into a verdict and a sentence,
and offers the whole-series helpers the "Test now" preview and the benchmark use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from apps.alerts.detectors import decomposition
from apps.alerts.detectors.base import (
    Condition,
    ConfigError,
    Series,
    Verdict,
    as_datetime,
    format_band,
    format_number,
    is_number,
    median_interval,
    period_phrase,
)

# Robust z-score a point must reach. "medium" is the threshold NAB's standard profile chose.
SENSITIVITIES = {"low": 5.0, "medium": 3.5, "high": 2.5}
DIRECTIONS = ("above", "below", "either")


@dataclass(frozen=True)
class AnomalyConfig:
    """``sensitivity`` is "low", "medium", "high" or a threshold in robust standard deviations.

    ``cooldown_hours`` only shapes :func:`alert_times` (how often a persisting anomaly would
    notify), never a verdict; ``min_history`` overrides the points needed before judging.
    """

    sensitivity: str | float = "medium"
    direction: str = "either"
    min_history: int | None = None
    cooldown_hours: float = 12.0

    def __post_init__(self) -> None:
        if isinstance(self.sensitivity, str):
            if self.sensitivity not in SENSITIVITIES:
                raise ConfigError(f"sensitivity must be one of {', '.join(SENSITIVITIES)} or a number")
        elif not (is_number(self.sensitivity) and self.sensitivity > 0):
            raise ConfigError("a numeric sensitivity must be a positive number of deviations")
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"direction must be one of {', '.join(DIRECTIONS)}")
        if self.min_history is not None and not (isinstance(self.min_history, int) and self.min_history >= 3):
            raise ConfigError("min_history must be a whole number of points, at least 3")
        if not (is_number(self.cooldown_hours) and self.cooldown_hours >= 0):
            raise ConfigError("cooldown_hours must be a number of hours, 0 or more")

    @property
    def threshold(self) -> float:
        if isinstance(self.sensitivity, str):
            return SENSITIVITIES[self.sensitivity]
        return float(self.sensitivity)


def _orient(z: np.ndarray, direction: str) -> np.ndarray:
    if direction == "above":
        return np.maximum(z, 0.0)
    if direction == "below":
        return np.maximum(-z, 0.0)
    return np.abs(z)


def _prepare(
    values: Sequence[float | None], timestamps: Sequence[datetime | date] | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Time-sorted non-missing values, their wall-clock seconds, and their input positions."""
    y = np.array([math.nan if v is None else float(v) for v in values], dtype=float)
    order = np.arange(len(y))
    times = None
    if timestamps is not None:
        if len(timestamps) != len(y):
            raise ValueError(f"{len(y)} values but {len(timestamps)} timestamps")
        stamps = [as_datetime(t) for t in timestamps]
        order = np.array(sorted(order, key=stamps.__getitem__), dtype=int)
        # Wall-clock seconds: the calendar fields (weekday, hour) are what the profiles follow.
        epoch = datetime(1970, 1, 1)
        times = np.array([(stamps[i] - epoch).total_seconds() for i in order], dtype=float)
        y = y[order]
    keep = np.isfinite(y)
    return y[keep], (None if times is None else times[keep]), order[keep]


def score_series(
    values: Sequence[float | None],
    timestamps: Sequence[datetime | date] | None,
    config: AnomalyConfig,
) -> list[float]:
    """The anomaly score of every point, each computed only from the values before it.

    Scores are robust z-scores oriented by ``config.direction`` (a point triggers when its
    score reaches ``config.threshold``), in the input's order; 0.0 where a value is missing or
    the history is still too short. The last score is the one :meth:`AnomalyCondition.evaluate`
    gives for the whole series. Only the sampling interval, which decides the seasonal
    profiles, is read from all the timestamps: the schedule, not the values.
    """
    y, times, positions = _prepare(values, timestamps)
    analysis = decomposition.analyse(y, times, min_history=config.min_history)
    scores = np.zeros(len(values))
    scores[positions] = _orient(analysis.z, config.direction)
    return scores.tolist()


def alert_times(
    scores: Sequence[float], timestamps: Sequence[datetime | date] | None, config: AnomalyConfig
) -> list[int]:
    """Indices where the alert would have notified over a scored series (the preview's marks).

    A point notifies when its score reaches the threshold and the previous notification is at
    least ``cooldown_hours`` old: an anomaly that persists notifies once, not at every point.
    Without timestamps the cooldown counts points as hours.
    """
    threshold = config.threshold
    cooldown = timedelta(hours=config.cooldown_hours)
    notified: list[int] = []
    for i in np.flatnonzero(np.asarray(scores, dtype=float) >= threshold):
        i = int(i)
        if notified:
            previous = notified[-1]
            if timestamps is None:
                if i - previous < config.cooldown_hours:
                    continue
            elif as_datetime(timestamps[i]) - as_datetime(timestamps[previous]) < cooldown:
                continue
        notified.append(i)
    return notified


class AnomalyCondition(Condition[AnomalyConfig]):
    """Fires when the latest value is far outside the band the metric's history predicts."""

    kind = "anomaly"
    label = "Looks unusual"
    config_class = AnomalyConfig

    def evaluate(self, series: Series, *, metric: str) -> Verdict:
        value = series.last
        if math.isnan(value):
            return Verdict(False, None, None, None, 0.0, f"{metric} has no value for the latest point.")
        y, times, _ = _prepare(series.values, series.timestamps)
        analysis = decomposition.analyse(y, times, last_only=True, min_history=self.config.min_history)
        history = len(y) - 1
        shown = format_number(value)
        if history < analysis.required or math.isnan(analysis.expected[-1]):
            sentence = f"{metric} {shown}: not enough history yet ({history} of {analysis.required} points)."
            return Verdict(False, value, None, None, 0.0, sentence)

        k = self.config.threshold
        z = float(analysis.z[-1])
        score = float(_orient(np.array([z]), self.config.direction)[0])
        logged = bool(analysis.logged[-1])
        centre, spread = float(analysis.expected[-1]), k * float(analysis.scale[-1])
        expected = decomposition.to_units(centre, logged)
        low, high = centre - spread, centre + spread
        band = (decomposition.to_units(low, logged), decomposition.to_units(high, logged))
        triggered = score >= k

        usual = self._usual(band, analysis.seasonality[-1], series)
        side = "above" if z > 0 else "below"
        strength = "far " if abs(z) >= 2 * k else ""
        outside = not band[0] <= value <= band[1]
        if abs(z) < k:
            sentence = f"{metric} {shown} is within {usual}."
        elif outside:
            sentence = f"{metric} {shown} is {strength}{side} {usual}."
        else:
            # Only the level-shift score is high: the recent run, not this point, stands out.
            runs = f"the last {analysis.shift_points} points run consistently {side} usual"
            sentence = f"{metric} {shown} is within {usual}, but {runs}."
        if abs(z) >= k and not triggered:
            watched = "rises" if self.config.direction == "above" else "falls"
            sentence = f"{sentence[:-1]}; only {watched} are watched."
        return Verdict(triggered, value, expected, band, score, sentence)

    @staticmethod
    def _usual(band: tuple[float, float], seasonality: str, series: Series) -> str:
        """'the 3,100–3,600 usual for a Monday morning', or 'the usual 3,100–3,600'."""
        shown = format_band(*band)
        stamp = series.last_timestamp
        if not seasonality or stamp is None:
            return f"the usual {shown}"
        interval = median_interval(series.timestamps)
        period = period_phrase(stamp, interval, weekly=seasonality == "weekly")
        return f"the {shown} usual for {period}"
