"""Scores and the ranking.

A run (one fold with one seed) scores its metrics at its best epoch. With one metric the
run's score is that metric; with several they are combined per run first (harmonic,
arithmetic, geometric or min; a ``:lower`` metric enters as ``1/v``), and the combined score
is higher-is-better. A trial's score is the mean of its runs' scores.

A run whose combined metrics hold NaN, ±inf (or, when combining, 0) is *unstable*; a trial
with an unstable run ranks below every stable one and is flagged.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from smptune.errors import ConfigError
from smptune.records import RunResults, TrialRecord, TrialStatus

COMBINES = ("harmonic", "arithmetic", "geometric", "min")


class ScoringDict(TypedDict):
    """:meth:`Scoring.to_dict`: results.json's ``scoring``."""

    metrics: list[str]
    combine: str


@dataclass(frozen=True)
class MetricSpec:
    """One scoring metric and its direction."""

    name: str
    higher: bool = True

    @classmethod
    def parse(cls, text: Any, where: str = "metric") -> MetricSpec:
        """``"iou"``, ``"iou:higher"`` or ``"loss:lower"``."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{where}: must be a metric name, got {text!r}")
        name, sep, direction = text.strip().partition(":")
        name = name.strip()
        if not name:
            raise ConfigError(f"{where}: {text!r} names no metric")
        if not sep:
            return cls(name)
        direction = direction.strip().lower()
        if direction not in ("higher", "lower"):
            raise ConfigError(
                f"{where}: {text!r} has suffix {direction!r}; use ':higher' or ':lower'"
            )
        return cls(name, direction == "higher")

    def label(self) -> str:
        return self.name if self.higher else f"{self.name}:lower"


@dataclass(frozen=True)
class Scoring:
    """How a run's metrics become one score; JSON round-trip with :meth:`to_dict`."""

    metrics: tuple[MetricSpec, ...]
    combine: str = "harmonic"

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ConfigError("metric: name at least one metric")
        names = [m.name for m in self.metrics]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ConfigError(f"metric: {duplicate!r} is named twice")
        if self.combine not in COMBINES:
            raise ConfigError(
                f"combine: must be one of {', '.join(COMBINES)}, got {self.combine!r}"
            )

    @classmethod
    def from_config(cls, metric: Any, mode: Any = None, combine: Any = None) -> Scoring:
        """Read the config's ``metric`` (a name or a list), ``mode`` and ``combine``."""
        if isinstance(metric, (list, tuple)):
            specs = tuple(MetricSpec.parse(m, f"metric[{i}]") for i, m in enumerate(metric))
        else:
            specs = (MetricSpec.parse(metric),)
        if mode is not None and mode not in ("max", "min"):
            raise ConfigError(f"mode: must be 'max' or 'min', got {mode!r}")
        if len(specs) == 1:
            text = metric[0] if isinstance(metric, (list, tuple)) else metric
            suffixed = ":" in str(text)
            if mode == "min" and suffixed and specs[0].higher:
                raise ConfigError(f"mode: 'min' conflicts with metric {text!r}")
            if mode == "max" and suffixed and not specs[0].higher:
                raise ConfigError(f"mode: 'max' conflicts with metric {text!r}")
            if mode == "min" and not suffixed:
                specs = (MetricSpec(specs[0].name, higher=False),)
        elif mode == "min":
            raise ConfigError(
                "mode: several metrics combine into one higher-is-better score; mark the "
                "metrics where lower is better with ':lower' instead of mode: min"
            )
        if combine is None:
            combine = "harmonic"
        if not isinstance(combine, str):
            raise ConfigError(f"combine: must be one of {', '.join(COMBINES)}, got {combine!r}")
        return cls(specs, combine.strip().lower())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    @property
    def combined(self) -> bool:
        return len(self.metrics) > 1

    @property
    def mode(self) -> Literal["max", "min"]:
        """Direction of :meth:`run_score`: a single metric's own, else ``max``."""
        if not self.combined and not self.metrics[0].higher:
            return "min"
        return "max"

    @property
    def label(self) -> str:
        """``iou`` for one metric, ``harmonic(iou, 1/loss)`` for several."""
        if not self.combined:
            return self.metrics[0].name
        parts = [m.name if m.higher else f"1/{m.name}" for m in self.metrics]
        return f"{self.combine}({', '.join(parts)})"

    def _values(self, metrics: Mapping[str, float]) -> list[float]:
        try:
            return [float(metrics[m.name]) for m in self.metrics]
        except KeyError as exc:
            raise ConfigError(
                f"metric: {exc.args[0]!r} is not among the reported metrics ({', '.join(metrics)})"
            ) from None

    def is_stable(self, metrics: Mapping[str, float]) -> bool:
        """False for NaN or ±inf among the scoring metrics, or 0 where they combine."""
        values = self._values(metrics)
        if not all(math.isfinite(v) for v in values):
            return False
        return not (self.combined and any(v == 0.0 for v in values))

    def run_score(self, metrics: Mapping[str, float]) -> float:
        """The run's score (NaN when unstable); compare with :attr:`mode`."""
        values = self._values(metrics)
        if not self.is_stable(metrics):
            return math.nan
        if not self.combined:
            return values[0]
        terms = [v if m.higher else 1.0 / v for v, m in zip(values, self.metrics, strict=True)]
        if self.combine == "arithmetic":
            return sum(terms) / len(terms)
        if self.combine == "min":
            return min(terms)
        if self.combine == "geometric":
            if any(t < 0 for t in terms):
                return math.nan
            return math.exp(sum(math.log(t) for t in terms) / len(terms))
        return len(terms) / sum(1.0 / t for t in terms)

    def best_index(self, history: Sequence[Mapping[str, float]]) -> int:
        """0-based index of the best epoch of ``history`` (the first among equals; an
        unstable epoch is never preferred to a stable one)."""
        if not history:
            raise ValueError("no epoch was evaluated")
        sign = 1.0 if self.mode == "max" else -1.0
        best, best_key = 0, (False, -math.inf)
        for i, entry in enumerate(history):
            score = self.run_score(entry)
            key = (not math.isnan(score), sign * score if not math.isnan(score) else -math.inf)
            if key > best_key:
                best, best_key = i, key
        return best

    def to_dict(self) -> ScoringDict:
        return {"metrics": [m.label() for m in self.metrics], "combine": self.combine}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Scoring:
        """Read :meth:`to_dict`'s JSON back (``combine`` defaults to harmonic)."""
        metrics, combine = data["metrics"], data.get("combine", "harmonic")
        if not isinstance(metrics, Iterable):
            raise ConfigError(f"metric: must be a name or a list of names, got {metrics!r}")
        if not isinstance(combine, str):
            raise ConfigError(f"combine: must be one of {', '.join(COMBINES)}, got {combine!r}")
        return cls(tuple(MetricSpec.parse(m) for m in metrics), combine)


def run_index(fold: int, repeat: int, n_repeats: int) -> int:
    """The key of a run (fold ``fold``, seed ``repeat``) in a trial's run records."""
    return fold * n_repeats + repeat


def run_scores(runs: RunResults, scoring: Scoring) -> list[float]:
    """The score of each run, in run order (NaN for an unstable run)."""
    return [scoring.run_score(runs[k]["metrics"]) for k in sorted(runs)]


def scores_by_run(runs: Iterable[int], scores: Sequence[float]) -> dict[int, float]:
    """Run index -> score, from a trial's recorded run indices and :func:`run_scores` of
    them (results.json's ``folds`` and ``fold_scores``)."""
    indices = sorted(int(k) for k in runs)
    return {r: float(s) for r, s in zip(indices, scores, strict=False)}


def direction(mode: str | None) -> Literal["minimize", "maximize"]:
    """Optuna's name for a sweep's ``mode`` (max for combined metrics)."""
    return "minimize" if mode == "min" else "maximize"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def trial_score(runs: RunResults, scoring: Scoring) -> tuple[float | None, float | None, bool]:
    """``(mean, std, unstable)`` over the runs; the mean and std leave unstable runs out."""
    scores = run_scores(runs, scoring)
    stable = [s for s in scores if not math.isnan(s)]
    unstable = len(stable) < len(scores)
    if not stable:
        return None, None, unstable
    mean, std = mean_std(stable)
    return mean, std, unstable


def may_be_best(t: TrialRecord) -> bool:
    """Whether ``t`` may be the sweep's answer: complete and stable, or, only while no trial
    is complete, stopped (time budget, preemption, cancel) after a complete run. A pruned
    trial never is: a pruner judged it worse on part of its cross-validation."""
    tier = rank_tier(t)
    return tier == 0 or (tier == 1 and t.status is TrialStatus.STOPPED)


def rank_tier(t: TrialRecord) -> int:
    """0: complete and stable; 1: pruned or stopped after a complete run (a partial score);
    2: flagged ``unstable``; 3: stopped inside its first run (scored by that run's epochs);
    4: no score (failed, cancelled, skipped)."""
    if not t.status.scored or t.score is None or not math.isfinite(t.score):
        return 4
    if t.unstable:
        return 2
    if t.status is TrialStatus.COMPLETE:
        return 0
    return 1 if t.folds else 3


def rank_trials(trials: Iterable[TrialRecord], mode: str) -> list[TrialRecord]:
    """Trials best first by :func:`rank_tier`, then how far a partial one trained (runs,
    then epochs), then score, then number (the first has rank 1)."""
    sign = -1.0 if mode == "max" else 1.0

    def key(t: TrialRecord) -> tuple[int, int, int, float, int]:
        tier = rank_tier(t)
        runs, epochs = t.progress if tier in (1, 3) else (0, 0)
        score = sign * t.score if tier < 4 and t.score is not None else 0.0
        return (tier, -runs, -epochs, score, t.trial)

    return sorted(trials, key=key)


#: How ``retrain_epochs`` turns the runs' best epochs into the retrain's epoch count.
RETRAIN_EPOCHS = ("mean", "median", "max")


def best_epochs(folds: RunResults, rule: str) -> int:
    """Epochs for retrain-and-test: the runs' best epochs' rounded mean, median or max (see
    :data:`RETRAIN_EPOCHS`), at least 1."""
    epochs = sorted(int(f["best_epoch"]) for f in folds.values())
    if not epochs:
        return 1
    if rule == "max":
        return epochs[-1]
    if rule == "median":
        return max(1, round(statistics.median(epochs)))
    return max(1, round(sum(epochs) / len(epochs)))


@dataclass(frozen=True)
class CvAtEpochs:
    """The best trial's runs after the retrain's epoch count (:func:`score_at_epoch`)."""

    epochs: int
    score: float
    std: float
    per_run: Mapping[int, float]

    def to_dict(self) -> dict[str, object]:
        return {
            "epochs": self.epochs,
            "score": self.score,
            "std": self.std,
            "per_run": dict(self.per_run),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CvAtEpochs:
        per_run = {int(k): float(v) for k, v in (data.get("per_run") or {}).items()}
        return cls(int(data["epochs"]), float(data["score"]), float(data["std"]), per_run)


def score_at_epoch(curves: Mapping[int, Sequence[float]], epochs: int) -> CvAtEpochs | None:
    """Each run's validation score after ``epochs`` epochs (its last, for a run that stopped
    sooner) and their mean: what the folds say of a model trained that long, as the retrain
    is, rather than of each run at its best epoch. None without epoch curves."""
    per_run = {
        run: float(curve[min(epochs, len(curve)) - 1]) for run, curve in curves.items() if curve
    }
    finite = [v for v in per_run.values() if math.isfinite(v)]
    if not finite:
        return None
    mean, std = mean_std(finite)
    return CvAtEpochs(epochs, mean, std, per_run)


def retrain_floor(at_epochs: CvAtEpochs | None, mode: str) -> float | None:
    """The least a retrained model should score on the test split: the CV after its epochs
    (``at_epochs``) less twice the runs' spread there (``min`` metrics: plus). None without
    epoch curves."""
    if at_epochs is None:
        return None
    sign = -1.0 if mode == "max" else 1.0
    floor = at_epochs.score + sign * 2.0 * at_epochs.std
    return floor if math.isfinite(floor) else None


def cv_versus_test(
    test_metrics: Mapping[str, float],
    scoring: Scoring,
    cv: float | None,
    at_epochs: CvAtEpochs | None,
) -> tuple[float, float | None, float] | None:
    """``(CV at best epochs, CV at the final model's epochs or None, test)`` on the sweep's
    score (``cv``: the best trial's), or None when one of them is missing."""
    if cv is None or not math.isfinite(cv):
        return None
    test = scoring.run_score(test_metrics)
    if not math.isfinite(test):
        return None
    at = None if at_epochs is None or not math.isfinite(at_epochs.score) else at_epochs.score
    return float(cv), at, test
