"""The best trial's fold models as one predictor: their probabilities averaged (as nnU-Net
predicts), tested on the test split and exported to ``final/ensemble/``.

Load an exported ensemble and predict with it::

    from smptune.training.ensemble import load_ensemble

    ensemble = load_ensemble("results/<sweep>/final/ensemble")
    probabilities = ensemble(images)      # float (N, C, H, W) in [0, 1], H, W multiples of 32
    labels = ensemble.predict(images)     # (N, H, W) class labels

``images`` are prepared as ``smptune.json`` there says (the data's scaling to [0, 1]); the
ensemble applies the encoder's normalisation itself. Each member is an smp model folder
(``smp.from_pretrained``) with its own ``smptune.json``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from smptune.training.module import Normalise

#: What the exported folder's ``smptune.json`` says the ensemble is.
KIND = "fold ensemble: the mean of the members' probabilities"


class FoldEnsemble(torch.nn.Module):
    """Models whose probabilities are averaged: sigmoid of the one foreground logit for
    binary data (``classes == 1``), softmax over the classes otherwise."""

    def __init__(
        self,
        models: Sequence[torch.nn.Module],
        classes: int,
        normalisation: dict[str, list[float]] | None = None,
    ) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(models)
        self.classes = classes
        self.normalise = Normalise(normalisation)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Mean probabilities (N, C, H, W) of images (N, C, H, W) in [0, 1]."""
        batch = self.normalise.to(images.device)(images)
        probs = []
        for model in self.members:
            logits = model.eval()(batch).float()
            probs.append(torch.sigmoid(logits) if self.classes == 1 else logits.softmax(dim=1))
        return torch.stack(probs).mean(dim=0)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Labels (N, H, W): foreground where the mean probability passes 0.5, else the
        class of the highest mean probability."""
        probs: torch.Tensor = self(images)
        return (probs[:, 0] > 0.5).long() if self.classes == 1 else probs.argmax(dim=1)

    @staticmethod
    def logits(probs: torch.Tensor, classes: int) -> torch.Tensor:
        """Logits whose sigmoid (binary) or softmax (multi-class) are ``probs``: what the
        losses and metrics read."""
        eps = 1e-6
        if classes == 1:
            return torch.logit(probs.clamp(eps, 1 - eps))
        return probs.clamp_min(eps).log()


class EnsembleLogits(torch.nn.Module):
    """A fold ensemble's mean probabilities read back as logits, as its test reads them."""

    def __init__(self, ensemble: FoldEnsemble) -> None:
        super().__init__()
        self.ensemble = ensemble

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return FoldEnsemble.logits(self.ensemble(images), self.ensemble.classes)


def load_members(folders: Sequence[Path]) -> list[torch.nn.Module]:
    """smp models saved with ``save_pretrained``, on the CPU, in evaluation mode."""
    import segmentation_models_pytorch as smp

    return [smp.from_pretrained(str(folder)).eval() for folder in folders]


def export_ensemble(members: Sequence[Path], out: Path, test_metrics: dict[str, float]) -> Path:
    """Copy the member folders into ``out`` (``out/<member>``) with an ``smptune.json`` that
    says how to read the ensemble and what it scored; returns ``out``."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    names = []
    for folder in members:
        name = folder.parent.name  # fold_<k>_seed_<r>
        shutil.copytree(folder, out / name)
        names.append(name)
    first = json.loads((out / names[0] / "smptune.json").read_text())
    shared = ("in_channels", "classes", "class_labels", "ignore_index", "input", "normalisation")
    description = {
        "kind": KIND,
        "members": names,
        "load": "smptune.training.ensemble.load_ensemble(<this folder>)",
        **{key: first[key] for key in shared if key in first},
        "encoder_normalisation": first.get("encoder_normalisation"),
        "hyperparameters": first.get("hyperparameters"),
        "test_metrics": test_metrics,
    }
    (out / "smptune.json").write_text(json.dumps(description, indent=2) + "\n")
    return out


def load_ensemble(path: str | Path) -> FoldEnsemble:
    """The ensemble :func:`export_ensemble` wrote to ``path``."""
    path = Path(path)
    info = json.loads((path / "smptune.json").read_text())
    models = load_members([path / name for name in info["members"]])
    return FoldEnsemble(models, int(info["classes"]), info.get("encoder_normalisation"))
