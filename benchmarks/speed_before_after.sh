#!/usr/bin/env bash
# Before/after of the generator transforms' call time (issue 19): the commit before the performance work
# (BEFORE, default c94fbee) against this checkout, each running its own `synthaug benchmark speed` at one size,
# in alternating rounds (before, after, before, after, ...) so that drift of a shared machine hits both alike.
# Writes benchmarks/results/speed_before_after.{md,json}: per generator, the median over rounds of each side's
# call time and the median of the per-round ratios before/after (> 1: faster now). Run on a QUIET machine.
#   bash benchmarks/speed_before_after.sh [BEFORE_COMMIT] [ROUNDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BEFORE="${1:-c94fbee}"
ROUNDS="${2:-3}"
SIZE="${SIZE:-128x128x32}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export SYNTHAUG_CACHE="${SYNTHAUG_CACHE:-$HOME/.cache/synthaug}"
PY="${PYTHON:-.venv/bin/python}"
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"   # absolute: each side runs from its own folder
WORK="${WORK:-runs/speed_before_after}"
WEIGHTS=(context_ct_a context_mni style_ct_a style_ct_label_to_mr translate_brain_pd_t2_resgan
         translate_abdomen_ct_mr_nec translate_brain_t1_t2_nec)
mkdir -p "$WORK"
OLD="$WORK/before-src"
if [ ! -d "$OLD/synthaug" ]; then
  rm -rf "$OLD" && mkdir -p "$OLD"
  git archive "$BEFORE" | tar -x -C "$OLD"
fi
NEW="$(pwd)"
for r in $(seq 1 "$ROUNDS"); do
  for side in before after; do
    out="$WORK/${side}_round$r"
    [ -f "$out.json" ] && continue   # resumable: finished rounds are kept
    src="$NEW"; extra=(--precisions fp32 --no-peers --no-nnunet)
    # the earlier benchmark always timed peers and an nnU-Net iteration as well (rows not compared here)
    [ "$side" = before ] && src="$OLD" && extra=()
    echo "[speed before/after] round $r: $side ($src)"
    (cd "$src" && PYTHONPATH="$src" "$PY" -m synthaug.cli.main benchmark speed --device cpu --threads 1 \
      --repeats 3 --sizes "$SIZE" --weights "${WEIGHTS[@]}" "${extra[@]}" --out "$NEW/${out}_partial") >"$WORK/${side}_round$r.log" 2>&1
    mv "${out}_partial.json" "$out.json"; rm -f "${out}_partial.md"
  done
done
"$PY" - "$WORK" "$BEFORE" "$ROUNDS" "$SIZE" <<'EOF'
import json, statistics, subprocess, sys
from pathlib import Path
from synthaug.training.provenance import machine_line
work, before, rounds, size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
after = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
def gen_rows(path):
    d = json.loads(path.read_text())
    return {r["item"]: r["seconds"] for r in d["rows"] if r.get("weights")}
b = [gen_rows(work / f"before_round{i}.json") for i in range(1, rounds + 1)]
a = [gen_rows(work / f"after_round{i}.json") for i in range(1, rounds + 1)]
items = sorted(set.intersection(*(set(x) for x in b + a)))
rows = []
for it in items:
    ratios = [bi[it] / ai[it] for bi, ai in zip(b, a)]
    rows.append({"item": it, "before_s": statistics.median(x[it] for x in b), "after_s": statistics.median(x[it] for x in a),
                 "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)})
cmd = f"bash benchmarks/speed_before_after.sh {before} {rounds}"
res = {"command": cmd, "machine": machine_line(), "before": before, "after": after, "size": size, "rounds": rounds,
       "rows": rows}
(Path("benchmarks/results") / "speed_before_after.json").write_text(json.dumps(res, indent=2) + "\n")
lines = [f"# Generator call time before/after the performance work ({size}, CPU, 1 thread)", "",
         f"Command: `{cmd}`  ", f"Machine: {machine_line()}  ",
         f"Before: {before}; after: {after}. {rounds} alternating rounds (before, after, ...), each side's own "
         "`synthaug benchmark speed` (median of 3 timed calls after 1 warm-up); the ratio is taken per round.", "",
         "| transform [weights] | before (s/call) | after (s/call) | before/after (median [min, max] over rounds) |",
         "|---|---:|---:|---|"]
for r in rows:
    lines.append(f"| {r['item']} | {r['before_s']:.3f} | {r['after_s']:.3f} | "
                 f"{r['ratio_median']:.2f} [{r['ratio_min']:.2f}, {r['ratio_max']:.2f}] |")
(Path("benchmarks/results") / "speed_before_after.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
