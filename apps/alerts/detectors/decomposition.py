"""Robust, seasonality-aware anomaly scores, each computed only from the points before it.

For the point at time t, from the history before it:

1. Sampling interval: the median gap between timestamps. It decides which seasonal profiles
   make sense: hour-of-day and hour-of-week for sub-daily data, day-of-week for daily data,
   none for weekly or coarser data (or without timestamps).
2. Seasonal profiles, refreshed at calendar boundaries (each midnight for sub-daily data, each
   Monday for daily data) from the history before the boundary. That history is cut into
   whole cycles (days, weeks) ending at the boundary; each cycle is centred on its own median,
   which removes the trend without lag; the profile is, per slot (time of day, time or day
   of week), the median over cycles of the slot's value in each cycle, smoothed by a running
   median over about an hour of slots. Sub-daily data get a daily profile, then a weekly one
   on what the daily one leaves. A profile is shrunk towards zero by the share of its variance
   that the cycle-to-cycle noise of its slots would explain, so a series without seasonality
   gets none and a clearly seasonal one keeps all of it.
3. Level: the median of the deseasonalised values over a short trailing window (a robust,
   slightly lagging trend that ignores isolated spikes).
4. Residual: value - level - season, the one-step-ahead error of the model known before the
   point. The point is judged against the residuals of the preceding points: its score is
   ``(r_t - median(r)) / scale``, where scale is the scaled MAD (1.4826 * MAD) widened for
   heavy-tailed metrics (see :func:`_spread`). A level-shift score does the same for the
   median of the last few residuals (whose standard error is smaller), so a sustained move is
   caught before any single point stands out; the point's score is the larger of the two.
5. Scale of the metric: positive metrics whose swings grow with their size (revenue, visits)
   are judged on the log scale, i.e. in relative terms (see :func:`_multiplicative`).
6. Expected value = level + season + median residual; the band is expected ± k·scale for a
   threshold k, mapped back to the metric's units.

The model is refreshed in calendar-aligned blocks (profiles daily or weekly, the spread hourly
for sub-hourly data), so scoring a whole series (the "Test now" preview, the benchmark) and
judging only its last point (the live alert) give the same answer for that point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from apps.alerts.detectors.base import DAY, WEEK

HOUR = 3600.0
# 1970-01-05 was a Monday: phases within a week count from Monday 00:00.
_MONDAY = 4 * DAY
_MAD_TO_SIGMA = 1.4826
# The median of m normal draws has a standard error of about 1.2533 sigma / sqrt(m).
_MEDIAN_EFFICIENCY = 1.2533
_MAX_SCORE = 1000.0
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Tuning:
    """The detector's constants; the defaults are what the NAB and synthetic benchmarks chose."""

    level_window: float = 3 * HOUR  # trailing window of the level, sub-daily data
    level_points_sub_daily: int = 12  # at least this many points, sub-daily data
    level_points_daily: int = 7  # the same in points, for daily or coarser data
    min_level_points: int = 5
    spread_window: float = 14 * DAY  # residual history behind the centre and scale
    min_spread_points: int = 90  # at least this many residuals (a quarter, for daily data)
    max_spread_points: int = 4032
    tails: tuple[float, ...] = (0.99, 0.999)  # percentiles of |residual| that may widen the scale
    min_tail_count: int = 4  # points needed beyond a tail percentile for it to count
    shift_points: int = 12  # residuals in the level-shift score, sub-daily data (1 disables it)
    shift_points_daily: int = 3  # the same for daily or coarser data
    smooth: float = HOUR  # running-median span of the profiles
    daily_cycles: int = 28  # at most this many days in the hour-of-day profile
    weekly_cycles: int = 8  # at most this many weeks in the hour- or day-of-week profile
    min_points_no_season: int = 10  # history needed when no seasonality applies
    relative_floor: float = 0.01  # scale floor, as a fraction of the metric's typical size
    log_positive: bool = True  # judge positive metrics with proportional swings on the log scale
    min_elasticity: float = 0.5  # how fast swings must grow with the level to go log


DEFAULT_TUNING = Tuning()


@dataclass(frozen=True)
class _Cycle:
    name: str  # "daily" or "weekly"
    length: float  # seconds
    slot: float  # seconds per slot

    @property
    def slots(self) -> int:
        return round(self.length / self.slot)

    def slot_of(self, times: np.ndarray) -> np.ndarray:
        phase = (times - _MONDAY) % self.length
        return np.minimum((phase // self.slot).astype(np.int64), self.slots - 1)


@dataclass
class Analysis:
    """Per-point results for a sorted series without missing values (NaN: not judged)."""

    z: np.ndarray  # signed score; 0 where not judged
    expected: np.ndarray
    scale: np.ndarray
    logged: np.ndarray  # True where expected and scale are on the log scale
    seasonality: list[str]  # "weekly", "daily" or "" per point: the profile that shaped it
    required: int  # points needed before the first judgement
    shift_points: int  # how many recent residuals the level-shift score looks at


def infer_interval(times: np.ndarray | None) -> float:
    """Median positive gap between timestamps, in seconds (0 when it cannot be told)."""
    if times is None or len(times) < 2:
        return 0.0
    gaps = np.diff(times)
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) if len(gaps) else 0.0


def _cycles(interval: float) -> list[_Cycle]:
    if interval <= 0 or interval >= WEEK:
        return []
    if interval < DAY:
        slot = max(interval, 300.0)
        return [_Cycle("daily", DAY, slot), _Cycle("weekly", WEEK, slot)]
    return [_Cycle("weekly", WEEK, DAY)]


def required_history(interval: float, tuning: Tuning = DEFAULT_TUNING) -> int:
    """Points needed before judging: two weeks, the two cycles a day- or hour-of-week profile
    needs (without it the first weekends would look like anomalies); a fixed count when no
    seasonality applies (weekly data, no timestamps)."""
    if not _cycles(interval):
        return tuning.min_points_no_season
    return max(tuning.min_points_no_season, math.ceil(2 * WEEK / interval))


def _group_medians(keys: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of ``values`` per integer key in [0, n_groups); NaN for empty groups."""
    out = np.full(n_groups, np.nan)
    if len(keys) == 0:
        return out
    if np.bincount(keys, minlength=n_groups).max() == 1:
        # Regular data has one point per (cycle, slot): its median is itself.
        out[keys] = values
        return out
    order = np.lexsort((values, keys))
    k, v = keys[order], values[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    counts = np.diff(np.r_[starts, len(k)])
    out[k[starts]] = (v[starts + (counts - 1) // 2] + v[starts + counts // 2]) / 2
    return out


def _cycle_medians(cycle_index: np.ndarray, values: np.ndarray, n_cycles: int) -> np.ndarray:
    """Median of ``values`` per cycle, where points of one cycle are contiguous (time order)."""
    out = np.full(n_cycles, np.nan)
    bounds = np.searchsorted(-cycle_index, -np.arange(n_cycles), side="left")
    ends = np.searchsorted(-cycle_index, -np.arange(n_cycles), side="right")
    for c, (a, b) in enumerate(zip(bounds, ends, strict=True)):
        if b > a:
            out[c] = np.median(values[a:b])
    return out


def _profile(
    times: np.ndarray,
    slots: np.ndarray,
    values: np.ndarray,
    anchor: float,
    origin: float,
    cycle: _Cycle,
    tuning: Tuning,
) -> np.ndarray | None:
    """The shrunk seasonal profile (one value per slot) from whole cycles ending at ``anchor``;
    None with fewer than two whole cycles of history since the series began at ``origin``."""
    if not len(times):
        return None
    max_cycles = tuning.daily_cycles if cycle.name == "daily" else tuning.weekly_cycles
    n_cycles = min(int((anchor - origin) // cycle.length), max_cycles)
    if n_cycles < 2:
        return None
    age = np.floor((anchor - times) / cycle.length).astype(np.int64)  # 0 = the latest cycle
    keep = (age >= 0) & (age < n_cycles)
    age, slot, v = age[keep], slots[keep], values[keep]
    centres = _cycle_medians(age, v, n_cycles)
    n_slots = cycle.slots
    cells = _group_medians(age * n_slots + slot, v - centres[age], n_cycles * n_slots)
    cells = cells.reshape(n_cycles, n_slots)
    seen = np.isfinite(cells)
    per_slot = seen.sum(axis=0)
    if per_slot.max() < 2:
        return None
    # Per-slot median over cycles; NaNs (cycles that missed the slot) sort last.
    ordered = np.sort(cells, axis=0)
    low = np.take_along_axis(ordered, np.maximum(per_slot - 1, 0)[None, :] // 2, axis=0)[0]
    high = np.take_along_axis(ordered, (per_slot // 2)[None, :], axis=0)[0]
    profile = np.where(per_slot > 0, (low + high) / 2, 0.0)
    span = round(tuning.smooth / cycle.slot) // 2
    if span > 0:
        # Slot medians of sub-hourly data are noisy; a running median keeps ramps and steps.
        wrapped = np.r_[profile[-span:], profile, profile[:span]]
        profile = np.median(sliding_window_view(wrapped, 2 * span + 1), axis=1)
    profile -= np.median(profile)

    # Shrink by the share of the profile's variance that sampling noise would explain: the
    # spread of a slot across cycles estimates the noise, and a median of k such values has
    # a variance of about (pi / 2) sigma^2 / k (sigma^2 / k for k <= 2, where it is a mean).
    k = float(np.median(per_slot[per_slot > 0]))
    if k < 2:
        return None
    sigma2 = (_MAD_TO_SIGMA * float(np.nanmedian(np.abs(cells - profile)))) ** 2 * k / (k - 1)
    noise = sigma2 * (1.0 if k <= 2 else math.pi / 2) / k
    signal = float(np.var(profile))
    if signal <= 0:
        return np.zeros(n_slots)
    return profile * min(max(1.0 - noise / signal, 0.0), 1.0)


def _season(
    history_t: np.ndarray,
    history_slots: dict[str, np.ndarray],
    history_y: np.ndarray,
    target_slots: dict[str, np.ndarray],
    anchor: float,
    origin: float,
    cycles: list[_Cycle],
    tuning: Tuning,
) -> tuple[np.ndarray, str]:
    """Seasonal component of the target points from the profiles of the history before
    ``anchor``, and the name of the longest profile that mattered ("" when none did)."""
    season = np.zeros(len(next(iter(target_slots.values()))))
    remaining = history_y
    label = ""
    for cycle in cycles:
        profile = _profile(history_t, history_slots[cycle.name], remaining, anchor, origin, cycle, tuning)
        if profile is None or not np.any(profile):
            continue
        remaining = remaining - profile[history_slots[cycle.name]]
        season += profile[target_slots[cycle.name]]
        label = cycle.name
    return season, label


def _trailing_median(x: np.ndarray, window: int, min_points: int, start: int = 0) -> np.ndarray:
    """out[j] = median of x[max(0, j - window):j] for j >= start (NaN before start and where
    fewer than ``min_points`` points precede)."""
    n = len(x)
    out = np.full(n, np.nan)
    for j in range(max(start, min_points), min(window, n)):
        out[j] = np.median(x[:j])
    first = max(start, window)
    if first < n:
        out[first:] = np.median(sliding_window_view(x[first - window : n - 1], window), axis=1)
    return out


def _half_normal(p: float) -> float:
    """The p-th percentile of |N(0, 1)|: that percentile of absolute deviations is sigma times it."""
    return _NORMAL.inv_cdf((1 + p) / 2)


def _spread(residuals: np.ndarray, typical: float, incident: int, tuning: Tuning) -> tuple[float, float]:
    """Centre and scale (sigma) of past residuals, robust and aware of heavy tails.

    The scale is the largest of normal-consistent estimates read off the absolute deviations
    from the median: the scaled MAD (their 50th percentile) and their tail percentiles divided
    by what those percentiles are for normal data. For well-behaved residuals they agree; for a
    bursty metric the tail estimates widen the band, so bursts as frequent as before are not
    news. A tail percentile counts only as far as ``min_tail_count`` separate stretches of
    ``incident`` points reach it, so one past incident (an outage, a holiday) does not widen
    the band however long it lasted. When most residuals are identical all estimates are 0 and
    the mean absolute deviation takes over; a floor relative to the metric's size keeps a
    constant history finite, and any change from it then scores very high.
    """
    n = len(residuals)
    halves = np.partition(residuals, [(n - 1) // 2, n // 2])
    centre = float(halves[(n - 1) // 2] + halves[n // 2]) / 2
    deviation = np.abs(residuals - centre)
    levels = sorted({0.5, *(max(0.5, min(p, 1 - tuning.min_tail_count / n)) for p in tuning.tails)})
    ranks = [int(p * (n - 1)) for p in levels]
    quantiles = np.partition(deviation, ranks)[ranks]
    stretches = n // incident
    if stretches >= tuning.min_tail_count:
        peaks = deviation[n - stretches * incident :].reshape(stretches, incident).max(axis=1)
        reach = float(
            np.partition(peaks, stretches - tuning.min_tail_count)[stretches - tuning.min_tail_count]
        )
    else:
        reach = float(quantiles[0])
    scale = _MAD_TO_SIGMA * float(quantiles[0])
    for q, p in zip(quantiles[1:], levels[1:], strict=True):
        scale = max(scale, min(float(q), reach) / _half_normal(p))
    if scale <= 0:
        scale = _MEDIAN_EFFICIENCY * float(np.mean(deviation))
    return centre, max(scale, tuning.relative_floor * typical, 1e-9)


def _multiplicative(residuals: np.ndarray, expected: np.ndarray, tuning: Tuning) -> bool:
    """Whether a positive metric's swings grow with its size, so it is better judged on the
    log scale.

    Business metrics (revenue, orders, visits) often vary in proportion to their size: a
    weekend at half the weekday level also swings half as much, and on the log scale those
    swings are alike, so one spread fits every hour of the week. The test splits past
    (one-step-ahead, linear) residuals by the value that was expected, and compares the
    typical size of the residuals of the highest third of expected values with the lowest
    third: they must grow at least ``min_elasticity`` times as fast as the expected value
    (1 is proportional, 0 is constant noise).
    """
    keep = np.isfinite(residuals) & np.isfinite(expected) & (expected > 0)
    if keep.sum() < 30:
        return False
    residuals, expected = np.abs(residuals[keep]), expected[keep]
    low, high = np.quantile(expected, [1 / 3, 2 / 3])
    level_ratio = float(np.median(expected[expected >= high]) / np.median(expected[expected <= low]))
    low_size = float(np.median(residuals[expected <= low]))
    high_size = float(np.median(residuals[expected >= high]))
    if level_ratio < 1.2 or low_size <= 0 or high_size <= 0:
        return False
    return math.log(high_size / low_size) / math.log(level_ratio) >= tuning.min_elasticity


def to_units(value: float, logged: bool) -> float:
    """A working-scale value (expected, band edge) in the metric's units."""
    return math.exp(value) if logged else value


def _run_starts(keys: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.array([], dtype=int)


def analyse(
    values: np.ndarray,
    times: np.ndarray | None,
    tuning: Tuning = DEFAULT_TUNING,
    *,
    last_only: bool = False,
    min_history: int | None = None,
) -> Analysis:
    """Score every point (or only the last) of a time-sorted series without missing values.

    ``times`` are wall-clock seconds since 1970-01-01 (or None); see the module docstring.
    """
    y = np.asarray(values, dtype=float)
    n = len(y)
    interval = infer_interval(times)
    cycles = _cycles(interval) if times is not None else []
    sub_daily = bool(cycles) and interval < DAY
    required = min_history if min_history is not None else required_history(interval, tuning)
    required = max(required, tuning.min_level_points + 3)
    if sub_daily:
        level_points = max(round(tuning.level_window / interval), tuning.level_points_sub_daily)
    else:
        level_points = tuning.level_points_daily
    spread_points = round(tuning.spread_window / interval) if cycles else 0
    spread_points = min(max(spread_points, tuning.min_spread_points), tuning.max_spread_points)
    # The level absorbs a shift after about half its window: the shift score must see the
    # shifted residuals before that.
    shift_points = tuning.shift_points if sub_daily else tuning.shift_points_daily
    shift_points = max(min(shift_points, level_points // (3 if sub_daily else 2)), 1)
    analysis = Analysis(
        z=np.zeros(n),
        expected=np.full(n, np.nan),
        scale=np.full(n, np.nan),
        logged=np.zeros(n, dtype=bool),
        seasonality=[""] * n,
        required=required,
        shift_points=shift_points,
    )
    if n <= required:
        return analysis

    # A block shares one seasonal profile and scale choice: a calendar day for sub-daily data,
    # a calendar week for daily data, the whole series when there is no calendar to follow.
    # Within a block the centre and scale are refreshed hourly for sub-hourly data, else at
    # every point.
    assert times is not None or not cycles
    if sub_daily:
        block_key = np.floor(times / DAY).astype(np.int64)
    elif cycles:
        block_key = np.floor((times - _MONDAY) / WEEK).astype(np.int64)
    else:
        block_key = np.zeros(n, dtype=np.int64)
    hourly_refresh = bool(cycles) and interval < HOUR
    refresh_key = np.floor(times / HOUR).astype(np.int64) if hourly_refresh else np.arange(n)
    starts = _run_starts(block_key)
    blocks = list(zip(starts, [*starts[1:], n], strict=True))
    if last_only:
        # The last point needs the one-step-ahead residuals behind its block's scale choice
        # and its spread and shift windows; each block's residuals depend only on its history.
        needed = max(0, min(blocks[-1][0], n - shift_points) - spread_points - 1)
        blocks = [(b0, b1) for b0, b1 in blocks if b1 > needed]

    # One-step-ahead residuals (from the model known before each point), on both scales: the
    # scale is chosen per block from the linear ones, and the chosen one's history is used.
    residuals = {False: np.full(n, np.nan), True: np.full(n, np.nan)}
    linear_expected = np.full(n, np.nan)
    reach = max(tuning.daily_cycles * DAY, tuning.weekly_cycles * WEEK)
    slots = {cycle.name: cycle.slot_of(times) for cycle in cycles} if cycles else {}
    for b0, b1 in blocks:
        lo = max(0, b0 - level_points)
        h0 = lo
        anchor = 0.0
        if cycles:
            anchor = math.floor(times[b0] / DAY) * DAY
            h0 = min(lo, int(np.searchsorted(times[:b0], anchor - reach)))
        history = y[h0:b0]
        positive = tuning.log_positive and len(history) > 0 and history.min() > 0
        models = {}
        for on_log in (False, True) if positive else (False,):
            # On the log scale a value below half the history's minimum (0, say) is clamped
            # there: it still scores as far below.
            work = np.log(np.maximum(y[h0:b1], history.min() / 2)) if on_log else y[h0:b1]
            label = ""
            season = np.zeros(b1 - lo)
            if cycles:
                season, label = _season(
                    times[h0:b0],
                    {name: slot[h0:b0] for name, slot in slots.items()},
                    work[: b0 - h0],
                    {name: slot[lo:b1] for name, slot in slots.items()},
                    anchor,
                    float(times[0]),
                    cycles,
                    tuning,
                )
            deseasoned = work[lo - h0 :] - season
            level = _trailing_median(deseasoned, level_points, tuning.min_level_points, b0 - lo)
            residuals[on_log][b0:b1] = (deseasoned - level)[b0 - lo :]
            models[on_log] = (work, label)
            if not on_log:
                linear_expected[b0:b1] = (level + season)[b0 - lo :]
        window = slice(max(0, b0 - spread_points), b0)
        logged = positive and _multiplicative(residuals[False][window], linear_expected[window], tuning)
        work, label = models[logged]
        comparable = residuals[logged]

        judged = np.arange(max(b0, required), b1)
        if not len(judged):
            continue
        refresh = judged[_run_starts(refresh_key[judged])]
        refresh_at = refresh[np.searchsorted(refresh, judged, side="right") - 1]
        centre = np.full(len(judged), np.nan)
        scale = np.full(len(judged), np.nan)
        for s in refresh:
            past = comparable[max(0, s - spread_points) : s]
            past = past[np.isfinite(past)]
            if len(past) >= tuning.min_level_points:
                rows = refresh_at == s
                typical = 1.0 if logged else abs(float(np.median(y[max(0, s - level_points) : s])))
                centre[rows], scale[rows] = _spread(past, typical, level_points, tuning)

        r = comparable[judged]
        score = (r - centre) / scale
        if shift_points > 1 and judged[0] >= shift_points - 1:
            recent = sliding_window_view(comparable[judged[0] - shift_points + 1 : b1], shift_points)
            with np.errstate(all="ignore"):
                shift = (np.median(recent, axis=1) - centre) / scale
            shift *= math.sqrt(shift_points) / _MEDIAN_EFFICIENCY
            stronger = np.isfinite(shift) & (np.abs(shift) > np.abs(score)) & (shift * score > 0)
            score = np.where(stronger, shift, score)
        ok = np.isfinite(score)
        rows = judged[ok]
        analysis.z[rows] = np.clip(score[ok], -_MAX_SCORE, _MAX_SCORE)
        analysis.expected[rows] = (work[judged - h0] - r + centre)[ok]
        analysis.scale[rows] = scale[ok]
        analysis.logged[rows] = logged
        for t in rows:
            analysis.seasonality[t] = label
    return analysis
