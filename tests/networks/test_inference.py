"""Inference copies of the frozen generators: same function (summation order aside), rewrites applied where they
hold, precision settings, outputs usable outside inference mode."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from synthaug.errors import ValidationError
from synthaug.networks.inference import (
    SubPixelConvTranspose,
    configure,
    current_precision,
    infer,
    inference_copy,
    precision,
    set_precision,
)
from synthaug.networks.spade import SPADEGenerator
from synthaug.networks.unet_generator import UNetGenerator
from synthaug.weights.registry import load

SHIPPED = ["context_ct_a", "context_mni", "context_dr_ct_a", "context_dr_mni", "style_ct_a", "style_ct_label_to_mr", "translate_abdomen_ct_mr_nec",
           "translate_brain_t1_t2_nec", "translate_brain_pd_t2_resgan"]


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("cout", [1, 3])
def test_subpixel_form_equals_the_transposed_convolution(dims, cout):
    g = torch.Generator().manual_seed(dims * 10 + cout)
    convt = (nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d)(5, cout, kernel_size=4, stride=2, padding=1)
    with torch.no_grad():
        for p in convt.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(2, 5, *([6] * dims), generator=g)
    assert SubPixelConvTranspose.applies(convt, 4)
    torch.testing.assert_close(SubPixelConvTranspose(convt)(x), convt(x), atol=1e-4, rtol=1e-5)


def test_subpixel_rewrite_only_where_it_reproduces_the_operator():
    assert not SubPixelConvTranspose.applies(nn.ConvTranspose2d(4, 8, 4, stride=2, padding=1), 4)  # too wide
    assert not SubPixelConvTranspose.applies(nn.ConvTranspose2d(4, 1, 3, stride=2, padding=1, output_padding=1), 4)
    assert not SubPixelConvTranspose.applies(nn.Conv2d(4, 1, 4, stride=2, padding=1), 4)


def _inputs(name):
    net, card = load(name)
    g = torch.Generator().manual_seed(0)
    if card.family == "translate":
        shape = (2, 1, 32, 32, 32) if card.spatial_dims == 3 else (2, 1, 64, 64)
        return net, "forward", (torch.rand(shape, generator=g) * 2 - 1,), {}
    lab = torch.randint(0, card.n_labels, (2, 64, 64), generator=g)
    if card.family == "context":
        feats = torch.rand(2, len(card.features.names), card.n_labels, generator=g)
        kw = {"pixel_noise": torch.randn(2, 1, 64, 64, generator=g)} if card.inference.noise.pixel_channels else {}
        if net.z_dim:
            kw["noise"] = torch.randn(2, net.z_dim, generator=g)
        return net, "forward", (lab, feats), kw
    return net, "render", (lab, net.default_style(2).codes), {"noise": torch.randn(2, net.z_dim, generator=g)}


@pytest.mark.parametrize("name", SHIPPED)
def test_inference_copy_matches_the_plain_network(name):
    torch.set_num_threads(1)
    net, method, args, kw = _inputs(name)
    with torch.no_grad():
        ref = getattr(net, method)(*args, **kw)
    out = infer(net, *args, method=method, **kw)
    assert out.dtype == torch.float32 and out.shape == ref.shape and out.is_contiguous()
    assert not out.is_inference()  # usable as training data (autograd may save it)
    # the stated tolerance: summation order only (outputs in [-1, 1])
    assert float((out - ref).abs().max()) < 1e-4
    with configure(optimise=False):
        assert torch.equal(infer(net, *args, method=method, **kw), ref)  # the reference path is the plain module
    # the copy is cached and independent of the plain network
    fast = inference_copy(net)
    assert fast is inference_copy(net) and fast is not net
    assert all(p.data_ptr() != q.data_ptr() for p in fast.parameters() for q in net.parameters())


def test_rewrites_are_applied_to_the_shipped_networks():
    ctx = inference_copy(load("context_ct_a")[0])
    assert isinstance(ctx.generator.final, SubPixelConvTranspose)  # 1-channel output layer
    style = inference_copy(load("style_ct_a")[0])
    assert not any(type(m).__name__ == "SPADEResBlock" for m in style.modules())  # fused blocks
    assert style._synthaug_channels_last and not ctx._synthaug_channels_last  # the measured CPU rule
    resgan = inference_copy(load("translate_brain_pd_t2_resgan")[0])
    assert isinstance(resgan.final, SubPixelConvTranspose)


def test_fused_spade_and_unet_random_weights():
    g = torch.Generator().manual_seed(3)
    spade = SPADEGenerator(5, 1, spatial_dims=2, widths=(16, 8, 8), z_dim=2, hidden=8).eval()
    unet = UNetGenerator(3, 1, spatial_dims=2, widths=(8, 16)).eval()
    for m in (spade, unet):
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    cond = torch.randn(2, 5, 16, 16, generator=g)
    noise = torch.randn(2, 2, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(infer(spade, cond, noise=noise), spade(cond, noise=noise), atol=1e-4, rtol=1e-4)
        x = torch.randn(2, 3, 16, 16, generator=g)
        torch.testing.assert_close(infer(unet, x), unet(x), atol=1e-4, rtol=1e-4)


def test_precision_context_and_process_default():
    assert current_precision() == "fp32"
    with precision("bf16"):
        assert current_precision() == "bf16"
        with precision("fp32"):
            assert current_precision() == "fp32"
    try:
        set_precision("bf16")
        assert current_precision() == "bf16"
    finally:
        set_precision("fp32")
    with pytest.raises(ValidationError, match="precision"):
        with precision("fp8"):
            pass
    with pytest.raises(ValidationError, match="configure|setting"):
        with configure(fast=True):
            pass


def test_bf16_on_cpu_is_close_and_fp16_needs_cuda():
    torch.set_num_threads(1)
    net, method, args, kw = _inputs("translate_brain_t1_t2_nec")
    ref = infer(net, *args, method=method, **kw)
    with precision("bf16"):
        low = infer(net, *args, method=method, **kw)
    assert low.dtype == torch.float32
    assert 0 < float((low - ref).abs().max()) < 0.2  # reduced precision changes the output, boundedly
    with pytest.raises(ValidationError, match="CUDA"):
        with precision("fp16"):
            infer(net, *args, method=method, **kw)


def test_inference_output_trains():
    """An inference-copy output can be saved for backward (it is not an inference tensor)."""
    net, method, args, kw = _inputs("translate_brain_t1_t2_nec")
    out = infer(net, *args, method=method, **kw)
    w = torch.ones(1, 1, 3, 3, requires_grad=True)
    F.conv2d(out, w, padding=1).sum().backward()
    assert w.grad is not None
