#!/usr/bin/env bash
# The GPU suite (issue 15): stage-1 MFU, peak memory, a stage-2 step and the loader, ~8 minutes on one GPU.
#   bash bench/gpu_suite.sh                  # GPU machine: bench/results/gpu_suite.json + a table
#   bash bench/gpu_suite.sh --cpu-smoke      # every part on tiny shapes on the CPU
# Options are those of bench/gpu_suite.py (--output DIR, --workers N..., --only PART...).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python bench/gpu_suite.py "$@"
