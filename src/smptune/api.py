"""The Python API, for notebooks and scripts: submit a sweep, wait for it, read its trials as
rows and its results.

::

    from smptune import api

    with api.local(cpu_workers=1) as broker:          # or broker="redis://host:6379/0"
        sweep = api.submit("configs/quickstart.yaml", broker=broker)
        sweep.wait()
        rows = sweep.trials()                         # pandas.DataFrame(rows) if you like
        print(sweep.best_params, sweep.best_value, sweep.test_metrics)

It drives the same code as the ``producer`` command: the same validation (a bad config
raises :class:`smptune.errors.ConfigError` naming the key), the same records in Redis, and the
same results folder. Torch is not imported here, except by :func:`predict`, which runs a
sweep's final model on new images::

    masks = api.predict("smptune-results/<sweep>", ["new/"], out="masks/")
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from smptune.config import SweepConfig, config_from_dict, load_config
from smptune.errors import ConfigError
from smptune.params import Params
from smptune.records import FullSweepRecord, SweepStatus, SweepSummary
from smptune.trainable import SEGMENTATION_TRAINABLE
from smptune.urls import BROKER_ENV, broker_url_from, check_broker_url

if TYPE_CHECKING:
    from smptune.queue.store import SweepStore
    from smptune.results.status_snapshot import StatusSnapshot
    from smptune.results.summary import SweepResults

__all__ = ["Sweep", "connect", "local", "predict", "submit", "sweeps"]

DEFAULT_ARTIFACTS = "smptune-results"


def _url(broker: str | None) -> str:
    url = broker_url_from(broker)
    if url is None:
        raise ConfigError(
            f"no broker: pass broker=URL, set {BROKER_ENV}, or run inside `with api.local()`"
        )
    check_broker_url(url, "broker" if broker else BROKER_ENV)
    return url


def _store(url: str) -> SweepStore:
    from smptune.queue.store import SweepStore

    return SweepStore.from_url(url)


class Sweep:
    """A sweep on a broker. Every attribute reads Redis afresh: the sweep may be running."""

    def __init__(self, sweep_id: str, broker: str | None = None) -> None:
        self.url = _url(broker)
        self.id = sweep_id
        self._store = _store(self.url)
        self._store.get_sweep(sweep_id)  # an unknown id raises SweepNotFoundError now

    def __repr__(self) -> str:
        return f"Sweep({self.id!r}, status={self.status.value!r})"

    @property
    def record(self) -> FullSweepRecord:
        """Everything the store holds of the sweep (config, counts, results, test metrics)."""
        return self._store.get_sweep(self.id, full=True)

    @property
    def status(self) -> SweepStatus:
        return self._store.sweep_status(self.id)

    def wait(self, timeout_s: float | None = None, poll_s: float = 1.0) -> SweepStatus:
        """Block until the sweep (and its retrain-and-test) has ended; its final status.
        Raises :class:`TimeoutError` after ``timeout_s`` seconds (the sweep goes on)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            status = self.status
            if status.terminal:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"sweep {self.id} is still {status.value} after {timeout_s} s")
            time.sleep(poll_s)

    def progress(self) -> StatusSnapshot:
        """What ``producer status`` shows, as a typed record: workers, trials done, best so
        far, ETA (``.to_dict()`` is what ``producer status --json`` prints)."""
        from smptune.results.progress import snapshot

        return snapshot(self._store, self.id)

    def summary(self) -> SweepResults:
        """The results as a typed record (:class:`~smptune.results.summary.SweepResults`);
        ranked now if the sweep has not been finalized."""
        from smptune.results.summary import current_results

        return current_results(self._store, self.id)

    def results(self) -> dict[str, object]:
        """``results.json``: the ranking, the best trial (also as ``best_params`` and
        ``best_value``), learning curves; ranked now if the sweep has not been finalized."""
        results = self._store.sweep_results(self.id)
        return dict(results) if results else self.summary().to_dict()

    def trials(self) -> list[dict[str, object]]:
        """A row per trial, as ``trials.csv`` holds it (parameters, each fold's score, mean,
        std, status, worker, error); ``pandas.DataFrame(sweep.trials())`` is the table."""
        from smptune.results.folder import trial_rows

        return trial_rows(self.summary())

    @property
    def best_params(self) -> Params | None:
        return self.summary().best_params

    @property
    def best_value(self) -> float | None:
        return self.summary().best_value

    @property
    def test_metrics(self) -> dict[str, float] | None:
        """The retrained model's metrics on the test split, once retrain-and-test ran."""
        metrics = self._store.get_sweep(self.id).test_metrics
        return None if metrics is None else dict(metrics)

    def write_results(self, out: str | Path) -> Path:
        """Write the results folder (tables, report.html, plots) to ``out``, as
        ``producer results --out`` does; returns it."""
        from smptune.results.folder import write_results
        from smptune.results.summary import SweepResults

        record = self.record
        results = SweepResults.from_dict(record.results) if record.results else self.summary()
        config = record.config
        return write_results(results, config, Path(out), record.test_metrics, splits=record.splits)

    def cancel(self) -> bool:
        """Ask the sweep to stop (queued trials never start, running ones stop at their next
        epoch boundary, trials no live worker can run are ended as ``producer cancel``
        does); False if it had already ended."""
        if self.status.terminal:
            return False
        self._store.request_cancel(self.id)
        if self._store.get_sweep(self.id).config.requirements:
            # trials waiting for a capability no live worker has go home to be cancelled
            from smptune.queue.routing import send_unmet_home
            from smptune.worker.app import configure, create_app

            app = create_app()
            configure(app, self.url, send_only=True)
            send_unmet_home(self._store, app, self.id)
        return True

    def delete(self, force: bool = False) -> int:
        """Remove the sweep's keys from Redis (its results folder stays); how many, as
        ``producer delete`` does. A sweep that has not ended raises :class:`ConfigError`
        unless ``force``: then it is told to stop first (running trials stop at their next
        epoch boundary and record nothing; its queued trials are ignored by the workers)."""
        return self._store.delete_sweep(self.id, force=force)


def _config(config: str | Path | Mapping[str, object] | SweepConfig) -> SweepConfig:
    if isinstance(config, SweepConfig):
        return config
    if isinstance(config, Mapping):
        return config_from_dict(config)
    return load_config(config)


def submit(
    config: str | Path | Mapping[str, object] | SweepConfig,
    broker: str | None = None,
    artifacts: str | Path = DEFAULT_ARTIFACTS,
) -> Sweep:
    """Validate ``config`` (a file, a mapping as a YAML file would hold, or a loaded
    config), record the sweep and queue its chord; the :class:`Sweep`. Results go to
    ``artifacts/<sweep id>/`` on the worker that finalizes it."""
    from smptune.queue.submit import plan_configurations
    from smptune.queue.submit import submit as send
    from smptune.worker.app import app, configure

    loaded = _config(config)
    url = _url(broker)
    configurations = plan_configurations(loaded)
    configure(app, url, send_only=True)
    sweep_id = send(_store(url), loaded, configurations, Path(artifacts), app)
    return Sweep(sweep_id, url)


def connect(sweep_id: str, broker: str | None = None) -> Sweep:
    """A sweep submitted earlier, from here or by ``producer submit``."""
    return Sweep(sweep_id, broker)


def sweeps(broker: str | None = None) -> list[SweepSummary]:
    """Every sweep the broker knows, newest first (``producer list``)."""
    return _store(_url(broker)).list_sweeps()


@contextmanager
def local(
    cpu_workers: int | None = None,
    log_dir: str | Path | None = None,
    trainable: str = SEGMENTATION_TRAINABLE,
) -> Iterator[str]:
    """An embedded Redis and this machine's workers (one per GPU, else ``cpu_workers`` or
    one CPU worker) for as long as the ``with`` block runs; yields the broker URL. Sweeps
    still running when the block ends are lost with the embedded Redis: ``wait()`` first.
    ``trainable``: your own (``package.module:object``), which its workers then run."""
    from smptune.worker.local_fleet import LocalCluster

    if cpu_workers is not None and cpu_workers < 1:
        raise ConfigError(f"cpu_workers: must be >= 1, got {cpu_workers}")
    logs = Path(log_dir or Path(DEFAULT_ARTIFACTS) / "logs" / time.strftime("%Y%m%d-%H%M%S"))
    with LocalCluster(logs, cpu_workers, trainable) as cluster:
        yield cluster.url


def predict(
    results_dir: str | Path,
    images: str | Path | list[str | Path],
    out: str | Path,
    *,
    model: str | None = None,
    device: str | None = None,
    overlap: float | None = None,
    tta: str = "none",
    postprocess: str = "none",
) -> list[Path]:
    """Masks of ``images`` (files or folders, any size) from the sweep's fold ensemble in
    ``results_dir/final/ensemble`` (``model="retrained"``, or without an ensemble: the
    retrained model in ``final/model``), written to ``out`` in each image's format; the
    masks' paths, in order. ``tta`` (``flips``) and ``postprocess`` (``largest_component``)
    as :mod:`smptune.training.refine` describes. Bad input raises
    :class:`~smptune.errors.ConfigError` naming the file; masks written before it stay."""
    from smptune.training.prediction import image_files, load_predictor, predict_files

    given = [images] if isinstance(images, str | Path) else list(images)
    files = image_files(given)
    predictor = load_predictor(
        results_dir,
        model=model,
        device=device,
        overlap=overlap,
        tta=tta,
        postprocess=postprocess,
    )
    return list(predict_files(predictor, files, Path(out)))
