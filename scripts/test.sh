#!/usr/bin/env bash
# Install everything (scripts/setup.sh) and run the linters and the test suite, then the tests of
# the timm: and open_clip: embedders in their own environment (scripts/test-vision.sh; skip them
# with GMVALUATOR_SKIP_VISION=1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all,dev
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
# the layer order of pyproject.toml's import-linter contract
.venv/bin/lint-imports --no-cache
.venv/bin/python -m pytest -q "$@"
if [ -z "${GMVALUATOR_SKIP_VISION:-}" ]; then
  scripts/test-vision.sh
fi
