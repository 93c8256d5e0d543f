"""Local mode: `producer submit` with no broker starts Redis and workers, and stops them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import REPO, cli_env, run_cli, wait_for, write_config


def _processes_tagged(tag: str) -> list[int]:
    """Processes whose environment carries ``SMPTUNE_TEST_TAG=tag``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"SMPTUNE_TEST_TAG={tag}".encode() in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def test_local_mode_runs_a_sweep_and_stops_everything_it_started(tmp_path: Path):
    tag = uuid.uuid4().hex
    config = write_config(tmp_path / "s.yaml", n_trials=4)

    result = run_cli(
        "producer",
        "submit",
        config,
        "--artifacts",
        tmp_path / "out",
        "--local-workers",
        "2",
        SMPTUNE_TEST_TAG=tag,
    )

    assert result.returncode == 0, result.stderr + result.stdout
    sweep_id = result.stdout.splitlines()[0]
    results = json.loads((tmp_path / "out" / sweep_id / "results.json").read_text())
    assert results["trials_complete"] == 4
    assert (tmp_path / "out" / sweep_id / "final" / "test_metrics.json").exists()
    assert "local mode" in result.stderr
    assert _processes_tagged(tag) == []


def test_ctrl_c_in_local_mode_stops_redis_and_the_workers(tmp_path: Path):
    tag = uuid.uuid4().hex
    config = write_config(
        tmp_path / "s.yaml", n_trials=20, hyperparameters={"x": [0.0, 1.0], "sleep": 1.0}
    )
    producer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smptune.cli.producer",
            "submit",
            str(config),
            "--artifacts",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(SMPTUNE_TEST_TAG=tag),
        start_new_session=True,
    )
    try:
        # wait until a trial is running: redis, the supervisor, a worker and its child are up
        wait_for(lambda: len(_processes_tagged(tag)) >= 4, 60)
        wait_for(
            lambda: any(
                "trial 0 starts" in p.read_text()
                for p in (tmp_path / "out").glob("logs/*/cpu0@*.log")
            ),
            60,
        )
        producer.send_signal(signal.SIGINT)
        _, stderr = producer.communicate(timeout=90)
    finally:
        if producer.poll() is None:
            producer.kill()
    assert producer.returncode == 130, stderr
    assert "interrupted" in stderr
    wait_for(lambda: _processes_tagged(tag) == [], 30)


@pytest.mark.slow
def test_quickstart_in_local_mode_with_shortened_epochs(tmp_path: Path):
    # Given the quickstart with fewer trials and epochs
    config = yaml.safe_load((REPO / "configs" / "quickstart.yaml").read_text())
    config["n_trials"] = 2
    config["training"]["max_epochs"] = 3
    path = tmp_path / "quick.yaml"
    path.write_text(yaml.safe_dump(config))

    # When it runs through the CLI with no broker
    result = run_cli("producer", "submit", path, "--artifacts", tmp_path / "out", timeout=900)

    # Then it ends with a ranking, a final model that loads and predicts, and test metrics
    assert result.returncode == 0, result.stderr + result.stdout
    sweep_id = result.stdout.splitlines()[0]
    out = tmp_path / "out" / sweep_id
    results = json.loads((out / "results.json").read_text())
    assert results["trials_complete"] == 2
    best = results["best"]
    # all-background scores an IoU of 0; the best trial must clearly beat it
    assert best["score"] > 0.2, best
    both = json.loads((out / "final" / "test_metrics.json").read_text())
    expected = {"iou", "dice", "f1", "precision", "recall", "accuracy", "loss"}
    assert set(both["retrained_model"]) >= expected
    # and the best trial's fold models, tested together, are reported beside it
    assert set(both["fold_ensemble"]) >= expected
    assert results["fold_ensemble"]["members"] == [
        f"fold_{k}_seed_0" for k in range(config["cv"]["n_folds"])
    ]
    assert "fold ensemble" in result.stdout
    report = (out / "report.html").read_text()
    assert "fold ensemble" in report and "final/ensemble/" in report

    import segmentation_models_pytorch as smp
    import torch

    model = smp.from_pretrained(str(out / "final" / "model")).eval()
    with torch.no_grad():
        prediction = model(torch.rand(1, 3, 64, 64))
    assert prediction.shape == (1, 1, 64, 64)

    # and so does the exported ensemble, as its docs say
    from smptune.training.ensemble import load_ensemble

    ensemble = load_ensemble(out / "final" / "ensemble")
    probabilities = ensemble(torch.rand(2, 3, 64, 64))
    assert probabilities.shape == (2, 1, 64, 64)
    assert float(probabilities.min()) >= 0 and float(probabilities.max()) <= 1
    assert ensemble.predict(torch.rand(2, 3, 64, 64)).shape == (2, 64, 64)
