"""results.json is written by dumps_indented: the bytes json.dumps(indent=2) writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from smptune.results.indented_json import dumps_indented

CASES = [
    {},
    [],
    "s",
    3,
    None,
    [None],
    {"a": [], "b": {}, "c": ()},
    [1, [2, [3, {}]], "x"],
    {"x": math.nan, "y": math.inf, "z": -math.inf, 1: None, 2.5: True, None: 'é\n"', False: [-0.0]},
    {"p": Path("/x"), "l": [Path("a"), {"q": (1, 2), "r": [{"s": 1}, 2, {"t": [3]}]}]},
    {"trial": 1, "params": {"x": 0.5}, "folds": {"0": {"metrics": {"score": 1.0}, "e": 2}}, "k": 1},
]


@pytest.mark.parametrize("case", CASES)
def test_the_same_bytes_as_json_dumps_with_an_indent(case):
    assert dumps_indented(case, default=str) == json.dumps(case, indent=2, default=str)


def test_without_a_default_an_unknown_type_raises_as_json_dumps_does():
    with pytest.raises(TypeError):
        dumps_indented({"a": [object()]})
