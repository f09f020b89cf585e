import pytest
import torch

from synthaug.errors import LeakageError, ValidationError
from synthaug.intensity import IntensityConvention
from synthaug.networks.discriminators import SegmentationDiscriminator
from synthaug.networks.style import StyleSwapGenerator
from synthaug.training.loop import LoopConfig, run_training
from synthaug.training.slices import SliceSet
from synthaug.training.style import PairedStyleStep, StyleLossWeights, UnpairedStyleStep
from synthaug.training.train_style import StyleConfig, StyleData, _crop, _crop_starts, _Sampler, body_masks


@pytest.fixture(autouse=True)
def _one_thread():
    """The CI machine's cores are shared: one thread is several times faster than oversubscribing."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _patient_slices(n: int, size: int, means, noise, seed: int) -> SliceSet:
    """Random rectangles of classes 1 and 2 on a body disc; region appearance set per patient."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    body = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (0.45 * size) ** 2
    labels = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):  # test data only
        for lab in (1, 2):
            y, x = torch.randint(size // 5, size // 2, (2,), generator=g).tolist()
            h, w = torch.randint(size // 5, size // 3, (2,), generator=g).tolist()
            labels[i, y : y + h, x : x + w] = lab
    labels = labels * body
    m = torch.tensor(means)
    s = torch.tensor(noise)
    img = m[labels] + s[labels] * torch.randn(labels.shape, generator=g)
    img = torch.where(body, img, torch.full_like(img, -1.0))
    return SliceSet(img[:, None].clamp(-1, 1), labels, ["synthetic"] * n, list(range(n)))


def synthetic_style_data(mode: str = "paired", size: int = 32) -> StyleData:
    a = _patient_slices(12, size, [-0.5, 0.0, 0.6], [0.02, 0.15, 0.05], 0)
    b = _patient_slices(12, size, [-0.5, 0.5, -0.2], [0.02, 0.02, 0.2], 1)
    content = SliceSet(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]), ["p0"] * 12 + ["p1"] * 12,
                       list(range(24)))
    patients = torch.cat([torch.zeros(12, dtype=torch.long), torch.ones(12, dtype=torch.long)])
    held = _patient_slices(6, size, [-0.5, 0.2, 0.3], [0.02, 0.1, 0.1], 2)
    conv = IntensityConvention.ct_window(-200, 300)
    if mode == "paired":
        masks = body_masks(content.images)
        return StyleData("paired", ("background", "a", "b"), content, masks, patients,
                         ("synA_z000-011", "synA_z012-023"), content, masks, held, None, conv, conv, "CT", "CT",
                         ("synA_z000-023",), ("synA_z030-035",), "synthetic")
    mr = _patient_slices(12, size, [0.3, -0.4, 0.8], [0.05, 0.05, 0.1], 3)  # another "modality", unlabelled
    other = SliceSet(mr.images, torch.zeros_like(mr.labels), mr.case_ids, mr.slice_index)
    return StyleData("unpaired", ("background", "a", "b"), a, body_masks(a.images), torch.zeros(12, dtype=torch.long),
                     ("synA_z000-011",), other, body_masks(other.images), held, a, conv, conv, "MR", "CT",
                     ("synA_z000-011", "synB_z000-011"), ("synB_z020-025",), "synthetic")


def _gen(**kw) -> StyleSwapGenerator:
    torch.manual_seed(0)
    args = {"style_dim": 8, "encoder_widths": (8, 8), "widths": (16, 8), "z_dim": 4, "hidden": 8, "min_pixels": 4}
    args.update(kw)
    return StyleSwapGenerator(3, **args)


def test_sampler_pairs_patients_and_crops_bodies():
    data = synthetic_style_data()
    sampler = _Sampler(data, batch_size=16, crop=16)
    batch = sampler(torch.Generator().manual_seed(0))
    assert batch.content_images.shape == (16, 1, 16, 16) and batch.content_labels.shape == (16, 16, 16)
    assert batch.style_images.shape == (16, 1, 32, 32)  # styles are whole slices
    # the style slice always comes from the other patient
    find = {x.numpy().tobytes(): int(p) for x, p in zip(data.content.images, data.patients)}
    full = _Sampler(data, batch_size=16, crop=0)(torch.Generator().manual_seed(1))
    for c, s in zip(full.content_images, full.style_images):  # test-only loop
        assert find[c.numpy().tobytes()] != find[s.numpy().tobytes()]
    # crops: windows inside the slice, same window for image, label and mask
    masks = data.content_masks[:4]
    starts = _crop_starts(masks, 16, torch.Generator().manual_seed(0))
    assert bool((starts >= 0).all()) and bool((starts <= 16).all())
    crops = _crop(data.content.labels[:4], starts, 16)
    i, (y, x) = 2, starts[2].tolist()
    assert torch.equal(crops[i], data.content.labels[i, y : y + 16, x : x + 16])
    assert torch.equal(_crop(masks, starts, 16)[i, 0], masks[i, 0, y : y + 16, x : x + 16])


def test_paired_smoke_training_lowers_the_loss(tmp_path):
    data = synthetic_style_data()
    seg = SegmentationDiscriminator(1, 3, widths=(4, 8), spectral=False)
    step = PairedStyleStep(_gen(body_class=True), segmenter=seg, discriminator="both", d_width=8, d_layers=2, lr_g=2e-3,
                           weights=StyleLossWeights(seg=0.1))
    loop = LoopConfig(iterations=50, batch_size=8, seed=0, log_every=5, checkpoint_every=50, progress=False)
    result = run_training(step, _Sampler(data, batch_size=8, crop=0), loop=loop, out_dir=tmp_path, config={})
    assert result.mean_loss("l1", first=False) < 0.7 * result.mean_loss("l1", first=True)
    assert result.mean_loss("style", first=False) < 0.5 * result.mean_loss("style", first=True)
    assert result.mean_loss("mask", first=False) < result.mean_loss("mask", first=True)
    assert (tmp_path / "checkpoint.pt").is_file()
    panels = step.preview(_Sampler(data, batch_size=4, crop=0)(torch.Generator().manual_seed(0)),
                          generator=torch.Generator().manual_seed(0))
    assert len(panels) == 6 and all(p.shape[0] == 4 for p in panels)


def test_unpaired_smoke_training_lowers_the_loss(tmp_path):
    data = synthetic_style_data("unpaired")
    step = UnpairedStyleStep(_gen(global_code=True, body_class=True), segmenter_widths=(4, 8), discriminator="wavelet", d_width=8,
                             d_layers=2, lr_g=2e-3, lr_s=3e-3, weights=StyleLossWeights(style=20.0, mask=10.0))
    assert set(step.modules) == {"generator", "disc_wavelet", "segmenter"}
    loop = LoopConfig(iterations=80, batch_size=8, seed=0, log_every=5, checkpoint_every=80, progress=False)
    result = run_training(step, _Sampler(data, batch_size=8, crop=16), loop=loop, out_dir=tmp_path, config={})
    assert result.mean_loss("seg", first=False) < 0.85 * result.mean_loss("seg", first=True)
    assert result.mean_loss("mask", first=False) < 0.8 * result.mean_loss("mask", first=True)
    assert result.mean_loss("g", first=False) < result.mean_loss("g", first=True)


def test_paired_step_needs_a_segmenter_for_the_segmentation_term():
    with pytest.raises(ValidationError, match="frozen segmenter"):
        PairedStyleStep(_gen(), segmenter=None)
    PairedStyleStep(_gen(), segmenter=None, weights=StyleLossWeights(seg=0.0))


def test_config_validation():
    with pytest.raises(ValidationError, match="mode"):
        StyleConfig(mode="paried")
    with pytest.raises(ValidationError, match="divisible"):
        StyleConfig(crop=60)
    with pytest.raises(ValidationError, match="n_patients"):
        StyleConfig(n_patients=1)
    assert StyleConfig(mode="unpaired").use_global_code and not StyleConfig().use_global_code
    assert StyleConfig(mode="unpaired").style_weight < StyleConfig().style_weight


def _tiny_cfg(**kw) -> StyleConfig:
    base = {"size": 32, "crop": 0, "style_dim": 8, "encoder_widths": (8,), "widths": (16, 8), "z_dim": 4,
            "spade_hidden": 8, "d_width": 8, "d_layers": 2, "iterations": 6, "batch_size": 4,
            "checkpoint_every": 6, "sample_every": 6, "min_pixels": 4, "segmenter_iterations": 4}
    base.update(kw)
    return StyleConfig(**base)


def test_train_export_and_evaluate_end_to_end(tmp_path, monkeypatch):
    from synthaug.training import eval_style, train_segmenter, train_style
    from synthaug.training.train_segmenter import SegmenterData

    data = synthetic_style_data()
    monkeypatch.setattr(train_style, "load_style_data", lambda cfg: data)
    seg_data = SegmenterData("ct_a", data.content, data.heldout, data.labels, data.intensity, "CT",
                             data.training_cases, data.heldout_cases, "synthetic")
    monkeypatch.setattr(train_segmenter, "segmenter_data", lambda name, size=128: seg_data)
    cfg = _tiny_cfg(name="tiny_style")
    run = train_style.train_style(cfg, tmp_path / "run", progress=False)
    assert run.weights.is_file() and run.card.family == "style" and run.card.sha256
    assert run.card.training["mode"] == "paired" and run.card.training["patients"] == list(data.patient_cases)
    seg_info = run.card.training["segmenter"]
    assert seg_info["weights"].endswith(".safetensors")  # trained on real (here synthetic) slices first
    result = eval_style.evaluate_style(run.weights, data=data, noise_draws=2)
    lf = result["label_fidelity"]
    assert set(lf) == {"swap", "reconstruction", "real_reference"}
    assert 0.0 <= lf["swap"]["mean"] <= 1.0
    sm = result["style_match"]
    assert set(sm["per_class"]) <= {"a", "b"} and 0 <= sm["stats_closer_to_style"] <= 1
    assert result["diversity"]["all"] > 0 and len(result["kid_x1000"]["swap"]) == 2
    assert set(result["interslice_ratio"]) == {"generated", "real"}
    table = eval_style.markdown_table([result])
    assert "tiny_style" in table and "TotalSegmentator" in table
    # a held-out case that is also a training case is refused
    leaky = StyleData(**{**data.__dict__, "heldout_cases": ("synA_z010-012",)})
    with pytest.raises(LeakageError):
        eval_style.evaluate_style(run.weights, data=leaky)


def test_unpaired_train_and_noise_ablation(tmp_path, monkeypatch):
    from synthaug.training import eval_style, train_style

    data = synthetic_style_data("unpaired")
    monkeypatch.setattr(train_style, "load_style_data", lambda cfg: data)
    run = train_style.train_style(_tiny_cfg(name="tiny_u", mode="unpaired", discriminator="patch"), tmp_path / "u",
                                  progress=False)
    assert run.card.arguments["global_code"] is True and run.card.modality == "MR"
    no_noise = train_style.train_style(_tiny_cfg(name="tiny_u0", mode="unpaired", z_dim=0, discriminator="patch"),
                                       tmp_path / "u0", progress=False)
    result = eval_style.evaluate_style(run.weights, data=data, ablation_weights=[no_noise.weights], noise_draws=2)
    models = [r["model"] for r in result["rows"]]
    assert len(models) == 4 and models[-1].endswith("(z_dim=0)")
    rows = {r["model"]: r for r in result["rows"]}
    assert rows["noise input set to 0"]["mr_c_lower"]["diversity"]["all"] == 0.0
    assert rows[models[0]]["mr_c_lower"]["diversity"]["all"] > 0
    assert "Unpaired tiny_u" in eval_style.markdown_table([result])


def test_cli_train_and_eval_style(tmp_path, monkeypatch):
    import json

    from synthaug.cli.main import main
    from synthaug.training import eval_style, train_style

    data = synthetic_style_data()
    monkeypatch.setattr(train_style, "load_style_data", lambda cfg: data)
    monkeypatch.setattr(eval_style, "load_style_data", lambda cfg: data)
    sets = ["name=cli_style", "size=32", "crop=0", "style_dim=8", "encoder_widths=[8]", "widths=[16,8]", "z_dim=4",
            "spade_hidden=8", "d_width=8", "d_layers=2", "iterations=3", "batch_size=4", "checkpoint_every=3",
            "sample_every=3", "min_pixels=4", "lambda_seg=0"]
    assert main(["train", "style", "--out", str(tmp_path / "run"), "--quiet", "--set", *sets]) == 0
    weights = tmp_path / "run" / "cli_style.safetensors"
    assert weights.is_file() and (tmp_path / "run" / "cli_style.json").is_file()
    out, md = tmp_path / "results.json", tmp_path / "table.md"
    assert main(["eval", "style", "--weights", str(weights), "--out", str(out), "--markdown", str(md),
                 "--noise-draws", "2"]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["weights"] == "cli_style" and "label_fidelity" not in rows[0]  # no segmenter: no Dice
    assert "cli_style" in md.read_text()
    assert main(["train", "style", "--out", str(tmp_path / "bad"), "--set", "mode=paried"]) == 2
