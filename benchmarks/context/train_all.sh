#!/usr/bin/env bash
# Train the ConText-GAN variants (P2P, P2PF, OASIS) on CT subject A and the MNI152 T1 template,
# in two parallel queues with one thread each (a 2-core machine). These are the exact settings of
# the committed results (benchmarks/results/context.md); then run benchmarks/context/evaluate.py.
# Usage: benchmarks/context/train_all.sh [RUNS_DIR]   (default runs/context)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs="${1:-runs/context}"
py="${PYTHON:-.venv/bin/python}"
mkdir -p "$runs"
big="widths=[32,64,128,256] batch_size=4"
small="widths=[8,16,32,64] spade_hidden=8 z_dim=8 d_width=16 batch_size=4"
train() {  # data variant iterations size-preset
  local data=$1 variant=$2 its=$3 extra=$4
  # shellcheck disable=SC2086
  "$py" -m synthaug.cli.main train context --quiet --out "$runs/${data}_${variant}" \
    --set name="context_${data}_${variant}" data="$data" variant="$variant" iterations="$its" threads=1 $extra \
    > "$runs/${data}_${variant}.log" 2>&1
}
(
  train ct_a p2pf 2000 "$big"
  train ct_a p2p 1200 "$big"
  train mni p2pf 1000 "$big"
  train mni p2p 1000 "$big"
) &
(
  train ct_a oasis 800 "$small"
  train mni oasis 300 "$small"
) &
wait
echo "all trainings finished"
