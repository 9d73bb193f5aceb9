#!/usr/bin/env bash
# Creates .venv (if needed) and installs ihmr with its test extras.
# torch is pinned to the CPU build here (an unpinned torch pulls a multi-GB CUDA build); GPU users
# install their own CUDA torch first and then `pip install -e .`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q "torch==${IHMR_TORCH_VERSION:-2.13.0}"
fi
.venv/bin/pip install -q -e ".[test]"
