import math

import numpy as np
import pytest
import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.losses.structural import SSIMLoss, gaussian_window, psnr, ssim, ssim_loss


def _seed(s: int) -> torch.Generator:
    return torch.Generator().manual_seed(s)


def _smooth_image(shape, seed):
    g = _seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    # a little structure so SSIM is not dominated by noise
    k = torch.ones(1, 1, *(3,) * (len(shape) - 2), dtype=torch.float64) / 3 ** (len(shape) - 2)
    conv = torch.nn.functional.conv3d if len(shape) == 5 else torch.nn.functional.conv2d
    return conv(x.reshape(-1, 1, *shape[2:]), k, padding=1).reshape(shape)


def test_window():
    w = gaussian_window(1.5)
    assert w.numel() == 11 and math.isclose(float(w.sum()), 1.0, rel_tol=1e-6)
    assert gaussian_window(1.5, size=7).numel() == 7
    with pytest.raises(ValidationError, match="odd"):
        gaussian_window(1.5, size=6)


@pytest.mark.parametrize("shape", [(2, 1, 32, 32), (1, 2, 16, 16, 16)])
def test_identical_images_give_one(shape):
    x = torch.rand(shape, generator=_seed(0))
    s = ssim(x, x, data_range=1.0)
    assert s.shape == (shape[0],)
    assert torch.allclose(s, torch.ones(shape[0]), atol=1e-5)
    assert abs(float(ssim_loss(x, x, data_range=1.0))) < 1e-5


def test_matches_skimage_2d():
    metrics = pytest.importorskip("skimage.metrics")
    x = _smooth_image((3, 1, 40, 36), 1)
    y = x + 0.1 * torch.randn(x.shape, generator=_seed(2), dtype=torch.float64)
    ours = ssim(x.float(), y.float(), data_range=1.5)
    for b in range(3):
        ref = metrics.structural_similarity(
            x[b, 0].numpy(),
            y[b, 0].numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.5,
        )
        assert abs(float(ours[b]) - ref) < 1e-3
        assert abs(float(ssim(x, y, data_range=1.5)[b]) - ref) < 1e-6


def test_matches_skimage_3d_and_multichannel():
    metrics = pytest.importorskip("skimage.metrics")
    x = _smooth_image((1, 2, 16, 18, 20), 3)
    y = 0.8 * x + 0.05 * torch.randn(x.shape, generator=_seed(4), dtype=torch.float64)
    ref = np.mean(
        [
            metrics.structural_similarity(
                x[0, c].numpy(),
                y[0, c].numpy(),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
            for c in range(2)
        ]
    )
    assert abs(float(ssim(x, y, data_range=1.0)[0]) - ref) < 1e-6


def test_decreases_with_noise_and_differentiable():
    x = _smooth_image((1, 1, 32, 32), 5).float()
    noise = torch.randn(x.shape, generator=_seed(6))
    values = [float(ssim(x, x + s * noise, data_range=1.0)[0]) for s in (0.0, 0.05, 0.1, 0.3)]
    assert all(a > b for a, b in zip(values[:-1], values[1:], strict=True))
    y = (x + 0.1 * noise).requires_grad_()
    loss = SSIMLoss(data_range=1.0)(x, y)
    loss.backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    assert math.isclose(float(loss.detach()), 1 - values[2], rel_tol=1e-5)


def test_psnr():
    x = torch.zeros(2, 1, 8, 8)
    y = x.clone()
    y[0] += 0.1
    y[1, :, :4] += 0.2  # mse = 0.02
    p = psnr(x, y, data_range=1.0)
    assert torch.allclose(p, torch.tensor([20.0, 10 * math.log10(1 / 0.02)]), atol=1e-4)
    assert torch.isinf(psnr(x, x, data_range=1.0)).all()


def test_validation():
    with pytest.raises(ShapeError, match="same shape"):
        ssim(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 17), data_range=1.0)
    with pytest.raises(ShapeError, match="window size 11"):
        ssim(torch.rand(1, 1, 8, 16), torch.rand(1, 1, 8, 16), data_range=1.0)
    assert ssim(torch.rand(1, 1, 8, 16), torch.rand(1, 1, 8, 16), data_range=1.0, window_size=7).shape == (1,)
    with pytest.raises(ValidationError, match="data_range"):
        ssim(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), data_range=0.0)
    with pytest.raises(ShapeError):
        ssim(torch.rand(16, 16), torch.rand(16, 16), data_range=1.0)
