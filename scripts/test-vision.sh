#!/usr/bin/env bash
# Run the tests of the timm: and open_clip: embedders, --rerank dreamsim and --quality maniqa
# (pyiqa) against the real libraries, in a second environment (.venv-vision). They all import
# torchvision, and PyPI's torchvision does not import beside the CPU torch that .venv pins, so
# this one takes torch 2.14.1 with torchvision 0.29.1 (a CUDA build, about 6 GB in all, that
# runs on the CPU). Idempotent like setup.sh.
#   scripts/test-vision.sh              the vision tests
#   scripts/test-vision.sh -k timm      extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GMVALUATOR_VISION_VENV:-.venv-vision}"
TORCH=(torch==2.14.1 torchvision==0.29.1)

[ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV"
want="$(cat pyproject.toml scripts/test-vision.sh | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.gmvaluator-installed"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  start=$SECONDS
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # Pinned first, and named again beside the rest so that nothing they require replaces them.
  "$VENV/bin/python" -m pip install -q "${TORCH[@]}"
  "$VENV/bin/python" -m pip install -q -e ".[timm,open_clip]" timm open_clip_torch dreamsim \
    pyiqa "pytest>=8" "hypothesis>=6.100" "${TORCH[@]}"
  "$VENV/bin/python" -c "import open_clip, timm, torch, torchvision
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm',
      timm.__version__, 'open_clip', open_clip.__version__)" >&2
  echo "$want" > "$stamp"
  echo "installed $VENV in $((SECONDS - start)) s ($(du -sh "$VENV" | cut -f1))" >&2
fi

export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
start=$SECONDS
status=0
"$VENV/bin/python" -m pytest -q tests/embed/test_hub_vision.py \
  tests/embed/test_perceptual_vision.py "$@" || status=$?
echo "vision tests ran in $((SECONDS - start)) s" >&2
exit "$status"
