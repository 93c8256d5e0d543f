"""Test-time flips and the largest-component post-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smptune.training.inference import FlipAverage
from smptune.training.refine import (
    check_option,
    largest_component,
    postprocessed,
    variant_options,
    variants,
)


def test_flip_averaging_undoes_each_flip_so_an_equivariant_model_is_unchanged():
    # Given a model that is flip-equivariant (a per-pixel function) and one that is not
    images = torch.rand(2, 3, 8, 12)
    pointwise = torch.nn.Conv2d(3, 2, kernel_size=1)
    assert torch.allclose(FlipAverage(pointwise)(images), pointwise(images), atol=1e-6)

    # When the model sees position (a ramp added from the left), the average is symmetric
    class Ramp(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :1] + torch.linspace(0, 1, x.shape[-1])

    out = FlipAverage(Ramp())(torch.zeros(1, 3, 4, 6))
    assert torch.allclose(out, torch.full_like(out, 0.5))


def test_largest_component_keeps_the_biggest_blob_of_each_class():
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[0:4, 0:4] = 1  # 16 px of class 1
    labels[8:10, 8:10] = 1  # 4 px of class 1: removed
    labels[6, 0] = 2  # a lone class-2 pixel: removed
    labels[0:2, 7:9] = 2  # 4 px of class 2: the largest, kept; the lone pixel goes
    out = largest_component(labels, classes=3)
    assert (out[0:4, 0:4] == 1).all() and (out[8:10, 8:10] == 0).all()
    assert (out[0:2, 7:9] == 2).all() and out[6, 0] == 0
    # diagonal neighbours are one component (8-connectivity)
    diagonal = np.eye(4, dtype=np.uint8)
    assert (largest_component(diagonal, classes=1) == diagonal).all()
    assert postprocessed(labels, 3, "none") is labels


def test_an_unknown_option_names_its_key():
    with pytest.raises(ValueError, match=r"^tta: must be one of none, flips, got 'rotate'$"):
        check_option("tta", "rotate", ("none", "flips"))


def test_each_option_is_evaluated_alone_and_both_together():
    assert variants("flips", "none") == ("flips",)
    assert variants("none", "largest_component") == ("largest_component",)
    both = variants("flips", "largest_component")
    assert both == ("flips", "largest_component", "flips_largest_component")
    assert [variant_options(v) for v in both] == [
        ("flips", "none"),
        ("none", "largest_component"),
        ("flips", "largest_component"),
    ]
