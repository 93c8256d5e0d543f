#!/usr/bin/env bash
# Set up, then run the linters, the type checker and the whole test suite (real Redis, real
# worker processes), in parallel test processes (pytest-xdist).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/ci-deps.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy  # src/smptune, as configured in pyproject.toml
# Three test processes on two cores: most tests wait on workers and Redis rather than compute
# (about 1.5 cores busy on average). SMPTUNE_TEST_PROCESSES=0 runs them in this process.
exec .venv/bin/python -m pytest -n "${SMPTUNE_TEST_PROCESSES:-3}" "$@"
