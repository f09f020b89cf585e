"""Merge `synthaug eval translate` results of one task into one side-by-side table.

The protocol is deterministic (fixed random features and KID subsets), so methods scored in separate
invocations on the same data and protocol give the rows one invocation would. This refuses inputs
whose data, protocol or test cases differ, and checks that a method present in several inputs has the
same scores in each; the first occurrence is kept.

Usage: python benchmarks/translate/merge_results.py OUT.json IN1.json IN2.json ... [--markdown OUT.table.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from synthaug.errors import ValidationError
from synthaug.training.eval_translate import markdown_table

SAME = ("data", "protocol", "test_cases", "source_modality", "target_modality")
SCORES = ("psnr", "ssim", "mae", "ngf_alignment", "kid_x1000", "dice")


def merge(results: list[dict]) -> dict:
    if not results:
        raise ValidationError("give at least one results file.")
    first = results[0]
    merged = {**first, "methods": []}
    seen: dict[str, dict] = {}
    for r in results:
        for key in SAME:
            if r.get(key) != first.get(key):
                raise ValidationError(f"results differ in {key!r}: {r.get(key)!r} vs {first.get(key)!r}; not one protocol.")
        for row in r["methods"]:
            name = row["method"]
            if name in seen:
                if any(seen[name].get(k) != row.get(k) for k in SCORES):
                    raise ValidationError(f"method {name!r} has different scores in two inputs; rerun them together.")
                continue
            seen[name] = row
            merged["methods"].append(row)
    merged["merged_from"] = len(results)
    return merged


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("inputs", type=Path, nargs="+")
    p.add_argument("--markdown", type=Path)
    args = p.parse_args(argv)
    result = merge([json.loads(f.read_text()) for f in args.inputs])
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = markdown_table(result)
    if args.markdown:
        args.markdown.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
