"""train_translate: config, validation-based selection, export with model card, resume, CLI."""

import json

import numpy as np
import pytest
import torch

from synthaug.cli.main import main
from synthaug.errors import ValidationError
from synthaug.intensity import IntensityConvention
from synthaug.training.train_translate import TranslateConfig, train_translate
from synthaug.training.translate_data import (
    SPLITS,
    TRANSLATION_DATA,
    TranslationCase,
    TranslationData,
    foreground_mask,
)
from synthaug.weights.store import load_network

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _subject(i: int, shape=(24, 28, 12), seed=0):
    """A head-like phantom: noisy background, an ellipsoid 'brain', two blobs with inverted contrast."""
    rng = np.random.default_rng(seed * 100 + i)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    sx, sy = 0.75 + 0.1 * rng.random(), 0.75 + 0.1 * rng.random()
    body = (x / sx) ** 2 + (y / sy) ** 2 + (z / 0.95) ** 2 < 1
    label = body.astype(np.int16)
    for k in (2, 3):
        c = rng.uniform(-0.35, 0.35, 3)
        r = rng.uniform(0.2, 0.3)
        label[((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 < r * r) & body] = k
    src_levels = np.array([2.0, 100.0, 180.0, 60.0], dtype=np.float32)
    tgt_levels = np.array([2.0, 120.0, 50.0, 200.0], dtype=np.float32)
    noise = rng.normal(0, 3.0, (2, *shape)).astype(np.float32)
    src = np.abs(src_levels[label] + noise[0]).astype(np.float32)
    tgt = np.abs(tgt_levels[label] + noise[1]).astype(np.float32)
    return src, tgt, label


def fake_translation_data(name: str = "fake_t1_t2", *, paired: bool = True, seed: int = 0) -> TranslationData:
    """7 phantom subjects in the layout of the simulated brain datasets (or an unpaired one)."""
    subjects = [_subject(i, seed=seed) for i in range(7)]
    s_mod, t_mod = ("T1w", "T2w") if paired else ("CT", "MR")

    def case(i, src=True, tgt=True, label=False):
        s, t, lab = subjects[i]
        mask = foreground_mask(s if src else t, "MR")
        return TranslationCase(f"fake_{i:03d}", s if src else None, t if tgt else None, mask, (2.0, 2.0, 2.0), lab if label else None)

    if paired:
        layout = {
            "train_source": [(0, True, False), (1, True, False)],
            "train_target": [(2, False, True), (3, False, True)],
            "train_paired": [(0, True, True), (1, True, True)],
            "validation": [(4, True, True)],
            "test": [(5, True, True), (6, True, True)],
            "reference": [(4, False, True)],
            "test_target": [],
        }
    else:
        layout = {
            "train_source": [(0, True, False), (1, True, False)],
            "train_target": [(2, False, True), (3, False, True)],
            "train_paired": [],
            "validation": [(4, True, False)],
            "test": [(5, True, False)],
            "reference": [(2, False, True), (3, False, True)],
            "test_target": [(6, False, True)],
        }

    def ids(split):
        out = []
        for i, s, t in layout[split]:
            out += [f"fake_{i:03d}:{s_mod}"] * s + [f"fake_{i:03d}:{t_mod}"] * t
        return tuple(out)

    cases = {k: tuple(case(i, s, t, label=(k == "test")) for i, s, t in v) for k, v in layout.items()}
    return TranslationData(
        name=name, source_modality=s_mod, target_modality=t_mod, paired=paired,
        intensity=IntensityConvention.percentile(1, 99), spacing=2.0, size=32,
        case_ids={k: ids(k) for k in SPLITS}, loaders={k: (lambda v=v: v) for k, v in cases.items()},
        simulated=True, label_names=("background", "body", "a", "b"), label_source="phantom", notes="test phantoms",
    )


@pytest.fixture
def fake_data(monkeypatch):
    data = fake_translation_data()
    monkeypatch.setitem(TRANSLATION_DATA, "fake_t1_t2", lambda: data)
    unpaired = fake_translation_data("fake_ct_mr", paired=False)
    monkeypatch.setitem(TRANSLATION_DATA, "fake_ct_mr", lambda: unpaired)
    return data


def tiny(**kw) -> TranslateConfig:
    base = dict(
        data="fake_t1_t2", size=32, patch=16, g_width=4, g_blocks=1, g_downsample=1, unet_widths=(4, 8),
        d_width=4, d_layers=1, batch_size=2, iterations=6, validate_every=3, log_every=2, sample_every=3,
        checkpoint_every=3,
    )
    base.update(kw)
    return TranslateConfig(**base)


def test_nec_training_exports_weights_with_a_complete_card(tmp_path, fake_data):
    run = train_translate(tiny(mode="nec", name="nec_tiny", d_scales=2), tmp_path, progress=False)
    card = run.card
    assert (card.source_modality, card.target_modality, card.family) == ("T1w", "T2w", "translate")
    assert card.intensity == IntensityConvention.percentile(1, 99).to_dict()
    assert card.architecture == "resnet_generator" and card.spatial_dims == 2
    # unpaired method: the source images of subjects 0-1 and the target images of 2-3, never validation/test
    assert card.training_cases == ("fake_000:T1w", "fake_001:T1w", "fake_002:T2w", "fake_003:T2w")
    t = card.training
    assert t["mode"] == "nec" and t["iterations"] == 6 and t["seconds"] > 0 and "threads" in t["machine"]
    assert card.inference.canvas == (32, 32) and card.inference.divisor >= 1
    rows = [json.loads(line) for line in (tmp_path / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6]
    best = max(rows, key=lambda r: r["val_ssim"])
    assert t["selection"]["best_step"] == best["step"] == run.best_step
    assert t["selection"]["best_score"] == pytest.approx(best["val_ssim"])
    assert (tmp_path / "samples" / "step_000006.png").is_file() and (tmp_path / "nec_tiny.json").is_file()
    net, loaded = load_network(run.weights, expected_sha256=card.sha256)
    assert loaded.source_modality == "T1w"
    assert net(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_selection_keeps_the_best_validation_state_not_the_last(tmp_path, fake_data, monkeypatch):
    import synthaug.training.train_translate as tt

    seen = []

    def scripted(cfg, data, inference):
        scores = iter([0.2, 0.9, 0.1])

        def score(g):
            seen.append({k: v.clone() for k, v in g.state_dict().items()})
            return next(scores)

        return score

    monkeypatch.setattr(tt, "make_validator", scripted)
    run = train_translate(tiny(mode="pix2pix", iterations=6, validate_every=2, lr_g=5e-3), tmp_path, progress=False)
    assert run.best_step == 4 and run.best_score == pytest.approx(0.9) and len(seen) == 3
    net, card = load_network(run.weights)
    assert card.training["selection"]["best_step"] == 4
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, seen[1][k], msg=k)
    assert any(not torch.equal(v, seen[2][k]) for k, v in net.state_dict().items())


def test_validation_score_of_the_exported_weights_is_the_recorded_one(tmp_path, fake_data):
    from synthaug.training.train_translate import make_validator
    from synthaug.training.translate_data import get_translation_data

    cfg = tiny(mode="pix2pix", iterations=4, validate_every=2, lr_g=5e-3)
    run = train_translate(cfg, tmp_path, progress=False)
    net, _ = load_network(run.weights)
    score = make_validator(cfg, get_translation_data("fake_t1_t2"), run.card.inference)(net)
    assert score == pytest.approx(run.best_score, abs=1e-5)


class _Interrupt(Exception):
    pass


def test_resume_gives_the_same_weights_as_one_run(tmp_path, fake_data, monkeypatch):
    import synthaug.training.train_translate as tt

    cfg = tiny(mode="pix2pix", dropout=0.5, iterations=6, validate_every=2, checkpoint_every=3)
    one = train_translate(cfg, tmp_path / "a", progress=False)

    real = tt.make_sampler

    def failing(*args, **kwargs):  # the process dies while drawing the 5th batch (after the step-3 checkpoint)
        sample = real(*args, **kwargs)
        calls = []

        def wrapped(gen):
            calls.append(1)
            if len(calls) == 5:
                raise _Interrupt
            return sample(gen)

        return wrapped

    monkeypatch.setattr(tt, "make_sampler", failing)
    with pytest.raises(_Interrupt):
        train_translate(cfg, tmp_path / "b", progress=False)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 3
    monkeypatch.setattr(tt, "make_sampler", real)
    resumed = train_translate(cfg, tmp_path / "b", progress=False)
    a, _ = load_network(one.weights)
    b, _ = load_network(resumed.weights)
    for (k, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(p, q, msg=k)
    assert resumed.best_step == one.best_step and resumed.best_score == one.best_score
    with pytest.raises(ValidationError, match="different configuration"):
        train_translate(tiny(mode="pix2pix", dropout=0.5, iterations=7), tmp_path / "b", progress=False)


def test_resgan_3d_auto_context_exports_a_chained_generator(tmp_path, fake_data):
    cfg = tiny(mode="resgan", spatial_dims=3, auto_context=True, iterations=4, validate_every=4, sample_every=4)
    run = train_translate(cfg, tmp_path, progress=False)
    assert run.card.architecture == "auto_context_unet" and run.card.spatial_dims == 3
    spec = run.card.inference
    assert (spec.patch, spec.overlap, spec.weighting, spec.pad_value) == ((16, 16, 16), 0.5, "uniform", -1.0)
    assert run.card.training_cases == ("fake_000:T1w", "fake_000:T2w", "fake_001:T1w", "fake_001:T2w")
    net, _ = load_network(run.weights)
    first, second = net(torch.zeros(1, 1, 16, 16, 16), all_stages=True)
    assert first.shape == second.shape == (1, 1, 16, 16, 16)


def test_unpaired_data_refuses_paired_modes_and_ssim_selection(tmp_path, fake_data):
    with pytest.raises(ValidationError, match="needs paired data"):
        train_translate(tiny(mode="pix2pix", data="fake_ct_mr"), tmp_path, progress=False)
    with pytest.raises(ValidationError, match="select_by=ssim"):
        train_translate(tiny(mode="nec", data="fake_ct_mr", select_by="ssim", d_scales=1), tmp_path, progress=False)
    run = train_translate(tiny(mode="cyclegan", data="fake_ct_mr", iterations=2), tmp_path / "c", progress=False)
    assert run.card.training["selection"]["by"] == "last" and run.best_step == 2
    assert (run.card.source_modality, run.card.target_modality) == ("CT", "MR")


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"mode": "nex"}, "Did you mean 'nec'"),
        ({"size": 30}, "divisible by"),
        ({"mode": "nec", "spatial_dims": 3, "patch": 32, "d_layers": 3, "d_scales": 3}, "too small for a discriminator"),
        ({"mode": "nec", "auto_context": True}, "auto_context"),
        ({"spatial_dims": 4}, "spatial_dims"),
        ({"select_by": "best"}, "select_by"),
    ],
)
def test_bad_config_gives_clear_errors(kw, message):
    with pytest.raises(ValidationError, match=message):
        TranslateConfig(**kw)


def test_unknown_data_name_is_a_clear_error(tmp_path):
    with pytest.raises(ValidationError, match="Did you mean 'brain_t1_t2'"):
        train_translate(TranslateConfig(data="brain_t1_t3"), tmp_path, progress=False)


def test_cli_train_translate(tmp_path, fake_data, capsys):
    out = tmp_path / "run"
    args = ["train", "translate", "--mode", "nec", "--out", str(out), "--quiet", "--set", "data=fake_t1_t2", "size=32",
            "g_width=4", "g_blocks=1", "g_downsample=1", "d_width=4", "d_layers=1", "d_scales=2", "iterations=2",
            "validate_every=2", "batch_size=2", "name=cli_nec"]
    assert main(args) == 0
    assert "trained translate (nec) on fake_t1_t2 for 2 iterations" in capsys.readouterr().out
    assert (out / "cli_nec.safetensors").is_file()
    assert main(["train", "translate", "--out", str(tmp_path / "x"), "--set", "lambda_ngff=2"]) == 2
    assert "unknown option 'lambda_ngff'" in capsys.readouterr().err


def test_mode_defaults_resolve_and_round_trip_through_the_stored_config():
    from synthaug.training.config import config_from_dict, config_to_dict

    res = TranslateConfig(mode="resgan")
    assert (res.spatial_dims, res.patch, res.unet_widths, res.gan, res.scales) == (3, 32, (16, 32, 64), "bce", 1)
    nec = TranslateConfig(mode="nec")
    assert (nec.spatial_dims, nec.size, nec.scales, nec.gan, nec.lambda_ngf, nec.ngf_eps) == (2, 128, 3, "lsgan", 1.0, 0.15)
    assert TranslateConfig(mode="pix2pix").unet_widths == (32, 64, 128, 256)
    stored = config_to_dict(res)
    assert config_to_dict(config_from_dict(TranslateConfig, stored)) == stored
