#!/usr/bin/env bash
# Train the appearance-randomised ConText-GAN for the spine vocabulary (context_dr_spine_ct): P2PF on the TPTBox
# spine CT outside its held-out central slab (synthaug.training.datasets "spine_ct"), from scratch (no spine
# generator to start from), 80 x 80 slices, 80 % of targets appearance-randomised. One thread, resumable (rerun
# after an interruption: the run continues from its checkpoint). Then: benchmarks/context/evaluate_dr.py.
#   benchmarks/context/train_dr_spine.sh [RUNS_DIR]   (default runs/context_dr)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs="${1:-runs/context_dr}"
py="${PYTHON:-.venv/bin/python}"
mkdir -p "$runs"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
"$py" -m synthaug.cli.main train context --quiet --out "$runs/spine_ct_p2pf" \
  --set name=context_dr_spine_ct data=spine_ct variant=p2pf size=80 noise_channels=1 fusion_kernel=1 \
        widths=[32,64,128,256] random_context_prob=0.25 random_context_scale=0.2 threads=1 batch_size=4 lambda_ct=15 \
        appearance_prob=0.8 sample_every=1000 checkpoint_every=250 iterations="${ITERATIONS:-3000}" \
  > "$runs/spine_ct_p2pf.log" 2>&1
echo "spine DR training finished"
