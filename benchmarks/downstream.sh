#!/usr/bin/env bash
# Downstream nnU-Net benchmark on the three built-in scenarios (cpu-quick profile: 2D, narrow network,
# 10 x 100 iterations, 2 seeds, 2 runs in parallel). Resumable: rerun after an interruption and finished
# arm x seed runs are skipped. Reports: benchmarks/results/downstream_<scenario>.{md,json,png}.
#   benchmarks/downstream.sh [ARMS]     ARMS: comma-separated arm names (default: every built-in arm)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
select=()
if [ -n "${1:-}" ]; then select=(--arms "$1"); fi
for scenario in cross-modality cross-scanner in-domain; do
  .venv/bin/synthaug benchmark downstream --scenario "$scenario" --profile cpu-quick \
    --work "runs/bench/$scenario" ${select[@]+"${select[@]}"} --out "benchmarks/results/downstream_$scenario"
done
