#!/usr/bin/env bash
# System packages the tests use beyond Python: a headless Chromium for the Flower page test
# (tests/test_flower.py skips without one). Installs only as root and only what is missing;
# a failed install is reported, and the test suite goes on (that test then says it skipped).
set -uo pipefail
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
echo "ci-deps: installing chromium (headless browser for tests/test_flower.py)" >&2
if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
  >/tmp/smptune-ci-deps.log 2>&1; then
  echo "ci-deps: installing chromium failed (see /tmp/smptune-ci-deps.log); the Flower" \
    "browser test will skip" >&2
fi
exit 0
