"""Requirements and capabilities: parsing ``requires``, merging a trial's needs, the
capability classes and queues, and whether a worker meets a need."""

from __future__ import annotations

import pytest

from smptune.errors import ConfigError
from smptune.requirements import Capabilities, Needs, Requirements, capability_queue

SPACE = ("encoder", "lr")


def test_a_mapping_is_fixed_needs_every_trial_has():
    requirements = Requirements.parse({"gpu_memory_gb": 40, "tags": ["a100"]}, SPACE)
    assert not requirements.conditional
    assert requirements.needs_for({"encoder": "x"}) == Needs(40.0, None, frozenset({"a100"}))
    assert requirements.base == requirements.needs_for(None)
    assert requirements.to_config() == {"gpu_memory_gb": 40.0, "tags": ["a100"]}


def test_rules_merge_the_most_memory_and_every_tag_of_those_that_apply():
    requirements = Requirements.parse(
        [
            {"tags": "fast"},
            {"when": {"encoder": ["b7", "b5"]}, "gpu_memory_gb": 40},
            {"when": {"encoder": "b7", "lr": 0.1}, "gpu_memory_gb": 24, "tags": ["big"]},
        ],
        SPACE,
    )
    assert requirements.conditional
    assert requirements.needs_for({"encoder": "b0"}) == Needs(tags=frozenset({"fast"}))
    assert requirements.needs_for({"encoder": "b5"}).gpu_memory_gb == 40
    both = requirements.needs_for({"encoder": "b7", "lr": 0.1})
    assert both == Needs(40.0, None, frozenset({"fast", "big"}))
    assert requirements.needs_for({"encoder": "b7", "lr": 0.2}).tags == {"fast"}
    assert requirements.base == Needs(tags=frozenset({"fast"}))  # asked before the params
    # and it reads back equal from what it writes
    assert Requirements.parse(requirements.to_config(), SPACE) == requirements


def test_a_class_names_its_needs_canonically_and_gives_its_queue():
    needs = Needs(40.0, "cuda", frozenset({"b", "a"}))
    assert needs.label == "mem40-cuda-tag_a-tag_b"
    assert needs.text == "gpu_memory_gb>=40, device=cuda, tags=a,b"
    assert capability_queue("smptune", needs) == "smptune.needs.mem40-cuda-tag_a-tag_b"
    assert capability_queue("smptune", Needs()) == "smptune"  # no needs: the plain queue
    assert Needs.from_dict(needs.to_dict()) == needs


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"gpu_memory": 40}, "requires.gpu_memory: unknown key"),
        ({"gpu_memory_gb": -1}, "requires.gpu_memory_gb: must be a number of GB > 0"),
        ({"gpu_memory_gb": True}, "requires.gpu_memory_gb: must be a number"),
        ({"device": "tpu"}, "requires.device: must be one of cuda, cpu"),
        ({"tags": ["ok", "no space"]}, "requires.tags: 'no space' is not a tag"),
        ({"when": {"encoder": "b7"}}, "requires.when: a rule with when goes in a list"),
        ("big", "requires: must be a mapping of needs or a list of rules"),
        ([{"when": {"depth": 3}, "gpu_memory_gb": 40}], "requires[0].when.depth: not a hyper"),
        ([{"when": ["encoder"], "gpu_memory_gb": 40}], "requires[0].when: must be a mapping"),
        ([{"when": {"encoder": "b7"}}], "requires[0]: names no need"),
        ([3], "requires[0]: must be a mapping"),
        ([{"device": "cpu"}, {"device": "cuda"}], "requires: a trial would need both device"),
    ],
)
def test_bad_requires_is_one_error_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as caught:
        Requirements.parse(raw, SPACE)
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_worker_meets_a_need_only_with_enough_memory_the_device_and_every_tag():
    big = Capabilities("cuda", 48.0, frozenset({"big", "a100"}))
    assert big.meets(Needs()) and big.meets(Needs(40.0, "cuda", frozenset({"big"})))
    assert not big.meets(Needs(80.0))
    assert not big.meets(Needs(device="cpu"))
    assert not big.meets(Needs(tags=frozenset({"h100"})))
    assert not Capabilities().meets(Needs(1.0))  # unknown memory meets no memory need
    assert Capabilities.from_dict(big.to_dict()) == big
    assert big.text == "cuda, 48 GB, tags a100,big"
