"""report.html and plots/*.png: written at the end of a real sweep and by `producer results`,
self-contained, every image loads in a real browser, and never fatal to the sweep."""

from __future__ import annotations

import base64
import io
import logging
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from PIL import Image

from smptune.config import load_config
from smptune.queue.store import SweepStore
from smptune.results.folder import summarize, write_results
from smptune.testing import QuadraticTrainable

from conftest import run_cli, submit_and_wait, write_config

PLOTS = ("history", "folds", "parallel", "importance")
_PROBE = (
    "<script>window.addEventListener('load', () => {"
    "const imgs = Array.from(document.images);"
    "document.body.setAttribute('data-images', imgs.length);"
    "document.body.setAttribute('data-images-ok',"
    " imgs.filter(i => i.complete && i.naturalWidth > 0).length);});</script>"
)


def _images(page: str) -> list[bytes]:
    """The PNG bytes of every <img> of the page; each must be an inline data URI."""
    sources = re.findall(r'<img\b[^>]*\bsrc="([^"]*)"', page)
    assert len(sources) == page.count("<img"), "an <img> without a src"
    prefix = "data:image/png;base64,"
    assert all(s.startswith(prefix) for s in sources), [s[:40] for s in sources]
    return [base64.b64decode(s[len(prefix) :], validate=True) for s in sources]


def _assert_self_contained(page: str) -> None:
    assert "<script" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert not re.search(r"url\(", page)
    assert "<link" not in page


def _browser_counts(page_path: Path, tmp_path: Path) -> tuple[int, int]:
    """(images, images loaded) as headless chromium sees the page."""
    chromium = shutil.which("chromium")
    assert chromium is not None
    probe = tmp_path / f"probe-{page_path.parent.name}.html"  # the page and a counter
    probe.write_text(page_path.read_text().replace("</body>", _PROBE + "</body>"))
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    total = re.search(r'data-images="(\d+)"', dom)
    loaded = re.search(r'data-images-ok="(\d+)"', dom)
    assert total and loaded, dom[:500]
    return int(total.group(1)), int(loaded.group(1))


def _png(width: int = 96, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="chromium is not on PATH (scripts/test.sh installs it: apt-get install chromium)",
)


@needs_chromium
def test_a_sweep_writes_a_self_contained_report_whose_images_load_in_a_browser(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a sweep over a float, a log-uniform and a categorical parameter on two workers
    start_workers("--cpu", "2")
    config = write_config(
        tmp_path / "sweep.yaml",
        n_trials=8,
        hyperparameters={
            "x": {"low": -2.0, "high": 3.0},
            "noise": {"distribution": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
            "fold_noise": [0.0, 0.01, 0.02],
            "y": -2.0,
        },
    )

    # When it runs to the end
    sweep_id, run = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert run.returncode == 0, run.stderr + run.stdout

    # Then its results folder holds report.html, already rewritten by retrain-and-test with
    # the test metrics when the sweep is marked done, and one PNG per plot
    out = tmp_path / "artifacts" / sweep_id
    page = (out / "report.html").read_text()
    assert "test split" in page
    pngs = {key: (out / "plots" / f"{key}.png").read_bytes() for key in PLOTS}
    for key, data in pngs.items():
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and min(image.size) > 200, key
    # and the page is one self-contained file that embeds exactly those plots
    _assert_self_contained(page)
    assert sorted(_images(page)) == sorted(pngs.values())
    # and it shows the best configuration, its test metrics and every trial
    sweep = store.get_sweep(sweep_id)
    best = sweep.results["best"]
    assert f"#{best['trial']}" in page and f"{best['score']:.4g}" in page
    assert f"{sweep.test_metrics['score']:.4g}" in page
    assert all(f"#{t}" in page for t in range(8))
    assert "the final model wrote no sample predictions" in page
    assert "fANOVA" in page
    # and every image loads in a real browser
    assert _browser_counts(out / "report.html", tmp_path) == (4, 4)

    # When the results are written elsewhere from Redis, with the final model's predictions
    # in the sweep record
    predictions = _png()
    store.set_sweep_fields(sweep_id, predictions_png=base64.b64encode(predictions).decode())
    elsewhere = tmp_path / "elsewhere"
    result = run_cli(
        "producer", "results", sweep_id, "--broker", redis_server.url, "--out", elsewhere
    )
    assert result.returncode == 0, result.stderr

    # Then the same files appear there, and the page embeds the predictions as well
    assert "report.html" in result.stdout
    assert (elsewhere / "final" / "predictions.png").read_bytes() == predictions
    again = (elsewhere / "report.html").read_text()
    _assert_self_contained(again)
    for key in PLOTS:
        assert (elsewhere / "plots" / f"{key}.png").stat().st_size > 1000
    assert predictions in _images(again) and len(_images(again)) == 5
    assert "no final model" not in again
    assert _browser_counts(elsewhere / "report.html", tmp_path) == (5, 5)


def _recorded_sweep(store: SweepStore, tmp_path: Path, scores: dict[int, list[float]], **cfg):
    """A sweep recorded in Redis as the workers record one: each trial's runs, then its end."""
    config = load_config(write_config(tmp_path / "s.yaml", n_trials=len(scores), **cfg)).to_dict()
    params = [
        {**QuadraticTrainable.defaults, "x": 0.5 * i, "y": -1.0 - 0.25 * i}
        for i in range(len(scores))
    ]
    store.create_sweep("s1", config, params, 3, str(tmp_path))
    for trial, runs in scores.items():
        for run, score in enumerate(runs):
            result = {"metrics": {"score": score, "loss": 1.0}, "best_epoch": 1, "epochs_run": 2}
            store.record_fold("s1", trial, run, {**result, "duration_s": 0.1})
        stable = [r for r in runs if not math.isnan(r)]
        if runs:
            record = {"status": "complete", "score": sum(stable) / len(stable)}
            store.finish_trial("s1", trial, {**record, "unstable": len(stable) < len(runs)})
        else:
            store.finish_trial("s1", trial, {"status": "failed", "error": "out of memory"})
    return "s1", config


def test_too_few_trials_give_notes_instead_of_plots(tmp_path, store: SweepStore):
    # Given two complete trials and a failed one
    sweep_id, config = _recorded_sweep(
        store, tmp_path, {0: [0.5, 0.6, 0.55], 1: [0.7, 0.8, 0.75], 2: []}
    )

    # When the results folder is written
    out = write_results(summarize(store, sweep_id), config, tmp_path / "out")

    # Then the importances say why they are missing, and the other plots are drawn
    page = (out / "report.html").read_text()
    assert "not enough trials: parameter importances need at least 3 complete" in page
    assert not (out / "plots" / "importance.png").exists()
    assert {p.stem for p in (out / "plots").glob("*.png")} == {"history", "folds", "parallel"}
    assert len(_images(page)) == 3
    assert "out of memory" in page and "no final model" in page


def test_a_single_varying_parameter_gets_a_note_not_an_importance_plot(tmp_path, store: SweepStore):
    sweep_id, config = _recorded_sweep(
        store,
        tmp_path,
        {n: [0.1 * n + 0.1] * 3 for n in range(5)},
        hyperparameters={"x": {"low": -2.0, "high": 3.0}, "y": -2.0},
    )
    out = write_results(summarize(store, sweep_id), config, tmp_path / "out")
    page = (out / "report.html").read_text()
    assert "only 1 (x) varies" in page
    assert not (out / "plots" / "importance.png").exists()


def test_a_report_that_cannot_be_written_never_stops_the_results(
    tmp_path, store: SweepStore, caplog
):
    sweep_id, config = _recorded_sweep(store, tmp_path, {n: [0.2 + 0.1 * n] * 3 for n in range(4)})
    results = summarize(store, sweep_id)

    # Given a folder where report.html cannot be written (a folder of that name is in the way)
    blocked = tmp_path / "blocked"
    (blocked / "report.html").mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="smptune.report"):
        write_results(results, config, blocked, {"score": 0.9})
    # Then a warning says so, and every other results file is written
    assert any("cannot write the report" in r.getMessage() for r in caplog.records)
    for name in ("trials.csv", "results.json", "best_config.yaml", "final/test_metrics.json"):
        assert (blocked / name).is_file(), name

    # Given a folder where plots/ cannot be created (a file of that name is in the way)
    caplog.clear()
    no_plots = tmp_path / "no-plots"
    no_plots.mkdir()
    (no_plots / "plots").write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="smptune.report"):
        write_results(results, config, no_plots)
    # Then the page is still written with every plot embedded
    assert any("cannot write the plots" in r.getMessage() for r in caplog.records)
    assert len(_images((no_plots / "report.html").read_text())) == 4


def test_the_producer_does_not_import_the_plotting_stack():
    code = (
        "import sys, smptune.producer as p; p.build_parser();"
        "heavy = [m for m in ('matplotlib', 'optuna', 'sklearn', 'torch') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unstable_trial_is_flagged_in_the_report_and_fails_in_optuna(
    tmp_path, redis_server, store: SweepStore
):
    # Given four trials, one with a run that scored NaN
    scores = {0: [0.5, 0.6, 0.55], 1: [0.9, math.nan, 0.95], 2: [0.7, 0.8, 0.75], 3: [0.3] * 3}
    sweep_id, config = _recorded_sweep(store, tmp_path, scores)
    results = summarize(store, sweep_id)
    assert results["best"]["trial"] == 2  # the unstable trial scores higher but ranks lower

    # When the results folder is written and the sweep exported to Optuna
    out = write_results(results, config, tmp_path / "out")
    url = f"sqlite:///{tmp_path / 'o.db'}"
    export = run_cli(
        "producer", "results", sweep_id, "--broker", redis_server.url, "--optuna-storage", url
    )
    assert export.returncode == 0, export.stderr

    # Then the report flags the trial and its run
    page = (out / "report.html").read_text()
    assert '<span class="badge unstable">unstable</span>' in page
    assert "1 unstable run(s)" in page
    # and Optuna holds it as failed, with the NaN run among its intermediate values
    study = optuna.load_study(study_name=sweep_id, storage=url)
    by_trial = {t.user_attrs["smptune_trial"]: t for t in study.trials}
    assert by_trial[1].state == optuna.trial.TrialState.FAIL and by_trial[1].user_attrs["unstable"]
    assert math.isnan(by_trial[1].intermediate_values[1])
    assert study.best_trial.user_attrs["smptune_trial"] == 2
