"""GPU: how busy a worker keeps its device, and fold throughput fp32 vs bf16-mixed.

Only where ``nvidia-smi`` works; elsewhere one row says there is no GPU. With one:

- device busy fraction: one ``workers`` GPU worker runs a small segmentation sweep while
  ``nvidia-smi`` samples the device's utilisation every 200 ms; the mean utilisation over
  the samples from the first trial's start to the last trial's end;
- training images per second of one fold in ``32-true`` and ``bf16-mixed``, from
  ``python -m benchmarks.gpu_check`` (the trainable's own data path);
- several trials per GPU: training images/s and the busy fraction of a sweep of the
  quickstart model at 256 px on 1, 2 and 4 slots of one device (``--slots-per-device``), and
  on 1 slot with ``training.num_workers`` 0 against ``auto``.

    python -m benchmarks.gpu [--quick]
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from benchmarks.harness import clean_env, finalized, kill, run_alone, start_workers, submit, warm_up
from benchmarks.table import Row
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore

NO_GPU = "no GPU on this machine"


def has_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(line.startswith("GPU ") for line in out.stdout.splitlines())


class Sampler:
    """``nvidia-smi`` utilisation samples of device 0, with the time each arrived."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.process = subprocess.Popen(
            [
                "nvidia-smi",
                "-i",
                "0",
                "--query-gpu=utilization.gpu",
                "--format=csv,noheader,nounits",
                "-lms",
                "200",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip().isdigit():
                self.samples.append((time.time(), float(line) / 100.0))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)

    def mean(self, start: float, end: float) -> float | None:
        inside = [u for t, u in self.samples if start <= t <= end]
        return sum(inside) / len(inside) if inside else None


#: The quickstart's model at 256 px (the slots rows): small enough to share a large GPU.
SLOT_SWEEP = {
    "n_images": 256,
    "size": 256,
    "test_fraction": 0.2,
    "n_folds": 2,
    "hyperparameters": {
        "model_arch": "Unet",
        "model_encoder": "tu-regnetx_002",
        "model_encoder_weights": None,
        "batch_size": 16,
    },
}


def sweep_on_device(
    quick: bool,
    slots: int = 1,
    num_workers: int | str = "auto",
    sample: bool = True,
    devices: str = "0",
) -> tuple[float, float | None]:
    """``(training images/s, mean device utilisation)`` of a sweep of the quickstart model
    at 256 px on ``slots`` workers sharing device 0, from the first trial's start to the last
    trial's end; ``sample=False`` (no ``nvidia-smi``) leaves the utilisation None."""
    epochs = 2 if quick else 4
    trials = max(2 * slots, 3 if quick else 6)
    sweep = SLOT_SWEEP
    with tempfile.TemporaryDirectory() as tmp_name, EmbeddedRedis() as redis:
        tmp = Path(tmp_name)
        env = clean_env(SMPTUNE_CACHE_DIR=str(tmp / "cache"))
        store = SweepStore.from_url(redis.url)
        args = ["--devices", devices, "--slots-per-device", str(slots)]
        supervisor = start_workers(redis.url, *args, env=env)
        try:
            warm_up(store, redis.url, env, tmp, slots)
            config = tmp / "gpu.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "name": f"gpu-{slots}-slots",
                        "n_trials": trials,
                        "metric": "iou",
                        "cv": {"n_folds": sweep["n_folds"]},
                        "retrain_and_test": False,
                        "data": {
                            "synthetic": {"n_images": sweep["n_images"], "size": sweep["size"]},
                            "test_fraction": sweep["test_fraction"],
                        },
                        "training": {
                            "max_epochs": epochs,
                            "early_stopping_patience": 0,
                            "num_workers": num_workers,
                        },
                        "hyperparameters": sweep["hyperparameters"],
                    }
                )
            )
            sampler = Sampler() if sample else None
            try:
                sweep_id = submit(config, redis.url, env, "--artifacts", str(tmp))
                finalized(store, sweep_id, 1800)
            finally:
                if sampler is not None:
                    sampler.stop()
            records = store.trials(sweep_id)
        finally:
            kill(supervisor)
    assert all(t.status == "complete" for t in records), [(t.status, t.error) for t in records]
    start = min(t.started for t in records if t.started)
    end = max(t.finished for t in records if t.finished)
    train = round(sweep["n_images"] * (1 - sweep["test_fraction"]))
    per_fold = train - train // sweep["n_folds"]  # the folds but the validation one
    images = sum(run["epochs_run"] * per_fold for t in records for run in t.folds.values())
    busy = sampler.mean(start, end) if sampler is not None else None
    return images / (end - start), busy


def busy_fraction(quick: bool) -> float | None:
    """Mean device utilisation while a small sweep's trials run on one GPU worker."""
    with tempfile.TemporaryDirectory() as tmp_name, EmbeddedRedis() as redis:
        tmp = Path(tmp_name)
        env = clean_env(SMPTUNE_CACHE_DIR=str(tmp / "cache"))
        store = SweepStore.from_url(redis.url)
        supervisor = start_workers(redis.url, "--devices", "0", env=env)
        try:
            warm_up(store, redis.url, env, tmp, 1)
            config = tmp / "gpu.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "name": "gpu",
                        "n_trials": 3 if quick else 6,
                        "metric": "iou",
                        "cv": {"n_folds": 2},
                        "retrain_and_test": False,
                        "data": {"synthetic": {"n_images": 256, "size": 128}},
                        "training": {"max_epochs": 2 if quick else 4},
                        "hyperparameters": {
                            "model_encoder": ["resnet18", "tu-regnetx_002"],
                            "model_encoder_weights": None,
                            "batch_size": 16,
                        },
                    }
                )
            )
            sampler = Sampler()
            try:
                sweep_id = submit(config, redis.url, env, "--artifacts", str(tmp))
                finalized(store, sweep_id, 900)
            finally:
                sampler.stop()
            trials = store.trials(sweep_id)
        finally:
            kill(supervisor)
    start = min(t.started for t in trials if t.started)
    end = max(t.finished for t in trials if t.finished)
    return sampler.mean(start, end)


def images_per_s(quick: bool) -> dict[str, float]:
    """``{precision: training images/s}`` from ``benchmarks.gpu_check``."""
    size = ["--images", "256", "--size", "128"] if quick else ["--images", "512", "--size", "256"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", *size, "--epochs", "2"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=900,
        check=True,
    )
    found = re.findall(r"^\s*(\S+): +([\d.]+) images/s", done.stdout, flags=re.M)
    return {precision: float(rate) for precision, rate in found}


def rows(quick: bool) -> list[Row]:
    if not has_gpu():
        return [Row("gpu", None, note=NO_GPU)]
    busy = busy_fraction(quick)
    rates = images_per_s(quick)
    fp32 = rates.get("32-true")
    out = [
        Row(
            "gpu: device busy fraction during a small sweep",
            busy,
            1.0,
            unit="",
            reference_label="all",
        ),
        Row("gpu: fold training fp32", fp32, unit="images/s"),
    ]
    if "bf16-mixed" in rates:
        out.append(
            Row(
                "gpu: fold training bf16-mixed vs fp32",
                rates["bf16-mixed"],
                fp32,
                unit="images/s",
                reference_label="fp32",
            )
        )
    else:
        out.append(Row("gpu: fold training bf16-mixed", None, note="no bfloat16 on this GPU"))
    return out + slot_rows(quick)


def slot_rows(quick: bool) -> list[Row]:
    """Images/s and the device busy fraction with 1, 2 and 4 slots on one GPU (the
    quickstart model at 256 px), and with ``num_workers`` 0 against ``auto``."""
    measured = {slots: sweep_on_device(quick, slots) for slots in (1, 2, 4)}
    one_rate, _ = measured[1]
    out = []
    for slots, (rate, busy) in measured.items():
        head = f"gpu: {slots} slot{'s' if slots > 1 else ''} on one device"
        out.append(Row(f"{head}, training", rate, one_rate, "images/s", "1 slot"))
        out.append(Row(f"{head}, device busy fraction", busy, 1.0, "", "all"))
    no_workers, _ = sweep_on_device(quick, 1, num_workers=0)
    out.append(Row("gpu: 1 slot, num_workers 0 vs auto", no_workers, one_rate, "images/s", "auto"))
    return out


def main() -> None:
    run_alone(rows, __doc__)


if __name__ == "__main__":
    main()
