#!/usr/bin/env bash
# Set up, then run the quickstart sweep locally: embedded Redis, local workers, results in
# ./smptune-results/<sweep id>/. Extra arguments go to `producer submit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/producer submit configs/quickstart.yaml --wait "$@"
