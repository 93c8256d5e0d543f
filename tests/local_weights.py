"""Pretrained-encoder files on local disk, laid out as the Hugging Face cache smp reads them
from, so that a test can use ``model_encoder_weights: imagenet`` without a download."""

from __future__ import annotations

import json
from pathlib import Path

ENCODER = "mobilenet_v2"


def write_local_weights(cache: Path, mean: list[float], std: list[float]) -> Path:
    """Random ``mobilenet_v2`` ImageNet weights and preprocessing statistics ``mean`` and
    ``std`` in ``cache`` (a ``HF_HUB_CACHE``); returns ``cache``."""
    from safetensors.torch import save_file
    from segmentation_models_pytorch import encoders

    settings = encoders.encoders[ENCODER]["pretrained_settings"]["imagenet"]
    repo = "models--" + settings["repo_id"].replace("/", "--")
    snapshot = cache / repo / "snapshots" / settings["revision"]
    snapshot.mkdir(parents=True)
    config = {"input_space": "RGB", "input_range": [0, 1], "mean": mean, "std": std}
    (snapshot / "config.json").write_text(json.dumps(config))
    encoder = encoders.get_encoder(ENCODER, in_channels=3, weights=None)
    state = {k: v.contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, str(snapshot / "model.safetensors"))
    return cache
