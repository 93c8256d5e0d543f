#!/usr/bin/env bash
# Set up, then run the linters, the type checker and the whole test suite (real Redis, real
# worker processes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/ci-deps.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy  # src/smptune, as configured in pyproject.toml
exec .venv/bin/python -m pytest "$@"
