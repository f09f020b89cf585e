"""Tests of synthaug.data.mr_simulator (simulated spin-echo brain MR) on a small synthetic phantom."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time

import nibabel as nib
import numpy as np
import pytest

from synthaug.data import mr_simulator as ms
from synthaug.errors import DataError, ShapeError, SynthAugError, ValidationError


@dataclasses.dataclass(frozen=True)
class Phantom:
    """Same fields as synthaug.data.subjects.TissueMaps."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain_mask: np.ndarray
    t1: np.ndarray
    affine: np.ndarray


def make_phantom(n: int = 40, vox: float = 2.0) -> Phantom:
    """Nested spheres with 1-voxel partial-volume ramps: CSF ventricle in a WM core, GM shell, CSF shell."""
    c = (n - 1) / 2.0
    x, y, z = np.indices((n, n, n), dtype=np.float32)
    r = np.sqrt((x - c) ** 2 + (y - c) ** 2 + (z - c) ** 2) * 40.0 / n

    def inside(radius: float) -> np.ndarray:
        return np.clip(radius - r + 0.5, 0.0, 1.0)

    head, cortex, core, ventricle = inside(17.0), inside(13.0), inside(8.0), inside(3.5)
    csf = (head - cortex) + ventricle
    wm, gm = core - ventricle, cortex - core
    affine = np.diag([vox, vox, vox, 1.0])
    affine[:3, 3] = -c * vox
    f32 = np.float32
    return Phantom(f32(gm), f32(wm), f32(csf), f32(head >= 0.5), f32(wm + 0.5 * gm), affine)


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return make_phantom()


def tissue_means(sim: ms.SimulatedMR, contrast: str) -> dict[str, float]:
    img = sim.images[contrast]
    return {name: float(img[sim.label == i].mean()) for i, name in sim.class_names.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contrast_order_per_tissue(phantom: Phantom, seed: int) -> None:
    sim = ms.simulate_brain_mr(phantom, seed=seed)
    t1, t2, pd = (tissue_means(sim, c) for c in ("T1w", "T2w", "PDw"))
    assert t1["white_matter"] > t1["gray_matter"] > t1["csf"] > t1["background"]
    assert t2["csf"] > t2["gray_matter"] > t2["white_matter"]
    assert pd["csf"] > pd["gray_matter"] > pd["white_matter"]


def test_pure_tissue_signal_matches_spin_echo_equation(phantom: Phantom) -> None:
    sim = ms.simulate_brain_mr(phantom, seed=0, deform=False, noise=0, bias=0, variability=0)
    wm = ms.TISSUE_PARAMETERS[2]
    preset = ms.SEQUENCE_PRESETS["T1w"]
    expected = wm.pd * (1 - np.exp(-preset.tr_ms / wm.t1_ms)) * np.exp(-preset.te_ms / wm.t2_ms)
    pure_wm = phantom.wm > 0.999
    np.testing.assert_allclose(sim.images["T1w"][pure_wm], expected, rtol=1e-5)


def test_label_map(phantom: Phantom) -> None:
    sim = ms.simulate_brain_mr(phantom, seed=0, deform=False)
    assert sim.label.dtype == np.int16 and sim.label.shape == phantom.gm.shape
    assert set(np.unique(sim.label).tolist()) == {0, 1, 2, 3}
    centre = tuple(s // 2 for s in sim.label.shape)
    assert sim.label[centre] == 1  # ventricle
    assert sim.label[0, 0, 0] == 0
    assert np.all(sim.label[phantom.brain_mask < 0.5] == 0)


def test_same_seed_same_arrays_different_seed_differs(phantom: Phantom) -> None:
    a = ms.simulate_brain_mr(phantom, seed=3)
    b = ms.simulate_brain_mr(phantom, seed=3)
    c = ms.simulate_brain_mr(phantom, seed=4)
    for k in a.images:
        np.testing.assert_array_equal(a.images[k], b.images[k])
        assert not np.array_equal(a.images[k], c.images[k])
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_array_equal(a.bias_field, b.bias_field)
    assert not np.array_equal(a.label, c.label)


def test_effects_use_separate_random_streams(phantom: Phantom) -> None:
    """Switching the noise off must not change the anatomy or the bias field of the same seed."""
    noisy = ms.simulate_brain_mr(phantom, seed=5)
    clean = ms.simulate_brain_mr(phantom, seed=5, noise=0)
    np.testing.assert_array_equal(noisy.label, clean.label)
    np.testing.assert_array_equal(noisy.bias_field, clean.bias_field)


def test_noise_is_rician(phantom: Phantom) -> None:
    clean = ms.simulate_brain_mr(phantom, seed=1, noise=0, deform=False)
    noisy = ms.simulate_brain_mr(phantom, seed=1, noise=0.05, deform=False)
    background = (phantom.csf + phantom.gm + phantom.wm) == 0
    assert background.sum() > 10_000
    for contrast in ("T1w", "T2w"):
        assert np.all(clean.images[contrast][background] == 0)
        img = noisy.images[contrast]
        assert img.dtype == np.float32 and np.all(img >= 0)
        sigma = 0.05 * ms._reference_wm(ms.SEQUENCE_PRESETS[contrast])
        bg = img[background]
        # Rayleigh statistics of the magnitude of pure complex Gaussian noise
        assert bg.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.05)
        assert bg.std() == pytest.approx(sigma * np.sqrt(2 - np.pi / 2), rel=0.05)


def test_bias_field_is_smooth_and_multiplicative(phantom: Phantom) -> None:
    common = dict(seed=2, deform=False, noise=0.0, variability=0.0)
    unbiased = ms.simulate_brain_mr(phantom, bias=0.0, **common)
    biased = ms.simulate_brain_mr(phantom, bias=0.2, **common)
    field = biased.bias_field
    assert field.shape == phantom.gm.shape and np.all(field > 0)
    np.testing.assert_array_equal(unbiased.bias_field, 1.0)
    log = np.log(field)
    assert log.std() == pytest.approx(0.2, rel=0.05)
    assert abs(float(log.mean())) < 1e-3
    steps = max(float(np.abs(np.diff(log, axis=a)).max()) for a in range(3))
    assert steps < 0.1 * (log.max() - log.min())  # varies slowly across the 40-voxel phantom
    np.testing.assert_allclose(biased.images["T1w"], unbiased.images["T1w"] * field, rtol=1e-5, atol=1e-7)


def test_variability_changes_signal_smoothly(phantom: Phantom) -> None:
    common = dict(seed=2, deform=False, noise=0.0, bias=0.0)
    flat = ms.simulate_brain_mr(phantom, variability=0.0, **common)
    varied = ms.simulate_brain_mr(phantom, variability=0.05, **common)
    pure_wm = phantom.wm > 0.999
    ratio = varied.images["PDw"][pure_wm] / flat.images["PDw"][pure_wm]
    assert 0.005 < ratio.std() < 0.1
    assert abs(ratio.mean() - 1) < 0.05


def test_deformation_changes_anatomy_per_seed(phantom: Phantom) -> None:
    still = [ms.simulate_brain_mr(phantom, seed=s, deform=False).label for s in (0, 1)]
    np.testing.assert_array_equal(still[0], still[1])
    moved = [ms.simulate_brain_mr(phantom, seed=s).label for s in (0, 1)]
    assert (moved[0] != still[0]).mean() > 0.005
    assert (moved[0] != moved[1]).mean() > 0.005
    counts = np.bincount(moved[0].ravel(), minlength=4)
    assert np.all(counts[1:] > 0.7 * np.bincount(still[0].ravel(), minlength=4)[1:])


def test_simulate_subjects_replay_and_differ(phantom: Phantom) -> None:
    subjects = ms.simulate_subjects(phantom, n=3, seed=11)
    assert len(subjects) == 3 and len({s.name for s in subjects}) == 3
    assert len({s.params.seed for s in subjects}) == 3
    assert not np.array_equal(subjects[0].label, subjects[1].label)
    replay = ms.simulate_brain_mr(phantom, **subjects[1].params.kwargs())
    for k in replay.images:
        np.testing.assert_array_equal(replay.images[k], subjects[1].images[k])
    again = ms.simulate_subjects(phantom, n=3, seed=11)
    np.testing.assert_array_equal(again[2].images["T2w"], subjects[2].images["T2w"])


def test_records_say_simulated(phantom: Phantom) -> None:
    sim = ms.simulate_brain_mr(phantom, seed=0, contrasts=("T2w",))
    assert list(sim.images) == ["T2w"]
    assert sim.simulated and sim.params.simulated
    assert "simulated" in sim.label_source and "not real patient data" in sim.label_source
    assert "simulated" in (ms.__doc__ or "").lower()
    meta = json.loads(json.dumps(sim.to_dict()))
    assert meta["params"]["seed"] == 0 and meta["simulated"] is True
    assert meta["params"]["presets"][0] == {
        "name": "T2w",
        "tr_ms": 4000.0,
        "te_ms": 100.0,
        "description": ms.SEQUENCE_PRESETS["T2w"].description,
    }
    assert {t["name"] for t in meta["params"]["tissues"]} == {"csf", "gray_matter", "white_matter"}
    assert all(t["sources"] for t in meta["params"]["tissues"])
    assert sim.spacing == (2.0, 2.0, 2.0)
    assert dict(sim.class_names) == {0: "background", 1: "csf", 2: "gray_matter", 3: "white_matter"}


def test_tissue_table_within_literature_ranges() -> None:
    for t in ms.TISSUE_PARAMETERS:
        assert t.t1_range_ms[0] <= t.t1_ms <= t.t1_range_ms[1]
        assert t.t2_range_ms[0] <= t.t2_ms <= t.t2_range_ms[1]
        assert t.pd_range[0] <= t.pd <= t.pd_range[1]
    assert [t.label for t in ms.TISSUE_PARAMETERS] == [1, 2, 3]


def test_custom_preset(phantom: Phantom) -> None:
    flair_like = ms.SequencePreset("longTR", tr_ms=9000.0, te_ms=20.0)
    sim = ms.simulate_brain_mr(phantom, seed=0, contrasts=(flair_like, "T1w"))
    assert list(sim.images) == ["longTR", "T1w"]
    with pytest.raises(ValidationError, match="te_ms < tr_ms"):
        ms.SequencePreset("bad", tr_ms=10.0, te_ms=20.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"contrasts": ("T1",)}, "Did you mean 'T1w'"),
        ({"contrasts": ("pdw",)}, "Did you mean 'PDw'"),
        ({"contrasts": ()}, "at least one"),
        ({"contrasts": ("T1w", "T1w")}, "repeat"),
        ({"noise": -0.1}, "noise must be >= 0"),
        ({"bias": -1.0}, "bias must be >= 0"),
        ({"variability": 0.9}, "variability must lie in"),
        ({"deform_mm": -2.0}, "deform_mm"),
        ({"seed": -1}, "seed must be a non-negative int"),
        ({"seed": 1.5}, "seed must be a non-negative int"),
        ({"spacing": 1.0}, "only downsampling"),
    ],
)
def test_bad_arguments_raise_clear_errors(phantom: Phantom, kwargs: dict, match: str) -> None:
    kwargs = {"seed": 0, **kwargs}
    with pytest.raises(ValidationError, match=match):
        ms.simulate_brain_mr(phantom, **kwargs)


def test_bad_tissue_maps(phantom: Phantom) -> None:
    with pytest.raises(ShapeError, match="share one grid"):
        ms.simulate_brain_mr(dataclasses.replace(phantom, wm=phantom.wm[:-1]), seed=0)
    with pytest.raises(ValidationError, match="must have a 'gm' attribute"):
        ms.simulate_brain_mr(object(), seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="positive int"):
        ms.simulate_subjects(phantom, n=0, seed=0)


def test_resample_and_crop(phantom: Phantom) -> None:
    fine = make_phantom(n=40, vox=1.0)
    coarse = ms.resample_tissue_maps(fine, spacing=2.0)
    assert coarse.gm.shape == (20, 20, 20)
    np.testing.assert_allclose(np.linalg.norm(coarse.affine[:3, :3], axis=0), 2.0)
    # area averaging keeps tissue volume, and the grid centre stays in place
    assert coarse.wm.sum() * 8 == pytest.approx(fine.wm.sum(), rel=1e-4)
    centre = lambda m: m.affine[:3, :3] @ ((np.array(m.gm.shape) - 1) / 2) + m.affine[:3, 3]  # noqa: E731
    np.testing.assert_allclose(centre(coarse), centre(fine), atol=1e-6)
    odd = ms.resample_tissue_maps(fine, spacing=3.0)
    assert odd.gm.shape == (13, 13, 13)
    cropped = ms.resample_tissue_maps(phantom, spacing=None, crop_to_brain=True, margin_mm=2.0)
    first = int(np.flatnonzero(phantom.brain_mask.any(axis=(1, 2)))[0])
    width = 40 - 2 * first + 2  # symmetric phantom, one 2 mm voxel of margin on each side
    assert cropped.gm.shape == (width,) * 3 and cropped.brain_mask.sum() == phantom.brain_mask.sum()
    world = lambda m, ijk: m.affine[:3, :3] @ np.array(ijk) + m.affine[:3, 3]  # noqa: E731
    np.testing.assert_allclose(world(cropped, (0, 0, 0)), world(phantom, (first - 1,) * 3))


def test_spacing_option_deforms_then_downsamples() -> None:
    fine = make_phantom(n=40, vox=1.0)
    sim = ms.simulate_brain_mr(fine, seed=0, spacing=2.0)
    assert sim.label.shape == (20, 20, 20) and sim.spacing == (2.0, 2.0, 2.0)
    assert sim.params.spacing == 2.0
    replay = ms.simulate_brain_mr(fine, **sim.params.kwargs())
    np.testing.assert_array_equal(replay.images["T1w"], sim.images["T1w"])


def test_write_simulated_mr(tmp_path, phantom: Phantom) -> None:
    subjects = ms.simulate_subjects(phantom, n=2, seed=0)
    out = ms.write_simulated_mr(subjects, tmp_path / "sim")
    assert sorted(p.name for p in out.iterdir()) == sorted([*(s.name for s in subjects), "simulation.json"])
    first = out / subjects[0].name
    assert sorted(p.name for p in first.iterdir()) == [
        "PDw.nii.gz",
        "T1w.nii.gz",
        "T2w.nii.gz",
        "label.nii.gz",
    ]
    img = nib.load(first / "T2w.nii.gz")
    np.testing.assert_array_equal(np.asarray(img.dataobj), subjects[0].images["T2w"])
    np.testing.assert_allclose(img.affine, subjects[0].affine)
    assert np.asarray(nib.load(first / "label.nii.gz").dataobj).dtype == np.int16
    meta = json.loads((out / "simulation.json").read_text())
    assert meta["simulated"] is True and "not real patient data" in meta["note"]
    with pytest.raises(DataError, match="already exists"):
        ms.write_simulated_mr(subjects, out)
    assert [p.name for p in tmp_path.iterdir()] == ["sim"]  # no temporary leftovers


def test_cli_simulate_mr(tmp_path, phantom: Phantom, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from synthaug.cli import data_export
    from synthaug.data import subjects

    monkeypatch.setattr(subjects, "load_mni_tissue_maps", lambda: make_phantom(n=40, vox=1.0))
    parser = argparse.ArgumentParser(prog="synthaug data")
    data_export.register(parser.add_subparsers(dest="data_command"))
    args = parser.parse_args(["simulate-mr", "--out", str(tmp_path / "o"), "--subjects", "2", "--seed", "7"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "o")
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert len(names) == 3 and "simulation.json" in names
    label = nib.load(tmp_path / "o" / names[0] / "label.nii.gz")
    assert label.shape == (20, 20, 20)
    with pytest.raises(SynthAugError, match="already exists"):
        args.func(args)


@pytest.mark.data
@pytest.mark.slow
def test_real_mni_at_2mm(tissue_maps) -> None:  # conftest fixture: load_mni_tissue_maps()
    from synthaug.data.vocabulary import brain_tissue_vocabulary

    maps = tissue_maps
    start = time.perf_counter()
    sim = ms.simulate_brain_mr(maps, seed=0, spacing=2.0)
    elapsed = time.perf_counter() - start
    assert sim.label.shape == (98, 116, 94)
    assert elapsed < 30.0  # ~2.5 s on a 2-core CPU; loose bound for a shared machine
    assert tuple(sim.class_names[i] for i in range(4)) == brain_tissue_vocabulary().names
    t1, t2, pd = (tissue_means(sim, c) for c in ("T1w", "T2w", "PDw"))
    assert t1["white_matter"] > t1["gray_matter"] > t1["csf"]
    assert t2["csf"] > t2["gray_matter"] > t2["white_matter"]
    assert pd["csf"] > pd["gray_matter"] > pd["white_matter"]
    counts = np.bincount(sim.label.ravel(), minlength=4)
    assert counts[1] > 5_000 and counts[2] > 100_000 and counts[3] > 50_000


def test_gradient_echo_preset_in_the_brain_simulation(phantom: Phantom) -> None:
    gre = ms.GradientEchoPreset("FLASH", tr_ms=20.0, te_ms=4.0, flip_deg=25.0)
    sim = ms.simulate_brain_mr(phantom, seed=0, contrasts=(gre,), deform=False, noise=0, bias=0, variability=0)
    wm = ms.TISSUE_PARAMETERS[2]
    expected = ms.spoiled_gre_signal(wm.pd, wm.t1_ms, wm.t2_ms, tr_ms=20.0, te_ms=4.0, flip_deg=25.0)
    np.testing.assert_allclose(sim.images["FLASH"][phantom.wm > 0.999], expected, rtol=1e-5)
    # 90 degrees and TR >> T1: the spoiled gradient echo reduces to the spin-echo expression.
    np.testing.assert_allclose(
        ms.spoiled_gre_signal(1.0, 800.0, 80.0, tr_ms=500.0, te_ms=10.0, flip_deg=90.0),
        ms.spin_echo_signal(1.0, 800.0, 80.0, tr_ms=500.0, te_ms=10.0),
    )
    assert sim.params.to_dict()["presets"][0]["sequence"] == "spoiled_gre"


def test_chemical_shift_echo_times_and_errors() -> None:
    assert ms.chemical_shift_te_ms(1.5, phase="in") == pytest.approx(4.6, abs=0.03)
    assert ms.chemical_shift_te_ms(3.0, phase="opposed", echo=2) == pytest.approx(3.45, abs=0.03)
    assert math.cos(ms.fat_phase(ms.chemical_shift_te_ms(3.0, phase="opposed"), 3.0)) == pytest.approx(-1.0)
    with pytest.raises(ValidationError, match="phase must be"):
        ms.chemical_shift_te_ms(1.5, phase="out")
    with pytest.raises(ValidationError, match="echo must be"):
        ms.chemical_shift_te_ms(1.5, phase="in", echo=0)
    with pytest.raises(ValidationError, match="SequencePreset or GradientEchoPreset"):
        ms.signal_equation(1.0, 1.0, 1.0, "T1w")  # type: ignore[arg-type]
    assert set(ms.ABDOMINAL_SEQUENCES) == {1.5, 3.0}
