"""Structural losses: SSIM (2D and 3D, Gaussian window) and PSNR, per sample.

SSIM follows Wang et al. (2004) with a separable Gaussian window (``sigma=1.5``, truncated at
3.5 sigma, i.e. 11 taps) evaluated only where the window fits inside the image ("valid"), with
population (not sample) covariances. This matches
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=...)``, which crops the same border before averaging.

>>> import torch
>>> x = torch.rand(2, 1, 32, 32)
>>> ssim(x, x, data_range=1.0)
tensor([1., 1.])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthaug._validate import check_positive
from synthaug.errors import ShapeError, ValidationError

__all__ = ["gaussian_window", "ssim", "ssim_loss", "SSIMLoss", "psnr"]


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> int:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise ValidationError(f"{name} must be a torch.Tensor, got {type(t).__name__}.")
        if not t.is_floating_point():
            raise ValidationError(f"{name} must be a floating-point tensor, got dtype {t.dtype}.")
    if x.ndim not in (4, 5):
        raise ShapeError(f"x must have shape (B, C, H, W) or (B, C, D, H, W), got {tuple(x.shape)}.")
    if x.shape != y.shape:
        raise ShapeError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}.")
    return x.ndim - 2


def gaussian_window(
    sigma: float = 1.5,
    *,
    size: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Normalised 1D Gaussian taps; ``size`` defaults to ``2 * int(3.5 * sigma + 0.5) + 1`` (11 for 1.5)."""
    check_positive("sigma", float(sigma))
    if size is None:
        size = 2 * int(3.5 * sigma + 0.5) + 1
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValidationError(f"window_size must be a positive odd integer, got {size!r}.")
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(r**2) / (2.0 * sigma**2))
    return (w / w.sum()).to(dtype=dtype, device=device)


def _blur(x: torch.Tensor, taps: torch.Tensor, dims: int) -> torch.Tensor:
    """Separable valid filtering of ``(N, 1, *S)`` along each spatial axis."""
    conv = F.conv3d if dims == 3 else F.conv2d
    k = taps.numel()
    for axis in range(dims):
        shape = [1, 1] + [1] * dims
        shape[2 + axis] = k
        x = conv(x, taps.view(shape))
    return x


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float,
    sigma: float = 1.5,
    window_size: int | None = None,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Per-sample SSIM ``(B,)`` of ``(B, C, *spatial)`` images (2D or 3D, inferred from ``ndim``).

    The SSIM map is averaged over channels and valid positions. ``data_range`` is the value range
    of the images (e.g. 2.0 for [-1, 1]). ``window_size`` overrides the Gaussian's support (odd).
    """
    dims = _check_pair(x, y)
    check_positive("data_range", float(data_range))
    taps = gaussian_window(sigma, size=window_size, dtype=x.dtype, device=x.device)
    k = taps.numel()
    if min(x.shape[2:]) < k:
        raise ShapeError(
            f"ssim needs every spatial size >= the window size {k} (sigma={sigma}), got {tuple(x.shape[2:])}. "
            "Use a smaller sigma or window_size."
        )
    b, c = x.shape[:2]
    xs = x.reshape(b * c, 1, *x.shape[2:])
    ys = y.reshape(b * c, 1, *y.shape[2:])
    stats = _blur(torch.cat([xs, ys, xs * xs, ys * ys, xs * ys], dim=0), taps, dims)
    mx, my, mxx, myy, mxy = stats.chunk(5, dim=0)
    vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.reshape(b, -1).mean(dim=1)


def ssim_loss(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float, sigma: float = 1.5, window_size: int | None = None
) -> torch.Tensor:
    """``1 - mean(ssim(x, y))``: 0 for identical images."""
    return 1.0 - ssim(x, y, data_range=data_range, sigma=sigma, window_size=window_size).mean()


class SSIMLoss(nn.Module):
    """Module form of :func:`ssim_loss`."""

    def __init__(self, *, data_range: float, sigma: float = 1.5, window_size: int | None = None) -> None:
        super().__init__()
        self.data_range = float(check_positive("data_range", float(data_range)))
        gaussian_window(sigma, size=window_size)  # validates both
        self.sigma = float(sigma)
        self.window_size = window_size

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ssim_loss(x, y, data_range=self.data_range, sigma=self.sigma, window_size=self.window_size)

    def extra_repr(self) -> str:
        return f"data_range={self.data_range}, sigma={self.sigma}, window_size={self.window_size}"


def psnr(x: torch.Tensor, y: torch.Tensor, *, data_range: float) -> torch.Tensor:
    """Per-sample PSNR in dB ``(B,)``: ``10 log10(data_range^2 / MSE)`` (inf for identical images)."""
    _check_pair(x, y)
    check_positive("data_range", float(data_range))
    mse = ((x - y) ** 2).reshape(x.shape[0], -1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)
