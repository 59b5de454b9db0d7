"""Alert conditions: verdicts and sentences of each kind, and the anomaly detector's behaviour.

Pure tests: no database, no clock; series are generated with fixed seeds.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from apps.alerts.detectors import (
    AnomalyConfig,
    ConfigError,
    Series,
    alert_times,
    evaluate,
    get_condition,
    registry,
    score_series,
)
from apps.alerts.detectors.base import format_band, format_number, period_phrase

MONDAY = datetime(2024, 1, 1)


def daily(days: int = 84, *, seed: int = 1, noise: float = 0.03) -> tuple[list[float], list[datetime]]:
    """Daily revenue with a weekly pattern (quiet weekends), a gentle trend and noise."""
    rng = np.random.default_rng(seed)
    weekday = np.array([1.0, 1.05, 1.0, 1.1, 1.2, 0.55, 0.45])
    stamps = [MONDAY + timedelta(days=i) for i in range(days)]
    level = 3000 * (1 + 0.001 * np.arange(days))
    values = level * weekday[[s.weekday() for s in stamps]] * np.exp(rng.normal(0, noise, days))
    return values.tolist(), stamps


def hourly(weeks: int = 4, *, seed: int = 2, noise: float = 0.05) -> tuple[list[float], list[datetime]]:
    """Hourly orders: busy afternoons, quiet nights and weekends, multiplicative noise."""
    rng = np.random.default_rng(seed)
    n = weeks * 7 * 24
    stamps = [MONDAY + timedelta(hours=i) for i in range(n)]
    hours = np.array([s.hour for s in stamps])
    weekend = np.array([s.weekday() >= 5 for s in stamps])
    shape = 0.3 + np.exp(-0.5 * ((hours - 14) / 3.5) ** 2)
    values = 400 * shape * np.where(weekend, 0.6, 1.0) * np.exp(rng.normal(0, noise, n))
    return values.tolist(), stamps


def anomaly(values: list[float], stamps: list[datetime] | None, **config: object):
    return evaluate("anomaly", config, Series(values, stamps), metric="Revenue")


# -- registry -------------------------------------------------------------------------------


def test_the_registry_lists_the_three_kinds():
    assert set(registry()) == {"threshold", "change", "anomaly"}
    assert get_condition("anomaly").kind == "anomaly"


def test_an_unknown_kind_is_refused():
    with pytest.raises(ConfigError):
        get_condition("crystal-ball")


def test_a_stored_configuration_with_an_unknown_setting_is_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        evaluate("threshold", {"threshold": 5, "colour": "red"}, Series.of(1), metric="Revenue")


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("threshold", {"threshold": 5, "direction": "sideways"}),
        ("threshold", {"threshold": "5"}),
        ("change", {"amount": -5}),
        ("change", {"amount": 5, "compare_to": "last_year"}),
        ("anomaly", {"sensitivity": "extreme"}),
        ("anomaly", {"sensitivity": -1}),
        ("anomaly", {"sensitivity": True}),
        ("anomaly", {"min_history": 1}),
        ("anomaly", {"cooldown_hours": -1}),
    ],
)
def test_invalid_settings_are_refused_with_a_message(kind, config):
    with pytest.raises(ConfigError):
        evaluate(kind, config, Series.of(1), metric="Revenue")


# -- wording --------------------------------------------------------------------------------


def test_numbers_read_with_thousands_separators_and_few_digits():
    assert format_number(1240) == "1,240"
    assert format_number(1234567.8) == "1,234,568"
    assert format_number(12.5) == "12.5"
    assert format_number(0.01234) == "0.0123"
    assert format_band(3137.2, 3582.9) == "3,140–3,580"


def test_the_period_is_named_at_the_series_granularity():
    tuesday_2pm = datetime(2024, 1, 2, 14, 0)
    assert period_phrase(tuesday_2pm, timedelta(days=1)) == "a Tuesday"
    assert period_phrase(tuesday_2pm, timedelta(hours=6)) == "a Tuesday afternoon"
    assert period_phrase(datetime(2024, 1, 1, 9), timedelta(hours=6)) == "a Monday morning"
    assert period_phrase(tuesday_2pm, timedelta(hours=1)) == "14:00 on a Tuesday"
    assert period_phrase(tuesday_2pm, timedelta(hours=1), weekly=False) == "14:00"


# -- threshold ------------------------------------------------------------------------------


def test_threshold_fires_above_the_limit():
    verdict = evaluate("threshold", {"threshold": 5000}, Series.of(5400), metric="Revenue")
    assert verdict.triggered
    assert verdict.value == 5400
    assert verdict.score == pytest.approx(0.08)
    assert verdict.sentence == "Revenue 5,400 is above the 5,000 threshold."


def test_threshold_does_not_fire_on_the_safe_side():
    verdict = evaluate("threshold", {"threshold": 5000}, Series.of(4200), metric="Revenue")
    assert not verdict.triggered
    assert verdict.score < 0
    assert verdict.sentence == "Revenue 4,200 is within the limit: the alert fires above 5,000."


def test_threshold_below_fires_under_the_limit():
    verdict = evaluate("threshold", {"threshold": 1000, "direction": "below"}, Series.of(640), metric="Stock")
    assert verdict.triggered
    assert verdict.sentence == "Stock 640 is below the 1,000 threshold."


def test_a_missing_latest_value_never_fires():
    for kind, config in (("threshold", {"threshold": 1}), ("change", {"amount": 1}), ("anomaly", {})):
        verdict = evaluate(kind, config, Series([5, 6, None]), metric="Revenue")
        assert not verdict.triggered
        assert verdict.sentence == "Revenue has no value for the latest point."


# -- change ---------------------------------------------------------------------------------


def test_change_fires_on_a_fall_larger_than_the_percentage():
    verdict = evaluate("change", {"amount": 20}, Series.of(1240, previous=2000), metric="Revenue")
    assert verdict.triggered
    assert verdict.expected == 2000
    assert verdict.score == pytest.approx(38)
    assert verdict.sentence == "Revenue 1,240 is down 38% from 2,000 at the previous reading."


def test_change_names_the_previous_period_from_the_timestamps():
    stamps = [MONDAY, MONDAY + timedelta(days=1)]
    verdict = evaluate("change", {"amount": 20}, Series([2000, 2600], stamps), metric="Revenue")
    assert verdict.triggered
    assert verdict.sentence == "Revenue 2,600 is up 30% from 2,000 the day before."


def test_a_small_change_is_within_the_allowance():
    verdict = evaluate("change", {"amount": 20}, Series.of(1900, previous=2000), metric="Revenue")
    assert not verdict.triggered
    assert (
        verdict.sentence
        == "Revenue 1,900 is down 5% from 2,000 at the previous reading, within the 20% allowed."
    )


def test_change_watching_rises_ignores_a_fall():
    config = {"amount": 20, "direction": "above"}
    verdict = evaluate("change", config, Series.of(1240, previous=2000), metric="Revenue")
    assert not verdict.triggered
    assert verdict.score == pytest.approx(-38)
    assert verdict.sentence.endswith("; only rises are watched.")


def test_change_in_absolute_units():
    config = {"amount": 500, "unit": "absolute", "direction": "below"}
    verdict = evaluate("change", config, Series.of(1240, previous=2000), metric="Revenue")
    assert verdict.triggered
    assert verdict.score == pytest.approx(760)
    assert verdict.sentence == "Revenue 1,240 is down 760 from 2,000 at the previous reading."


def test_change_against_the_same_hour_last_week():
    stamps = [MONDAY + timedelta(hours=i) for i in range(8 * 24 + 15)]
    values = [100.0] * len(stamps)
    values[-1] = 180.0
    config = {"amount": 50, "compare_to": "last_week"}
    verdict = evaluate("change", config, Series(values, stamps), metric="Orders")
    assert stamps[-1].strftime("%a %H:%M") == "Tue 14:00"
    assert verdict.triggered
    assert verdict.sentence == "Orders 180 is up 80% from 100 at 14:00 last Tuesday."


def test_change_against_last_week_says_when_there_is_no_such_point():
    stamps = [MONDAY + timedelta(days=i) for i in range(3)]
    config = {"amount": 10, "compare_to": "last_week"}
    verdict = evaluate("change", config, Series([1, 2, 3], stamps), metric="Orders")
    assert not verdict.triggered
    assert verdict.sentence == "Orders 3: no value last Wednesday to compare with."


def test_a_rise_from_zero_is_an_infinite_percentage():
    verdict = evaluate("change", {"amount": 50}, Series.of(3, previous=0), metric="Refunds")
    assert verdict.triggered
    assert math.isinf(verdict.score)
    assert verdict.sentence == "Refunds 3 is up 3 from 0 at the previous reading."


# -- anomaly: quiet on ordinary seasonality ---------------------------------------------------


@pytest.mark.parametrize("make", [daily, hourly], ids=["daily", "hourly"])
def test_the_detector_does_not_fire_on_a_clean_seasonal_series(make):
    values, stamps = make()
    config = AnomalyConfig()
    scores = score_series(values, stamps, config)
    assert max(scores) < config.threshold
    verdict = anomaly(values, stamps)
    assert not verdict.triggered
    assert "is within the" in verdict.sentence


@pytest.mark.parametrize("make", [daily, hourly], ids=["daily", "hourly"])
def test_the_band_contains_ordinary_points(make):
    values, stamps = make()
    inside = 0
    for end in range(len(values) - 20, len(values)):
        verdict = anomaly(values[: end + 1], stamps[: end + 1])
        low, high = verdict.band
        assert low < verdict.expected < high
        inside += low <= values[end] <= high
    assert inside == 20


# -- anomaly: fires on spikes and dips -------------------------------------------------------


def test_a_spike_fires_and_the_sentence_says_above_for_that_weekday():
    values, stamps = daily()
    values[-1] *= 2.2
    verdict = anomaly(values, stamps)
    assert verdict.triggered
    assert verdict.value > verdict.band[1]
    assert verdict.sentence.startswith(f"Revenue {format_number(values[-1])} is far above the ")
    assert verdict.sentence.endswith(f"usual for a {stamps[-1]:%A}.")


def test_a_dip_fires_and_the_sentence_says_below():
    values, stamps = hourly()
    values[-1] *= 0.3
    verdict = anomaly(values, stamps)
    assert verdict.triggered
    assert verdict.value < verdict.band[0]
    assert " below the " in verdict.sentence
    assert verdict.sentence.endswith(f"usual for {stamps[-1]:%H:%M} on a {stamps[-1]:%A}.")


def test_the_expected_value_follows_the_season_not_the_average():
    values, stamps = daily(days=90)
    weekend, weekday = [anomaly(values[: i + 1], stamps[: i + 1]) for i in (82, 84)]
    assert f"{stamps[82]:%a}" == "Sat" and f"{stamps[84]:%a}" == "Mon"
    assert weekend.expected < 0.7 * weekday.expected


def test_watching_only_rises_ignores_a_dip():
    values, stamps = daily()
    values[-1] *= 0.3
    verdict = anomaly(values, stamps, direction="above")
    assert not verdict.triggered
    assert verdict.score == 0
    assert verdict.sentence.endswith("; only rises are watched.")


def test_sensitivity_changes_the_threshold():
    values, stamps = daily()
    values[-1] *= 1.25
    verdicts = {s: anomaly(values, stamps, sensitivity=s) for s in ("low", "medium", "high")}
    scores = {s: v.score for s, v in verdicts.items()}
    assert len(set(scores.values())) == 1
    low_band, high_band = verdicts["low"].band, verdicts["high"].band
    assert low_band[1] - low_band[0] > high_band[1] - high_band[0]
    assert anomaly(values, stamps, sensitivity=scores["low"] + 0.1).triggered is False
    assert anomaly(values, stamps, sensitivity=scores["low"] - 0.1).triggered is True


# -- anomaly: awkward inputs ------------------------------------------------------------------


def test_too_short_a_history_is_said_and_never_fires():
    values, stamps = daily(days=10)
    values[-1] *= 5
    verdict = anomaly(values, stamps)
    assert not verdict.triggered
    assert verdict.expected is None and verdict.band is None
    assert (
        verdict.sentence == f"Revenue {format_number(values[-1])}: not enough history yet (9 of 14 points)."
    )


def test_min_history_can_be_raised():
    values, stamps = daily(days=30)
    verdict = anomaly(values, stamps, min_history=60)
    assert "not enough history yet (29 of 60 points)" in verdict.sentence


def test_a_constant_series_is_quiet_until_it_changes():
    stamps = [MONDAY + timedelta(days=i) for i in range(60)]
    flat = anomaly([250.0] * 60, stamps)
    assert not flat.triggered
    assert flat.expected == pytest.approx(250)
    # MAD = 0: the band falls back to a floor of 1% of the level per unit of sensitivity.
    assert flat.band == (pytest.approx(250 - 3.5 * 2.5), pytest.approx(250 + 3.5 * 2.5))
    assert flat.sentence == "Revenue 250 is within the usual 241–259."
    changed = anomaly([250.0] * 59 + [300.0], stamps)
    assert changed.triggered
    assert changed.sentence == "Revenue 300 is far above the usual 241–259."


def test_missing_values_in_the_history_are_skipped():
    values, stamps = daily()
    holey: list[float | None] = list(values)
    for i in range(5, len(holey) - 1, 9):
        holey[i] = None
    holey[40] = math.nan
    verdict = anomaly(holey, stamps)
    assert not verdict.triggered
    scores = score_series(holey, stamps, AnomalyConfig())
    assert scores[5] == 0.0 and scores[40] == 0.0
    holey[-1] = values[-1] * 3
    assert anomaly(holey, stamps).triggered


def test_irregular_timestamps_are_handled():
    rng = np.random.default_rng(7)
    values, stamps = hourly(weeks=3)
    keep = rng.random(len(values)) > 0.15  # missing readings
    jitter = rng.integers(-10, 11, len(values))  # late or early by minutes
    values = [v for v, k in zip(values, keep, strict=True) if k]
    stamps = [s + timedelta(minutes=int(j)) for s, j, k in zip(stamps, jitter, keep, strict=True) if k]
    assert max(score_series(values, stamps, AnomalyConfig())) < AnomalyConfig().threshold
    values[-1] *= 4
    assert anomaly(values, stamps).triggered


def test_unsorted_input_scores_come_back_in_input_order():
    values, stamps = daily()
    scores = score_series(values, stamps, AnomalyConfig())
    order = list(reversed(range(len(values))))
    shuffled = score_series([values[i] for i in order], [stamps[i] for i in order], AnomalyConfig())
    assert shuffled == [scores[i] for i in order]


def test_without_timestamps_the_series_is_judged_without_seasons():
    rng = np.random.default_rng(3)
    values = (100 + rng.normal(0, 2, 40)).tolist()
    assert "is within the usual" in anomaly(values, None).sentence
    values[-1] = 150
    verdict = anomaly(values, None)
    assert verdict.triggered
    assert verdict.sentence.startswith("Revenue 150 is far above the usual ")


# -- score_series and the preview ------------------------------------------------------------


def test_score_series_has_no_look_ahead():
    values, stamps = hourly(weeks=3)
    config = AnomalyConfig()
    before = score_series(values, stamps, config)
    cut = 400
    changed = list(values)
    for i in range(cut, len(changed), 17):
        changed[i] *= 5
    after = score_series(changed, stamps, config)
    assert after[:cut] == before[:cut]
    assert score_series(values[:cut], stamps[:cut], config) == before[:cut]
    assert after[cut] >= config.threshold


def test_score_series_agrees_with_the_verdict_on_the_last_point():
    values, stamps = daily()
    values[-1] *= 1.6
    verdict = anomaly(values, stamps)
    assert score_series(values, stamps, AnomalyConfig())[-1] == pytest.approx(verdict.score)


def test_alert_times_notify_once_per_cooldown():
    stamps = [MONDAY + timedelta(hours=i) for i in range(48)]
    scores = [0.0] * 48
    for i in (5, 6, 7, 20, 30):
        scores[i] = 9.0
    config = AnomalyConfig(cooldown_hours=12)
    assert alert_times(scores, stamps, config) == [5, 20]
    assert alert_times(scores, stamps, AnomalyConfig(cooldown_hours=0)) == [5, 6, 7, 20, 30]
