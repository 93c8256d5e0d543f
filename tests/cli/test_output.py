"""How the producer's subcommands print sizes and lists of trial numbers."""

from __future__ import annotations

import pytest

from smptune.cli.output import human_bytes, numbers


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (12_897_485, "12.3 MiB"),
        (5 << 40, "5120.0 GiB"),
    ],
)
def test_sizes_are_shown_in_binary_units(n: int, shown: str):
    assert human_bytes(n) == shown


def test_trial_numbers_are_cut_after_twenty():
    assert numbers([3, 1, 4]) == "3, 1, 4"
    assert numbers(list(range(25))) == ", ".join(map(str, range(20))) + ", ... (25 in all)"
