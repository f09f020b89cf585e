#!/usr/bin/env bash
# Train the appearance-randomised (domain-randomised, DR) ConText-GAN generators of
# benchmarks/results/context_dr.md: two trainings in parallel, one thread each, resumable (rerun the
# script after an interruption: each run continues from its checkpoint).
#   context_dr_ct_a: P2PF, CT subject A training slabs only (ctA_z000-093), started from the shipped context_ct_a
#   context_dr_mni:  P2P, MNI152 T1 outside the held-out slab, started from the shipped context_mni
# Stage 1: 2000 iterations; stage 2 (shipped): 1000 more from stage 1.
# Targets: 80 % of training samples get a random per-region transfer function (synthaug.appearance.remap,
# default AppearanceRanges); features are measured on the remapped target.
# Usage: benchmarks/context/train_dr.sh [RUNS_DIR]   (default runs/context_dr); then benchmarks/context/evaluate_dr.py
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs="${1:-runs/context_dr}"
py="${PYTHON:-.venv/bin/python}"
its="${ITERATIONS:-2000}"
mkdir -p "$runs"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
common="noise_channels=1 fusion_kernel=1 widths=[32,64,128,256] random_context_prob=0.25 random_context_scale=0.2 threads=1 batch_size=4 lambda_ct=15 appearance_prob=0.8 sample_every=1000 iterations=$its"
# shellcheck disable=SC2086
"$py" -m synthaug.cli.main train context --quiet --out "$runs/ct_a_p2pf" \
  --set name=context_dr_ct_a data=ct_a variant=p2pf $common init_from=synthaug/weights/files/context_ct_a.safetensors \
  > "$runs/ct_a_p2pf.log" 2>&1 &
# shellcheck disable=SC2086
"$py" -m synthaug.cli.main train context --quiet --out "$runs/mni_p2p" \
  --set name=context_dr_mni data=mni variant=p2p $common init_from=synthaug/weights/files/context_mni.safetensors \
  > "$runs/mni_p2p.log" 2>&1 &
wait
# Stage 2 (the shipped weights): 1000 more iterations from each stage-1 run, same settings (the generator is
# loaded; discriminator and optimisers start afresh, as in context_ct_a's stage 2).
s2="${STAGE2_ITERATIONS:-1000}"
common2="${common/iterations=$its/iterations=$s2}"
# shellcheck disable=SC2086
"$py" -m synthaug.cli.main train context --quiet --out "$runs/ct_a_p2pf_stage2" \
  --set name=context_dr_ct_a data=ct_a variant=p2pf $common2 init_from="$runs/ct_a_p2pf/context_dr_ct_a.safetensors" \
  > "$runs/ct_a_p2pf_stage2.log" 2>&1 &
# shellcheck disable=SC2086
"$py" -m synthaug.cli.main train context --quiet --out "$runs/mni_p2p_stage2" \
  --set name=context_dr_mni data=mni variant=p2p $common2 init_from="$runs/mni_p2p/context_dr_mni.safetensors" \
  > "$runs/mni_p2p_stage2.log" 2>&1 &
wait
echo "all DR trainings finished"
