#!/usr/bin/env bash
# Debian's Chromium for the report's browser test (tests/test_report.py), installed once: a no-op
# when `chromium` is already on PATH. As root with apt-get (CI) a failed install fails the run: the
# browser test must not silently skip there. Without root or apt-get it says so and goes on (the
# browser test then skips, naming the reason).
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium: not root or no apt-get; the report's browser test will be skipped" >&2
  exit 0
fi
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
    >/tmp/rearank-install-chromium.log 2>&1; then
  echo "install_chromium: apt-get install chromium failed (see /tmp/rearank-install-chromium.log);" \
       "(needed by the report's browser test)" >&2
  exit 1
fi
exit 0
