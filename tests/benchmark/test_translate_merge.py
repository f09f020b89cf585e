"""benchmarks/translate/merge_results.py: rows of separate evaluations join only under one protocol."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from synthaug.errors import ValidationError

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("merge_results", ROOT / "benchmarks" / "translate" / "merge_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(name, ssim):
    return {"method": name, "mode": "nec", "spatial_dims": 2, "psnr": [20.0, 1.0], "ssim": [ssim, 0.1], "mae": [0.1, 0.0],
            "ngf_alignment": [0.05, 0.01], "kid_x1000": [10.0, 1.0], "dice": None, "n_slices": 4,
            "training_seconds": 1.0, "iterations": 10, "best_step": 10, "parameters": 5}


def _result(*rows):
    return {"data": "brain_t1_t2", "source_modality": "T1w", "target_modality": "T2w", "test_cases": ["a"],
            "test_subjects": ["a"], "n_slices": 4, "protocol": {"histogram_matching": False}, "simulated": True,
            "methods": list(rows)}


def test_merge_keeps_one_row_per_method_and_writes_the_table(tmp_path):
    mod = _module()
    a, b = _result(_row("floor", 0.5), _row("nec", 0.7)), _result(_row("floor", 0.5), _row("cyclegan", 0.6))
    paths = []
    for i, r in enumerate((a, b)):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(r))
    out, md = tmp_path / "out.json", tmp_path / "out.md"
    assert mod.main([str(out), *map(str, paths), "--markdown", str(md)]) == 0
    merged = json.loads(out.read_text())
    assert [r["method"] for r in merged["methods"]] == ["floor", "nec", "cyclegan"]
    assert "| cyclegan |" in md.read_text()


def test_merge_refuses_another_protocol_or_disagreeing_rows():
    mod = _module()
    a = _result(_row("floor", 0.5))
    other = copy.deepcopy(a)
    other["protocol"]["histogram_matching"] = True
    with pytest.raises(ValidationError, match="protocol"):
        mod.merge([a, other])
    with pytest.raises(ValidationError, match="different scores"):
        mod.merge([a, _result(_row("floor", 0.51))])
