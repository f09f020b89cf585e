"""The contrast-phase prior: table order against its cited values, replay, region means landing in the drawn
phase's range, labels and kept regions untouched."""

import pytest
import torch

from synthaug.appearance.contrast_phase import (
    PHASE_HU,
    PHASE_RANGES,
    PHASES,
    ContrastPhaseDraw,
    contrast_phase_image,
    phase_region_hu,
    sample_contrast_phase,
)
from synthaug.appearance.physics import SUPERCLASS_NAMES
from synthaug.data.vocabulary import SUPERCLASSES
from synthaug.errors import ValidationError
from synthaug.intensity import IntensityConvention

CT = IntensityConvention.ct_window(-200.0, 300.0)


def test_table_covers_the_super_classes_and_follows_its_sources():
    for phase in PHASES:
        assert set(PHASE_HU[phase]) == set(SUPERCLASSES)
        for r in PHASE_HU[phase].values():
            assert r is None or r[0] < r[1]
    cv = {p: PHASE_HU[p]["cardiovascular"] for p in PHASES}
    assert cv["arterial"][1] >= 290 and cv["arterial"][0] > cv["non_contrast"][1]  # aorta 290-360 HU (Radiopaedia)
    assert cv["portal_venous"][0] > cv["non_contrast"][1]
    liver = {p: PHASE_HU[p]["liver"] for p in PHASES}
    assert liver["non_contrast"] == (50, 70)  # unenhanced liver 50-70 HU
    assert liver["arterial"][0] - liver["non_contrast"][0] == 20  # +20-30 HU in the late arterial phase
    assert liver["portal_venous"][0] > liver["arterial"][0]
    assert PHASE_HU["non_contrast"]["spleen"][1] < PHASE_HU["non_contrast"]["liver"][1]  # spleen below liver
    assert all(PHASE_HU[p]["bone"] is None and PHASE_HU[p]["gastrointestinal"] is None for p in PHASES)


def test_draw_replays_from_its_seed_and_reaches_every_phase():
    assert sample_contrast_phase(7) == sample_contrast_phase(7)
    assert {sample_contrast_phase(s).phase for s in range(64)} == set(PHASES)
    assert {sample_contrast_phase(s, phases=("arterial",)).phase for s in range(8)} == {"arterial"}
    with pytest.raises(ValidationError, match="contrast phase"):
        ContrastPhaseDraw("venous", 0)
    with pytest.raises(ValidationError, match="subset"):
        sample_contrast_phase(0, phases=("late",))


def test_region_attenuation_lies_in_the_phase_range():
    for s in range(16):
        d = sample_contrast_phase(s)
        hu = phase_region_hu(d, SUPERCLASS_NAMES)
        for i, name in enumerate(SUPERCLASS_NAMES):
            r = PHASE_HU[d.phase].get(name) if i else None
            if r is None:
                assert torch.isnan(hu[i])
            else:
                assert r[0] <= float(hu[i]) <= r[1]
    with pytest.raises(ValidationError, match="super-classes"):
        phase_region_hu(sample_contrast_phase(0), ("background", "vertebral_body"))


def _phantom():
    labels = torch.zeros(1, 1, 24, 24, 4, dtype=torch.long)
    labels[:, :, 2:10, 2:12] = 1  # liver
    labels[:, :, 12:20, 2:8] = 5  # cardiovascular
    labels[:, :, 12:22, 12:22] = 6  # bone
    g = torch.Generator().manual_seed(0)
    hu = 40.0 + 8.0 * torch.randn(1, 1, 24, 24, 4, generator=g)
    hu = torch.where(labels == 6, torch.full_like(hu, 250.0) + 10 * torch.randn(hu.shape, generator=g), hu)
    return CT.normalise(hu), labels


def test_image_moves_each_region_to_its_phase_keeps_texture_bone_and_background():
    x, labels = _phantom()
    draw = ContrastPhaseDraw("arterial", 123)
    out = contrast_phase_image(x, labels[:, 0], [draw], labels=SUPERCLASS_NAMES, convention=CT)
    assert out.shape == x.shape and torch.isfinite(out).all()
    hu_out = CT.denormalise(out)
    want = phase_region_hu(draw, SUPERCLASS_NAMES)
    for cls in (1, 5):
        m = labels == cls
        assert float(hu_out[m].mean()) == pytest.approx(float(want[cls]), abs=6.0)
        # texture kept: the region still varies and its voxel ranks follow the input's (monotone curves; the
        # added noise, up to 5 HU here against an 8 HU texture, blurs the ranks a little)
        assert float(hu_out[m].std()) > 2.0
        a, b = x[m], out[m]
        assert torch.corrcoef(torch.stack([a.argsort().argsort().float(), b.argsort().argsort().float()]))[0, 1] > 0.75
    bone = labels == 6
    assert float(hu_out[bone].mean()) == pytest.approx(float(CT.denormalise(x)[bone].mean()), abs=6.0)  # kept mean
    bg = labels == 0
    assert torch.equal(out[bg], x[bg])  # the background is not remapped
    again = contrast_phase_image(x, labels[:, 0], [draw], labels=SUPERCLASS_NAMES, convention=CT)
    assert torch.equal(out, again)
    assert PHASE_RANGES.kind_probs == (1.0, 0.0, 0.0)


def test_image_refuses_an_mr_convention_and_a_draw_count_mismatch():
    x, labels = _phantom()
    with pytest.raises(ValidationError, match="CT-window"):
        contrast_phase_image(x, labels[:, 0], [sample_contrast_phase(0)], labels=SUPERCLASS_NAMES,
                             convention=IntensityConvention.percentile())
    with pytest.raises(ValidationError, match="draw"):
        contrast_phase_image(x, labels[:, 0], [], labels=SUPERCLASS_NAMES, convention=CT)
