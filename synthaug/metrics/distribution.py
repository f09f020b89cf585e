"""Distribution distance between real and synthetic images without downloaded networks.

FID/KID normally use ImageNet Inception features, which cannot be downloaded here (and describe
natural photographs rather than grey-level medical slices). synthaug uses a **fixed random
multi-scale convolutional feature extractor** instead: three stages of 3x3 convolutions with
Kaiming-normal weights drawn from a fixed seed, ReLU, and average pooling; each stage contributes the
spatial mean and standard deviation of its channels (a texture statistic in the spirit of
Gram/random-filter texture descriptors). The features are deterministic and device-agnostic, but
they are *not* Inception features: KID values here are comparable only with other values from
this extractor (same seed and widths), never with published FID/KID numbers.

KID (kernel inception distance) is the unbiased MMD^2 with the cubic polynomial kernel, averaged
over random subsets; it has no small-sample bias, which matters with a few hundred slices.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from synthaug.errors import ValidationError

__all__ = ["RandomFeatureExtractor", "kernel_distance", "frechet_distance"]


class RandomFeatureExtractor(nn.Module):
    """Fixed random conv features of ``(B, 1, *spatial)`` images in [-1, 1] -> ``(B, 2 * sum(widths))``."""

    def __init__(self, *, spatial_dims: int = 2, widths: tuple[int, ...] = (32, 64, 128), seed: int = 1234) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        g = torch.Generator().manual_seed(seed)
        self.stages = nn.ModuleList()
        cin = 1
        for w in widths:
            layer = conv(cin, w, kernel_size=3, padding=1, bias=False)
            fan_in = cin * 3**spatial_dims
            with torch.no_grad():
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            self.stages.append(layer)
            cin = w
        self.spatial_dims = spatial_dims
        self.requires_grad_(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = F.avg_pool2d if self.spatial_dims == 2 else F.avg_pool3d
        feats = []
        for i, layer in enumerate(self.stages):
            x = F.relu(layer(x))
            flat = x.flatten(2)
            feats += [flat.mean(-1), flat.std(-1)]
            if i < len(self.stages) - 1:
                x = pool(x, 2)
        return torch.cat(feats, dim=1)


def kernel_distance(
    real: torch.Tensor, fake: torch.Tensor, *, subsets: int = 50, subset_size: int = 100, seed: int = 0
) -> tuple[float, float]:
    """KID: mean and std over subsets of the unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3."""
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValidationError(f"features must be (N, D) with the same D, got {tuple(real.shape)} and {tuple(fake.shape)}.")
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        raise ValidationError("kernel_distance needs at least 2 samples in each set.")
    # Standardise with the pooled statistics so every feature weighs alike (pooled, so a feature that
    # is constant in one set cannot explode the kernel).
    both = torch.cat([real, fake])
    mu, sd = both.mean(0), both.std(0)
    sd = sd.clamp(min=max(float(sd.median()) * 1e-3, 1e-8))
    real, fake = (real - mu) / sd, (fake - mu) / sd
    d = real.shape[1]
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        x = real[torch.randperm(real.shape[0], generator=g)[:m]].double()
        y = fake[torch.randperm(fake.shape[0], generator=g)[:m]].double()
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        mmd = mmd - 2 * kxy.mean()
        values.append(float(mmd))
    t = torch.tensor(values)
    return float(t.mean()), float(t.std()) if len(values) > 1 else 0.0


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between Gaussian fits of two feature sets (FID formula, our features)."""
    import numpy as np
    from scipy import linalg

    a, b = real.double().cpu().numpy(), fake.double().cpu().numpy()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-singular covariances of small sets: the real part is used
        covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean[0] if isinstance(covmean, tuple) else covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
