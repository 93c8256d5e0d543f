"""The contract between the task layer and the code that trains a configuration.

The task layer knows nothing of segmentation: it resolves a :class:`Trainable` by its
``package.module:object`` name, asks it to train one fold at a time, and stores what it
returns. Built-in trainables are listed in :data:`BUILTIN_TRAINABLES`; workers refuse any
other name unless it was allowed with ``workers start --allow-trainable``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from smptune.errors import ConfigError, TrialError
from smptune.params import ParamsView
from smptune.search.scoring import Scoring

__all__ = [
    "ALLOWED_TRAINABLES_ENV",
    "BUILTIN_TRAINABLES",
    "DATA_ROOT_ENV",
    "LATENCY_TRAINABLE",
    "LEARNING_CURVE_TRAINABLE",
    "MEMORY_BOUND_TRAINABLE",
    "PRELOAD_ENV",
    "PRELOAD_MODULES",
    "QUADRATIC_TRAINABLE",
    "RECORDED_CURVES_TRAINABLE",
    "SEGMENTATION_TRAINABLE",
    "FoldContext",
    "FoldResult",
    "RunCheckpoint",
    "RunLost",
    "SweepSettings",
    "Trainable",
    "allowed_trainables",
    "data_root_base",
    "fold_model_dirs",
    "load_trainable",
]

SEGMENTATION_TRAINABLE = "smptune.training:SegmentationTrainable"
QUADRATIC_TRAINABLE = "smptune.fakes:QuadraticTrainable"
LEARNING_CURVE_TRAINABLE = "smptune.fakes:LearningCurveTrainable"
RECORDED_CURVES_TRAINABLE = "smptune.fakes:RecordedCurvesTrainable"
MEMORY_BOUND_TRAINABLE = "smptune.fakes:MemoryBoundTrainable"
LATENCY_TRAINABLE = "smptune.fakes:LatencyTrainable"
BUILTIN_TRAINABLES: tuple[str, ...] = (
    SEGMENTATION_TRAINABLE,
    QUADRATIC_TRAINABLE,
    LEARNING_CURVE_TRAINABLE,
    RECORDED_CURVES_TRAINABLE,
    MEMORY_BOUND_TRAINABLE,
    LATENCY_TRAINABLE,
)
#: Comma-separated trainables a worker runs beyond the built-ins (``--allow-trainable``).
ALLOWED_TRAINABLES_ENV = "SMPTUNE_ALLOWED_TRAINABLES"
#: Comma-separated modules a worker imports before forking its pool child (``--preload``).
PRELOAD_ENV = "SMPTUNE_PRELOAD"
#: What ``--preload`` imports: the segmentation trainable's engine (torch, Lightning, smp).
PRELOAD_MODULES = "smptune.training.engine"
#: The folder below which a relative ``data.root`` is read, on the machine that reads it.
DATA_ROOT_ENV = "SMPTUNE_DATA_ROOT"


def data_root_base() -> Path | None:
    """``$SMPTUNE_DATA_ROOT`` of this machine, when set: relative data roots live below it."""
    base = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(base).expanduser() if base else None


def fold_model_dirs(trial_dir: Path) -> list[Path]:
    """The best-epoch models a trial's runs saved for the fold ensemble (with
    ``SweepSettings.fold_models``): ``<trial_dir>/logs/fold_<k>_seed_<r>/best_model``."""
    return sorted(p for p in trial_dir.glob("logs/fold_*_seed_*/best_model") if p.is_dir())


def allowed_trainables() -> list[str]:
    """Trainables this worker process accepts beyond the built-ins."""
    return [name for name in os.environ.get(ALLOWED_TRAINABLES_ENV, "").split(",") if name]


@dataclass
class SweepSettings:
    """The parts of a sweep config a trainable needs, as plain JSON-able mappings.

    ``scoring`` says how a run's metrics become its score: a trainable picks each run's best
    epoch with ``scoring.best_index(history)`` and must report every ``scoring.names``.
    ``metric`` and ``mode`` are the first scoring metric and :attr:`Scoring.mode`.
    ``objectives``: the metrics of a multi-objective sweep, each to report too.
    ``fold_models``: each run saves its best epoch's model (``logs/<run>/best_model`` under
    its output folder) for the final fold ensemble.
    """

    seed: int
    metric: str
    mode: str
    data: dict[str, Any] = field(default_factory=dict)
    cv: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    scoring: Scoring | None = None
    fold_models: bool = False
    #: The metrics a multi-objective sweep searches (``metrics:``); a trainable reports
    #: each (the built-in one measures ``latency_ms`` and ``param_count`` when named).
    objectives: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.scoring is None:
            self.scoring = Scoring.from_config(self.metric, self.mode)


class RunLost(TrialError):
    """A run's training processes were lost (one rank of a DDP run killed, or gone): the task
    layer records nothing for the run and lets the trial be recovered as a lost worker's is
    (its lease released, the reaper queues it again, the next start counts an attempt)."""


def _ignore_report(epoch: int, metrics: Mapping[str, float]) -> None:
    """What :attr:`FoldContext.report` does outside a trial (the final retrain)."""


def _never(epoch: int) -> bool:
    return False


def _ignore_saved(epoch: int) -> None:
    """What :attr:`RunCheckpoint.saved` does when nothing records checkpoints."""


@dataclass
class RunCheckpoint:
    """Where one run keeps its last training checkpoint, so that it can continue on another
    machine after its worker is lost or preempted.

    A trainable that trains in epochs resumes from the file at ``path`` when
    ``resume_epoch`` is above 0 (that file holds the run after that epoch, written by the
    same trainable). After reporting each epoch it asks ``due(epoch)`` and, when due, writes
    its state to ``path`` (whole, replacing the last: write elsewhere, then rename) and calls
    ``saved(epoch)``; the task layer decides when a save is due (every ``checkpoint_every``
    epochs, and before the run stops for preemption, cancel or the time budget) and removes
    the file once the run is recorded.
    """

    path: Path
    resume_epoch: int = 0
    due: Callable[[int], bool] = _never
    saved: Callable[[int], None] = _ignore_saved


@dataclass
class FoldContext:
    """Where and how one run (fold ``fold`` with seed number ``repeat``) or the final
    retrain (``fold == -1``) runs.

    A trainable that trains in epochs calls ``report(epoch, metrics)`` after validating each
    epoch (1-based, the metrics it reports) and, when ``should_stop()`` then says so, ends the
    run at that epoch boundary and returns the result of the epochs it ran. That is how
    pruning inside a run (``asha``, ``hyperband``, ``median`` with ``at: epoch``), cancel and
    the time budget stop a fold between epochs; a trainable that does neither is stopped
    between runs only. ``checkpoint``, when set, is where the run saves and resumes its
    training state (see :class:`RunCheckpoint`).
    """

    sweep_id: str
    trial: int
    fold: int
    n_folds: int
    settings: SweepSettings
    output_dir: Path | None = None
    should_stop: Callable[[], bool] = lambda: False
    report: Callable[[int, Mapping[str, float]], None] = _ignore_report
    repeat: int = 0
    n_repeats: int = 1
    checkpoint: RunCheckpoint | None = None

    @property
    def run_seed(self) -> int:
        """The seed of this run's training randomness (the fold split uses the sweep seed)."""
        return self.settings.seed + max(self.fold, 0) + 7919 * self.repeat


@dataclass
class FoldResult:
    """Validation metrics of one fold, taken at its best epoch (1-based)."""

    metrics: dict[str, float]
    best_epoch: int
    epochs_run: int
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "metrics": dict(self.metrics),
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "duration_s": self.duration_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FoldResult:
        return cls(
            metrics={k: float(v) for k, v in data["metrics"].items()},
            best_epoch=int(data["best_epoch"]),
            epochs_run=int(data["epochs_run"]),
            duration_s=float(data.get("duration_s", 0.0)),
        )


@runtime_checkable
class Trainable(Protocol):
    """What ``cv_trial`` and ``retrain_and_test`` call.

    ``defaults`` names every hyperparameter the trainable accepts with its default value;
    the config may only name these. ``validate`` raises :class:`ConfigError` naming the key
    for values the trainable cannot use (checked by the producer before anything is sent).
    """

    defaults: ParamsView
    metrics: tuple[str, ...]

    def validate(self, params: ParamsView, settings: SweepSettings) -> None: ...

    def train_fold(self, params: ParamsView, context: FoldContext) -> FoldResult: ...

    def retrain_and_test(
        self, params: ParamsView, epochs: int, context: FoldContext
    ) -> dict[str, float]: ...


def load_trainable(spec: str, allowed: Iterable[str] | None = None) -> Trainable:
    """Import ``package.module:object`` and return a trainable instance.

    With ``allowed`` given, a name outside it (and outside the built-ins) raises
    :class:`TrialError` before anything is imported.
    """
    if allowed is not None and spec not in set(BUILTIN_TRAINABLES) | set(allowed):
        raise TrialError(
            f"trainable {spec!r} is not allowed on this worker "
            f"(start the workers with --allow-trainable {spec})"
        )
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"trainable: {spec!r} is not of the form 'package.module:object'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"trainable: cannot import module {module_name!r} ({exc})") from exc
    obj = getattr(module, attr, None)
    if obj is None:
        raise ConfigError(f"trainable: module {module_name!r} has no attribute {attr!r}")
    instance = obj() if isinstance(obj, type) else obj
    if not isinstance(instance, Trainable):
        raise ConfigError(
            f"trainable: {spec!r} is not a trainable (it needs defaults, metrics, validate, "
            "train_fold and retrain_and_test)"
        )
    return instance
