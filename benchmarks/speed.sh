#!/usr/bin/env bash
# The measurement behind benchmarks/results/speed.md (issue 19). Run it on a QUIET machine (no trainings, no other
# benchmark): it writes benchmarks/results/speed.{md,json}. About 1-2 h on 2 CPU cores.
#   bash benchmarks/speed.sh            # CPU (1 torch thread, as the results file states)
#   DEVICE=cuda bash benchmarks/speed.sh  # the GPU table on a machine with one (writes speed_cuda.{md,json})
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export SYNTHAUG_CACHE="${SYNTHAUG_CACHE:-$HOME/.cache/synthaug}"
PY="${PYTHON:-.venv/bin/python}"
DEVICE="${DEVICE:-cpu}"
WORK="${WORK:-runs/speed}"
export nnUNet_raw="$WORK/nnunet/raw" nnUNet_preprocessed="$WORK/nnunet/preprocessed" nnUNet_results="$WORK/nnunet/results"
mkdir -p "$nnUNet_raw" "$nnUNet_preprocessed" "$nnUNet_results"

# 1. the datasets the iteration ratio and the expansion scaling run on (the cross-scanner scenario, CT)
if [ ! -d "$nnUNet_raw/Dataset501_SynthAugCrossScanner" ]; then
  "$PY" -m synthaug.cli.main data export-nnunet --scenario cross-scanner --out "$nnUNet_raw" --dataset-id 501
fi
if [ ! -d "$nnUNet_preprocessed/Dataset501_SynthAugCrossScanner" ]; then
  "$(dirname "$PY")/nnUNetv2_plan_and_preprocess" -d 501 -c 2d 3d_fullres -np 1 --verify_dataset_integrity
fi
RECIPE="$("$PY" -m synthaug.cli.main recipe path context_ct)"

# 2. the benchmark: generators x sizes x {fp32, bf16}, peers, nnU-Net 2d/3d_fullres iterations, the real trainer's
#    synthesis share, expansion with 1 and 2 torchrun processes (sha256-compared)
SUFFIX=""; [ "$DEVICE" = "cpu" ] || SUFFIX="_$DEVICE"
"$PY" -m synthaug.cli.main benchmark speed --device "$DEVICE" --threads 1 --repeats 5 \
  --sizes 64x64x16 128x128x32 192x192x48 \
  --overhead "$nnUNet_preprocessed/Dataset501_SynthAugCrossScanner" "$RECIPE" \
  --expansion "$nnUNet_raw/Dataset501_SynthAugCrossScanner" "$RECIPE" 4 \
  --out "benchmarks/results/speed$SUFFIX" \
  --note "Run by benchmarks/speed.sh on a machine with no other job running (check uptime before: load < 0.5)."
