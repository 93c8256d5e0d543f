"""The sweep settings the segmentation trainable reads, checked (no torch).

Read from :class:`~smptune.trainable.SweepSettings`:

- ``scoring`` (every metric it names must be one this config reports, see
  :func:`~smptune.training.metrics.metric_names`), ``seed``;
- ``data``: see :mod:`smptune.training.data`;
- ``cv``: ``n_folds`` (default 5), ``fold_method`` (``kfold``), ``validation_fraction``
  (0.2, for ``shuffle``), ``group_column`` (``group``); ``n_randoms`` is the task layer's;
- ``training``: ``max_epochs`` (10), ``early_stopping_patience`` (0 = off), ``precision``
  (``auto``: ``bf16-mixed`` on a GPU that supports it, else ``32-true``), ``num_workers``
  (``auto``: from the worker's share of cores, see
  :func:`smptune.worker.host_share.dataloader_workers`),
  ``save_checkpoints`` (``none`` or ``best``), ``weight_averaging`` (see
  :data:`WEIGHT_AVERAGING`), ``devices_per_trial`` (1; N > 1 trains each fold with
  Lightning DDP over N devices of a worker that owns them, see :mod:`.ddp_launch`);
  ``checkpoint_every`` and ``keep_checkpoints``
  are the task layer's (see :class:`~smptune.trainable.RunCheckpoint`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from smptune.errors import ConfigError
from smptune.search.scoring import Scoring
from smptune.trainable import SweepSettings
from smptune.training.dataspec import DataSpec, data_spec
from smptune.training.metrics import COST_METRICS, metric_names
from smptune.training.refine import POSTPROCESS, TTA

DEFAULT_MAX_EPOCHS = 10
DEFAULT_N_FOLDS = 5
DEFAULT_VALIDATION_FRACTION = 0.2
FOLD_METHODS = ("kfold", "shuffle", "stratified", "group")
CHECKPOINTS = ("none", "best")
#: ``training.weight_averaging``: none; ``ema``, an exponential moving average of the weights
#: over about an epoch of steps; or ``swa``, the equal average of the weights at the end of
#: each of the last third of the epochs (see :mod:`.averaging`). Validation sees the averaged
#: weights once there are any, and every run ends with them (the retrained model too).
WEIGHT_AVERAGING = ("none", "ema", "swa")
#: ``training.loggers``: Lightning's loggers each run writes to (``csv`` by default). The
#: TensorBoard and MLflow ones need their packages (``pip install smptune[tensorboard]``,
#: ``smptune[mlflow]``); see :mod:`.loggers`.
LOGGERS = ("csv", "tensorboard", "mlflow")
#: The loggers that need a package of their own name, installed by the extra of that name.
LOGGER_PACKAGES = ("tensorboard", "mlflow")
CV_KEYS = ("n_folds", "n_randoms", "fold_method", "validation_fraction", "group_column")
TRAINING_KEYS = (
    "max_epochs",
    "early_stopping_patience",
    "precision",
    "num_workers",
    "save_checkpoints",
    "weight_averaging",
    "checkpoint_every",  # the task layer's, as cv.n_randoms
    "keep_checkpoints",
    "loggers",
    "tta",
    "postprocess",
    "devices_per_trial",
)
#: A ``Trainer(precision=...)`` string of Lightning.
TrainerPrecision = Literal[
    "64-true",
    "32-true",
    "16-mixed",
    "bf16-mixed",
    "16-true",
    "bf16-true",
    "64",
    "32",
    "16",
    "bf16",
    "transformer-engine",
    "transformer-engine-float16",
]
#: ``training.precision``: a Lightning precision, or ``auto``.
Precision = Literal["auto", TrainerPrecision]
PRECISIONS: tuple[Precision, ...] = ("auto", *get_args(TrainerPrecision))


@dataclass(frozen=True)
class CvSpec:
    n_folds: int = DEFAULT_N_FOLDS
    method: str = "kfold"
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    group_column: str = "group"


@dataclass(frozen=True)
class RunSettings:
    seed: int
    scoring: Scoring
    data: DataSpec
    cv: CvSpec
    max_epochs: int
    patience: int
    precision: Precision
    num_workers: int | Literal["auto"]
    save_checkpoints: str
    weight_averaging: str = "none"
    loggers: tuple[str, ...] = ("csv",)
    tta: str = "none"  # the final evaluation's, reported beside the plain figures
    postprocess: str = "none"
    #: processes (devices) of one fold's DDP run; 1: one device, in the worker's pool child
    devices_per_trial: int = 1

    @property
    def n_folds(self) -> int:
        return self.cv.n_folds

    @property
    def metrics(self) -> tuple[str, ...]:
        return metric_names(self.data.classes)


def _choice(training: Mapping[str, object], key: str, choices: tuple[str, ...]) -> str:
    """``training[key]``, one of ``choices`` (``none``, the first, when unset, null or
    false)."""
    value = training.get(key, choices[0])
    if value is None or value is False:
        value = choices[0]
    if value not in choices:
        raise ConfigError(f"training.{key}: must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _loggers(value: Any) -> tuple[str, ...]:
    """``training.loggers``: a name or a list of names from :data:`LOGGERS`, each once, whose
    package is installed."""
    import importlib.util

    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        choices = ", ".join(LOGGERS)
        raise ConfigError(f"training.loggers: must be a list of {choices}, got {value!r}")
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(
                f"training.loggers: {name!r} is not a logger; choose from {', '.join(LOGGERS)}"
            )
        if name in LOGGER_PACKAGES and importlib.util.find_spec(name) is None:
            raise ConfigError(
                f"training.loggers: {name} needs the {name} package (pip install 'smptune[{name}]')"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"training.loggers: each logger once, got {list(names)}")
    return tuple(names)


def _num_workers(value: Any) -> int | Literal["auto"]:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"training.num_workers: must be auto or an integer >= 0, got {value!r}")
    return value


def _int(key: str, value: Any, low: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}: must be an integer >= {low}, got {value!r}")
    return value


def _unknown(section: str, values: Mapping[str, object], known: tuple[str, ...]) -> None:
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}: unknown setting; known: {', '.join(known)}")


def cv_spec(cv: Mapping[str, object] | None) -> CvSpec:
    cv = dict(cv or {})
    _unknown("cv", cv, CV_KEYS)
    method = cv.get("fold_method", "kfold")
    if not isinstance(method, str) or method not in FOLD_METHODS:
        raise ConfigError(
            f"cv.fold_method: must be one of {', '.join(FOLD_METHODS)}, got {method!r}"
        )
    fraction = cv.get("validation_fraction", DEFAULT_VALIDATION_FRACTION)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(
            f"cv.validation_fraction: must be a number between 0 and 1 (exclusive), "
            f"got {fraction!r}"
        )
    column = cv.get("group_column", "group")
    if not isinstance(column, str) or not column.strip() or column.strip() == "name":
        raise ConfigError(f"cv.group_column: expected a metadata column name, got {column!r}")
    return CvSpec(
        n_folds=_int("cv.n_folds", cv.get("n_folds", DEFAULT_N_FOLDS), 2),
        method=method,
        validation_fraction=float(fraction),
        group_column=column.strip(),
    )


def run_settings(settings: SweepSettings) -> RunSettings:
    scoring = settings.scoring
    assert scoring is not None  # SweepSettings fills it in
    if settings.mode not in ("max", "min"):
        raise ConfigError(f"mode: must be 'max' or 'min', got {settings.mode!r}")
    seed = _int("seed", settings.seed, 0)
    data = data_spec(settings.data)
    reported = metric_names(data.classes)
    missing = [name for name in scoring.names if name not in reported]
    unknown = [n for n in settings.objectives if n not in reported and n not in COST_METRICS]
    if unknown:
        raise ConfigError(
            f"metrics: {unknown[0]!r} is not a metric of the segmentation trainable; it "
            f"reports {', '.join(reported + COST_METRICS)}"
        )
    if missing:
        kind = "binary" if data.classes == 1 else f"{data.classes}-class"
        raise ConfigError(
            f"metric: {missing[0]!r} is not a metric of the segmentation trainable; for "
            f"{kind} data it reports {', '.join(reported)}"
        )
    training = dict(settings.training or {})
    _unknown("training", training, TRAINING_KEYS)
    precision = training.get("precision", "auto")
    if isinstance(precision, int) and not isinstance(precision, bool):
        precision = str(precision)
    if precision not in PRECISIONS:
        raise ConfigError(
            f"training.precision: must be one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    checkpoints = _choice(training, "save_checkpoints", CHECKPOINTS)
    averaging = _choice(training, "weight_averaging", WEIGHT_AVERAGING)
    return RunSettings(
        seed=seed,
        scoring=scoring,
        data=data,
        cv=cv_spec(settings.cv),
        max_epochs=_int("training.max_epochs", training.get("max_epochs", DEFAULT_MAX_EPOCHS), 1),
        patience=_int(
            "training.early_stopping_patience", training.get("early_stopping_patience", 0), 0
        ),
        precision=precision,
        num_workers=_num_workers(training.get("num_workers", "auto")),
        save_checkpoints=checkpoints,
        weight_averaging=averaging,
        loggers=_loggers(training.get("loggers", ["csv"])),
        tta=_choice(training, "tta", TTA),
        postprocess=_choice(training, "postprocess", POSTPROCESS),
        devices_per_trial=_int(
            "training.devices_per_trial", training.get("devices_per_trial", 1), 1
        ),
    )
