#!/usr/bin/env bash
# What a few tests use beyond the package's own dependencies, installed only when missing and
# only if it can be: a headless Chromium for the pages (Flower, the report, optuna-dashboard;
# as root with apt-get), optuna-dashboard and MLflow (from the package index, with a short
# timeout).
# A failed install is reported and the test suite goes on; those tests then say they skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
pip_if_missing() {  # MODULE PACKAGE WHAT-SKIPS
  if ! .venv/bin/python -c "import $1" >/dev/null 2>&1; then
    if ! .venv/bin/python -m pip install --quiet --timeout 20 --retries 1 "$2" \
      >>/tmp/smptune-ci-deps-pip.log 2>&1; then
      echo "ci-deps: installing $2 failed (see /tmp/smptune-ci-deps-pip.log); $3 will skip" >&2
    fi
  fi
}
pip_if_missing optuna_dashboard optuna-dashboard "the dashboard's browser test"
pip_if_missing mlflow mlflow-skinny "the MLflow logger's test"
has_chromium() {
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || command -v google-chrome >/dev/null 2>&1 || command -v google-chrome-stable >/dev/null 2>&1
}
if has_chromium; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ci-deps: no chromium and not root with apt-get; the Flower browser test will skip" >&2
  exit 0
fi
echo "ci-deps: installing chromium (headless browser for tests/cli/test_flower.py)" >&2
if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
  >/tmp/smptune-ci-deps.log 2>&1; then
  echo "ci-deps: installing chromium failed (see /tmp/smptune-ci-deps.log); the Flower" \
    "browser test will skip" >&2
fi
exit 0
