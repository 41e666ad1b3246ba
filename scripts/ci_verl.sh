#!/usr/bin/env bash
# A VeRL virtualenv for tests/test_verl.py, outside the project's venv and outside the clone, cached.
#
#   eval "$(bash scripts/ci_verl.sh)"     # prints: export REARANK_VERL_PYTHON=... REARANK_VERL_OLD_SOURCES=...
#
# Why separate: verl[fsdp] pins trl==0.27, rearank's [train] extra needs trl>=1.0. The test runs VeRL's
# own code (its dataset, reward loader, reward manager and Hydra config) in a subprocess with this python.
# - $CACHE/verl-$VERL_VERSION: `pip install verl==$VERL_VERSION torch==2.13.0` (torch in the same command
#   keeps pip on the local CPU wheel; ~1.5 min, 1.9 GB). Reused when it already holds that version.
#   setuptools<81 keeps pkg_resources, which VeRL 0.4's package imports (only the old loaders need it).
# - $CACHE/verl-src/<version>/verl: older releases' sources (pip download --no-deps, ~1 MB each), so the
#   test runs each release's own custom-reward loader (with the new venv's dependencies).
# Idempotent; all progress goes to stderr, only the export line to stdout.
set -euo pipefail

VERL_VERSION=0.9.1
OLD_VERSIONS="0.4.1 0.6.1 0.7.0 0.7.1"    # one per distinct loader: see tests/test_verl.py
CACHE=${REARANK_VERL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rearank}
VENV=$CACHE/verl-$VERL_VERSION
SOURCES=$CACHE/verl-src
# pip's configuration here lists optional local indexes that may be absent; hide those warnings only.
quiet() { "$@" 2>&1 | { grep -v 'is neither a file nor a directory' || true; } >&2; return "${PIPESTATUS[0]}"; }

has_version() {
  "$VENV/bin/python" - "$1" <<'EOF' 2>/dev/null
import importlib.metadata, sys
sys.exit(importlib.metadata.version("verl") != sys.argv[1])
EOF
}

mkdir -p "$CACHE"
if ! has_version "$VERL_VERSION"; then
  echo "ci_verl: installing verl==$VERL_VERSION into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  quiet "$VENV/bin/pip" install --disable-pip-version-check -q "verl==$VERL_VERSION" torch==2.13.0 "setuptools<81"
  has_version "$VERL_VERSION"
fi
if ! "$VENV/bin/python" -c "import pkg_resources" 2>/dev/null; then
  quiet "$VENV/bin/pip" install --disable-pip-version-check -q torch==2.13.0 "setuptools<81"
fi

for version in $OLD_VERSIONS; do
  [ -d "$SOURCES/$version/verl" ] && continue
  echo "ci_verl: fetching the sources of verl==$version" >&2
  tmp=$(mktemp -d)
  quiet "$VENV/bin/pip" download --disable-pip-version-check -q --no-deps "verl==$version" -d "$tmp"
  "$VENV/bin/python" -m zipfile -e "$tmp"/verl-*.whl "$tmp/src"
  rm -rf "$SOURCES/$version"
  mkdir -p "$SOURCES/$version"
  mv "$tmp/src/verl" "$SOURCES/$version/verl"    # the package only (the wheels also ship tests/, scripts/)
  rm -rf "$tmp"
done

echo "export REARANK_VERL_PYTHON='$VENV/bin/python' REARANK_VERL_OLD_SOURCES='$SOURCES'"
