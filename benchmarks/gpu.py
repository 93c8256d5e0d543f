"""GPU: how busy a worker keeps its device, and fold throughput fp32 vs bf16-mixed.

Only where ``nvidia-smi`` works; elsewhere one row says there is no GPU. With one:

- device busy fraction: one ``workers`` GPU worker runs a small segmentation sweep while
  ``nvidia-smi`` samples the device's utilisation every 200 ms; the mean utilisation over
  the samples from the first trial's start to the last trial's end;
- training images per second of one fold in ``32-true`` and ``bf16-mixed``, from
  ``python -m benchmarks.gpu_check`` (the trainable's own data path).

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
    return out


def main() -> None:
    run_alone(rows, __doc__)


if __name__ == "__main__":
    main()
