"""Per-host data paths: a relative ``data.root`` is read below ``$SMPTUNE_DATA_ROOT`` of the
machine that reads it — the producer's at submit, each worker's at run time."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import yaml

from smptune.queue.store import SweepStore

from conftest import run_cli, wait_for


def _write_dataset(root: Path, n: int = 12, size: int = 32) -> None:
    """NPY image/mask pairs: a bright square on noise, the square is the mask."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        mask = np.zeros((size, size), dtype=np.uint8)
        x, y = rng.integers(0, size // 2, 2)
        mask[y : y + size // 3, x : x + size // 3] = 1
        image = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        image[mask == 1] += 150
        np.save(root / "images" / f"s{i:02d}.npy", image)
        np.save(root / "masks" / f"s{i:02d}.npy", mask)


def test_a_relative_data_root_is_read_below_each_machines_data_root(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given the same dataset at different places on the submitting host and the GPU host,
    # and a config elsewhere naming it relatively
    laptop, gpu_host = tmp_path / "laptop-data", tmp_path / "gpu-host-data"
    _write_dataset(laptop / "buildings")
    _write_dataset(gpu_host / "buildings")
    config = tmp_path / "configs" / "s.yaml"
    config.parent.mkdir()
    config.write_text(
        yaml.safe_dump(
            {
                "name": "data-root",
                "n_trials": 1,
                "data": {"root": "buildings", "test_fraction": 0.25},
                "cv": {"n_folds": 2},
                "training": {"max_epochs": 1},
                "hyperparameters": {
                    "model_arch": "Unet",
                    "model_encoder": "tu-regnetx_002",
                    "batch_size": 4,
                },
            }
        )
    )

    # When the producer submits with its own SMPTUNE_DATA_ROOT, its copy then disappears, and
    # the workers run with theirs
    submitted = run_cli(
        "producer",
        "submit",
        config,
        "--broker",
        redis_server.url,
        "--artifacts",
        tmp_path / "out",
        SMPTUNE_DATA_ROOT=str(laptop),
    )
    assert submitted.returncode == 0, submitted.stderr
    sweep_id = submitted.stdout.split()[0]
    for path in sorted((laptop / "buildings").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    workers = start_workers("--cpu", "1", SMPTUNE_DATA_ROOT=str(gpu_host))

    # Then the trial and the final model train on the GPU host's copy, and the sweep records
    # the root relatively
    wait_for(lambda: store.get_sweep(sweep_id).status in ("done", "failed"), 300, 0.5)
    sweep = store.get_sweep(sweep_id, full=True)
    trial = store.trials(sweep_id)[0]
    assert trial.status == "complete", (trial.error, workers.logs()[-3000:])
    assert sweep.status == "done", sweep.error
    assert sweep.config.data["root"] == "buildings"
    # and the results hold the splits by sample name: 3 test samples, two folds that
    # partition the other 9
    out = tmp_path / "out" / sweep_id
    splits = json.loads((out / "splits.json").read_text())
    assert len(splits["test"]) == 3 and len(splits["train"]) == 9
    validation = [name for fold in splits["folds"] for name in fold["validation"]]
    assert sorted(validation) == sorted(splits["train"])
    assert not set(splits["test"]) & set(splits["train"])
    # and the final model's sample predictions travel in the sweep record for other machines
    png = base64.b64decode(sweep.predictions_png)
    assert png == (out / "final" / "predictions.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_without_a_data_root_a_relative_root_is_read_from_the_config_folder(tmp_path):
    data = tmp_path / "configs" / "buildings"
    _write_dataset(data)
    config = tmp_path / "configs" / "s.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "n_trials": 1,
                "data": {"root": "buildings"},
                "cv": {"n_folds": 2},
                "hyperparameters": {"model_encoder": "tu-regnetx_002"},
            }
        )
    )

    dry = run_cli("producer", "submit", config, "--dry-run")
    elsewhere = run_cli("producer", "submit", config, "--dry-run", SMPTUNE_DATA_ROOT=str(tmp_path))

    assert dry.returncode == 0, dry.stderr
    assert elsewhere.returncode == 2
    assert f"{tmp_path / 'buildings'}" in elsewhere.stderr, elsewhere.stderr
