"""What both commands share: --version, -v anywhere, shell completion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from smptune import __version__

from conftest import cli_env, run_cli


@pytest.mark.parametrize("command", ["producer", "workers"])
def test_version(command: str):
    result = run_cli(command, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"{command} (smptune) {__version__}"


def test_verbose_after_the_subcommand_shows_the_traceback(tmp_path: Path):
    result = run_cli("producer", "submit", tmp_path / "nope.yaml", "-v")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "nope.yaml" in result.stderr.splitlines()[-1]
    quiet = run_cli("producer", "submit", tmp_path / "nope.yaml")
    assert "Traceback" not in quiet.stderr


def _complete(line: str, tmp_path: Path) -> list[str]:
    """What bash's completion hook (argcomplete's protocol) gets back for ``line``."""
    out = tmp_path / "completions"
    command = line.split()[0]
    module = {"producer": "smptune.cli.producer", "workers": "smptune.cli.workers"}[command]
    env = cli_env(
        _ARGCOMPLETE="1",
        _ARGCOMPLETE_IFS="\n",
        COMP_LINE=line,
        COMP_POINT=str(len(line)),
        _ARGCOMPLETE_STDOUT_FILENAME=str(out),
    )
    subprocess.run([sys.executable, "-m", module], env=env, timeout=60, check=False)
    return [word.strip() for word in out.read_text().split("\n")]


def test_shell_completion_of_commands_and_options(tmp_path: Path):
    assert {"status", "submit"} <= set(_complete("producer s", tmp_path))
    assert "--json" in _complete("producer list --j", tmp_path)
    assert "--preemptible" in _complete("workers start --pre", tmp_path)
    # and the hook a shell's startup file evaluates is there
    register = Path(sys.executable).with_name("register-python-argcomplete")
    script = subprocess.run(
        [str(register), "producer"], capture_output=True, text=True, env=dict(os.environ)
    )
    assert script.returncode == 0 and "complete " in script.stdout
