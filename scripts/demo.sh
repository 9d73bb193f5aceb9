#!/usr/bin/env bash
# Sets up .venv and runs the main job on the bundled default: the IHMR demo (demo data on the
# open body, MSE vs GAI vs BMC retraining of the HMR head, balanced evaluation, renders).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ihmr demo "$@"
