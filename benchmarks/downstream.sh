#!/usr/bin/env bash
# Downstream nnU-Net benchmark v2 on the four built-in scenarios (cpu-long profile: 2D, quarter-width network,
# 40 x 100 iterations, 5 seeds). Resumable: rerun after an interruption; finished arm x seed runs are skipped and
# a killed run resumes from its last 5-epoch checkpoint. Reports: benchmarks/results/downstream_<scenario>.{md,json,png}.
#   benchmarks/downstream.sh [ARMS [SCENARIOS]]
#     ARMS: comma-separated arm names (default: every built-in arm); SCENARIOS: space-separated (default: all four)
# The label-noise ceiling comes from benchmarks/results/label_noise_ceiling.json (synthaug data label-ceiling).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
select=()
if [ -n "${1:-}" ]; then select=(--arms "$1"); fi
scenarios="${2:-cross-modality cross-scanner in-domain spine-cross-modality}"
for scenario in $scenarios; do
  .venv/bin/synthaug benchmark downstream --scenario "$scenario" --profile cpu-long --parallel 1 \
    --work "runs/bench-long/$scenario" ${select[@]+"${select[@]}"} --out "benchmarks/results/downstream_$scenario" \
    --ceiling benchmarks/results/label_noise_ceiling.json --in-domain runs/bench-long/in-domain
done
