#!/usr/bin/env bash
# Train the ConText-GAN variants (P2P, P2PF, OASIS) on CT subject A and the MNI152 T1 template,
# in two parallel queues with one thread each (a 2-core machine), then evaluate them all.
# Usage: benchmarks/context/train_all.sh [RUNS_DIR]   (default runs/context)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs="${1:-runs/context}"
py="${PYTHON:-.venv/bin/python}"
mkdir -p "$runs"
train() {  # data variant iterations extra...
  local data=$1 variant=$2 its=$3; shift 3
  "$py" -m synthaug.cli.main train context --quiet --out "$runs/${data}_${variant}" \
    --set name="context_${data}_${variant}" data="$data" variant="$variant" iterations="$its" threads=1 "$@" \
    > "$runs/${data}_${variant}.log" 2>&1
}
big="widths=[32,64,128,256] batch_size=4"
small="widths=[8,16,32,64] spade_hidden=8 z_dim=8 d_width=16 batch_size=4"
(
  train ct_a p2pf 2000 $big
  train ct_a p2p 2000 $big
  train mni oasis 800 $small
) &
(
  train ct_a oasis 800 $small
  train mni p2pf 1500 $big
  train mni p2p 1500 $big
) &
wait
echo "all trainings finished"
