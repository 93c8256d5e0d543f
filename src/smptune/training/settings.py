"""The sweep settings the segmentation trainable reads, checked (no torch).

Read from :class:`~smptune.trainable.SweepSettings`:

- ``metric`` (one of :data:`~smptune.training.metrics.METRICS`), ``mode`` (``max``/``min``),
  ``seed``;
- ``data``: see :mod:`smptune.training.data`;
- ``cv.n_folds`` (default 5);
- ``training``: ``max_epochs`` (default 10), ``early_stopping_patience`` (default 0 = off),
  ``precision`` (default ``"32-true"``), ``num_workers`` (default 0). Other keys are left to
  the task layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smptune.errors import ConfigError
from smptune.trainable import SweepSettings
from smptune.training.data import DataSpec, data_spec
from smptune.training.metrics import METRICS

DEFAULT_MAX_EPOCHS = 10
DEFAULT_N_FOLDS = 5
PRECISIONS = (
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
)


@dataclass(frozen=True)
class RunSettings:
    seed: int
    metric: str
    mode: str
    data: DataSpec
    n_folds: int
    max_epochs: int
    patience: int
    precision: str
    num_workers: int


def _int(key: str, value: Any, low: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}: must be an integer >= {low}, got {value!r}")
    return value


def run_settings(settings: SweepSettings) -> RunSettings:
    if settings.metric not in METRICS:
        raise ConfigError(
            f"metric: the segmentation trainable reports {', '.join(METRICS)}; "
            f"got {settings.metric!r}"
        )
    if settings.mode not in ("max", "min"):
        raise ConfigError(f"mode: must be 'max' or 'min', got {settings.mode!r}")
    seed = _int("seed", settings.seed, 0)
    training = settings.training or {}
    precision = training.get("precision", "32-true")
    if isinstance(precision, int) and not isinstance(precision, bool):
        precision = str(precision)
    if precision not in PRECISIONS:
        raise ConfigError(
            f"training.precision: must be one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    return RunSettings(
        seed=seed,
        metric=settings.metric,
        mode=settings.mode,
        data=data_spec(settings.data),
        n_folds=_int("cv.n_folds", (settings.cv or {}).get("n_folds", DEFAULT_N_FOLDS), 2),
        max_epochs=_int("training.max_epochs", training.get("max_epochs", DEFAULT_MAX_EPOCHS), 1),
        patience=_int(
            "training.early_stopping_patience", training.get("early_stopping_patience", 0), 0
        ),
        precision=precision,
        num_workers=_int("training.num_workers", training.get("num_workers", 0), 0),
    )
