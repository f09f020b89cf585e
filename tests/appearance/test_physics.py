"""Physics prior: literature contrast orders, presets, determinism, mixtures, bad input; all simulated."""

import math

import numpy as np
import pytest

from synthaug.appearance.physics import (
    SIMULATED_NOTE,
    SUPERCLASS_NAMES,
    class_signals,
    simulate_abdominal_mr,
    tissue_signal,
)
from synthaug.data.abdominal_tissues import ABDOMINAL_TISSUES, BODY_MIXTURE, SUPERCLASS_MIXTURES
from synthaug.data.mr_simulator import GradientEchoPreset, abdominal_presets
from synthaug.data.vocabulary import superclass_vocabulary
from synthaug.errors import LabelError, ShapeError, ValidationError


def pure(tissue: str, contrast: str, field_t: float) -> float:
    """Magnitude signal of one pure tissue (water and fat combined at the preset's fat phase)."""
    p = abdominal_presets(field_t)[contrast]
    w, f = tissue_signal(tissue, p, field_t=field_t)
    phi = 0.0 if not isinstance(p, GradientEchoPreset) else 2 * math.pi * 3.4 * 42.577 * field_t * p.te_ms / 1000
    return abs(complex(w + f * math.cos(phi), f * math.sin(phi)))


def phantom(n: int = 48) -> np.ndarray:
    """Super-class blocks: liver, spleen, muscle, kidneys, bone, and body background around them."""
    lab = np.zeros((n, n, 3), np.int16)
    ids = {name: i for i, name in enumerate(SUPERCLASS_NAMES)}
    lab[6:20, 6:20] = ids["liver"]
    lab[6:20, 26:40] = ids["spleen"]
    lab[26:40, 6:20] = ids["muscle"]
    lab[26:40, 26:33] = ids["kidneys"]
    lab[26:40, 35:42] = ids["bone"]
    return lab


@pytest.mark.parametrize("field_t", [1.5, 3.0])
def test_contrast_order_matches_the_cited_tables(field_t):
    # de Bazelaire 2004 (T1/T2 at 1.5 and 3 T) with the table's proton densities imply, for these presets:
    # T1w: fat > liver > spleen and liver > muscle (spleen vs muscle flips with field: 1.5 T spleen > muscle,
    # 3 T muscle > spleen); T2w: spleen > liver > muscle (T2 79 > 46 > 27 ms at 1.5 T; 61 > 34 > 29 at 3 T)
    # and fat > liver.
    t1 = {t: pure(t, "T1w", field_t) for t in ("fat", "liver", "spleen", "muscle")}
    t2 = {t: pure(t, "T2w", field_t) for t in ("fat", "liver", "spleen", "muscle")}
    assert t1["fat"] > t1["liver"] > t1["spleen"]
    assert t1["liver"] > t1["muscle"]
    assert (t1["spleen"] > t1["muscle"]) == (field_t == 1.5)
    assert t2["spleen"] > t2["liver"] > t2["muscle"]
    assert t2["fat"] > t2["liver"]
    for t in ("liver", "spleen", "muscle"):
        t1_ms, t2_ms = ABDOMINAL_TISSUES[t].relaxation(field_t)
        assert t1_ms > ABDOMINAL_TISSUES["fat"].relaxation(field_t)[0]  # fat has the shortest T1 of the four


@pytest.mark.parametrize("field_t", [1.5, 3.0])
def test_rendered_region_means_follow_the_class_signals(field_t):
    # The "liver" super-class includes gallbladder bile (6 %), which lowers its T1w signal: at 3 T the class is
    # below muscle although pure liver is above it. Rendered regions must match the mixture's expected signal.
    lab = phantom()
    sim = simulate_abdominal_mr(lab, seed=3, field_t=field_t, noise=0.0, bias=0.0, variability=0.0, heterogeneity=0.0)
    ids = {name: i for i, name in enumerate(SUPERCLASS_NAMES)}

    def mean(contrast, name):
        m = lab == ids[name]
        inner = m & np.roll(m, 2, 0) & np.roll(m, -2, 0) & np.roll(m, 2, 1) & np.roll(m, -2, 1)  # away from edges
        return float(sim.images[contrast][inner].mean())

    for contrast in ("T1w", "T2w", "in_phase", "opposed_phase"):
        expected = class_signals(contrast, field_t=field_t)
        for name in ("liver", "spleen", "muscle", "kidneys", "bone"):
            assert mean(contrast, name) == pytest.approx(expected[name], rel=1e-3), (contrast, name)
    assert mean("T1w", "liver") > mean("T1w", "spleen")
    assert mean("T2w", "spleen") > mean("T2w", "liver") > mean("T2w", "muscle")


def test_in_and_opposed_phase_presets():
    for field_t, (te_op, te_in) in {1.5: (2.3, 4.6), 3.0: (1.15, 2.3)}.items():
        p = abdominal_presets(field_t)
        assert p["opposed_phase"].te_ms == pytest.approx(te_op, abs=0.02)
        assert p["in_phase"].te_ms == pytest.approx(te_in, abs=0.03)
        assert p["in_phase"].flip_deg == 70 and p["T1w"].tr_ms < p["T2w"].tr_ms
        # Opposed phase cancels mixed fat/water voxels: marrow (fat fraction 0.4) loses most of its signal,
        # water-only tissue (spleen) keeps it (only T2 decay differs), adipose tissue stays bright.
        s = {c: class_signals(c, field_t=field_t) for c in ("in_phase", "opposed_phase")}
        assert pure("bone_marrow", "opposed_phase", field_t) < 0.1 * pure("bone_marrow", "in_phase", field_t)
        assert pure("spleen", "opposed_phase", field_t) == pytest.approx(pure("spleen", "in_phase", field_t), rel=0.05)
        assert pure("fat", "opposed_phase", field_t) > pure("liver", "opposed_phase", field_t)
        assert s["opposed_phase"]["bone"] < s["in_phase"]["bone"]
    with pytest.raises(ValidationError, match="flip_deg"):
        GradientEchoPreset("bad", 100.0, 2.0, 200.0)
    with pytest.raises(ValidationError, match="te_ms < tr_ms"):
        GradientEchoPreset("bad", 2.0, 4.0, 10.0)


def test_opposed_phase_india_ink_at_fat_water_borders():
    lab = np.zeros((40, 40), np.int16)
    lab[10:30, 10:30] = SUPERCLASS_NAMES.index("spleen")  # water-only organ inside body fat
    sim = simulate_abdominal_mr(lab, seed=0, contrasts=("opposed_phase", "in_phase"), noise=0.0, bias=0.0,
                                variability=0.0, heterogeneity=0.0, body_margin=8, blur=1.0)
    op, ip = sim.images["opposed_phase"], sim.images["in_phase"]
    border = op[20, 8:12]  # fat -> spleen transition along x = 8..11
    assert border.min() < 0.5 * min(op[20, 4], op[20, 20])
    assert ip[20, 8:12].min() > 0.5 * min(ip[20, 4], ip[20, 20])


def test_deterministic_with_a_seed_and_records_say_simulated():
    lab = phantom()
    a = simulate_abdominal_mr(lab, seed=7)
    b = simulate_abdominal_mr(lab, **a.params.kwargs())
    c = simulate_abdominal_mr(lab, seed=8)
    for k in a.images:
        np.testing.assert_array_equal(a.images[k], b.images[k])
        assert not np.array_equal(a.images[k], c.images[k])
        assert a.images[k].shape == lab.shape and np.isfinite(a.images[k]).all() and a.images[k].min() >= 0
    assert a.simulated and a.params.simulated and "simulated" in SIMULATED_NOTE and "not real" in a.note
    assert a.params.to_dict()["contrasts"][2]["sequence"] == "spoiled_gre"
    np.testing.assert_array_equal(a.label, lab)
    # Separate streams: switching noise off does not change the bias field.
    d = simulate_abdominal_mr(lab, seed=7, noise=0.0)
    np.testing.assert_array_equal(d.bias_field, a.bias_field)


def test_flowing_blood_is_a_flow_void_on_spin_echo_and_bright_on_gradient_echo():
    se = abdominal_presets(1.5)["T2w"]
    gre = abdominal_presets(1.5)["in_phase"]
    assert tissue_signal("blood", se, field_t=1.5, blood="flowing")[0] < 0.2 * tissue_signal("blood", se, field_t=1.5)[0]
    assert tissue_signal("blood", gre, field_t=1.5, blood="flowing")[0] > tissue_signal("blood", gre, field_t=1.5)[0]


def test_every_superclass_has_a_documented_mixture_with_cited_tissues():
    assert tuple(superclass_vocabulary().names) == SUPERCLASS_NAMES
    assert set(SUPERCLASS_MIXTURES) == set(SUPERCLASS_NAMES[1:])
    for mix in (*SUPERCLASS_MIXTURES.values(), BODY_MIXTURE):
        assert sum(mix.weights) == pytest.approx(1.0)
        assert all(t in ABDOMINAL_TISSUES for t in mix.tissues)
    for name in ("gastrointestinal", "other_organs"):
        assert len(SUPERCLASS_MIXTURES[name].tissues) > 1 and SUPERCLASS_MIXTURES[name].note
    for t in ABDOMINAL_TISSUES.values():
        assert t.sources
    for t in ("liver", "spleen", "kidney_cortex", "muscle", "fat", "bone_marrow"):
        assert any("de Bazelaire" in s for s in ABDOMINAL_TISSUES[t].sources)
    assert any("Stanisz" in s for s in ABDOMINAL_TISSUES["blood"].sources)


def test_bad_input_raises_clear_errors():
    lab = phantom()
    with pytest.raises(LabelError, match="super-class"):
        simulate_abdominal_mr(lab + 20, seed=0)
    with pytest.raises(LabelError, match="integer"):
        simulate_abdominal_mr(lab.astype(float), seed=0)
    with pytest.raises(ShapeError, match="2D"):
        simulate_abdominal_mr(lab[..., 0, 0], seed=0)
    with pytest.raises(ValidationError, match="field_t"):
        simulate_abdominal_mr(lab, seed=0, field_t=7.0)
    with pytest.raises(ValidationError, match="Did you mean 'T1w'"):
        simulate_abdominal_mr(lab, seed=0, contrasts=("T1",))
    with pytest.raises(ValidationError, match="blood"):
        simulate_abdominal_mr(lab, seed=0, blood="pulsing")
    with pytest.raises(ValidationError, match="seed"):
        simulate_abdominal_mr(lab, seed=-1)
