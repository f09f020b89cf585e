#!/usr/bin/env bash
# Train every translation method of the one-protocol brain tables (simulated T1w->T2w and PDw->T2w)
# in two parallel queues with one thread each (a 2-core machine); the exact settings of
# benchmarks/results/translate_brain_t1_t2.md and translate_brain_pd_t2.md. Then run
# benchmarks/translate/evaluate.sh. Finished runs are not retrained (each run resumes from its
# checkpoint and a run whose weights exist is skipped).
# Usage: benchmarks/translate/train_all.sh [RUNS_DIR]   (default runs/translate)
#
# Budgets: 1500 iterations (batch 4) for every method, 1000 for CycleGAN (two generators and two
# discriminators: ~4x the cost of a NEC iteration). The PDw->T2w ResGAN is the shipped
# translate_brain_pd_t2_resgan (5000 iterations, trained earlier with the same command at iterations=5000);
# a 1500-iteration ResGAN (translate_brain_pd_t2_resgan1500) is trained for the equal-budget comparison.
# NEC: eps = 0.04 (the median foreground gradient magnitude of the [-1, 1] source slices; at the paper's
# 0.15 the NGF term is nearly flat here: aligned vs 3-voxel-shifted edges differ by 0.007) and
# lambda_ngf = 5.
# shellcheck source=benchmarks/translate/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
nec="ngf_eps=0.04 lambda_ngf=5"
(
  train brain_t1_t2 pix2pix 1500
  train brain_t1_t2 resgan 1500
  # shellcheck disable=SC2086
  train brain_t1_t2 nec 1500 $nec
  train brain_t1_t2 resgan 1500 auto_context=true
  train brain_t1_t2 cyclegan 1000
) &
(
  train brain_pd_t2 pix2pix 1500
  # shellcheck disable=SC2086
  train brain_pd_t2 nec 1500 $nec
  train brain_pd_t2 resgan 1500 auto_context=true
  train brain_pd_t2 cyclegan 1000
  # the same 1500-iteration budget as every other row (the shipped model has 5000), under its own name
  # shellcheck disable=SC2030
  (name_suffix=1500 train brain_pd_t2 resgan 1500)
) &
wait
echo "all trainings finished"
