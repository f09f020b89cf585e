"""Batched synthesis on fake nnU-Net batches: normalisation round trip, padding/ignore, deep supervision."""

import dataclasses

import pytest
import torch

from synthaug.errors import LabelError, ShapeError, ValidationError, WeightsError
from synthaug.integrations.nnunet.normalization import ChannelNormalization, intensity_for, nnunet_targets
from synthaug.recipes import TransformDecl, register_transform, unregister_transform
from synthaug.recipes import recipe as R
from synthaug.recipes.batch import BatchSynthesizer, deform_batch
from synthaug.recipes.gate import label_dice, load_checker
from synthaug.transforms.context_texture import ContextTextureSynth
from synthaug.transforms.options import Options, OptionsTransform

torch.set_num_threads(1)

CT_PROPS = {"mean": 60.0, "std": 110.0, "percentile_00_5": -150.0, "percentile_99_5": 280.0}
CT = ChannelNormalization("CTNormalization", CT_PROPS)
ZS = ChannelNormalization("ZScoreNormalization", CT_PROPS)


def _recipe(weights="tiny_ct", p=1.0, deform=False, name="context_texture", options=None, **extra):
    opts = {"weights": weights, "labels_are_classes": True} if options is None else options
    return R.Recipe.from_dict({"transforms": [{
        "name": name, "probability": p, "options": opts,
        "deform": {"enabled": deform, "control_points": 3, "max_displacement": 3.0}}], **extra})


def _batch(b=4, spatial=(32, 32), seed=0, pad=True, ignore=None):
    """nnU-Net-like normalised data and int16 labels with -1 padding (last columns) and an ignore patch."""
    g = torch.Generator().manual_seed(seed)
    lab = torch.zeros((b, 1, *spatial), dtype=torch.int16)
    for i in range(b):
        o = int(torch.randint(0, 6, (), generator=g))
        lab[i, :, 4 + o : 22 + o, 4:24] = 1
        lab[i, :, 8 + o : 14 + o, 8:14] = 2
        lab[i, :, 16:20, 16 + o % 3 : 22] = 3
    if pad:
        lab[..., -4:] = -1
    if ignore is not None:
        lab[:, :, 0:3, 0:6] = ignore
    data = torch.randn((b, 1, *spatial), generator=g) * 0.5 + (lab.clamp_min(0).float() * 0.4)
    return data, lab


# --------------------------------------------------------------------------- normalisation round trip


def test_ct_scheme_matches_reference_and_leaves_padding_and_ignore_untouched(tiny_weights):
    data, lab = _batch(ignore=4)
    lab[3] = torch.where(lab[3] > 0, torch.zeros_like(lab[3]), lab[3])  # sample 3: no foreground -> never synthesised
    synth = BatchSynthesizer(_recipe(), intensity=intensity_for(CT), ignore_label=4, seed=3)
    out = synth(data, lab, epoch=0)
    assert out.choice == [0, 0, 0, -1] and out.accepted == [True, True, True, False]
    # reference: invert nnU-Net's CT normalisation, run the transform, normalise again
    ref_t = ContextTextureSynth("tiny_ct", deform=False, labels_are_classes=True)
    valid = (lab >= 0) & (lab != 4)
    gen = torch.where(valid, lab, torch.zeros_like(lab)).long()
    raw = data * CT_PROPS["std"] + CT_PROPS["mean"]
    for j in range(3):
        y, _ = ref_t.apply_batch(raw[j : j + 1], gen[j : j + 1], seeds=[out.seeds[j]])
        y = (y.clamp(CT_PROPS["percentile_00_5"], CT_PROPS["percentile_99_5"]) - CT_PROPS["mean"]) / CT_PROPS["std"]
        ref = torch.where(valid[j : j + 1], y, data[j : j + 1])
        torch.testing.assert_close(out.data[j : j + 1], ref, atol=1e-4, rtol=1e-4)
        assert not torch.equal(out.data[j], data[j])
    # padding (-1) and ignore voxels: image and label bit-identical; labels untouched without deformation
    assert torch.equal(out.data[~valid], data[~valid])
    assert torch.equal(out.target, lab)
    assert torch.equal(out.data[3], data[3])
    lo = (CT_PROPS["percentile_00_5"] - CT_PROPS["mean"]) / CT_PROPS["std"]
    hi = (CT_PROPS["percentile_99_5"] - CT_PROPS["mean"]) / CT_PROPS["std"]
    assert float(out.data[:3][valid[:3]].min()) >= lo - 1e-5 and float(out.data[:3][valid[:3]].max()) <= hi + 1e-5
    stats = synth.pop_epoch_stats()
    assert stats["synthetic_fraction"] == 0.75 and stats["acceptance_rate"] == 1.0 and stats["seconds"] > 0
    assert synth.pop_epoch_stats()["samples"] == 0  # reset


def test_zscore_3d_with_percentile_generator_is_re_z_scored(tiny_weights):
    data, lab = _batch(b=2, spatial=(24, 20, 6), seed=1)
    synth = BatchSynthesizer(_recipe("tiny_mr_oasis"), intensity=intensity_for(ZS), slice_axis=2)
    out = synth(data, lab, epoch=0)
    assert out.choice == [0, 0]
    valid = lab >= 0
    gen = torch.where(valid, lab, torch.zeros_like(lab)).long()
    ref_t = ContextTextureSynth("tiny_mr_oasis", deform=False, slice_axis=2, labels_are_classes=True)
    for j in range(2):
        x = data[j : j + 1]
        y, _ = ref_t.apply_batch(x, gen[j : j + 1], seeds=[out.seeds[j]])  # per-image affine invariance: raw = x
        m = valid[j : j + 1]
        my, sy = y[m].mean(), y[m].std(unbiased=False)
        mx, sx = x[m].mean(), x[m].std(unbiased=False)
        ref = torch.where(m, (y - my) / sy * sx + mx, x)
        torch.testing.assert_close(out.data[j : j + 1], ref, atol=1e-4, rtol=1e-4)
        o = out.data[j : j + 1][m]
        assert float(o.mean()) == pytest.approx(float(mx), abs=1e-4)
        assert float(o.std(unbiased=False)) == pytest.approx(float(sx), abs=1e-4)
    assert torch.equal(out.data[~valid], data[~valid])


def test_zscore_with_fixed_window_generator_maps_foreground_to_fingerprint_units(tiny_weights):
    data, lab = _batch(b=2, seed=2)
    synth = BatchSynthesizer(_recipe("tiny_ct"), intensity=intensity_for(ZS))
    mapping = synth.mappings[0]
    valid = lab >= 0
    gen = torch.where(valid, lab, torch.zeros_like(lab)).long()
    raw = mapping.to_raw(data, gen, valid)
    fg = valid & (gen > 0)
    for j in range(2):
        v = raw[j][fg[j]]
        assert float(v.mean()) == pytest.approx(CT_PROPS["mean"], rel=1e-4)
        assert float(v.std(unbiased=False)) == pytest.approx(CT_PROPS["std"], rel=1e-4)
    out = synth(data, lab)
    assert torch.isfinite(out.data).all() and not torch.equal(out.data, data)


# --------------------------------------------------------------------------- deformation + deep supervision


def test_deep_supervision_targets_regenerated_from_deformed_labels(tiny_weights):
    ds = pytest.importorskip("batchgeneratorsv2.transforms.utils.deep_supervision_downsampling")
    data, lab = _batch(b=3, ignore=4)
    lab[2] = torch.where(lab[2] > 0, torch.zeros_like(lab[2]), lab[2])  # stays real
    scales = [[1.0, 1.0], [0.5, 0.5], [0.25, 0.25]]
    down = ds.DownsampleSegForDSTransform(ds_scales=scales)
    per_sample = [down(segmentation=lab[i].clone())["segmentation"] for i in range(3)]
    target = [torch.stack([p[k] for p in per_sample]) for k in range(3)]
    synth = BatchSynthesizer(_recipe(deform=True), intensity=intensity_for(CT), ignore_label=4, seed=0)
    out = synth(data, target, epoch=0)
    assert out.choice == [0, 0, -1]
    full = out.target[0]
    assert not torch.equal(full[:2], lab[:2])  # the labels were deformed
    for i in range(3):
        ref = down(segmentation=full[i].clone())["segmentation"]
        for k in range(3):
            assert torch.equal(out.target[k][i], ref[k]), f"sample {i}, level {k}"
    assert torch.equal(out.target[1][2], target[1][2]) and torch.equal(out.data[2], data[2])
    # padding and ignore voxels keep the (deformed) real image and their label values
    for i in range(2):
        wd, wl = deform_batch(data[i : i + 1], lab[i : i + 1], spec=R.DeformSpec(True, 3, 3.0), seeds=[out.deform_seeds[i]])
        assert torch.equal(full[i : i + 1], wl)
        keep = (wl < 0) | (wl == 4)
        assert keep.any() and torch.equal(out.data[i : i + 1][keep], wd[keep])
        assert (full[i] == -1).any() and (full[i] == 4).any()


def test_nnunet_targets_equals_nnunet_transforms():
    ds = pytest.importorskip("batchgeneratorsv2.transforms.utils.deep_supervision_downsampling")
    from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTransform
    from batchgeneratorsv2.transforms.utils.seg_to_regions import ConvertSegmentationToRegionsTransform

    _, lab = _batch(b=2, spatial=(20, 18, 10), ignore=4)
    scales = [[1, 1, 1], [0.5, 0.5, 1], [0.25, 0.25, 0.5]]
    regions = [[1, 2, 3], [2, 3], 3]
    out = nnunet_targets(lab, ds_scales=scales, regions=regions, ignore_label=4)
    for i in range(2):
        s = RemoveLabelTransform(-1, 0)(segmentation=lab[i].clone())["segmentation"]
        s = ConvertSegmentationToRegionsTransform(regions=list(regions) + [4])(segmentation=s)["segmentation"]
        ref = ds.DownsampleSegForDSTransform(ds_scales=scales)(segmentation=s)["segmentation"]
        for k in range(3):
            assert out[k].dtype == ref[k].dtype and torch.equal(out[k][i], ref[k])
    plain = nnunet_targets(lab, ds_scales=None)
    assert torch.equal(plain, torch.where(lab == -1, torch.zeros_like(lab), lab))


# --------------------------------------------------------------------------- errors, determinism, selection


def test_labels_the_generator_does_not_know(tiny_weights):
    data, lab = _batch(b=2)
    lab[0, 0, 2:4, 2:4] = 7
    synth = BatchSynthesizer(_recipe(), intensity=intensity_for(CT))
    with pytest.raises(LabelError, match=r"value\(s\) \[7\].*does not know"):
        synth(data, lab)
    # dataset.json names are matched to the generator's classes; a name it does not know is refused at build time
    with pytest.raises(LabelError, match=r"label\(s\) \['tumour'\] are not classes of generator 'tiny_ct'.*label_map"):
        BatchSynthesizer(_recipe(options={"weights": "tiny_ct"}), intensity=intensity_for(CT),
                         dataset_labels={"background": 0, "a": 1, "tumour": 2})
    # ... unless the recipe's label_map places it
    ok = BatchSynthesizer(_recipe(options={"weights": "tiny_ct", "label_map": {"tumour": "a"}}), intensity=intensity_for(CT),
                          dataset_labels={"background": 0, "a": 1, "tumour": 2})
    assert ok.transforms[0].class_table() == {0: 0, 1: 1, 2: 1}
    # without names, label_map or labels_are_classes nothing says what the values mean: refused, with the three fixes
    with pytest.raises(LabelError, match="reads a label map by name.*label_names.*label_map.*labels_are_classes"):
        BatchSynthesizer(_recipe(options={"weights": "tiny_ct"}), intensity=intensity_for(CT))(data, lab)


def test_label_map_by_names_from_the_dataset(tiny_weights):
    # dataset ids differ from the generator's: organ 'c' is label 1 in the dataset, class 3 in the generator
    synth = BatchSynthesizer(_recipe(options={"weights": "tiny_ct"}), intensity=intensity_for(CT),
                             dataset_labels={"background": 0, "c": 1, "a": 2})
    assert synth.transforms[0].class_table() == {0: 0, 1: 3, 2: 1}
    data, lab = _batch(b=2)
    lab = lab.clamp_max(2)
    out = synth(data, lab)
    assert out.choice == [0, 0]


def test_bad_batches_raise_clear_errors(tiny_weights):
    synth = BatchSynthesizer(_recipe(), intensity=intensity_for(CT))
    data, lab = _batch(b=2)
    with pytest.raises(ShapeError, match="integer label map"):
        synth(data, torch.zeros(2, 3, 32, 32, dtype=torch.bool))
    with pytest.raises(ShapeError, match="share batch and spatial shape"):
        synth(data, lab[:, :, :16])
    with pytest.raises(ValidationError, match="integer labels"):
        synth(data, lab.float())
    with pytest.raises(ValidationError, match="not supported.*Did you mean 'ZScoreNormalization'"):
        ChannelNormalization("ZscoreNormalization")
    with pytest.raises(ValidationError, match="foreground intensity properties"):
        ChannelNormalization("CTNormalization", {"mean": 0.0})


def test_seeded_determinism_and_per_rank_streams(tiny_weights):
    data, lab = _batch(b=4)
    rec = _recipe(p=0.5, deform=True)
    a = BatchSynthesizer(rec, intensity=intensity_for(CT), seed=11)
    b = BatchSynthesizer(rec, intensity=intensity_for(CT), seed=11)
    c = BatchSynthesizer(rec, intensity=intensity_for(CT), seed=11, rank=1)
    for _ in range(2):
        oa, ob, oc = a(data, lab), b(data, lab), c(data, lab)
        assert torch.equal(oa.data, ob.data) and torch.equal(oa.target, ob.target) and oa.choice == ob.choice
        assert oa.seeds != oc.seeds
    # the random stream does not depend on the data: a different batch draws the same seeds
    d1 = BatchSynthesizer(rec, intensity=intensity_for(CT), seed=11)(data, lab)
    d2 = BatchSynthesizer(rec, intensity=intensity_for(CT), seed=11)(data * 2, lab)
    assert d1.seeds == d2.seeds and d1.deform_seeds == d2.deform_seeds


def test_schedule_and_targeting_control_selection(tiny_weights):
    data, lab = _batch(b=4)
    lab[0][lab[0] == 3] = 1
    lab[1][lab[1] == 3] = 1  # samples 0 and 1 lack class 'c'
    warm = BatchSynthesizer(_recipe(schedule={"warmup_epochs": 2}), intensity=intensity_for(CT))
    out = warm(data, lab, epoch=1)
    assert out.choice == [-1] * 4 and torch.equal(out.data, data)
    assert warm.pop_epoch_stats()["synthetic_fraction"] == 0.0
    assert warm(data, lab, epoch=2).choice == [0] * 4
    tgt = BatchSynthesizer(
        _recipe(p=0.1, targeting={"class_weights": {"c": 10.0}, "default_weight": 0.0}),
        intensity=intensity_for(CT), dataset_labels={"background": 0, "a": 1, "b": 2, "c": 3})
    for _ in range(3):
        assert tgt(data, lab).choice == [-1, -1, 0, 0]


# --------------------------------------------------------------------------- label-faithfulness gate


@dataclasses.dataclass(frozen=True)
class _NoOptions(Options):
    pass


class _Paint(OptionsTransform):
    """Fake transform: a faithful image (intensity = 100 x label) for even seeds, a blank one for odd seeds."""

    Options = _NoOptions

    def apply_batch(self, images, labels, *, seeds):
        good = torch.tensor([s % 2 == 0 for s in seeds], device=images.device)
        out = torch.where(good.reshape(-1, 1, 1, 1), labels.float() * 100.0, torch.zeros_like(images))
        return out.to(images.dtype), labels


class _ThresholdChecker(torch.nn.Module):
    """Tiny fake segmenter: class = round(intensity / 100), as logits."""

    def forward(self, x):
        cls = (x / 100.0).round().clamp(0, 3).long()[:, 0]
        return torch.nn.functional.one_hot(cls, 4).movedim(-1, 1).float()


def test_gate_replaces_unfaithful_samples_by_the_real_ones():
    register_transform(TransformDecl("fake_paint", _Paint))
    try:
        rec = R.Recipe.from_dict({"transforms": [{"name": "fake_paint", "probability": 1.0,
                                                  "deform": {"enabled": True, "max_displacement": 3.0}}],
                                  "gate": {"checker": "unused", "threshold": 0.9}})
        data, lab = _batch(b=6, seed=4)
        synth = BatchSynthesizer(rec, intensity=intensity_for(ChannelNormalization("NoNormalization")), checker=_ThresholdChecker())
        out = synth(data, lab)
        assert out.choice == [0] * 6
        expect = [s % 2 == 0 for s in out.seeds]
        assert 0 < sum(expect) < 6, "the seeds should mix faithful and blank samples"
        assert out.accepted == expect
        for i, ok in enumerate(expect):
            assert out.dice[i] == pytest.approx(1.0 if ok else 0.0)
            if ok:
                assert not torch.equal(out.target[i], lab[i])  # deformed
            else:
                assert torch.equal(out.data[i], data[i]) and torch.equal(out.target[i], lab[i])
        stats = synth.pop_epoch_stats()
        assert stats["acceptance_rate"] == pytest.approx(sum(expect) / 6)
        assert stats["synthetic_fraction"] == pytest.approx(sum(expect) / 6)
    finally:
        unregister_transform("fake_paint")


def test_label_dice_matches_hand_computation():
    t = torch.tensor([[0, 1, 1, 2, 2, 2]])
    p = torch.tensor([[0, 1, 0, 2, 2, 0]])
    # class 1: 2*1/(2+1) ; class 2: 2*2/(3+2)
    assert float(label_dice(p, t)[0]) == pytest.approx((2 / 3 + 4 / 5) / 2)
    valid = torch.tensor([[True, True, False, True, True, False]])
    assert float(label_dice(p, t, valid)[0]) == pytest.approx(1.0)
    assert float(label_dice(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))[0]) == 1.0


def test_checker_by_name_gives_a_clear_error(tiny_weights):
    with pytest.raises(WeightsError, match="gate needs a 'segmenter' model.*Registered 'segmenter' weights: "):
        load_checker("segmenter_ct_a")
    with pytest.raises(WeightsError, match="needs a 'segmenter' model"):
        load_checker("tiny_ct")
    rec = _recipe(gate={"checker": "segmenter_ct_a", "threshold": 0.5})
    synth = BatchSynthesizer(rec, intensity=intensity_for(CT))
    with pytest.raises(WeightsError, match="segmenter"):
        synth.prepare("cpu")


def test_from_plans_follows_inheritance():
    plans = {
        "configurations": {
            "3d_fullres": {"normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False]},
            "3d_lowres": {"inherits_from": "3d_fullres", "patch_size": [8, 8, 8]},
        },
        "foreground_intensity_properties_per_channel": {"0": CT_PROPS},
    }
    n = ChannelNormalization.from_plans(plans, "3d_lowres", 0)
    assert n.scheme == "CTNormalization" and n.properties["std"] == CT_PROPS["std"]
    with pytest.raises(ValidationError, match="no configuration '3d_fullre'.*Did you mean '3d_fullres'"):
        ChannelNormalization.from_plans(plans, "3d_fullre", 0)
