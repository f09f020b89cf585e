"""Speed benchmark: rows and keys on tiny sizes (tiny generator, real peers and nnU-Net step), FLOPs, efficiency,
growth fit, skipped weights, and the Markdown report from a stored small fixture."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from synthaug.benchmark.speed import Source, _fit, fit_to_size, measure_speed, rendered_voxels, speed_markdown
from synthaug.errors import ValidationError
from tests.transforms.conftest import phantom

FIXTURE = Path(__file__).parent / "fixtures" / "speed_small.json"

ROW_KEYS = {
    "item", "kind", "transform", "weights", "data", "size", "megavoxels", "repeats", "seconds", "seconds_iqr",
    "ms_per_megavoxel", "total_flops", "flops_per_second", "efficiency", "peak_memory_bytes", "memory_method",
    "rss_peak_delta_bytes", "top_ops", "conv_share",
}
GENERATOR_KEYS = ROW_KEYS | {
    "generator_seconds", "generator_share", "generator_flops", "generator_flops_per_second", "generator_efficiency",
    "ratio_to_torchio", "ratio_to_monai", "ratio_to_nnunet", "ratio_to_nnunet_2d", "precision", "phases",
    "unmarked_seconds", "rendered_voxels", "canvas_fill",
}


def _source(shape=(20, 18, 6)):
    img, lab = phantom(shape)
    return Source("phantom", img[0].numpy(), lab[0].numpy(), "phantom (tests)")


def test_fit_to_size_resamples_the_labelled_box():
    img, lab = fit_to_size(_source(), (16, 12, 4))
    assert img.shape == (1, 1, 16, 12, 4) and lab.shape == (1, 1, 16, 12, 4)
    assert img.dtype == torch.float32 and lab.dtype == torch.int64
    assert set(torch.unique(lab).tolist()) <= {0, 1, 2, 3} and int(lab.max()) > 0


def test_growth_fit_is_linear_for_linear_times():
    fit = _fit([1.0, 2.0, 4.0], [0.1, 0.2, 0.4])
    assert fit["exponent"] == pytest.approx(1.0) and fit["slope_ms_per_megavoxel"] == pytest.approx(100.0)
    assert fit["r2"] == pytest.approx(1.0) and abs(fit["intercept_ms"]) < 1e-6


@pytest.mark.slow
def test_measure_speed_rows(tiny_weights):
    torch.set_num_threads(1)
    result = measure_speed([(16, 16, 4), (32, 32, 8)], weights=["tiny_ct", "no_such_weights"], repeats=1, warmup=1,
                           matmul_size=256, sources={"tiny_ct": _source()})
    assert result["peak_flops_per_second"] > 0 and math.isfinite(result["peak_flops_per_second"])
    assert [s["weights"] for s in result["skipped"]] == ["no_such_weights"]
    rows = result["rows"]
    gens = [r for r in rows if r["kind"] == "generator"]
    assert len(gens) == 4 and {tuple(r["size"]) for r in gens} == {(16, 16, 4), (32, 32, 8)}
    assert {r["precision"] for r in gens} == {"fp32", "bf16"}
    assert {r["transform"] for r in rows if r["kind"] == "peer"} == {
        "TorchIO RandomLabelsToImage", "MONAI Rand3DElasticd", "nnU-Net iteration", "nnU-Net iteration 2d"}
    for r in rows:
        assert ROW_KEYS <= set(r), ROW_KEYS - set(r)
        assert math.isfinite(r["seconds"]) and r["seconds"] > 0 and r["ms_per_megavoxel"] > 0
    for r in gens:
        assert GENERATOR_KEYS <= set(r), GENERATOR_KEYS - set(r)
        assert r["generator_flops"] > 0 and r["total_flops"] >= r["generator_flops"]
        assert 0 < r["generator_seconds"] <= r["seconds"]
        assert 0 < r["generator_efficiency"] <= 1.5 and 0 < r["efficiency"] <= 1.5
        for k in ("ratio_to_torchio", "ratio_to_monai", "ratio_to_nnunet", "ratio_to_nnunet_2d"):
            assert r[k] > 0 and math.isfinite(r[k])
        # the time split: the generator phase and the transform's other phases, none longer than the call
        assert r["phases"]["generator"] == pytest.approx(r["generator_seconds"])
        assert {"checks", "intensity fit", "features", "padding", "output"} <= set(r["phases"])
        assert sum(r["phases"].values()) <= r["seconds"] * 1.01
        # tiny_ct has no training canvas and both sizes are multiples of its divisor: nothing is padded
        assert r["canvas_fill"] == pytest.approx(1.0) and r["rendered_voxels"] == round(r["megavoxels"] * 1e6)
    bf16 = [r for r in gens if r["precision"] == "bf16"]
    assert all(r["psnr_vs_fp32"] > 20 and 0.5 < r["ssim_vs_fp32"] <= 1.0 for r in bf16 if r["size"] == [32, 32, 8])
    assert all(r["generator_flops"] > 0 for r in bf16)
    # the nnU-Net iteration is a real forward+backward: FLOPs counted, batch of 2 volumes
    nn = [r for r in rows if r["transform"] == "nnU-Net iteration"]
    assert all(r["total_flops"] > 0 and r["megavoxels"] == pytest.approx(2 * np.prod(r["size"]) / 1e6) for r in nn)
    assert {g["item"] for g in result["growth"]} >= {"ContextTextureSynth [tiny_ct]", "nnU-Net iteration"}
    json.dumps(result)  # the raw result is JSON-serialisable as written by the CLI
    report = speed_markdown(result, command="synthaug benchmark speed", machine="test", date="today")
    assert "| ContextTextureSynth [tiny_ct] | 16x16x4 |" in report and "no_such_weights" in report


def test_generator_rows_without_peers(tiny_weights):
    """The fast twin of test_measure_speed_rows (slow: it also times TorchIO, MONAI and two nnU-Net iterations):
    generator rows only, one size, the time split, canvas fill and the bf16 twin with its quality."""
    torch.set_num_threads(1)
    result = measure_speed([(32, 32, 8)], weights=["tiny_ct"], repeats=1, warmup=0, matmul_size=128, peers=False,
                           nnunet=False, sources={"tiny_ct": _source()})
    gens = [r for r in result["rows"] if r["kind"] == "generator"]
    assert [r["precision"] for r in gens] == ["fp32", "bf16"]
    for r in gens:
        assert {"generator", "checks", "calibration", "features"} <= set(r["phases"])
        assert r["phases"]["generator"] == pytest.approx(r["generator_seconds"]) and r["generator_flops"] > 0
        assert sum(r["phases"].values()) <= r["seconds"] * 1.01 and r["canvas_fill"] == pytest.approx(1.0)
    assert gens[1]["psnr_vs_fp32"] > 20 and 0.5 < gens[1]["ssim_vs_fp32"] <= 1.0
    md = speed_markdown(result, command="c", machine="m", date="d")
    assert "## Where the time goes inside a call" in md and "## Reduced precision" in md
    assert "| ContextTextureSynth [tiny_ct] [bf16] | 32x32x8 |" in md


def test_rendered_voxels_follow_the_card():
    from synthaug.transforms import ContextTextureSynth, ModalityTranslate, StyleSwap
    from synthaug.weights.registry import load

    ctx = ContextTextureSynth("context_ct_a", labels_are_classes=True)
    card = load("context_ct_a")[1]
    assert tuple(card.inference.canvas) == (128, 128)
    assert rendered_voxels(ctx, card, (64, 64, 16)) == 16 * 128 * 128  # padded up to the training canvas
    assert rendered_voxels(ctx, card, (192, 200, 4)) == 4 * 192 * 208  # above it: only the divisor (16)
    style = StyleSwap("style_ct_a", labels_are_classes=True)
    assert rendered_voxels(style, load("style_ct_a")[1], (60, 64, 3)) == 3 * 64 * 64  # divisor only
    resgan = ModalityTranslate("translate_brain_pd_t2_resgan")
    # 32^3 patches, stride 16: 3 x 3 starts in-plane, one along the 16-voxel axis (padded to 32)
    assert rendered_voxels(resgan, load("translate_brain_pd_t2_resgan")[1], (64, 64, 16)) == 9 * 32**3


def test_measure_speed_validates():
    with pytest.raises(ValidationError):
        measure_speed([(16, 16)], repeats=1)
    with pytest.raises(ValidationError):
        measure_speed([(16, 16, 4)], repeats=0)


def test_markdown_from_stored_fixture():
    result = json.loads(FIXTURE.read_text())
    md = speed_markdown(result, command="synthaug benchmark speed --out x", machine="x86_64, 2 CPU cores",
                        date="2026-01-01", notes=["a note"])
    lines = md.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| transform [weights] |"))
    assert lines[header + 1].startswith("|---")
    body = lines[header + 2]
    cells = [c.strip() for c in body.strip("|").split("|")]
    assert cells[0] == "ContextTextureSynth [context_ct_a]" and cells[1] == "64x64x16"
    assert cells[3] == "1000"  # ms per megavoxel
    assert cells[8] == "25.0%"  # generator efficiency
    assert cells[-2] == "0.500"  # ratio to the nnU-Net 3d_fullres iteration
    assert "fp32 matmul peak" in md and "64x64x16 block: 40.0 GFLOP/s" in md
    assert "below the 60% target" in md and "narrow layers" not in md and "conv-kernel" not in md and "`style_ct_a`" in md and "- a note" in md
    assert "| nnU-Net iteration | 64x64x16 |" in md


@pytest.mark.slow
def test_measure_expansion_one_and_two_processes(tmp_path, tiny_weights):
    from synthaug.benchmark.speed import measure_expansion
    from tests.integrations.nnunet import make_raw_dataset, write_recipe

    src = make_raw_dataset(tmp_path / "raw", n_train=5, n_test=1, shape=(24, 24, 1))
    recipe = write_recipe(tmp_path / "recipe.json")
    res = measure_expansion(src, recipe, per_case=2, work=tmp_path / "work")
    assert [r["processes"] for r in res["runs"]] == [1, 2]
    assert all(r["synthetic_cases"] == 10 and r["seconds"] > 0 for r in res["runs"])
    assert res["runs"][0]["speedup"] == pytest.approx(1.0)
    assert all(r["byte_identical"] for r in res["runs"]) and res["files"] > 4
    # the start-up / per-case split from the extra one-per-case run: seconds = start-up + cases x s/case
    # (tiny cases: a per-case time below the noise of a whole command is reported as not resolved, never negative)
    for r in res["runs"]:
        assert r["seconds_one_per_case"] > 0
        if r["per_case_seconds"] is not None:
            assert r["per_case_seconds"] > 0
            assert r["startup_seconds"] + 10 * r["per_case_seconds"] == pytest.approx(r["seconds"])
        else:
            assert r["startup_seconds"] is None and r.get("steady_speedup") is None
    for r in res["runs"]:
        assert r.get("steady_speedup") is None or r["steady_speedup"] > 0
    if res["runs"][0]["per_case_seconds"] is not None:
        assert res["runs"][0]["steady_speedup"] == pytest.approx(1.0)
    md = speed_markdown({**json.loads(FIXTURE.read_text()), "expansion": res}, command="c", machine="m", date="d")
    assert "## Offline expansion throughput" in md and "| 2 |" in md and "steady-state speed-up" in md
