"""The report's sections on the final model: its test metrics beside the fold ensemble's,
the default model, test-time refinements, the per-class table, CV against test, and its
sample predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from smptune.metric_keys import split_refined
from smptune.results.html_parts import esc, html_table, img, num
from smptune.results.labels import REFINED_SHOWN, metric_label, split_class_metric, variant_label
from smptune.results.per_class import FIGURES, ClassRow, Spread
from smptune.results.summary import MODEL_FOLDERS, SweepResults, retrain_check

PREDICTIONS = Path("final") / "predictions.png"


def test_section(
    test_metrics: Mapping[str, float] | None,
    results: SweepResults,
    class_names: Sequence[str] | None = None,
    per_class: bool = False,
) -> str:
    """The test table; ``per_class``: the per-class rows are in their own table, so this one
    leaves them out."""
    if not test_metrics:
        body = (
            '<p class="note">no test metrics: the final model has not been trained and tested '
            "(retrain_and_test is off, still running, or failed)</p>"
        )
    else:
        ensemble = results.fold_ensemble
        both = results.ensemble_metrics or {}
        plain, _ = split_refined(test_metrics)
        rows = [
            [esc(metric_label(k, class_names)), num(v), num(both.get(k))]
            for k, v in plain.items()
            if not (per_class and split_class_metric(k))
        ]
        chosen = results.default_model
        header = ["metric", "retrained model", "fold ensemble"]
        header[1 if chosen == "retrained_model" else 2] += " (default)"
        body = html_table(header, rows, {1: "num", 2: "num"})
        body += _cv_versus_test(test_metrics, results)
        body += _default_note(chosen, results, test_metrics)
        body += _refinements(test_metrics, both)
        if both and ensemble is not None:
            body += (
                f'<p class="note">The fold ensemble averages the probabilities of trial '
                f"{esc(ensemble.trial)}'s {len(ensemble.members)} fold "
                "models at their best epochs; it is exported to final/ensemble/ "
                "(smptune.training.ensemble.load_ensemble).</p>"
            )
        elif ensemble is not None and ensemble.error:
            body += f'<p class="note">no fold ensemble: {esc(ensemble.error)}</p>'
    return f'<section id="test"><h2>Test metrics of the final model</h2>{body}</section>'


def _default_note(chosen: str, results: SweepResults, test_metrics: Mapping[str, float]) -> str:
    """Which model is the default, and whether the retrained one fell below its floor."""
    text = (
        f"The default model is the {chosen.replace('_', ' ')} ({MODEL_FOLDERS[chosen]}/): "
        "producer predict runs it unless told --model"
        f" {'retrained' if chosen == 'fold_ensemble' else 'ensemble'}."
    )
    check = retrain_check(results, test_metrics)
    if check is not None and check.below:
        text += (
            f" The retrained model scores {num(check.test)}, below the CV after its "
            f"epochs less twice the runs' spread ({num(check.floor)}): its last epoch "
            "was an unlucky one; the fold ensemble does not depend on it."
        )
    return f'<p class="note">{text}</p>'


def _refinements(retrained: Mapping[str, float], ensemble: Mapping[str, float]) -> str:
    """The test figures with flips (``tta``) and the largest component kept
    (``postprocess``) beside the plain ones; nothing when neither is configured."""
    plain, refined = split_refined(retrained)
    plain_ensemble, refined_ensemble = split_refined(ensemble)
    if not refined:
        return ""
    header = [
        "evaluation",
        *(f"retrained {f}" for f in REFINED_SHOWN),
        *(f"ensemble {f}" for f in REFINED_SHOWN),
    ]
    rows = [
        [
            esc(label),
            *(num(mine.get(f)) for f in REFINED_SHOWN),
            *(num(theirs.get(f)) for f in REFINED_SHOWN),
        ]
        for label, mine, theirs in [
            ("plain", plain, plain_ensemble),
            *(
                (variant_label(v), figures, refined_ensemble.get(v) or {})
                for v, figures in refined.items()
            ),
        ]
    ]
    return (
        "<h3>Test-time augmentation and post-processing</h3>"
        + html_table(header, rows, {i: "num" for i in range(1, len(header))})
        + '<p class="note">flips: the mean of the predictions of the image and its three '
        "flips; largest component: each class keeps its largest connected region "
        "(training.tta, training.postprocess; producer predict --tta, --postprocess). "
        "Every figure is on the test split.</p>"
    )


def _spread(value: Spread | None) -> str:
    return "–" if value is None else f"{num(value.mean)} ± {num(value.std, 2)}"


def per_class_section(rows: list[ClassRow]) -> str:
    """The per-class table (:mod:`.per_class`); nothing when no figure is per class."""
    if not rows:
        return ""
    header = [
        "class",
        *(f"CV {f}" for f in FIGURES),
        *(f"retrained {f}" for f in FIGURES),
        *(f"ensemble {f}" for f in FIGURES),
    ]
    body = [
        [
            esc(row.name),
            *(_spread(row.cv[f]) for f in FIGURES),
            *(num(row.retrained[f]) for f in FIGURES),
            *(num(row.ensemble[f]) for f in FIGURES),
        ]
        for row in rows
    ]
    numeric = {i: "num" for i in range(1, len(header))}
    return (
        '<section id="per-class"><h2>Per class</h2>'
        + html_table(header, body, numeric)
        + '<p class="note">CV: the best trial\'s runs, each at its best epoch (mean ± std '
        "over runs); retrained: the final model on the test split; ensemble: the best "
        "trial's fold models together on the test split. A class's Dice is its F1.</p>"
        "</section>"
    )


def _cv_versus_test(test_metrics: Mapping[str, float], results: SweepResults) -> str:
    figures = results.cv_versus_test(test_metrics)
    if figures is None:
        return ""
    cv, at_epochs, test = figures
    label = esc(results.metric)
    epochs = results.best.epochs if results.best else None
    sign = "+" if test >= cv else "−"
    text = (
        f"{label}: CV {num(cv)} (each run at its best epoch), test {num(test)} "
        f"({sign}{num(abs(test - cv))})"
    )
    if at_epochs is not None:
        text += f"; CV after {esc(epochs)} epochs, as the final model trains, " + (
            f"{num(at_epochs)}"
        )
    return (
        f'<p class="note">{text}. The best-epoch CV score picks each run\'s epoch after '
        "seeing its validation scores, so it is optimistic; the final model trains a fixed "
        "number of epochs and keeps its last, so its test score is closer to the CV after "
        "that many epochs, and differs from it by about the runs' spread (std) when the "
        "validation and test samples are alike.</p>"
    )


def predictions_section(png: bytes | None, test_metrics: Mapping[str, float] | None) -> str:
    if png:
        body = (
            f"<figure>{img(png, 'sample predictions of the final model', 1.0)}<figcaption>Test "
            "images, their masks and the final model's predictions "
            f"({PREDICTIONS.as_posix()}).</figcaption></figure>"
        )
    elif test_metrics:
        body = '<p class="note">the final model wrote no sample predictions</p>'
    else:
        body = '<p class="note">no final model</p>'
    return f'<section id="predictions"><h2>Sample predictions</h2>{body}</section>'
