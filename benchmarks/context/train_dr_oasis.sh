#!/usr/bin/env bash
# Train the appearance-randomised ConText-GAN of the SPADE/OASIS family (variant "oasis": SPADE generator with 3D
# noise, conditioned on the fusion module's context map; OASIS segmentation discriminator, no L1 term) on CT subject
# A's training slabs (ctA_z000-093), from scratch (no OASIS weights exist to start from), one thread, resumable
# (rerun after an interruption: the run continues from its checkpoint). Same appearance randomisation as
# context_dr_ct_a (benchmarks/context/train_dr.sh): 80 % of targets get a random per-region transfer function,
# features measured on the remapped target. Narrower widths than the P2PF model ([16,32,64,128]): at
# [32,64,128,256] one OASIS step took ~4 s on one core, 2000 steps would not fit a session.
# Usage: benchmarks/context/train_dr_oasis.sh [RUNS_DIR]   (default runs/context_dr); then evaluate_dr.py
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs="${1:-runs/context_dr}"
py="${PYTHON:-.venv/bin/python}"
mkdir -p "$runs"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
"$py" -m synthaug.cli.main train context --quiet --out "$runs/ct_a_oasis" \
  --set name=context_dr_oasis_ct_a data=ct_a variant=oasis appearance_prob=0.8 iterations=2000 batch_size=4 \
  threads=1 noise_channels=1 lambda_ct=15 random_context_scale=0.2 sample_every=500 checkpoint_every=100 \
  'widths=[16,32,64,128]'
