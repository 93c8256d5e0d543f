"""report.html and plots/*.png: written at the end of a real sweep and by `producer results`,
self-contained, every image loads in a real browser, and never fatal to the sweep."""

from __future__ import annotations

import base64
import io
import json
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
from smptune.fakes import QuadraticTrainable
from smptune.queue.store import SweepStore
from smptune.records import TrialStatus
from smptune.results.folder import write_results
from smptune.results.html import write_report
from smptune.results.plots import learning_curves
from smptune.results.summary import SweepResults, summarize

from conftest import run_cli, submit_and_wait, write_config

PLOTS = ("history", "timeline", "folds", "parallel", "importance")
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
    assert "Test metrics of the final model" in page and "retrained model" in page
    pngs = {key: (out / "plots" / f"{key}.png").read_bytes() for key in PLOTS}
    for key, data in pngs.items():
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and min(image.size) > 200, key
    # and the page is one self-contained file that embeds exactly those plots
    _assert_self_contained(page)
    assert sorted(_images(page)) == sorted(pngs.values())
    # and it shows the best configuration, its test metrics and every trial
    sweep = store.get_sweep(sweep_id, full=True)
    best = sweep.results["best"]
    assert f"#{best['trial']}" in page and f"{best['score']:.4g}" in page
    assert f"{sweep.test_metrics['score']:.4g}" in page
    assert all(f"#{t}" in page for t in range(8))
    assert "the final model wrote no sample predictions" in page
    assert "fANOVA" in page
    # and the importances say that 8 trials are too few to trust them
    assert "Unreliable: fitted to only 8 trials" in _section(page, "importance")
    # and the summary gives wall and device time and the workers that ran the trials
    summary = _section(page, "summary")
    assert "<b>wall time</b>" in summary and "<b>device time</b>" in summary
    ran = {t["worker"] for t in store.get_sweep(sweep_id, full=True).results["ranking"]}
    assert f"<b>workers</b>{len(ran)}<" in summary
    # and the timeline has a row per worker and says how busy they were
    timeline = _section(page, "timeline")
    who = "The worker was" if len(ran) == 1 else f"The {len(ran)} workers were"
    assert f"{who} busy" in timeline and "gaps are idle time" in timeline
    # and every plot is drawn at twice the width it is shown at (sharp on dense screens)
    shown = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="[^"]*" width="(\d+)"', page)
    assert len(shown) == len(PLOTS)
    for data, width in shown:
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            assert image.size[0] == 2 * int(width)
    # and every image loads in a real browser
    assert _browser_counts(out / "report.html", tmp_path) == (len(PLOTS), len(PLOTS))

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
    assert predictions in _images(again) and len(_images(again)) == len(PLOTS) + 1
    assert "no final model" not in again
    n = len(PLOTS) + 1
    assert _browser_counts(elsewhere / "report.html", tmp_path) == (n, n)


def _recorded_sweep(
    store: SweepStore,
    tmp_path: Path,
    scores: dict[int, list[float]],
    epochs: int = 0,
    pruned: tuple[int, ...] = (),
    infeasible: tuple[int, ...] = (),
    **cfg,
):
    """A sweep recorded in Redis as the workers record one: each trial's runs, then its end.

    ``epochs``: each run also reports that many epochs, climbing to its score. A trial in
    ``pruned`` was stopped inside fold 0 after it trained ``len(scores[trial])`` epochs
    (those are its epochs' scores), as ASHA stops one. A trial in ``infeasible`` ran out of
    memory in its first run with batch size 32."""
    config = load_config(write_config(tmp_path / "s.yaml", n_trials=len(scores), **cfg))
    params = [
        {**QuadraticTrainable.defaults, "x": 0.5 * i, "y": -1.0 - 0.25 * i}
        for i in range(len(scores))
    ]
    store.create_sweep("s1", config.to_dict(), params, 3, str(tmp_path))
    for trial, runs in scores.items():
        if trial in pruned:
            for epoch, score in enumerate(runs, start=1):
                store.record_epoch("s1", trial, 0, epoch, score)
            reason = f"pruned by asha at fold 0, epoch {len(runs)} (score < 0.5)"
            partial = {"fold": 0, "repeat": 0, "epochs": len(runs), "score": max(runs)}
            partial |= {"reason": reason, "duration_s": 0.1}
            record = {"status": "pruned", "score": max(runs), "error": reason}
            store.finish_trial("s1", trial, {**record, "partial": json.dumps(partial)})
            continue
        if trial in infeasible:
            oom = {"fold": 0, "repeat": 0, "batch_size": 32, "error": "OutOfMemoryError: CUDA"}
            record = {"status": "infeasible", "error": "out of memory at fold 0 seed 0"}
            store.finish_trial("s1", trial, {**record, "out_of_memory": json.dumps(oom)})
            continue
        for run, score in enumerate(runs):
            for epoch in range(1, epochs + 1):
                store.record_epoch("s1", trial, run, epoch, score * epoch / epochs)
            result = {"metrics": {"score": score, "loss": 1.0}, "best_epoch": 1, "epochs_run": 2}
            store.record_fold("s1", trial, run, {**result, "duration_s": 0.1})
        stable = [r for r in runs if not math.isnan(r)]
        if runs:
            record = {"status": "complete", "score": sum(stable) / len(stable)}
            store.finish_trial("s1", trial, {**record, "unstable": len(stable) < len(runs)})
        else:
            store.finish_trial("s1", trial, {"status": "failed", "error": "out of memory"})
    return "s1", config


def _section(page: str, key: str) -> str:
    """The <section id=key> of the page, or "" when it has none."""
    found = re.search(rf'<section id="{key}">.*?</section>', page, re.S)
    return found.group(0) if found else ""


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
        "import sys, smptune.cli.producer as p; p.build_parser();"
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
    assert (
        results.best and results.best.trial == 2
    )  # the unstable trial scores higher but ranks lower

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


#: Two complete trials that report 4 epochs of each of their 3 folds, and trial 2 pruned in
#: fold 0 after 3 epochs.
_CURVES = {0: [0.5, 0.6, 0.55], 1: [0.7, 0.8, 0.75], 2: [0.2, 0.3, 0.4]}


def test_the_report_draws_the_learning_curves_of_the_best_and_of_the_pruned_trials(
    tmp_path, store: SweepStore
):
    # Given two complete trials that report every epoch, and one pruned inside fold 0
    sweep_id, config = _recorded_sweep(store, tmp_path, _CURVES, epochs=4, pruned=(2,))
    results = summarize(store, sweep_id)
    assert [(c.trial, c.status) for c in results.learning_curves] == [
        (1, "complete"),
        (0, "complete"),
        (2, "pruned"),
    ]

    # When the results folder is written
    out = write_results(results, config, tmp_path / "out")

    # Then the report has a learning-curves section with its image and caption
    page = (out / "report.html").read_text()
    section = _section(page, "learning_curves")
    assert "<h2>Learning curves</h2>" in section and '<a href="#learning_curves">' in page
    assert "Validation score per epoch of each run" in section
    assert "the 2 best complete trials (solid" in section
    assert "1 trial stopped inside a run (dashed, × where they stopped)" in section
    png = (out / "plots" / "learning_curves.png").read_bytes()
    assert _images(section) == [png]
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and min(image.size) > 200
    assert len(_images(page)) == 4  # history, learning curves, runs, parallel coordinates

    # and the figure has a solid line per run of the complete trials, labelled by trial, and
    # a dashed one for the pruned run, ending in a cross at its third epoch
    fig, _ = learning_curves(results, config)
    ax = fig.axes[0]
    solid = [line for line in ax.lines if line.get_linestyle() == "-"]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(solid) == 6 and len(dashed) == 1
    assert list(dashed[0].get_xdata()) == [1, 2, 3]
    assert [list(p) for p in ax.collections[0].get_offsets()] == [[3, 0.4]]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["trial 1 (rank 1)", "trial 0 (rank 2)", "1 stopped inside a run"]


def test_results_without_learning_curves_have_no_such_section(tmp_path, store: SweepStore):
    # Given a sweep whose trainable reports no epochs
    sweep_id, config = _recorded_sweep(store, tmp_path, {n: [0.2 + 0.1 * n] * 3 for n in range(4)})
    results = summarize(store, sweep_id)
    assert results.learning_curves == ()

    # When its results folder is written
    out = write_results(results, config, tmp_path / "out")

    # Then the report has every other plot and no learning-curves section
    page = (out / "report.html").read_text()
    assert not _section(page, "learning_curves") and "Learning curves" not in page
    assert len(_images(page)) == 4
    assert not (out / "plots" / "learning_curves.png").exists()

    # When an older results.json without learning curves is reported, over a folder where an
    # earlier report drew them
    (out / "plots" / "learning_curves.png").write_bytes(_png())
    older = SweepResults.from_dict(
        {k: v for k, v in results.to_dict().items() if k != "learning_curves"}
    )
    page = write_report(older, config, out).read_text()

    # Then there is no such section either, and the stale plot is gone
    assert not _section(page, "learning_curves") and "Learning curves" not in page
    assert len(_images(page)) == 4
    assert not (out / "plots" / "learning_curves.png").exists()


def test_the_ranking_shows_where_a_pruned_trial_stopped(tmp_path, store: SweepStore):
    # Given a trial pruned in fold 0 after 3 epochs, and two complete trials
    sweep_id, config = _recorded_sweep(store, tmp_path, _CURVES, epochs=4, pruned=(2,))

    # When the results folder is written
    out = write_results(summarize(store, sweep_id), config, tmp_path / "out")

    # Then the ranking has a "stopped at" column: where the pruned trial stopped (why, on
    # hover, escaped), nothing for the complete trials
    ranking = _section((out / "report.html").read_text(), "ranking")
    assert "<th>stopped at</th>" in ranking
    rows = {
        re.search(r"<td>#(\d+)</td>", row).group(1): row
        for row in re.findall(r"<tr><td.*?</tr>", ranking)
    }
    assert sorted(rows) == ["0", "1", "2"]
    assert "stopped at fold 0, epoch 3" in rows["2"]
    assert 'title="pruned by asha at fold 0, epoch 3 (score &lt; 0.5)"' in rows["2"]
    assert "stopped at" not in rows["0"] + rows["1"]


def test_a_sweep_whose_trials_were_all_pruned_has_no_best_and_says_so(tmp_path, store: SweepStore):
    # Given a sweep whose two trials were pruned inside fold 0
    sweep_id, config = _recorded_sweep(
        store, tmp_path, {0: [0.3, 0.4, 0.5], 1: [0.8, 0.9]}, pruned=(0, 1)
    )

    # When it is summarized and its folder written
    results = summarize(store, sweep_id)
    out = write_results(results, config, tmp_path / "out")

    # Then neither is the best, though the second scored 0.9 in its two epochs: nothing
    # finished its cross-validation, which results.json and the report say in one line
    assert results.best is None and results.best_params is None
    assert results.no_best == (
        "no trial finished its cross-validation (2 pruned), so there is no best configuration "
        "and nothing is retrained"
    )
    assert json.loads((out / "results.json").read_text())["no_best"] == results.no_best
    assert results.no_best in _section((out / "report.html").read_text(), "best")
    assert not (out / "best_config.yaml").exists()
    # and the ranking still lists both, the one that trained further first
    assert [t.trial for t in results.ranking] == [0, 1]


def test_the_parallel_coordinates_draw_the_infeasible_region(tmp_path, store: SweepStore):
    from smptune.results.plots_space import INFEASIBLE_LABEL, parallel_coordinates

    # Given three complete trials and one that ran out of memory (x = 1.5, y = -1.75)
    scores = {0: [0.5] * 3, 1: [0.7] * 3, 2: [0.6] * 3, 3: []}
    sweep_id, config = _recorded_sweep(store, tmp_path, scores, infeasible=(3,))
    results = summarize(store, sweep_id)
    assert results.count(TrialStatus.INFEASIBLE) == 1
    assert results.trial(3) is not None and results.trial(3).status == "infeasible"

    # When its parallel coordinates are drawn
    fig, caption = parallel_coordinates(results, config)

    # Then the infeasible trial is a dashed red line through its parameters, in the legend
    ax = fig.axes[0]
    dashed = [c for c in ax.collections if c.get_label() == INFEASIBLE_LABEL]
    assert len(dashed) == 1 and len(dashed[0].get_segments()) == 1  # x to y, no score axis
    (segment,) = dashed[0].get_segments()
    assert segment[0][0] == 0 and segment[1][0] == 1
    legend = ax.get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == [
        "infeasible (out of memory)"
    ]
    assert "Dashed red: infeasible (out of memory), 1 trials" in caption
    assert "One line per scored, stable trial (3)" in caption
    # and the report shows it, its row listing what it tried
    out = write_results(results, config, tmp_path / "out")
    page = (out / "report.html").read_text()
    assert "infeasible (out of memory)" in page
    assert '<span class="badge infeasible">infeasible</span>' in page
    assert "out of memory at fold 0 seed 0" in _section(page, "ranking")
    saved = json.loads((out / "results.json").read_text())
    assert saved["trials_infeasible"] == 1
    row = next(t for t in saved["ranking"] if t["trial"] == 3)
    assert row["out_of_memory"]["batch_size"] == 32 and row["rank"] == 4
