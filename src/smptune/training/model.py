"""smp models: architecture and encoder look-ups in smp's registries, and model building."""

from __future__ import annotations

import difflib
import functools
import warnings
from typing import TYPE_CHECKING, Any

from smptune.errors import ConfigError
from smptune.params import Params

if TYPE_CHECKING:
    import torch

_ARCH_KEY = "hyperparameters.model_arch"
_ENCODER_KEY = "hyperparameters.model_encoder"
_WEIGHTS_KEY = "hyperparameters.model_encoder_weights"


def architectures() -> dict[str, str]:
    """smp's architectures: lower-case name → class name (``{'unet': 'Unet', ...}``)."""
    import segmentation_models_pytorch as smp

    mapping = getattr(smp, "MODEL_ARCHITECTURES_MAPPING", None)
    if mapping is None:  # smp < 0.4
        return {cls.__name__.lower(): cls.__name__ for cls in smp._MODEL_ARCHITECTURES}
    return {key.lower(): cls.__name__ for key, cls in mapping.items()}


def check_architecture(name: str) -> str:
    """The class name of architecture ``name`` (case-insensitive), or :class:`ConfigError`."""
    known = architectures()
    if name.lower() not in known:
        raise ConfigError(
            f"{_ARCH_KEY}: unknown architecture {name!r}; known: {', '.join(known.values())}"
        )
    return known[name.lower()]


def _timm_name(encoder: str) -> str | None:
    """The timm model behind a ``tu-`` (or legacy ``timm-`` alias) encoder name, else None."""
    if encoder.startswith("tu-"):
        return encoder[3:]
    from segmentation_models_pytorch import encoders

    alias = getattr(encoders, "is_equivalent_to_timm_universal", None)
    if encoder.startswith("timm-") and alias is not None and alias(encoder):
        name = encoder[len("timm-") :]
        return f"tf_{name}" if "mobilenetv3" in name else name
    return None


def check_encoder(name: str, weights: str | None) -> None:
    """Raise :class:`ConfigError` for an encoder smp does not know, or weights it lacks."""
    from segmentation_models_pytorch import encoders

    registry = encoders.encoders
    if name in registry:
        available = list(registry[name].get("pretrained_settings", {}))
        if weights is not None and weights not in available:
            raise ConfigError(
                f"{_WEIGHTS_KEY}: encoder {name!r} has no weights {weights!r}; "
                f"available: {', '.join(available) or 'none'} (or null for random init)"
            )
        return
    timm_name = _timm_name(name)
    if timm_name is not None:
        import timm

        if not timm.is_model(timm_name):
            close = difflib.get_close_matches(timm_name, timm.list_models(), n=3)
            hint = f"; did you mean {', '.join('tu-' + c for c in close)}?" if close else ""
            raise ConfigError(f"{_ENCODER_KEY}: timm has no model {timm_name!r}{hint}")
        return
    close = difflib.get_close_matches(name, list(registry), n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(
        f"{_ENCODER_KEY}: unknown encoder {name!r}; {hint}known: {', '.join(registry)}, "
        "or 'tu-<timm model>' for any timm model"
    )


def _create(
    arch: str, encoder: str, weights: Any, in_channels: int, classes: int = 1
) -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    if weights is not None and _timm_name(encoder) is not None:
        weights = True  # smp's 'tu-' encoders take True/None; the tag is in the name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model: torch.nn.Module = smp.create_model(
            arch,
            encoder_name=encoder,
            encoder_weights=weights,
            in_channels=in_channels,
            classes=classes,
        )
        return model


@functools.lru_cache(maxsize=256)
def check_combination(arch: str, encoder: str, in_channels: int) -> None:
    """Build the model without weights on the meta device (no memory, no download).

    Some encoders cannot be built on the meta device; those are built on the CPU instead.
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                _create(arch, encoder, None, in_channels)
            return
        except Exception as exc:
            if "meta" not in str(exc).lower():
                raise ConfigError(
                    f"{_ENCODER_KEY}: {arch} cannot be built with encoder {encoder!r}: {exc}"
                ) from exc
        try:
            _create(arch, encoder, None, in_channels)
        except Exception as exc:
            raise ConfigError(
                f"{_ENCODER_KEY}: {arch} cannot be built with encoder {encoder!r}: {exc}"
            ) from exc


def check_model(params: Params, in_channels: int | None) -> None:
    """All model checks for resolved ``params`` (see :func:`~smptune.training.params`)."""
    arch = check_architecture(params["model_arch"])
    check_encoder(params["model_encoder"], params["model_encoder_weights"])
    check_combination(arch, params["model_encoder"], in_channels or 3)


def encoder_normalisation(params: Params, in_channels: int) -> dict[str, list[float]] | None:
    """The per-channel ``mean`` and ``std`` a pretrained encoder's weights were trained with,
    for inputs in [0, 1] (smp's ``get_preprocessing_params``, read from the same place as
    the weights); None for an encoder without pretrained weights. With other than the
    weights' channel count (smp adapts the first convolution), every channel gets their
    averages."""
    weights = params["model_encoder_weights"]
    if weights is None:
        return None
    from segmentation_models_pytorch.encoders import get_preprocessing_params

    try:
        settings = get_preprocessing_params(params["model_encoder"], pretrained=weights)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{_WEIGHTS_KEY}: no preprocessing parameters: {exc}") from exc
    mean = [float(m) for m in settings["mean"]]
    std = [float(s) for s in settings["std"]]
    if len(mean) != in_channels:
        mean = [sum(mean) / len(mean)] * in_channels
        std = [sum(std) / len(std)] * in_channels
    return {"mean": mean, "std": std}


def build_model(params: Params, in_channels: int, classes: int = 1) -> torch.nn.Module:
    """A fresh smp model: one output channel (the foreground logit) for binary data
    (``classes == 1``), else one logit per class."""
    return _create(
        params["model_arch"],
        params["model_encoder"],
        params["model_encoder_weights"],
        in_channels,
        classes,
    )
