"""The segmentation trainable's runs: losses, seeds per repeat, epoch logs, early stopping,
checkpoints, the final model and its preview (short real trainings on tiny data)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from smptune.search.scoring import Scoring
from smptune.trainable import FoldContext, RunCheckpoint, SweepSettings
from smptune.training import SegmentationTrainable, baseline_metrics
from smptune.training.data import IGNORE, load_data
from smptune.training.splits import splits_for

BINARY = {"synthetic": {"n_images": 16, "size": 32, "seed": 3}, "test_fraction": 0.25}
FAST = {"batch_size": 4, "learning_rate": 3e-3}


pytestmark = pytest.mark.usefixtures("isolated_cache")


def sweep(data=None, metric="iou", n_folds=2, cv=None, **training) -> SweepSettings:
    scoring = Scoring.from_config(metric)
    return SweepSettings(
        seed=7,
        metric=scoring.names[0],
        mode=scoring.mode,
        scoring=scoring,
        data=BINARY if data is None else data,
        cv={"n_folds": n_folds, **(cv or {})},
        training={"max_epochs": 2, "early_stopping_patience": 0, **training},
    )


def run(s: SweepSettings, fold=0, repeat=0, out: Path | None = None) -> FoldContext:
    return FoldContext("sweep", 0, fold, s.cv["n_folds"], s, output_dir=out, repeat=repeat)


def epochs_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSVLogger file that hold validation metrics."""
    with path.open() as handle:
        return [row for row in csv.DictReader(handle) if row.get("val_iou")]


# --- losses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["focal", "dice", "jaccard", "lovasz", "tversky", "ce", "focal+dice", "0.7*dice+0.3*ce"]
)
@pytest.mark.parametrize("classes", [1, 3])
def test_every_loss_leaves_out_ignored_pixels_and_learns_from_the_others(name, classes):
    import torch

    from smptune.training.losses import make_loss

    # Given masks whose right half is ignored
    gen = torch.Generator().manual_seed(0)
    masks = torch.randint(0, max(2, classes), (2, 8, 8), generator=gen).to(torch.uint8)
    masks[:, :, 4:] = IGNORE
    channels = 1 if classes == 1 else classes
    logits = torch.randn(2, channels, 8, 8, generator=gen)
    loss = make_loss(name, classes, alpha=0.25, gamma=2.0)
    # When logits change where pixels are ignored, the loss stays; where they count, it moves
    ignored = logits.clone()
    ignored[..., 4:] = 40.0
    counted = logits.clone()
    counted[..., :4] = 40.0
    base = float(loss(logits, masks))
    assert math.isfinite(base) and base > 0
    assert float(loss(ignored, masks)) == pytest.approx(base, rel=1e-5)
    assert float(loss(counted, masks)) != pytest.approx(base, rel=1e-3)


def test_a_sum_of_losses_is_their_weighted_sum():
    import torch

    from smptune.training.losses import make_loss

    logits = torch.randn(2, 3, 8, 8)
    masks = torch.randint(0, 3, (2, 8, 8))
    focal, dice = (float(make_loss(n, 3, None, 2.0)(logits, masks)) for n in ("focal", "dice"))
    assert float(make_loss("focal+dice", 3, None, 2.0)(logits, masks)) == pytest.approx(
        focal + dice
    )
    weighted = make_loss("0.25*focal + 2*dice", 3, None, 2.0)(logits, masks)
    assert float(weighted) == pytest.approx(0.25 * focal + 2 * dice)


def test_tversky_weighs_false_positives_and_negatives_as_told():
    import torch

    from smptune.training.losses import make_loss

    # Given a prediction with false positives only (every pixel called foreground)
    masks = torch.zeros(1, 8, 8, dtype=torch.long)
    masks[:, :4] = 1
    logits = torch.full((1, 1, 8, 8), 10.0)
    # Then a Tversky loss that weighs false positives more scores it worse, and with
    # alpha = beta = 0.5 it is the dice loss
    fp_heavy = float(make_loss("tversky", 1, None, 2.0, (0.9, 0.1))(logits, masks))
    fn_heavy = float(make_loss("tversky", 1, None, 2.0, (0.1, 0.9))(logits, masks))
    assert fp_heavy > fn_heavy
    dice = float(make_loss("dice", 1, None, 2.0)(logits, masks))
    assert float(make_loss("tversky", 1, None, 2.0)(logits, masks)) == pytest.approx(dice)


@pytest.mark.parametrize("loss", ["hinge", "dice+", "-1*dice", "0*focal", "x*dice", 3])
def test_an_unknown_loss_is_a_config_error(loss):
    from smptune.errors import ConfigError

    with pytest.raises(ConfigError, match=r"hyperparameters\.loss: must be one of focal, dice"):
        SegmentationTrainable().validate({"loss": loss}, sweep())


# --- runs -------------------------------------------------------------------------------------


def test_repeats_of_a_fold_differ_by_seed_and_each_is_reproducible(tmp_path):
    # Given one fold run with seeds 0 and 1, each twice
    s = sweep()
    trainable = SegmentationTrainable()
    first = trainable.train_fold(FAST, run(s, repeat=0, out=tmp_path))
    second = trainable.train_fold(FAST, run(s, repeat=1, out=tmp_path))
    first_again = trainable.train_fold(FAST, run(s, repeat=0))
    second_again = trainable.train_fold(FAST, run(s, repeat=1))
    # Then the same seed gives the same metrics, the other seed others (same validation set)
    assert first_again.metrics == pytest.approx(first.metrics)
    assert second_again.metrics == pytest.approx(second.metrics)
    assert first.metrics["loss"] != pytest.approx(second.metrics["loss"], rel=1e-4)
    # and each run logs its epochs to logs/fold_<k>_seed_<r>/metrics.csv, with the run score
    for repeat, result in ((0, first), (1, second)):
        rows = epochs_csv(tmp_path / "logs" / f"fold_0_seed_{repeat}" / "metrics.csv")
        assert len(rows) == result.epochs_run == 2
        best = rows[result.best_epoch - 1]
        assert float(best["val_iou"]) == pytest.approx(result.metrics["iou"])
        assert float(best["val_score"]) == pytest.approx(result.metrics["iou"])


def test_a_run_reports_each_epoch_and_stops_at_the_boundary_its_context_asks_for():
    # Given a 6-epoch run whose context asks it to stop once epoch 2 is reported
    s = sweep(max_epochs=6)
    reported: list[tuple[int, float]] = []

    def report(epoch: int, metrics: Mapping[str, float]) -> None:
        reported.append((epoch, metrics["iou"]))

    context = dataclasses.replace(run(s), report=report, should_stop=lambda: len(reported) >= 2)
    # When it trains
    result = SegmentationTrainable().train_fold(FAST, context)
    # Then it reported epochs 1 and 2 with their validation metrics, and stopped after 2
    assert [epoch for epoch, _ in reported] == [1, 2]
    assert result.epochs_run == 2 and result.best_epoch in (1, 2)
    assert result.metrics["iou"] == pytest.approx(reported[result.best_epoch - 1][1])


def test_a_run_resumed_from_its_checkpoint_continues_as_the_uninterrupted_run(tmp_path):
    # Given a 6-epoch run trained through, and the same run stopped after epoch 3 with a
    # checkpoint saved there (as a preempted or lost worker's run)
    s = sweep(max_epochs=6)
    trainable = SegmentationTrainable()
    whole = trainable.train_fold(FAST, run(s, out=tmp_path / "whole"))
    path = tmp_path / "checkpoints" / "fold_0_seed_0.ckpt"
    path.parent.mkdir()
    saved: list[int] = []
    first = dataclasses.replace(
        run(s, out=tmp_path / "first"),
        checkpoint=RunCheckpoint(path, due=lambda epoch: epoch == 3, saved=saved.append),
        should_stop=lambda: bool(saved),
    )
    stopped = trainable.train_fold(FAST, first)
    assert (stopped.epochs_run, saved, path.is_file()) == (3, [3], True)
    assert not path.with_name(path.name + ".partial").exists()

    # When another process resumes it from that checkpoint
    reported: list[int] = []
    resumed_context = dataclasses.replace(
        run(s, out=tmp_path / "second"),
        checkpoint=RunCheckpoint(path, resume_epoch=3),
        report=lambda epoch, metrics: reported.append(epoch),
    )
    resumed = trainable.train_fold(FAST, resumed_context)

    # Then it trains epochs 4 to 6 only and ends where the uninterrupted run ended
    assert reported == [4, 5, 6]
    assert (resumed.epochs_run, resumed.best_epoch) == (whole.epochs_run, whole.best_epoch)
    assert resumed.metrics == pytest.approx(whole.metrics, rel=1e-4, abs=1e-6)


def val_losses(out: Path) -> list[float]:
    return [float(r["val_loss"]) for r in epochs_csv(out / "logs/fold_0_seed_0/metrics.csv")]


def test_an_ema_run_validates_and_ends_with_the_averaged_weights(tmp_path):
    # Given the same 3-epoch run with and without an exponential moving average of weights
    trainable = SegmentationTrainable()
    plain = trainable.train_fold(FAST, run(sweep(max_epochs=3), out=tmp_path / "plain"))
    ema = trainable.train_fold(
        FAST, run(sweep(max_epochs=3, weight_averaging="ema"), out=tmp_path / "ema")
    )
    # Then every epoch validated the averaged weights: other losses from the same training
    assert ema.epochs_run == plain.epochs_run == 3
    assert math.isfinite(ema.metrics["loss"])
    raw_losses = val_losses(tmp_path / "plain")
    for averaged, raw in zip(val_losses(tmp_path / "ema"), raw_losses, strict=True):
        assert averaged != pytest.approx(raw, rel=1e-4)


def test_an_swa_run_averages_only_its_last_epochs(tmp_path):
    # Given the same 6-epoch run with and without SWA (window: the last 2 epochs)
    trainable = SegmentationTrainable()
    plain = trainable.train_fold(FAST, run(sweep(max_epochs=6), out=tmp_path / "plain"))
    swa_sweep = sweep(max_epochs=6, weight_averaging="swa")
    swa = trainable.train_fold(FAST, run(swa_sweep, out=tmp_path / "swa"))
    raw, averaged = val_losses(tmp_path / "plain"), val_losses(tmp_path / "swa")
    # Then the first 4 epochs validated the raw weights, as without SWA ...
    assert averaged[:4] == pytest.approx(raw[:4], rel=1e-5)
    # ... and the last 2 the average: epoch 5 is the weights after epoch 5 (one update) and
    # epoch 6 the mean of epochs 5 and 6, which differs from the raw epoch 6
    assert averaged[4] == pytest.approx(raw[4], rel=1e-5)
    assert averaged[5] != pytest.approx(raw[5], rel=1e-4)
    assert swa.epochs_run == plain.epochs_run == 6


def test_weight_averaging_names_its_choices():
    from smptune.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"training\.weight_averaging: must be one of none, ema, swa"
    ):
        SegmentationTrainable().validate({}, sweep(weight_averaging="swa2"))


def test_the_best_epoch_follows_the_scoring_direction(tmp_path):
    # Given scoring by the validation loss, lower is better
    s = sweep(metric="loss:lower", max_epochs=3)
    result = SegmentationTrainable().train_fold(FAST, run(s, out=tmp_path))
    # Then the best epoch is the one with the lowest loss in the epoch log
    losses = [float(r["val_loss"]) for r in epochs_csv(tmp_path / "logs/fold_0_seed_0/metrics.csv")]
    assert result.best_epoch == 1 + int(np.argmin(losses))
    assert result.metrics["loss"] == pytest.approx(min(losses))


def test_an_unstable_run_score_stops_early_without_crashing(tmp_path):
    # Given 3-class masks where class 2 never occurs: iou_class_2 is 0, so the combined score
    # harmonic(iou, iou_class_2) is NaN (unstable) every epoch
    masks = [np.zeros((32, 32), np.uint8) for _ in range(12)]
    for m in masks:
        m[8:20, 8:20] = 1
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i, m in enumerate(masks):
        np.save(tmp_path / "images" / f"{i}.npy", rng.integers(0, 256, (32, 32), np.uint8))
        np.save(tmp_path / "masks" / f"{i}.npy", m)
    data = {"root": str(tmp_path), "classes": 3}
    s = sweep(data, metric=["iou", "iou_class_2"], max_epochs=4, early_stopping_patience=2)
    # When a fold is trained with early stopping
    result = SegmentationTrainable().train_fold(FAST, run(s))
    # Then NaN counts as no improvement: it stops after `patience` epochs, reporting epoch 1
    assert result.epochs_run == 2 and result.best_epoch == 1
    assert result.metrics["iou_class_2"] == 0.0
    assert math.isnan(s.scoring.run_score(result.metrics))


def test_multiclass_crops_and_group_folds_train(tmp_path):
    # Given 3-class, 2-channel synthetic images of 50 px in 4 groups, cropped to 32 for training
    data = {
        "synthetic": {"n_images": 16, "size": 50, "channels": 2, "classes": 3, "groups": 4},
        "resize": "crop",
        "crop_size": 32,
        "test_groups": ["g3"],
    }
    s = sweep(data, cv={"fold_method": "group"}, max_epochs=1)
    result = SegmentationTrainable().train_fold({**FAST, "loss": "focal+dice"}, run(s))
    # Then it reports macro metrics and one IoU and one Dice per class, all in [0, 1]
    names = {"iou", "dice", "f1", "precision", "recall", "accuracy", "loss"}
    per_class_names = {f"{m}_class_{k}" for m in ("iou", "dice") for k in range(3)}
    assert set(result.metrics) == names | per_class_names
    assert all(0.0 <= v <= 1.0 for k, v in result.metrics.items() if k != "loss")
    # (every class occurs in the validation masks, so iou and dice are the means of the three)
    for metric in ("iou", "dice"):
        per_class = [result.metrics[f"{metric}_class_{k}"] for k in range(3)]
        assert result.metrics[metric] == pytest.approx(np.mean(per_class))
    # and a class's Dice is 2 IoU / (1 + IoU)
    for k in range(3):
        iou = result.metrics[f"iou_class_{k}"]
        assert result.metrics[f"dice_class_{k}"] == pytest.approx(2 * iou / (1 + iou), abs=1e-5)


def test_best_checkpoints_are_saved_per_run_in_smp_format(tmp_path):
    import segmentation_models_pytorch as smp

    s = sweep(max_epochs=2, save_checkpoints="best")
    result = SegmentationTrainable().train_fold(FAST, run(s, fold=1, repeat=1, out=tmp_path))
    saved = tmp_path / "logs" / "fold_1_seed_1" / "best_model"
    info = json.loads((saved / "smptune.json").read_text())
    assert info["validation_metrics"] == pytest.approx(result.metrics)
    assert smp.from_pretrained(saved) is not None
    # and none are saved by default
    SegmentationTrainable().train_fold(FAST, run(sweep(), out=tmp_path / "plain"))
    assert not list((tmp_path / "plain").rglob("best_model"))


# --- the final model --------------------------------------------------------------------------


def test_final_model_loads_with_smp_predicts_better_than_background_and_is_previewed(tmp_path):
    import segmentation_models_pytorch as smp
    import torch
    from PIL import Image

    # Given 24 binary 3-channel images of 48 px (padded to 64) and a few epochs of training
    data = {"synthetic": {"n_images": 24, "size": 48, "seed": 1}, "test_fraction": 0.25}
    s = sweep(data)
    params = {"batch_size": 4, "learning_rate": 1e-2, "gamma": 1.0, "loss": "focal+dice"}
    metrics = SegmentationTrainable().retrain_and_test(
        params, 5, FoldContext("sweep", 0, -1, 2, s, output_dir=tmp_path)
    )
    # Then smp loads the model, smptune.json says how to use it
    model = smp.from_pretrained(tmp_path / "model").eval()
    info = json.loads((tmp_path / "model" / "smptune.json").read_text())
    assert info["classes"] == 1 and info["ignore_index"] is None and info["in_channels"] == 3
    assert info["normalisation"] == {"method": "none"} and info["image_size"] == [48, 48]
    assert info["hyperparameters"]["loss"] == "focal+dice"
    assert info["hyperparameters"]["model_arch"] == "Unet"
    assert info["test_metrics"] == pytest.approx(metrics)
    # and its predictions on the test images have the image size and beat all background
    _, loaded, plan = splits_for(s)
    test = list(plan.test)
    with torch.no_grad():
        logits = model(torch.from_numpy(loaded.float_images(test)))
    assert logits.shape == (len(test), 1, 64, 64)
    pred = (logits[:, 0] > 0).numpy()[:, :48, :48]
    truth = np.asarray(loaded.masks[test])[:, :48, :48] == 1
    iou = (pred & truth).sum() / max(1, (pred | truth).sum())
    background = baseline_metrics(s)
    assert background["iou"] == 0.0 and iou > 0.2
    assert metrics["iou"] == pytest.approx(iou, abs=1e-6)
    # and predictions.png shows 4 rows of image | truth | prediction, titled, each 48 px
    # sample scaled up 4 times (at least 192 px) so that a mask's pixels can be told apart
    with Image.open(tmp_path / "predictions.png") as png:
        assert png.size == (3 * 192 + 2 * 4, 22 + 4 * 192 + 3 * 4)
        title_row = np.asarray(png.convert("L"))[:22]
    assert (title_row < 128).any()  # the column titles are drawn


def test_final_multiclass_model_has_one_output_per_class(tmp_path):
    import segmentation_models_pytorch as smp
    import torch

    data = {"synthetic": {"n_images": 12, "size": 32, "classes": 4}, "ignore_index": 255}
    s = sweep(data)
    metrics = SegmentationTrainable().retrain_and_test(
        {**FAST, "loss": "ce"}, 1, FoldContext("sweep", 0, -1, 2, s, output_dir=tmp_path)
    )
    assert {"iou_class_3", "loss"} <= set(metrics)
    model = smp.from_pretrained(tmp_path / "model").eval()
    info = json.loads((tmp_path / "model" / "smptune.json").read_text())
    assert info["classes"] == 4 and info["ignore_index"] == 255
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 4, 32, 32)
    assert (tmp_path / "predictions.png").is_file()


def test_multiclass_baseline_predicts_class_zero():
    s = sweep({"synthetic": {"n_images": 12, "size": 32, "classes": 3}})
    baseline = baseline_metrics(s)
    masks = np.asarray(load_data(s.data).masks)[list(splits_for(s)[2].train)]
    share = float((masks == 0).sum() / (masks != IGNORE).sum())
    assert baseline["iou_class_0"] == pytest.approx(share)
    assert baseline["iou_class_1"] == baseline["iou_class_2"] == 0.0
    assert baseline["iou"] == pytest.approx(share / 3) and baseline["accuracy"] == pytest.approx(
        share
    )


def test_auto_precision_is_full_precision_without_a_gpu():
    import torch

    from smptune.training.engine import resolve_precision

    expected = (
        "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    )
    assert resolve_precision("auto") == expected
    assert resolve_precision("16-mixed") == "16-mixed"


def test_a_fold_ensemble_averages_its_members_probabilities_and_round_trips(tmp_path):
    import torch

    from smptune.training.ensemble import FoldEnsemble, export_ensemble, load_ensemble
    from smptune.training.model import build_model

    # Given two differently initialised binary models saved in smp's format
    members = []
    for fold in range(2):
        torch.manual_seed(fold)
        model = build_model(
            {
                "model_arch": "Unet",
                "model_encoder": "tu-regnetx_002",
                "model_encoder_weights": None,
            },
            3,
        ).eval()
        folder = tmp_path / "trials" / "0" / "logs" / f"fold_{fold}_seed_0" / "best_model"
        model.save_pretrained(str(folder))
        (folder / "smptune.json").write_text(json.dumps({"classes": 1, "in_channels": 3}))
        members.append((folder, model))
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = torch.stack([torch.sigmoid(m(images)) for _, m in members]).mean(0)

    # When they are exported as an ensemble and loaded back
    out = export_ensemble([f for f, _ in members], tmp_path / "final" / "ensemble", {"iou": 0.5})
    ensemble = load_ensemble(out)

    # Then it predicts the mean of their probabilities, and labels where it passes 0.5
    assert isinstance(ensemble, FoldEnsemble)
    assert torch.allclose(ensemble(images), expected, atol=1e-5)
    assert torch.equal(ensemble.predict(images), (expected[:, 0] > 0.5).long())
    info = json.loads((out / "smptune.json").read_text())
    assert info["members"] == ["fold_0_seed_0", "fold_1_seed_0"]
    assert info["test_metrics"] == {"iou": 0.5} and "load_ensemble" in info["load"]
