"""The hyperparameters of the segmentation trainable: defaults and value checks.

The checks here need no torch; the architecture and encoder names are looked up in smp's
registries by :mod:`smptune.training.model`.
"""

from __future__ import annotations

import math
from typing import Any

from smptune.errors import ConfigError
from smptune.params import Params, ParamsView

DEFAULTS: Params = {
    "model_arch": "Unet",
    "model_encoder": "tu-regnetx_002",
    "model_encoder_weights": None,
    "augment": True,
    "learning_rate": 1e-3,
    "gamma": 0.9,
    "focal_loss_alpha": None,
    "focal_loss_gamma": 2.0,
    "batch_size": 8,
    "weight_decay": 1e-2,
    "loss": "focal",
    "tversky_alpha": 0.5,
    "tversky_beta": 0.5,
}
AUGMENTATIONS = ("flips", "scale", "rotate", "intensity", "noise")
"""Augmentation sets an ``augment`` names (``flips+intensity``, ``all``); ``true`` is
``flips``, ``false`` or ``none`` none."""
LOSSES = ("focal", "dice", "jaccard", "lovasz", "tversky", "ce")
"""Losses a ``loss`` names, alone or in a weighted sum (``dice+0.5*focal``); ``ce``:
cross-entropy (binary: BCE on the foreground logit)."""


def _key(name: str) -> str:
    return f"hyperparameters.{name}"


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{_key(name)}: expected a finite number, got {value!r}")
    return float(value)


def parse_augment(value: Any) -> tuple[str, ...]:
    """The augmentation sets an ``augment`` value names, in :data:`AUGMENTATIONS` order."""
    if isinstance(value, bool):
        return ("flips",) if value else ()
    text = value.strip().lower().replace(" ", "") if isinstance(value, str) else ""
    if text in ("none", "false"):
        return ()
    if text == "all":
        return AUGMENTATIONS
    names = set(text.split("+")) if text else {""}
    if not names <= set(AUGMENTATIONS):
        raise ConfigError(
            f"{_key('augment')}: must be true, false, none, all, or sets of "
            f"{', '.join(AUGMENTATIONS)} joined by '+' (flips+intensity), got {value!r}"
        )
    return tuple(name for name in AUGMENTATIONS if name in names)


def parse_loss(value: Any) -> tuple[tuple[float, str], ...]:
    """``(weight, loss)`` terms of a ``loss`` value: one of :data:`LOSSES`, or a sum of them
    with optional weights (``dice+focal``, ``0.7*dice+0.3*ce``)."""
    text = value.strip().lower().replace(" ", "") if isinstance(value, str) else ""
    terms: list[tuple[float, str]] = []
    for part in text.split("+") if text else [""]:
        weight_text, star, name = part.rpartition("*")
        try:
            weight = float(weight_text) if star else 1.0
        except ValueError:
            weight = math.nan
        if name not in LOSSES or not math.isfinite(weight) or weight <= 0:
            raise ConfigError(
                f"{_key('loss')}: must be one of {', '.join(LOSSES)} or a sum of them with "
                f"optional positive weights (dice+focal, 0.7*dice+0.3*ce), got {value!r}"
            )
        terms.append((weight, name))
    return tuple(terms)


def loss_text(terms: tuple[tuple[float, str], ...]) -> str:
    """A loss spelled one way: ``dice+0.5*focal``."""
    return "+".join(name if weight == 1 else f"{weight:g}*{name}" for weight, name in terms)


def resolve_params(params: ParamsView) -> Params:
    """The defaults overlaid with ``params``, checked and normalised (no smp lookups)."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"{_key(unknown[0])}: unknown hyperparameter; known: {', '.join(DEFAULTS)}"
        )
    p = {**DEFAULTS, **params}

    for name in ("model_arch", "model_encoder"):
        if not isinstance(p[name], str) or not p[name].strip():
            raise ConfigError(f"{_key(name)}: expected a name, got {p[name]!r}")
    weights = p["model_encoder_weights"]
    if isinstance(weights, str) and weights.strip().lower() in ("", "none", "null"):
        weights = None
    if weights is not None and not isinstance(weights, str):
        raise ConfigError(
            f"{_key('model_encoder_weights')}: expected a name (e.g. 'imagenet') or null, "
            f"got {weights!r}"
        )
    p["model_encoder_weights"] = weights

    if not isinstance(p["augment"], bool):
        p["augment"] = "+".join(parse_augment(p["augment"])) or "none"

    lr = _number("learning_rate", p["learning_rate"])
    if lr <= 0:
        raise ConfigError(f"{_key('learning_rate')}: must be > 0, got {p['learning_rate']!r}")
    p["learning_rate"] = lr

    gamma = _number("gamma", p["gamma"])
    if not 0 < gamma <= 1:
        raise ConfigError(f"{_key('gamma')}: must be in (0, 1], got {p['gamma']!r}")
    p["gamma"] = gamma

    alpha = p["focal_loss_alpha"]
    if alpha is not None:
        alpha = _number("focal_loss_alpha", alpha)
        if not 0 <= alpha <= 1:
            raise ConfigError(
                f"{_key('focal_loss_alpha')}: must be null or in [0, 1], "
                f"got {p['focal_loss_alpha']!r}"
            )
    p["focal_loss_alpha"] = alpha

    focal_gamma = _number("focal_loss_gamma", p["focal_loss_gamma"])
    if focal_gamma < 0:
        raise ConfigError(
            f"{_key('focal_loss_gamma')}: must be >= 0, got {p['focal_loss_gamma']!r}"
        )
    p["focal_loss_gamma"] = focal_gamma

    batch_size = p["batch_size"]
    if isinstance(batch_size, float) and batch_size.is_integer():
        batch_size = int(batch_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"{_key('batch_size')}: must be an integer >= 1, got {batch_size!r}")
    p["batch_size"] = batch_size

    weight_decay = _number("weight_decay", p["weight_decay"])
    if weight_decay < 0:
        raise ConfigError(f"{_key('weight_decay')}: must be >= 0, got {p['weight_decay']!r}")
    p["weight_decay"] = weight_decay

    p["loss"] = loss_text(parse_loss(p["loss"]))
    for name in ("tversky_alpha", "tversky_beta"):
        value = _number(name, p[name])
        if value < 0:
            raise ConfigError(f"{_key(name)}: must be >= 0, got {p[name]!r}")
        p[name] = value
    return p
