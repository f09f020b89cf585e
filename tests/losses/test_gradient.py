import itertools
import math

import pytest
import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.losses.gradient import (
    gradient_difference_loss,
    ngf_loss,
    normalized_gradient_field,
    spatial_gradient,
    total_variation_loss,
)


def _seed(s: int) -> torch.Generator:
    return torch.Generator().manual_seed(s)


def _blobs(spatial, seed=0, n=3):
    """Smooth test image: a few Gaussian blobs (edges everywhere, no flat plateaus)."""
    g = _seed(seed)
    grids = torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in spatial], indexing="ij")
    img = torch.zeros(spatial, dtype=torch.float64)
    for _ in range(n):
        centre = [float(torch.rand(1, generator=g)) * s for s in spatial]
        r2 = sum((gr - c) ** 2 for gr, c in zip(grids, centre, strict=True))
        img = img + torch.exp(-r2 / (2 * (min(spatial) / 5) ** 2))
    return img[None, None]


# ----- slow references ---------------------------------------------------------------------------


def _ref_ngf_loss(source, output, eps, mask=None):
    s, o = source[0, 0].tolist(), output[0, 0].tolist()
    shape = tuple(source.shape[2:])

    def get(a, idx):
        for i in idx:
            a = a[i]
        return a

    def grad(a, idx):
        g = []
        for ax in range(len(shape)):
            up, dn = list(idx), list(idx)
            up[ax] = min(idx[ax] + 1, shape[ax] - 1)
            dn[ax] = max(idx[ax] - 1, 0)
            g.append((get(a, up) - get(a, dn)) / 2)
        norm = math.sqrt(sum(v * v for v in g))
        return [v / (norm + eps) for v in g]

    total, weight = 0.0, 0.0
    for idx in itertools.product(*[range(n) for n in shape]):
        ns, no = grad(s, idx), grad(o, idx)
        dot = sum(a * b for a, b in zip(ns, no, strict=True))
        w = 1.0 if mask is None else float(get(mask[0].tolist(), idx))
        total += w * (1 - 0.5 * dot * dot)
        weight += w
    return total / weight


def _ref_gdl(pred, target):
    p, t = pred[0, 0], target[0, 0]
    shape = tuple(p.shape)
    total = 0.0
    for ax in range(len(shape)):
        acc, count = 0.0, 0
        for idx in itertools.product(*[range(n - (1 if a == ax else 0)) for a, n in enumerate(shape)]):
            nxt = list(idx)
            nxt[ax] += 1
            dt = abs(float(t[tuple(nxt)] - t[idx]))
            dp = abs(float(p[tuple(nxt)] - p[idx]))
            acc += (dt - dp) ** 2
            count += 1
        total += acc / count
    return total


def _ref_tv(image):
    x = image[0, 0]
    shape = tuple(x.shape)
    total = 0.0
    for ax in range(len(shape)):
        acc, count = 0.0, 0
        for idx in itertools.product(*[range(n - (1 if a == ax else 0)) for a, n in enumerate(shape)]):
            nxt = list(idx)
            nxt[ax] += 1
            acc += abs(float(x[tuple(nxt)] - x[idx]))
            count += 1
        total += acc / count
    return total


# ----- tests -------------------------------------------------------------------------------------


def test_spatial_gradient_values():
    x = torch.tensor([[0.0, 1.0, 4.0, 9.0]]).view(1, 1, 1, 4).expand(1, 1, 3, 4)
    central = spatial_gradient(x)
    assert central.shape == (1, 1, 2, 3, 4)
    assert torch.allclose(central[0, 0, 1, 0], torch.tensor([0.5, 2.0, 4.0, 2.5]))
    assert torch.equal(central[0, 0, 0], torch.zeros(3, 4))
    forward = spatial_gradient(x, differences="forward")
    assert torch.allclose(forward[0, 0, 1, 0], torch.tensor([1.0, 3.0, 5.0, 0.0]))
    with pytest.raises(ValidationError, match="central"):
        spatial_gradient(x, differences="centre")


@pytest.mark.parametrize("spatial", [(12, 10), (6, 7, 5)])
def test_ngf_field_shape_and_norm(spatial):
    img = _blobs(spatial)
    n = normalized_gradient_field(img, eps=0.01)
    assert n.shape == (1, len(spatial), *spatial)
    assert (torch.linalg.vector_norm(n, dim=1) < 1).all()
    with pytest.raises(ShapeError, match="1 channel"):
        normalized_gradient_field(torch.rand(1, 2, *spatial))


@pytest.mark.parametrize("spatial", [(9, 8), (5, 6, 4)])
def test_ngf_matches_reference_loop(spatial):
    s = torch.rand(1, 1, *spatial, generator=_seed(1), dtype=torch.float64)
    o = torch.rand(1, 1, *spatial, generator=_seed(2), dtype=torch.float64)
    assert math.isclose(float(ngf_loss(s, o, eps=0.15)), _ref_ngf_loss(s, o, 0.15), rel_tol=1e-10)
    mask = (torch.rand(1, *spatial, generator=_seed(3)) > 0.5).double()
    got = ngf_loss(s, o, eps=0.05, mask=mask)
    assert math.isclose(float(got), _ref_ngf_loss(s, o, 0.05, mask), rel_tol=1e-10)
    assert math.isclose(float(ngf_loss(s, o, eps=0.05, mask=mask[:, None].bool())), float(got), rel_tol=1e-12)


@pytest.mark.parametrize("spatial", [(32, 32), (12, 12, 12)])
def test_ngf_contrast_inversion_invariant(spatial):
    s = _blobs(spatial, seed=4)
    same, inverted = ngf_loss(s, s, eps=0.01), ngf_loss(s, -s, eps=0.01)
    assert torch.isclose(same, inverted, rtol=1e-12)
    other = _blobs(spatial, seed=5)
    assert ngf_loss(s, other, eps=0.01) > same


@pytest.mark.parametrize("spatial", [(32, 32), (12, 12, 12)])
def test_ngf_grows_with_misalignment(spatial):
    s = _blobs(spatial, seed=6)
    losses = [float(ngf_loss(s, torch.roll(s, shifts=k, dims=-1), eps=0.01)) for k in range(4)]
    assert all(a < b for a, b in zip(losses[:-1], losses[1:], strict=True)), losses


def test_ngf_gradients_finite_on_flat_regions():
    s = torch.zeros(1, 1, 8, 8)
    s[..., 4:, :] = 1.0
    o = torch.zeros(1, 1, 8, 8, requires_grad=True)  # flat everywhere
    ngf_loss(s, o).backward()
    assert torch.isfinite(o.grad).all()
    o2 = torch.rand(1, 1, 8, 8, requires_grad=True)
    ngf_loss(s, o2).backward()
    assert torch.isfinite(o2.grad).all() and o2.grad.abs().sum() > 0


def test_ngf_validation():
    with pytest.raises(ValidationError, match="eps"):
        ngf_loss(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), eps=0.0)
    with pytest.raises(ShapeError, match="mask"):
        ngf_loss(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), mask=torch.ones(1, 8, 7))
    with pytest.raises(ShapeError):
        ngf_loss(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))


@pytest.mark.parametrize("spatial", [(7, 6), (4, 5, 6)])
def test_gdl_matches_reference_and_zero_cases(spatial):
    p = torch.randn(1, 1, *spatial, generator=_seed(7), dtype=torch.float64)
    t = torch.randn(1, 1, *spatial, generator=_seed(8), dtype=torch.float64)
    assert math.isclose(float(gradient_difference_loss(p, t)), _ref_gdl(p, t), rel_tol=1e-10)
    assert float(gradient_difference_loss(t, t)) == 0.0
    assert float(gradient_difference_loss(t + 2.5, t)) < 1e-20
    assert float(gradient_difference_loss(-t, t)) == 0.0  # absolute differences: sign-free
    q = p.clone().requires_grad_()
    gradient_difference_loss(q, t).backward()
    assert torch.isfinite(q.grad).all()
    with pytest.raises(ShapeError):
        gradient_difference_loss(p, t[..., :-1])


@pytest.mark.parametrize("spatial", [(7, 6), (4, 5, 6)])
def test_tv_matches_reference(spatial):
    x = torch.randn(1, 1, *spatial, generator=_seed(9), dtype=torch.float64)
    assert math.isclose(float(total_variation_loss(x)), _ref_tv(x), rel_tol=1e-10)
    assert float(total_variation_loss(torch.full((2, 3, *spatial), 4.0))) == 0.0
    ramp = torch.arange(spatial[-1], dtype=torch.float64).expand(1, 1, *spatial)
    assert math.isclose(float(total_variation_loss(ramp)), 1.0)
