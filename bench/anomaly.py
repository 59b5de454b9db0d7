"""Benchmark of the alert anomaly detector: NAB v1.1 and a synthetic business-metric suite.

Run with ``.venv/bin/python bench/anomaly.py`` (no Django needed). It reads the Numenta Anomaly
Benchmark from ``<project root>/../shared/data/nab`` and prints, in one run and one table:

- NAB scores (standard, reward-low-FP, reward-low-FN) of DataMind's detector as an alert
  (scores + the 12-hour notification cooldown) and as raw scores; of the plain rolling z-score
  it replaces, at its original threshold 2.0, with a tuned threshold, and tuned with the same
  cooldown; the published scoreboard; and checks of the scorer itself (null = 0, a detector
  firing at each window's start = 100, random scores within NAB's published spread);
- on synthetic daily and hourly business series (fixed seed): recall and precision per anomaly
  type, and the false-alarm rate on ordinary seasonality, against the same baseline.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _nab  # noqa: E402

from apps.alerts.detectors import AnomalyConfig, alert_times, score_series  # noqa: E402
from apps.alerts.detectors.decomposition import required_history  # noqa: E402

NAB_DIR = ROOT.parent / "shared" / "data" / "nab"
COOLDOWN_HOURS = 12.0
THRESHOLD_GRID = np.round(np.geomspace(2.0, 20.0, 61), 3)
BASELINE_WINDOW = 6400  # NAB's windowed Gaussian: mean and stdev of the last 6,400 points
BASELINE_THRESHOLD = 2.0  # the original design's |z| threshold
SEED = 20240501
PUBLISHED = {
    "ARTime": "ARTime",
    "numenta": "Numenta HTM",
    "contextOSE": "CAD OSE",
    "knncad": "KNN CAD",
    "randomCutForest": "Random Cut Forest",
    "twitterADVec": "Twitter ADVec",
    "windowedGaussian": "Windowed Gaussian",
    "random": "Random",
    "null": "Null",
}


# -- detectors -----------------------------------------------------------------------------


def to_datetimes(stamps: np.ndarray) -> list[datetime]:
    return stamps.astype("datetime64[s]").astype(datetime).tolist()


def detector_scores(values: np.ndarray, stamps: np.ndarray, min_history: int | None = None) -> np.ndarray:
    """Our detector's score for every point, from the public helper the preview uses."""
    config = AnomalyConfig(min_history=min_history)
    return np.asarray(score_series(values.tolist(), to_datetimes(stamps), config))


def zscore_scores(values: np.ndarray, window: int = BASELINE_WINDOW) -> np.ndarray:
    """|z| of each point against the mean and stdev of the ``window`` points before it."""
    n = len(values)
    s1 = np.r_[0.0, np.cumsum(values)]
    s2 = np.r_[0.0, np.cumsum(values * values)]
    i = np.arange(n)
    start = np.maximum(0, i - window)
    count = i - start
    with np.errstate(all="ignore"):
        mean = (s1[i] - s1[start]) / count
        std = np.sqrt(np.maximum((s2[i] - s2[start]) / count - mean * mean, 0.0))
        z = np.abs(values - mean) / std
    z[count < 10] = 0.0
    return np.nan_to_num(z, nan=0.0, posinf=1e6)


def notifications(scores: np.ndarray, stamps: list[datetime], threshold: float) -> np.ndarray:
    """Rows where the alert would notify at ``threshold`` with the cooldown."""
    config = AnomalyConfig(sensitivity=float(threshold), cooldown_hours=COOLDOWN_HOURS)
    return np.asarray(alert_times(scores, stamps, config), dtype=int)


# -- NAB -----------------------------------------------------------------------------------


@dataclass
class NabRow:
    name: str
    scores: dict[str, float]
    note: str = ""


@dataclass
class NabReport:
    rows: list[NabRow] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


def _file_scores(series: tuple[np.ndarray, np.ndarray, int]) -> np.ndarray:
    values, stamps, probation = series
    return detector_scores(values, stamps, min_history=probation)


def tune_alerts(
    files: Sequence[_nab.NabFile],
    scores: Sequence[np.ndarray],
    profiles: dict[str, _nab.CostMatrix],
) -> tuple[dict[str, float], dict[str, float]]:
    """Best NAB score per profile of the alert policy over the threshold grid."""
    stamps = [to_datetimes(f.timestamps) for f in files]
    scorers = {name: _nab.DetectionScorer(files, cost) for name, cost in profiles.items()}
    best = dict.fromkeys(profiles, -np.inf)
    chosen = dict.fromkeys(profiles, 0.0)
    for threshold in THRESHOLD_GRID:
        detections = [notifications(s, t, threshold) for s, t in zip(scores, stamps, strict=True)]
        for name, scorer in scorers.items():
            value = scorer.score(detections)
            if value > best[name]:
                best[name], chosen[name] = value, float(threshold)
    return best, chosen


def run_nab(root: Path, pool: ProcessPoolExecutor) -> NabReport:
    files = _nab.load_corpus(root)
    profiles = _nab.load_profiles(root)
    report = NabReport()

    # NAB gives every detector its probation period to learn in; ours judges from its end.
    jobs = [(f.values, f.timestamps, f.probation) for f in files]
    ours = list(pool.map(_file_scores, jobs, chunksize=1))
    baseline = [zscore_scores(f.values) for f in files]

    alert_best, alert_thresholds = tune_alerts(files, ours, profiles)
    note = ", ".join(f"{alert_thresholds[p]:.2f}" for p in profiles)
    report.rows.append(NabRow("DataMind detector, as an alert (12 h cooldown)", alert_best, f"k = {note}"))
    shipped = AnomalyConfig().threshold
    stamps = [to_datetimes(f.timestamps) for f in files]
    detections = [notifications(s, t, shipped) for s, t in zip(ours, stamps, strict=True)]
    report.rows.append(
        NabRow(
            "DataMind detector, as shipped (medium, 12 h cooldown)",
            {p: _nab.DetectionScorer(files, c).score(detections) for p, c in profiles.items()},
            f"k = {shipped:.2f}",
        )
    )
    raw = {p: _nab.nab_score(files, ours, c) for p, c in profiles.items()}
    report.rows.append(
        NabRow(
            "DataMind detector, raw scores (no cooldown)",
            {p: v[0] for p, v in raw.items()},
            "k = " + ", ".join(f"{v[1]:.2f}" for v in raw.values()),
        )
    )
    fixed = {p: _nab.nab_score_at(files, baseline, c, BASELINE_THRESHOLD) for p, c in profiles.items()}
    report.rows.append(NabRow("z-score baseline, |z| >= 2.0 (original design)", fixed))
    tuned = {p: _nab.nab_score(files, baseline, c) for p, c in profiles.items()}
    report.rows.append(
        NabRow(
            "z-score baseline, threshold tuned",
            {p: v[0] for p, v in tuned.items()},
            "k = " + ", ".join(f"{v[1]:.2f}" for v in tuned.values()),
        )
    )
    base_alert, base_thresholds = tune_alerts(files, baseline, profiles)
    report.rows.append(
        NabRow(
            "z-score baseline, tuned, 12 h cooldown",
            base_alert,
            "k = " + ", ".join(f"{base_thresholds[p]:.2f}" for p in profiles),
        )
    )

    published = json.loads((root / "results" / "final_results.json").read_text())
    for key, label in PUBLISHED.items():
        if key in published:
            report.rows.append(NabRow(f"published: {label}", {p: published[key][p] for p in profiles}))
    report.rows.append(NabRow("published: Perfect", dict.fromkeys(profiles, 100.0)))

    null = [np.zeros(len(f.values)) for f in files]
    starts = [np.isin(np.arange(len(f.values)), [left for left, _ in f.windows]).astype(float) for f in files]
    rng = np.random.default_rng(SEED)
    noise = [rng.random(len(f.values)) for f in files]
    for label, scores in (
        ("null detector (expect 0)", null),
        ("fires at each window's start (expect 100)", starts),
        ("uniform random scores (NAB's random detector: 8-17, -2-2, 11-24)", noise),
    ):
        values = ", ".join(f"{_nab.nab_score(files, scores, c)[0]:.1f}" for c in profiles.values())
        report.checks.append(f"{label}: {values}")
    report.checks.append(
        f"{len(files)} files, {sum(len(f.windows) for f in files)} windows, "
        f"{sum(len(f.values) for f in files):,} points; probation 15% of each file (at most 750 rows)"
    )
    return report


# -- synthetic business metrics ------------------------------------------------------------

EVENT_TYPES = ("spike", "dip", "level shift", "holiday")


@dataclass
class Synthetic:
    """One generated series with its labelled events (row ranges, inclusive-exclusive)."""

    kind: str  # the event type injected, or "clean"
    stamps: list[datetime]
    values: np.ndarray
    events: list[tuple[str, int, int]]  # (type, first row, end row) where a trigger is a hit
    ignore: np.ndarray  # rows neither ordinary nor an event (after a level shift settles)


def _daily_series(rng: np.random.Generator, kind: str) -> Synthetic:
    n = 365
    start = datetime(2023, 1, 2)  # a Monday
    stamps = [start + timedelta(days=i) for i in range(n)]
    weekday = np.array([s.weekday() for s in stamps])
    profile = np.r_[rng.uniform(0.9, 1.1, 5), rng.uniform(0.45, 0.8, 2)]
    level = rng.uniform(500, 20_000) * (1 + rng.uniform(-0.2, 0.4) * np.arange(n) / n)
    noise = rng.uniform(0.03, 0.08)
    values = level * profile[weekday] * np.exp(rng.normal(0, noise, n))
    holidays = [i for i, s in enumerate(stamps) if (s.month, s.day) in {(1, 1), (5, 1), (12, 25), (12, 26)}]
    events: list[tuple[str, int, int]] = [("holiday", i, i + 1) for i in holidays]
    values[holidays] *= rng.uniform(0.3, 0.5, len(holidays))
    ignore = np.zeros(n, dtype=bool)
    for i in holidays:
        ignore[i + 1 : i + 3] = True  # a holiday can upset the next days' level
    _inject(rng, kind, values, events, ignore, first=45, gap=30, shift_window=7, width=(1, 1))
    return Synthetic(kind, stamps, values, events, ignore)


def _hourly_series(rng: np.random.Generator, kind: str) -> Synthetic:
    weeks = 10
    n = weeks * 7 * 24
    start = datetime(2024, 1, 1)  # a Monday
    stamps = [start + timedelta(hours=i) for i in range(n)]
    hour = np.array([s.hour for s in stamps])
    weekday = np.array([s.weekday() for s in stamps])
    peak = rng.uniform(11, 16)
    daily = 0.25 + np.exp(-0.5 * ((hour - peak) / rng.uniform(2.5, 4.5)) ** 2)
    weekend = rng.uniform(0.4, 0.7)
    level = rng.uniform(50, 5_000) * (1 + rng.uniform(-0.1, 0.2) * np.arange(n) / n)
    values = level * daily * np.where(weekday >= 5, weekend, 1.0)
    values *= np.exp(rng.normal(0, rng.uniform(0.05, 0.1), n))
    # One holiday: a weekday in week 5 or later that looks like a Sunday.
    day = int(rng.integers(5 * 7, weeks * 7 - 3))
    while day % 7 >= 5:
        day += 1
    rows = slice(day * 24, day * 24 + 24)
    values[rows] *= weekend
    events: list[tuple[str, int, int]] = [("holiday", rows.start, rows.stop)]
    ignore = np.zeros(n, dtype=bool)
    ignore[rows.stop : rows.stop + 24] = True
    _inject(rng, kind, values, events, ignore, first=3 * 7 * 24, gap=5 * 24, shift_window=12, width=(1, 3))
    return Synthetic(kind, stamps, values, events, ignore)


def _inject(
    rng: np.random.Generator,
    kind: str,
    values: np.ndarray,
    events: list[tuple[str, int, int]],
    ignore: np.ndarray,
    *,
    first: int,
    gap: int,
    shift_window: int,
    width: tuple[int, int],
) -> None:
    """Add the anomalies of ``kind`` to ``values`` away from holidays and from each other."""
    n = len(values)
    busy = np.zeros(n, dtype=bool)
    for _, a, b in events:
        busy[max(0, a - gap // 2) : b + gap // 2] = True
    if kind == "level shift":
        at = int(rng.integers(first + gap, n - 6 * shift_window))
        factor = rng.choice([rng.uniform(0.6, 0.8), rng.uniform(1.25, 1.5)])
        values[at:] *= factor
        events.append((kind, at, at + shift_window))
        ignore[at + shift_window : at + 4 * shift_window] = True  # the detector relearns the level
        return
    if kind not in ("spike", "dip"):
        return
    placed = 0
    while placed < 4:
        at = int(rng.integers(first, n - 2))
        span = int(rng.integers(width[0], width[1] + 1))
        if busy[max(0, at - gap // 2) : at + span + gap // 2].any():
            continue
        factor = rng.uniform(1.5, 2.5) if kind == "spike" else rng.uniform(0.3, 0.65)
        values[at : at + span] *= factor
        busy[max(0, at - gap // 2) : at + span + gap // 2] = True
        events.append((kind, at, at + span))
        ignore[at + span : at + span + 2 * width[1]] = True  # the level's memory of the event
        placed += 1


def make_suite() -> dict[str, list[Synthetic]]:
    rng = np.random.default_rng(SEED)
    suite: dict[str, list[Synthetic]] = {"daily": [], "hourly": []}
    for kind in ("clean", "spike", "dip", "level shift"):
        for _ in range(10):
            suite["daily"].append(_daily_series(rng, kind))
            suite["hourly"].append(_hourly_series(rng, kind))
    return suite


@dataclass
class Tally:
    events: int = 0
    hits: int = 0
    triggers_in_events: int = 0
    triggers: int = 0

    @property
    def recall(self) -> float:
        return self.hits / self.events if self.events else float("nan")

    @property
    def precision(self) -> float:
        return self.triggers_in_events / self.triggers if self.triggers else float("nan")


@dataclass
class SyntheticResult:
    tallies: dict[str, Tally]
    ordinary_points: int
    false_alarms: int
    clean_series: int
    clean_series_alarmed: int

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.ordinary_points


def judge_suite(series: list[Synthetic], triggers: Sequence[np.ndarray]) -> SyntheticResult:
    """Count hits per event type, triggers inside/outside events, false alarms on ordinary points.

    Precision for a type is measured on the series carrying that type (plus their holidays for
    "holiday"), so a false alarm is charged to the suite it happened in.
    """
    tallies = {t: Tally() for t in EVENT_TYPES}
    ordinary = alarms = clean = clean_alarmed = 0
    for s, fired in zip(series, triggers, strict=True):
        in_event = np.zeros(len(s.values), dtype=bool)
        for kind, a, b in s.events:
            tally = tallies[kind]
            tally.events += 1
            tally.hits += bool(fired[a:b].any())
            in_event[a:b] = True
        normal = ~in_event & ~s.ignore
        normal[: _warmup(s)] = False
        ordinary += int(normal.sum())
        alarms += int((fired & normal).sum())
        if s.kind == "clean":
            clean += 1
            clean_alarmed += bool((fired & normal).any())
        for kind in {s.kind, "holiday"} & set(EVENT_TYPES):
            rows = np.zeros(len(s.values), dtype=bool)
            for k, a, b in s.events:
                if k == kind:
                    rows[a:b] = True
            tally = tallies[kind]
            tally.triggers_in_events += int((fired & rows).sum())
            tally.triggers += int((fired & (rows | normal)).sum())
    return SyntheticResult(tallies, ordinary, alarms, clean, clean_alarmed)


def _warmup(s: Synthetic) -> int:
    """Rows before the detector judges anything: its default minimum history."""
    return required_history((s.stamps[1] - s.stamps[0]).total_seconds())


def _synthetic_scores(series: tuple[list[float], list[datetime]]) -> np.ndarray:
    values, stamps = series
    return np.asarray(score_series(values, stamps, AnomalyConfig()))


def run_synthetic(pool: ProcessPoolExecutor) -> dict[str, tuple[SyntheticResult, SyntheticResult]]:
    suite = make_suite()
    threshold = AnomalyConfig().threshold
    results = {}
    for granularity, series in suite.items():
        scores = pool.map(_synthetic_scores, [(s.values.tolist(), s.stamps) for s in series], chunksize=1)
        ours = judge_suite(series, [score >= threshold for score in scores])
        baseline = judge_suite(series, [zscore_scores(s.values) >= BASELINE_THRESHOLD for s in series])
        results[granularity] = (ours, baseline)
    return results


# -- report --------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> str:
    if not (np.isfinite(a) and np.isfinite(b)) or b == 0:
        return "  n/a"
    return f"{a / b:5.2f}x"


def print_report(
    nab: NabReport | None, synthetic: dict[str, tuple[SyntheticResult, SyntheticResult]]
) -> None:
    line = "-" * 104
    if nab is not None:
        print(line)
        title = "NAB v1.1, normalised (null = 0, perfect = 100)"
        print(f"{title:62s}{'standard':>10s}{'low FP':>10s}{'low FN':>10s}   threshold(s)")
        print(line)
        for row in nab.rows:
            cells = "".join(f"{v:10.1f}" for v in row.scores.values())
            print(f"{row.name:62s}{cells}   {row.note}".rstrip())
        rows = {row.name: row.scores for row in nab.rows}
        ours = rows["DataMind detector, as an alert (12 h cooldown)"]
        tuned = rows["z-score baseline, threshold tuned"]
        same_policy = rows["z-score baseline, tuned, 12 h cooldown"]
        for label, base in (("tuned z-score", tuned), ("z-score with the same cooldown", same_policy)):
            cells = "".join(f"{_ratio(ours[p], base[p]):>10s}" for p in ours)
            print(f"{'ratio: detector as an alert / ' + label:62s}{cells}")
        print("scorer checks (standard, low FP, low FN):")
        for check in nab.checks:
            print(f"  {check}")
    print(line)
    print(
        f"{'Synthetic business metrics (seed ' + str(SEED) + ')':32s}{'':7s}"
        f"{'detector (medium)':>18s}  | {'z-score |z| >= 2':>18s}  | {'ratio':>17s}"
    )
    print(
        f"{'':32s}{'events':>7s}{'recall':>8s}{'precision':>10s}  | {'recall':>8s}{'precision':>10s}"
        f"  | {'recall':>7s}{'precision':>10s}"
    )
    print(line)
    for granularity, (ours_result, base_result) in synthetic.items():
        for kind in EVENT_TYPES:
            a, b = ours_result.tallies[kind], base_result.tallies[kind]
            print(
                f"{granularity + ' ' + kind:32s}{a.events:7d}{a.recall:8.2f}{a.precision:10.2f}  | "
                f"{b.recall:8.2f}{b.precision:10.2f}  | {_ratio(a.recall, b.recall):>7s}"
                f"{_ratio(a.precision, b.precision):>10s}"
            )
        a_rate, b_rate = ours_result.false_alarm_rate, base_result.false_alarm_rate
        print(
            f"{granularity + ' ordinary seasonality':32s}{ours_result.ordinary_points:7d}"
            f"  false alarms per point {a_rate:.4f} (z-score {b_rate:.4f}); clean series with any: "
            f"{ours_result.clean_series_alarmed}/{ours_result.clean_series}"
            f" (z-score {base_result.clean_series_alarmed}/{base_result.clean_series})"
        )
    print(line)


def main() -> int:
    started = time.perf_counter()
    nab = None
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        if NAB_DIR.is_dir():
            nab = run_nab(NAB_DIR, pool)
        else:
            print(f"NAB data not found at {NAB_DIR}: skipping the NAB part (see shared/data/README.md).")
        synthetic = run_synthetic(pool)
    print_report(nab, synthetic)
    print(f"run time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
