"""The Numenta Anomaly Benchmark (NAB v1.1) corpus and scorer, without NAB's code.

The scoring follows NAB's ``sweeper.py`` (the v1.1 scorer and threshold optimiser):

- every file loses its first 15% of rows (at most 750) to the probation period; no
  detection there counts for or against the detector;
- each labelled window is worth ``-A_FN`` when it holds no detection; otherwise its first
  (earliest) detection earns ``A_TP * sigmoid(position) / sigmoid(-1)``, where position runs
  from -1 at the left edge to about 0 at the right edge, so an early detection earns ~A_TP
  and one at the very end almost nothing;
- a detection outside every window costs ``A_FP * scaled_sigmoid(distance past the previous
  window)``: -A_FP when far from (or before) any window, less right after a window ends;
- the threshold is chosen per profile by sweeping every distinct anomaly score over the
  whole corpus at once (NAB's optimiser), and the raw total is normalised so that the null
  detector scores 0 and a perfect one (every window caught at its left edge) 100.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROBATION_PERCENT = 0.15


@dataclass(frozen=True)
class CostMatrix:
    tp: float
    fp: float
    fn: float


@dataclass(frozen=True)
class NabFile:
    name: str
    timestamps: np.ndarray  # datetime64[s]
    values: np.ndarray
    windows: tuple[tuple[int, int], ...]  # inclusive row indices

    @property
    def probation(self) -> int:
        n = len(self.values)
        return int(min(math.floor(PROBATION_PERCENT * n), PROBATION_PERCENT * 5000))


@dataclass(frozen=True)
class Sweep:
    """Raw NAB totals for every distinct threshold, highest threshold first."""

    thresholds: np.ndarray
    totals: np.ndarray

    def best(self) -> tuple[float, float]:
        i = int(np.argmax(self.totals))
        return float(self.thresholds[i]), float(self.totals[i])


def _parse_times(texts: Sequence[str]) -> np.ndarray:
    return np.array([t[:19] for t in texts], dtype="datetime64[s]")


def load_corpus(root: Path) -> list[NabFile]:
    """Read every labelled file of the corpus, with its windows as row indices."""
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    files = []
    for name in sorted(labels):
        rows = (root / "data" / name).read_text().strip().splitlines()[1:]
        stamps, values = zip(*(row.split(",") for row in rows), strict=True)
        timestamps = _parse_times(stamps)
        windows = []
        for start, end in labels[name]:
            left, right = np.searchsorted(timestamps, _parse_times([start, end]))
            # NAB enters a window only on an exact timestamp match; check we do the same.
            assert timestamps[left] == _parse_times([start])[0], (name, start)
            assert timestamps[right] == _parse_times([end])[0], (name, end)
            windows.append((int(left), int(right)))
        files.append(NabFile(name, timestamps, np.array(values, dtype=float), tuple(windows)))
    return files


def load_profiles(root: Path) -> dict[str, CostMatrix]:
    profiles = json.loads((root / "config" / "profiles.json").read_text())
    return {
        name: CostMatrix(
            tp=p["CostMatrix"]["tpWeight"], fp=p["CostMatrix"]["fpWeight"], fn=p["CostMatrix"]["fnWeight"]
        )
        for name, p in profiles.items()
    }


def scaled_sigmoid(position: np.ndarray) -> np.ndarray:
    """NAB's reward curve: ~+1 at a window's left edge, 0 at its right edge, -1 far past it."""
    out = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position >= 3.0, -1.0, out)


def _point_weights(nab_file: NabFile, cost: CostMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Per-row sweep score (what a detection there is worth) and window id (-1 outside)."""
    n = len(nab_file.values)
    index = np.arange(n, dtype=float)
    weight = np.full(n, -cost.fp)  # before any window: scaled_sigmoid(3.0) * A_FP
    window_id = np.full(n, -1)
    max_tp = float(scaled_sigmoid(np.array(-1.0)))
    bounds = [*nab_file.windows, (n, n)]
    for k, (left, right) in enumerate(nab_file.windows):
        width = right - left + 1
        inside = slice(left, right + 1)
        weight[inside] = scaled_sigmoid(-(right - index[inside] + 1) / width) * cost.tp / max_tp
        window_id[inside] = k
        after = slice(right + 1, bounds[k + 1][0])
        weight[after] = scaled_sigmoid(np.abs(right - index[after]) / (width - 1)) * cost.fp
    return weight, window_id


def sweep(files: Sequence[NabFile], scores: Sequence[np.ndarray], cost: CostMatrix) -> Sweep:
    """NAB's threshold sweep over the whole corpus: the raw score at every distinct threshold.

    A row is a detection at threshold θ when its anomaly score is >= θ. Rows are visited
    from the highest score down; a false positive adds its (negative) weight, a window keeps
    the best weight among its detected rows (its earliest detection), starting from -A_FN.
    """
    all_scores, all_weights, all_windows = [], [], []
    n_windows = 0
    for nab_file, file_scores in zip(files, scores, strict=True):
        weight, window_id = _point_weights(nab_file, cost)
        keep = slice(nab_file.probation, None)
        all_scores.append(np.asarray(file_scores, dtype=float)[keep])
        all_weights.append(weight[keep])
        ids = window_id[keep]
        all_windows.append(np.where(ids >= 0, ids + n_windows, -1))
        n_windows += len(nab_file.windows)
    score = np.concatenate(all_scores)
    weight = np.concatenate(all_weights)
    window = np.concatenate(all_windows)

    order = np.argsort(-score, kind="stable")
    score, weight, window = score[order], weight[order], window[order]

    delta = np.where(window < 0, weight, 0.0)
    scorable = np.unique(window[window >= 0])
    for w in scorable:
        rows = np.flatnonzero(window == w)
        best = np.maximum(np.maximum.accumulate(weight[rows]), -cost.fn)
        delta[rows] = np.diff(best, prepend=-cost.fn)
    totals = -cost.fn * len(scorable) + np.cumsum(delta)

    # The total at threshold θ is the one after the last row whose score equals θ.
    last_of_tie = np.flatnonzero(np.diff(score, append=-np.inf) != 0)
    thresholds = np.concatenate([[np.inf], score[last_of_tie]])
    totals = np.concatenate([[-cost.fn * len(scorable)], totals[last_of_tie]])
    return Sweep(thresholds, totals)


def null_and_perfect(files: Sequence[NabFile], cost: CostMatrix) -> tuple[float, float]:
    """NAB's normalisation anchors: the null detector's raw score and the perfect one's."""
    scorable = sum(1 for f in files for _, right in f.windows if right >= f.probation)
    total = sum(len(f.windows) for f in files)
    return -cost.fn * scorable, cost.tp * total


def normalise(raw: float, files: Sequence[NabFile], cost: CostMatrix) -> float:
    null, perfect = null_and_perfect(files, cost)
    return 100.0 * (raw - null) / (perfect - null)


def nab_score(
    files: Sequence[NabFile], scores: Sequence[np.ndarray], cost: CostMatrix
) -> tuple[float, float]:
    """(normalised score, threshold) with the threshold tuned for this profile."""
    threshold, raw = sweep(files, scores, cost).best()
    return normalise(raw, files, cost), threshold


def nab_score_at(
    files: Sequence[NabFile], scores: Sequence[np.ndarray], cost: CostMatrix, threshold: float
) -> float:
    """Normalised score at a fixed threshold (detection when score >= threshold)."""
    result = sweep(files, scores, cost)
    # Thresholds run high to low; the matching row is the last one still >= threshold.
    i = int(np.searchsorted(-result.thresholds, -threshold, side="right")) - 1
    return normalise(float(result.totals[max(i, 0)]), files, cost)


class DetectionScorer:
    """Scores sets of binary detections fast, for sweeping an alert policy over a threshold grid.

    Equivalent to :func:`sweep` on 0/1 scores at threshold 1, without re-sorting the corpus.
    """

    def __init__(self, files: Sequence[NabFile], cost: CostMatrix) -> None:
        self.files = files
        self.cost = cost
        self._weights = [_point_weights(f, cost) for f in files]
        self._scorable = sum(1 for f in files for _, right in f.windows if right >= f.probation)

    def raw(self, detections: Sequence[np.ndarray]) -> float:
        """Raw NAB total for detections given as row indices per file."""
        total = -self.cost.fn * self._scorable
        for nab_file, (weight, window_id), rows in zip(self.files, self._weights, detections, strict=True):
            rows = np.asarray(rows, dtype=int)
            rows = rows[rows >= nab_file.probation]
            outside = window_id[rows] < 0
            total += float(weight[rows[outside]].sum())
            for w in np.unique(window_id[rows[~outside]]):
                # Only a window's earliest detection counts; it replaces the window's -A_FN.
                total += max(float(weight[rows[window_id[rows] == w]].max()), -self.cost.fn) + self.cost.fn
        return total

    def score(self, detections: Sequence[np.ndarray]) -> float:
        return normalise(self.raw(detections), self.files, self.cost)
