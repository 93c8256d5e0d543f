"""A conditional search space the conditions and sampling tests share: a choice of
architecture, an entry only for Unet, a case table by architecture, and an entry that
depends on two others (importable as ``conditional_space``: its folder is on sys.path)."""

from __future__ import annotations

from smptune.search.conditions import Cases
from smptune.search.distributions import Choice, Value

CONDITIONAL = {
    "model_arch": Choice(("Unet", "FPN", "DeepLabV3")),
    "decoder_attention_type": Choice((None, "scse"), when={"model_arch": "Unet"}),
    "model_encoder": Cases(
        "model_arch", {"Unet": Choice(("resnet18", "resnet34")), "FPN": Value("mobilenet_v2")}
    ),
    "encoder_depth": Choice(
        (4, 5), when={"model_arch": ["Unet", "FPN"], "model_encoder": "resnet34"}
    ),
}
