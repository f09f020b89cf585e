import pytest
import torch

from synthaug.errors import LabelError, ShapeError, ValidationError
from synthaug.networks.style import RegionStyleEncoder, StyleSwapGenerator
from synthaug.networks.wavelet import WaveletDiscriminator, haar_dwt, haar_idwt


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _gen(**kw) -> StyleSwapGenerator:
    torch.manual_seed(0)
    args = {"style_dim": 6, "encoder_widths": (4, 8), "widths": (8, 4), "z_dim": 3, "hidden": 4, "min_pixels": 4}
    args.update(kw)
    return StyleSwapGenerator(4, **args)


def _scene(seed: int = 0, size: int = 16):
    g = torch.Generator().manual_seed(seed)
    lab = torch.zeros(2, size, size, dtype=torch.long)
    lab[:, 2:8, 2:12] = 1
    lab[:, 9:14, 3:9] = 2
    lab[:, 9:14, 10:15] = 3
    img = torch.rand(2, 1, size, size, generator=g) * 2 - 1
    return img, lab


def test_class_code_is_pooled_only_from_its_region():
    g = _gen(global_code=True)
    img, lab = _scene()
    base = g.encode(img, lab).codes
    outside = img.clone()
    noise = torch.rand(img.shape, generator=torch.Generator().manual_seed(5)) * 2 - 1
    outside[(lab != 2).unsqueeze(1)] = noise[(lab != 2).unsqueeze(1)]
    changed = g.encode(outside, lab).codes
    assert torch.equal(changed[:, 2], base[:, 2])  # exactly: outside pixels never enter class 2's features
    assert not torch.allclose(changed[:, 1], base[:, 1])  # the classes whose pixels changed do move
    assert not torch.allclose(changed[:, 4], base[:, 4])  # and so does the whole-image (global) slot
    inside = img.clone()
    inside[(lab == 2).unsqueeze(1)] *= -1
    assert not torch.allclose(g.encode(inside, lab).codes[:, 2], base[:, 2])


def test_codes_are_computed_per_sample_and_batch_independent():
    g = _gen()
    img, lab = _scene()
    both = g.encode(img, lab).codes
    one = g.encode(img[1:], lab[1:]).codes
    torch.testing.assert_close(both[1:], one)


def test_absent_class_uses_the_learned_default_code():
    g = _gen(min_pixels=10)
    img, lab = _scene()
    lab[:, 9:14, 10:15] = 0  # class 3 absent from the style patient
    lab[0, 0, 0] = 3  # ... and a 1-pixel speck of it in sample 0 (< min_pixels)
    style = g.encode(img, lab)
    assert style.present[:, 3].tolist() == [False, False]
    assert style.present[:, 1].all() and style.present[:, 2].all()
    torch.testing.assert_close(style.codes[:, 3], g.default_codes[3].expand(2, -1))
    # the default is a trained parameter: it receives gradients through the rendered image
    content = torch.full((2, 16, 16), 3, dtype=torch.long)
    g.render(content, style, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert g.default_codes.grad is not None and g.default_codes.grad[3].abs().sum() > 0
    assert g.default_codes.grad[1].abs().sum() == 0  # class 1 is absent from the content: no gradient


def test_unlabelled_style_uses_defaults_and_the_global_slot():
    g = _gen(global_code=True)
    img, _ = _scene()
    style = g.encode(img, None)
    assert style.present[:, :4].sum() == 0 and style.present[:, 4].all()
    torch.testing.assert_close(style.codes[:, :4], g.default_codes[:4].expand(2, -1, -1))


def test_code_map_paints_each_class_code_on_its_pixels():
    g = _gen()
    codes = torch.arange(2 * 4 * 6, dtype=torch.float32).view(2, 4, 6)
    _, lab = _scene()
    cmap = g.code_map(lab, codes)
    assert cmap.shape == (2, 4 + 6, 16, 16)
    onehot, painted = cmap[:, :4], cmap[:, 4:]
    assert torch.equal(onehot.argmax(1), lab)
    b, y, x = 1, 10, 4  # a pixel of class 2 in sample 1
    assert lab[b, y, x] == 2
    torch.testing.assert_close(painted[b, :, y, x], codes[b, 2])


def test_style_changes_the_output_and_noise_is_reproducible():
    g = _gen()
    img, lab = _scene()
    a = g(lab, img, lab, generator=torch.Generator().manual_seed(1))
    b = g(lab, img, lab, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 1, 16, 16) and torch.equal(a, b)
    c = g(lab, -img, lab, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(a, c)
    d = g(lab, img, lab, generator=torch.Generator().manual_seed(2), truncation=0.5)
    assert not torch.allclose(a, d)
    with pytest.raises(ValidationError, match="either noise or truncation"):
        g(lab, img, lab, noise=torch.zeros(2, 3), truncation=1.0)


def test_style_image_may_have_its_own_size_and_batch_one_broadcasts():
    g = _gen()
    img, lab = _scene(size=24)
    _, content = _scene(size=16)
    style = g.encode(img[:1], lab[:1])
    out = g.render(content, style, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 16, 16)


def test_region_sums_add_over_slices():
    g = _gen()
    img, lab = _scene()
    sums, counts, pixels = g.region_sums(img, lab)
    pooled = g.codes_from_sums(sums.sum(0, keepdim=True), counts.sum(0, keepdim=True), pixels.sum(0, keepdim=True))
    manual = g.to_code(sums.sum(0) / counts.sum(0).unsqueeze(-1))
    torch.testing.assert_close(pooled.codes[0], manual)


def test_3d_generator():
    torch.manual_seed(0)
    g = StyleSwapGenerator(3, spatial_dims=3, style_dim=4, encoder_widths=(4,), widths=(4, 4), z_dim=2, hidden=4)
    lab = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    lab[:, 2:6, 2:6, 2:6] = 1
    lab[:, 6:, :, :] = 2
    out = g(lab, torch.rand(1, 1, 8, 8, 8), lab, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 1, 8, 8, 8)


def test_bad_inputs_give_clear_errors():
    g = _gen()
    img, lab = _scene()
    with pytest.raises(LabelError, match="outside the generator's classes"):
        g(lab + 3, img, lab)
    with pytest.raises(ValidationError, match="integer label map"):
        g(lab.float(), img, lab)
    with pytest.raises(ShapeError):
        g(lab[0, 0], img, lab)
    with pytest.raises(ShapeError, match="must match style_image"):
        g(lab, img, lab[:, :8])
    with pytest.raises(ShapeError):
        g(lab, img[:, 0], lab)
    with pytest.raises(ShapeError, match="codes must have shape"):
        g.render(lab, torch.zeros(2, 3, 6))
    with pytest.raises(ValidationError):
        StyleSwapGenerator(1)
    with pytest.raises(ValidationError):
        RegionStyleEncoder(widths=())


@pytest.mark.parametrize("dims", [2, 3])
def test_haar_round_trip_and_energy(dims):
    x = torch.randn(2, 3, *(8,) * dims, dtype=torch.float64)
    bands = haar_dwt(x)
    assert bands.shape == (2, 3 * 2**dims, *(4,) * dims)
    torch.testing.assert_close(haar_idwt(bands), x)
    torch.testing.assert_close(bands.pow(2).sum(), x.pow(2).sum())  # orthonormal


def test_haar_bands_of_simple_images():
    const = torch.full((1, 1, 4, 4), 3.0)
    bands = haar_dwt(const)
    torch.testing.assert_close(bands[:, 0], torch.full((1, 2, 2), 6.0))  # LL = 2c
    assert bands[:, 1:].abs().max() == 0
    stripes = torch.tensor([1.0, -1.0]).repeat(4, 2).view(1, 1, 4, 4)  # alternating along W
    b = haar_dwt(stripes)
    assert b[:, 0].abs().max() == 0 and b[:, 1].abs().max() == 0 and b[:, 3].abs().max() == 0
    assert b[:, 2].abs().min() > 0  # the H-along-W band (index 2) holds the stripes
    with pytest.raises(ShapeError, match="even"):
        haar_dwt(torch.zeros(1, 1, 5, 4))


def test_wavelet_discriminator():
    torch.manual_seed(0)
    d = WaveletDiscriminator(1, cond_channels=3, width=4, n_layers=2)
    out = d(torch.rand(2, 1, 32, 32), torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 1, 4, 4)
    with pytest.raises(ValidationError, match="needs cond"):
        d(torch.rand(2, 1, 32, 32))
    u = WaveletDiscriminator(1, width=4, n_layers=2)
    assert u(torch.rand(1, 1, 32, 32)).shape == (1, 1, 4, 4)
    with pytest.raises(ValidationError, match="unconditional"):
        u(torch.rand(1, 1, 32, 32), torch.rand(1, 3, 32, 32))


def test_body_class_marks_unlabelled_tissue_inside_the_body():
    g = _gen(body_class=True)
    assert g.n_classes == 5 and g.n_slots == 5
    img, lab = _scene()
    body = torch.zeros(2, 1, 16, 16)
    body[..., 1:15, 1:16] = 1
    with_body = g.add_body(lab, body)
    assert bool((with_body[lab != 0] == lab[lab != 0]).all())  # organs keep their class
    assert bool((with_body[(lab == 0) & (body[:, 0] > 0)] == 4).all())  # background inside the body -> body
    assert bool((with_body[body[:, 0] == 0] == 0).all())
    assert torch.equal(g.strip_body(with_body), lab)
    out = g(with_body, img, with_body, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 16, 16)
    assert g.encode(img, with_body).present[:, 4].all()
    with pytest.raises(LabelError, match="body"):
        g(with_body + 1, img, with_body)
    with pytest.raises(ShapeError):
        g.add_body(lab, body[..., :8])
    assert torch.equal(_gen().add_body(lab, body), lab)  # identity without a body class
