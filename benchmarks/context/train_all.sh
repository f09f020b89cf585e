#!/usr/bin/env bash
# Train the ConText-GAN variants (P2P, P2PF, OASIS) on CT subject A and the MNI152 T1 template,
# in two parallel queues with one thread each (a 2-core machine). These are the exact settings of
# the committed results (benchmarks/results/context.md); then run benchmarks/context/evaluate.py.
# Usage: benchmarks/context/train_all.sh [RUNS_DIR]   (default runs/context_new)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs="${1:-runs/context_new}"
py="${PYTHON:-.venv/bin/python}"
mkdir -p "$runs"
# Shared by every model: the texture head (one per-voxel noise map whose amplitude the requested
# features set), half of each batch with a random texture request (texture-control loss only).
common="noise_channels=1 random_context_prob=0.5 random_context_scale=0.2 threads=1 batch_size=4"
big="widths=[32,64,128,256]"
small="widths=[8,16,32,64] spade_hidden=8 z_dim=8 d_width=16"
train() {  # data variant iterations size-preset
  local data=$1 variant=$2 its=$3 extra=$4
  # shellcheck disable=SC2086
  "$py" -m synthaug.cli.main train context --quiet --out "$runs/${data}_${variant}" \
    --set name="context_${data}_${variant}" data="$data" variant="$variant" iterations="$its" $common $extra \
    > "$runs/${data}_${variant}.log" 2>&1
}
(
  train ct_a p2pf 2000 "$big"
  train mni p2p 800 "$big"
  train mni oasis 300 "$small"
) &
(
  train ct_a oasis 600 "$small"
  train ct_a p2p 1000 "$big"
  train mni p2pf 800 "$big"
) &
wait
# Stage 2 of the shipped CT model: 600 more iterations from the P2PF run with 5x the texture-control
# weight (lambda_ct = 25 = 2.5 x lambda_l1), to tighten controllability.
"$py" -m synthaug.cli.main train context --quiet --out runs/context_stage2/ct_a_p2pf_texture \
  --set name=context_ct_a_p2pf_texture data=ct_a variant=p2pf iterations=600 $big $common lambda_ct=25 \
  init_from="$runs/ct_a_p2pf" > runs/context_stage2.log 2>&1
echo "all trainings finished"
# Ablation (no texture head, 25% random context):
#   synthaug train context --out runs/context_ablation/ct_a_p2pf_nonoise --set name=context_ct_a_p2pf_nonoise \
#     data=ct_a variant=p2pf iterations=2000 widths=[32,64,128,256] batch_size=4 threads=1
