"""Lightning's loggers for one run (``training.loggers``), each given the run's
hyperparameters and grouped by sweep, trial and run.

Where they write, for a trial's run ``fold_F_seed_S`` (and ``retrain`` for the final model):

- ``csv``: ``<sweep>/trials/<trial>/logs/fold_F_seed_S/metrics.csv`` and ``hparams.yaml``.
- ``tensorboard``: ``<sweep>/trials/<trial>/tensorboard/fold_F_seed_S/``; ``tensorboard
  --logdir <artifacts>/<sweep>`` shows every run of the sweep, named by trial and run, with
  its hyperparameters in the HPARAMS tab.
- ``mlflow``: an MLflow run per smptune run, in the experiment named after the sweep, tagged
  ``sweep``, ``trial``, ``fold`` and ``seed``; at ``$MLFLOW_TRACKING_URI``, else in a file
  store ``<sweep>/mlruns`` (``MLFLOW_ALLOW_FILE_STORE`` is set for it: MLflow 3 asks for that
  switch before it uses a file store).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger

from smptune.params import ParamsView
from smptune.trainable import FoldContext


def _sweep_dir(output_dir: Path) -> Path:
    """``<sweep>`` from a run's output folder (``<sweep>/trials/<n>`` or ``<sweep>/final``)."""
    return output_dir.parent.parent if output_dir.parent.name == "trials" else output_dir.parent


def _group(context: FoldContext) -> dict[str, str | int]:
    return {
        "sweep": context.sweep_id,
        "trial": context.trial,
        "fold": context.fold,
        "seed": context.repeat,
    }


def run_loggers(
    names: tuple[str, ...], context: FoldContext, run_name: str, params: ParamsView
) -> list[Any]:
    """The loggers ``names`` for the run named ``run_name``; none for a run without an
    output folder (a check, a benchmark)."""
    if context.output_dir is None:
        return []
    out = Path(context.output_dir)
    group = _group(context)
    loggers: list[Any] = []
    for name in names:
        if name == "csv":
            loggers.append(CSVLogger(save_dir=str(out), name="logs", version=run_name))
        elif name == "tensorboard":
            loggers.append(
                TensorBoardLogger(
                    save_dir=str(out),
                    name="tensorboard",
                    version=run_name,
                    default_hp_metric=False,
                )
            )
        elif name == "mlflow":
            uri = os.environ.get("MLFLOW_TRACKING_URI")
            if not uri:
                # MLflow 3 keeps its file store behind this switch; with no tracking server
                # it is the one store that many workers (and machines) can write at once
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
                uri = (_sweep_dir(out) / "mlruns").as_uri()
            loggers.append(
                MLFlowLogger(
                    experiment_name=context.sweep_id,
                    run_name=f"trial {context.trial} {run_name}",
                    tracking_uri=uri,
                    tags={k: str(v) for k, v in group.items()},
                )
            )
    for logger in loggers:
        if not isinstance(logger, TensorBoardLogger):  # it gets them with the outcome
            logger.log_hyperparams({**params, **group})
    return loggers


def log_outcome(
    loggers: list[Any],
    context: FoldContext,
    params: ParamsView,
    metrics: Mapping[str, float],
) -> None:
    """After the run: TensorBoard's HPARAMS entry (the hyperparameters beside the metrics of
    the epoch the run is scored by, ``best/<metric>``), and those metrics for MLflow."""
    best = {f"best/{k}": float(v) for k, v in metrics.items()}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams({**params, **_group(context)}, metrics=best)
        elif isinstance(logger, MLFlowLogger):
            logger.log_metrics(best)
