#!/usr/bin/env bash
# Train the unpaired CT -> MR methods of benchmarks/results/translate_abdomen_ct_mr.md: NEC and CycleGAN
# on abdomen_ct_mr_upper (CT A z 64-82, no pelvis; MR C upper half), one thread each, in sequence.
# NEC with the same eps / lambda_ngf as the brain tables (eps = median foreground gradient, 0.04).
# Usage: benchmarks/translate/train_abdomen.sh [RUNS_DIR]   (default runs/translate)
# shellcheck source=benchmarks/translate/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
train abdomen_ct_mr_upper nec 1000 ngf_eps=0.04 lambda_ngf=5 sample_every=250
train abdomen_ct_mr_upper cyclegan 600 sample_every=200
echo "abdomen trainings finished"
