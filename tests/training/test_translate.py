"""Translation training steps (NEC, CycleGAN, pix2pix, ResGAN + auto-context) in 2D and 3D."""

import pytest
import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.networks.discriminators import MultiScalePatchDiscriminator, PatchDiscriminator
from synthaug.networks.resnet_generator import ResNetGenerator
from synthaug.networks.unet_generator import UNetGenerator
from synthaug.training.loop import LoopConfig, run_training
from synthaug.training.translate import (
    AutoContextGenerator,
    CycleGANStep,
    NECStep,
    Pix2PixStep,
    ResGANStep,
    ResGANWeights,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def phantoms(n: int, size: int, *, dims: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired (source, target) images: smooth blobs; the target inverts the contrast (like T1 -> T2)."""
    g = torch.Generator().manual_seed(seed)
    axes = torch.meshgrid(*[torch.linspace(-1, 1, size)] * dims, indexing="ij")
    k = 5
    centres = torch.rand(n, k, dims, generator=g) * 1.2 - 0.6
    radii = torch.rand(n, k, generator=g) * 0.2 + 0.15
    grid = torch.stack(axes)  # (dims, *S)
    shape = (n, k, dims) + (1,) * dims
    d2 = ((grid[None, None] - centres.reshape(shape)) ** 2).sum(2)  # (n, k, *S)
    blobs = torch.sigmoid((radii.reshape((n, k) + (1,) * dims) ** 2 - d2) * 150)
    levels = torch.tensor([0.9, 0.5, 0.3, 0.7, 0.4]).reshape((1, k) + (1,) * dims)
    body = blobs.amax(1)
    source = (blobs * levels).amax(1) * 2 - 1
    target = torch.where(body > 0.5, 0.8 - (source + 1) * 0.6, torch.full_like(source, -1.0))
    noise = 0.02 * torch.randn(source.shape, generator=g)
    return (source + noise).clamp(-1, 1)[:, None], (target + noise).clamp(-1, 1)[:, None]


def _sampler(source, target, batch, paired):
    def sample(gen):
        i = torch.randint(source.shape[0], (batch,), generator=gen)
        j = i if paired else torch.randint(target.shape[0], (batch,), generator=gen)
        return source[i], target[j]

    return sample


def _nec(dims, lr_g=2e-3, lambda_ngf=10.0):
    torch.manual_seed(0)
    g = ResNetGenerator(spatial_dims=dims, width=8, n_downsample=1, n_blocks=2)
    d = MultiScalePatchDiscriminator(1, spatial_dims=dims, n_scales=2, width=8, n_layers=2 if dims == 2 else 1)
    return NECStep(g, d, spatial_dims=dims, lr_g=lr_g, lambda_ngf=lambda_ngf)


def _cycle(dims):
    torch.manual_seed(0)
    mk = lambda: ResNetGenerator(spatial_dims=dims, width=8, n_downsample=1, n_blocks=1)  # noqa: E731
    dk = lambda: PatchDiscriminator(1, spatial_dims=dims, width=8, n_layers=1)  # noqa: E731
    return CycleGANStep(mk(), mk(), dk(), dk(), spatial_dims=dims, lr_g=2e-3)


def _pix2pix(dims):
    torch.manual_seed(0)
    g = UNetGenerator(1, 1, spatial_dims=dims, widths=(8, 16, 32), dropout=0.5)
    return Pix2PixStep(g, PatchDiscriminator(2, spatial_dims=dims, width=8, n_layers=2 if dims == 2 else 1),
                       spatial_dims=dims, lambda_l1=100.0, lr_g=2e-3)


def _resgan(dims, auto_context=False):
    torch.manual_seed(0)
    if auto_context:
        g = AutoContextGenerator(spatial_dims=dims, widths=(8, 16), n_stages=2)
    else:
        g = UNetGenerator(1, 1, spatial_dims=dims, widths=(8, 16), residual=True)
    n = 2 if auto_context else 1
    ds = [PatchDiscriminator(2, spatial_dims=dims, width=8, n_layers=1) for _ in range(n)]
    return ResGANStep(g, ds, spatial_dims=dims, lr_g=2e-3)


STEPS = {"nec": _nec, "cyclegan": _cycle, "pix2pix": _pix2pix, "resgan": _resgan}
KEY = {"nec": "ngf", "cyclegan": "cycle", "pix2pix": "l1", "resgan": "l1"}


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("mode", sorted(STEPS))
def test_every_step_runs_in_2d_and_3d_and_follows_the_protocol(mode, dims):
    step = STEPS[mode](dims)
    size = 32 if dims == 2 else 16
    src, tgt = phantoms(2, size, dims=dims)
    losses = step.step((src, tgt), generator=torch.Generator().manual_seed(0))
    assert KEY[mode] in losses and "d" in losses and "g" in losses
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad and v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    assert set(step.optimizers) <= set(step.modules)
    panels = step.preview((src, tgt), generator=torch.Generator().manual_seed(0))
    assert len(panels) >= 3 and all(p.shape == (2, 1, size, size) for p in panels)
    assert step.generator.training  # preview restores training mode


@pytest.mark.parametrize("mode", sorted(STEPS))
def test_smoke_training_lowers_the_method_loss(tmp_path, mode):
    src, tgt = phantoms(24, 32, seed=1)
    if mode in ("nec", "cyclegan"):  # unpaired: targets come from other images
        tgt = phantoms(24, 32, seed=2)[1]
    step = STEPS[mode](2)
    loop = LoopConfig(iterations=40, batch_size=4, seed=0, log_every=4, checkpoint_every=40, progress=False)
    result = run_training(step, _sampler(src, tgt, 4, step.paired), loop=loop, out_dir=tmp_path, config={"mode": mode})
    key = KEY[mode]
    first, last = result.mean_loss(key, first=True), result.mean_loss(key, first=False)
    if mode == "nec":  # NGF lives in [0.5, 1] and is ~1 on flat voxels: compare absolute drops
        assert last < first - 0.005, (key, first, last)
    else:
        assert last < 0.8 * first, (key, first, last)


def test_nec_ngf_term_is_what_drives_faithfulness():
    """With lambda_ngf=0 the NGF value does not improve; with the default it does (same seed, same data)."""
    src, tgt = phantoms(16, 32, seed=3)
    other = phantoms(16, 32, seed=4)[1]

    def run(lam):
        step = _nec(2, lambda_ngf=lam)
        gen = torch.Generator().manual_seed(0)
        sample = _sampler(src, other, 4, False)
        vals = [float(step.step(sample(gen), generator=gen)["ngf"]) for _ in range(30)]
        return sum(vals[-5:]) / 5

    assert run(10.0) < run(0.0) - 0.008


def test_auto_context_chains_two_stages():
    torch.manual_seed(0)
    g = AutoContextGenerator(spatial_dims=2, widths=(4, 8), n_stages=2).eval()
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    first, second = g(x, all_stages=True)
    torch.testing.assert_close(first, g.stages[0](x))
    torch.testing.assert_close(second, g.stages[1](torch.cat([first, x], 1)))
    torch.testing.assert_close(g(x), second)
    # residual refinement: a zeroed last layer makes stage 2 pass stage 1's output through tanh
    with torch.no_grad():
        for p in g.stages[1].final.parameters():
            p.zero_()
    torch.testing.assert_close(g(x), torch.tanh(first))


def test_resgan_auto_context_trains_both_stages():
    step = _resgan(2, auto_context=True)
    src, tgt = phantoms(4, 16)
    before = [p.detach().clone() for p in step.g.stages[1].parameters()]
    losses = step.step((src, tgt), generator=torch.Generator().manual_seed(0))
    assert {"l1_first", "l1_last", "gdl"} <= set(losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, step.g.stages[1].parameters()))
    assert set(step.modules) == {"generator", "discriminator", "discriminator_1"}
    assert len(step.preview((src, tgt), generator=torch.Generator())) == 4  # source, stage 1, stage 2, target


def test_resgan_uses_the_seed_weights_and_gdl():
    step = _resgan(2)
    assert step.w == ResGANWeights(0.5, 1.0, 1.0) and step.gan_mode == "bce"
    src, tgt = phantoms(2, 16)
    losses = step.step((src, tgt), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(losses["g"], 0.5 * losses["g_adv"] + losses["l1"] + losses["gdl"])


def test_randomness_comes_from_the_passed_generator():
    """pix2pix dropout: same generator seed, same update; the global RNG is irrelevant."""
    src, tgt = phantoms(2, 32)
    outs = []
    for global_seed in (1, 2):
        step = _pix2pix(2)
        torch.manual_seed(global_seed)
        outs.append(step.step((src, tgt), generator=torch.Generator().manual_seed(7))["l1"])
    assert torch.equal(outs[0], outs[1])
    step = _pix2pix(2)
    other = step.step((src, tgt), generator=torch.Generator().manual_seed(8))["l1"]
    assert not torch.equal(outs[0], other)


def test_bad_batches_give_clear_errors():
    step = _pix2pix(2)
    src, tgt = phantoms(2, 32)
    gen = torch.Generator()
    with pytest.raises(ShapeError, match="same shape"):
        step.step((src, tgt[:1]), generator=gen)
    bad = src.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValidationError, match="NaN"):
        step.step((bad, tgt), generator=gen)
    with pytest.raises(ShapeError, match="1 channel"):
        step.step((src.repeat(1, 2, 1, 1), tgt), generator=gen)
    with pytest.raises(ShapeError, match="spatial"):
        _nec(3).step((src, tgt), generator=gen)  # 2D batch into a 3D step
    with pytest.raises(ValidationError, match="pair"):
        step.step(src, generator=gen)
    with pytest.raises(ValidationError, match="gan_mode"):
        NECStep(ResNetGenerator(spatial_dims=2), PatchDiscriminator(1), spatial_dims=2, gan_mode="wgan")
    with pytest.raises(ValidationError, match="one discriminator per generator stage"):
        ResGANStep(AutoContextGenerator(spatial_dims=2, widths=(4,)), [PatchDiscriminator(2)], spatial_dims=2)
