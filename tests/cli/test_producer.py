"""The ``producer`` command's table of subcommands, what its start imports, and
``python -m smptune``."""

from __future__ import annotations

import argparse
import subprocess
import sys

from smptune import __version__
from smptune.cli.producer import COMMANDS, build_parser, subcommand

from conftest import cli_env

HEAVY = ("torch", "lightning", "segmentation_models_pytorch", "matplotlib")


def test_each_subcommand_is_the_module_of_its_name():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(COMMANDS)
    for name in COMMANDS:
        module = subcommand(name)
        assert module.__name__ == f"smptune.cli.{name}"
        assert callable(module.add_parser) and callable(module.run)
        assert module.__doc__ and module.__doc__.startswith(f"``producer {name}``")


def test_producer_help_imports_no_training_or_plotting_stack():
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "smptune.cli.producer", "--help"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert not heavy, heavy
    # and none after every subcommand's module is loaded (importlib's loads are not timed)
    code = (
        "import sys; from smptune.cli.producer import build_parser; build_parser(); "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=60
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


def test_python_dash_m_smptune_is_the_producer():
    result = subprocess.run(
        [sys.executable, "-m", "smptune", "--version"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"producer (smptune) {__version__}"
