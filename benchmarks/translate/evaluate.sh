#!/usr/bin/env bash
# Score every translation method of one task side by side under the one protocol of
# `synthaug eval translate` (same normalisation, mask, held-out subjects), with histogram matching off
# and on, into benchmarks/results/translate_<task>[_hm].{json,table.md}.
# Usage: benchmarks/translate/evaluate.sh TASK [RUNS_DIR] [EXTRA_WEIGHTS...]
#   TASK: brain_t1_t2 | brain_pd_t2 | abdomen_ct_mr_upper; every runs/translate/translate_<TASK>_*/ run is scored,
#   plus EXTRA_WEIGHTS (files or registry names, e.g. the shipped translate_brain_pd_t2_resgan).
#   SEGMENTER=<weights> adds label fidelity (CT -> MR: SEGMENTER=segmenter_mr_c_upper); OUT=<prefix> names the
#   result files (default benchmarks/results/translate_<TASK>); DATA=<spec> scores on a data spec instead of the
#   built-in name TASK (e.g. DATA=simulated:T1w:PDw benchmarks/translate/evaluate.sh brain_t1_pd runs/own-data).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
task="$1"; runs="${2:-runs/translate}"; shift; [ $# -gt 0 ] && shift
py="${PYTHON:-.venv/bin/python}"
weights=()
for d in "$runs"/translate_"$task"_*/; do
  n=$(basename "$d")
  [ -f "$d/$n.safetensors" ] && weights+=("$d/$n.safetensors")
done
weights+=("$@")
[ ${#weights[@]} -gt 0 ] || { echo "no finished runs for $task in $runs" >&2; exit 1; }
out="${OUT:-benchmarks/results/translate_$task}"
data="${DATA:-$task}"
"$py" -m synthaug.cli.main eval translate --data "$data" --weights "${weights[@]}" \
  ${SEGMENTER:+--segmenter "$SEGMENTER"} --out "$out.json" --markdown "$out.table.md"
if [ "$task" != "abdomen_ct_mr_upper" ]; then  # paired: also with the NEC paper's histogram matching
  "$py" -m synthaug.cli.main eval translate --data "$data" --weights "${weights[@]}" --histogram-matching \
    --out "${out}_hm.json" --markdown "${out}_hm.table.md"
fi
