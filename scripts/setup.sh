#!/usr/bin/env bash
# Create .venv (once) and install smptune with its test tools into it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import smptune, torch, segmentation_models_pytorch, lightning, celery" \
  || { echo "setup: the install is incomplete" >&2; exit 1; }
