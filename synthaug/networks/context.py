"""The ConText-GAN generator: label map + per-region texture features -> image.

One module for the paper's three variants, chosen by ``variant``:

- ``"p2p"``: no fusion; the (N_F, N_L) feature maps are stacked as channels into a pix2pix U-Net.
- ``"p2pf"``: pix2pix U-Net fed by the fusion module's context map (N_L channels).
- ``"oasis"``: SPADE generator (with 3D noise) conditioned on the fusion module's context map.

In every variant the one-hot label map is given alongside (a region whose requested feature
value is 0 would otherwise be invisible in the feature maps). Features are passed as normalised
values ``(B, N_F, N_L)`` in [0, 1] (see :func:`synthaug.features.maps.normalise_features`); the
module paints them into maps itself, so callers never build ``(B, N_F, N_L, *spatial)`` tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from synthaug._validate import check_choice
from synthaug.errors import ShapeError, ValidationError
from synthaug.networks.fusion import FeatureFusion
from synthaug.networks.interface import GeneratorModule
from synthaug.networks.spade import SPADEGenerator
from synthaug.networks.unet_generator import UNetGenerator

__all__ = ["ContextGenerator", "VARIANTS"]

VARIANTS = ("p2p", "p2pf", "oasis")


class ContextGenerator(GeneratorModule):
    """Generator of ConText-GAN (P2P, P2PF or OASIS variant).

    Example:
        >>> g = ContextGenerator(n_labels=3, n_features=2, variant="p2pf", widths=(8, 16), fusion_widths=(4,))
        >>> labels = torch.zeros(1, 32, 32, dtype=torch.long); labels[:, 8:24, 8:24] = 1
        >>> g(labels, torch.rand(1, 2, 3)).shape
        torch.Size([1, 1, 32, 32])
    """

    def __init__(
        self,
        n_labels: int,
        n_features: int,
        *,
        variant: str = "p2pf",
        spatial_dims: int = 2,
        widths: Sequence[int] = (32, 64, 128, 256),
        fusion_widths: Sequence[int] = (16, 32, 16),
        z_dim: int = 16,
        spade_hidden: int = 32,
        fusion_kernel: int = 3,
        noise_channels: int = 0,
    ) -> None:
        super().__init__()
        check_choice("variant", variant, VARIANTS)
        if n_labels < 2:
            raise ValidationError(f"n_labels must be >= 2 (background + at least one region), got {n_labels}.")
        if n_features < 1:
            raise ValidationError(f"n_features must be >= 1, got {n_features}.")
        self.n_labels, self.n_features, self.variant = n_labels, n_features, variant
        self.spatial_dims = spatial_dims
        if noise_channels < 0:
            raise ValidationError(f"noise_channels must be >= 0, got {noise_channels}.")
        self.noise_channels = int(noise_channels)
        widths = tuple(int(w) for w in widths)
        if variant == "p2p":
            self.fusion = None
            in_ch = n_labels + n_features * n_labels
        else:
            self.fusion = FeatureFusion(
                n_features, n_labels, spatial_dims=spatial_dims, widths=tuple(int(w) for w in fusion_widths),
                spatial_kernel=fusion_kernel,
            )
            in_ch = 2 * n_labels
        if variant == "oasis":
            # SPADE decodes from coarse to fine: widest first.
            self.generator = SPADEGenerator(
                in_ch, 1, spatial_dims=spatial_dims, widths=tuple(sorted(widths, reverse=True)), z_dim=z_dim,
                hidden=spade_hidden, output="linear",
            )
        else:
            self.generator = UNetGenerator(in_ch, 1, spatial_dims=spatial_dims, widths=widths, output="linear")
        if self.noise_channels:
            conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
            # Texture head: the conditioning sets a per-voxel amplitude that scales filtered noise,
            # added before the output tanh. Starts almost silent (softplus(-4) ~ 0.018).
            self.noise_amplitude = conv(in_ch, 1, kernel_size=1)
            nn.init.zeros_(self.noise_amplitude.weight)
            nn.init.constant_(self.noise_amplitude.bias, -4.0)
            self.noise_filter = conv(self.noise_channels, 1, kernel_size=3, padding=1, bias=False)

    @property
    def z_dim(self) -> int:  # type: ignore[override]
        """The OASIS variant's per-image latent (0 for P2P / P2PF)."""
        return int(self.generator.z_dim) if self.variant == "oasis" else 0

    @property
    def divisor(self) -> int:  # type: ignore[override]
        """Spatial sizes must be multiples of this."""
        return 2 ** len(self.generator.widths)

    def condition(self, labels: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The generator's conditioning input (one-hot labels + stacked or fused feature maps)."""
        if labels.ndim == self.spatial_dims + 2:
            labels = labels[:, 0]
        if labels.ndim != self.spatial_dims + 1:
            raise ShapeError(
                f"labels must have shape (B, *spatial) with {self.spatial_dims} spatial dims, got {tuple(labels.shape)}."
            )
        expected = (labels.shape[0], self.n_features, self.n_labels)
        if tuple(features.shape) != expected:
            raise ShapeError(f"features must have shape (B, N_F, N_L) = {expected}, got {tuple(features.shape)}.")
        onehot = F.one_hot(labels.long(), self.n_labels).movedim(-1, 1).to(features.dtype)  # (B, N_L, *sp)
        if self.fusion is not None and self.fusion.spatial_kernel == 1 and self.spatial_dims == 2:
            table = self.fusion.region_table(features)  # exact shortcut, see FeatureFusion.region_table
            return torch.cat([onehot, torch.einsum("bok,bkhw->bohw", table, onehot)], dim=1)
        view = (*features.shape, *([1] * self.spatial_dims))
        maps = onehot.unsqueeze(1) * features.reshape(view)  # (B, N_F, N_L, *sp): value inside its region
        if self.fusion is None:
            return torch.cat([onehot, maps.flatten(1, 2)], dim=1)
        return torch.cat([onehot, self.fusion(maps)], dim=1)

    def pixel_noise(
        self, labels: torch.Tensor, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor | None:
        """Per-voxel standard normal noise ``(B, noise_channels, *spatial)`` (``None`` without noise input).

        Drawn on ``generator``'s device (so a CPU and a CUDA generator give different, each
        reproducible, draws) and moved to the labels' device.
        """
        if not self.noise_channels:
            return None
        if labels.ndim == self.spatial_dims + 2:
            labels = labels[:, 0]
        shape = (labels.shape[0], self.noise_channels, *labels.shape[1:])
        dev = generator.device if generator is not None else labels.device
        return torch.randn(shape, generator=generator, device=dev, dtype=dtype).to(labels.device)

    def forward(
        self,
        labels: torch.Tensor,
        features: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        pixel_noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Render ``labels`` (B, *spatial) with requested ``features`` (B, N_F, N_L) in [0, 1].

        ``noise``: the OASIS generator's per-image code (drawn from ``generator`` if omitted);
        ``pixel_noise``: the per-voxel noise channels when ``noise_channels > 0`` (drawn if omitted).
        With ``noise_channels > 0`` a texture head adds filtered per-voxel noise whose amplitude is a
        learned function of the conditioning (so of the requested features): every variant can then
        synthesise texture (entropy) inside homogeneous regions, which a deterministic convolution of
        piecewise-constant maps cannot.
        """
        cond = self.condition(labels, features)
        if self.variant == "oasis":
            pre = self.generator(cond, noise=noise, generator=generator)
        else:
            pre = self.generator(cond)
        if self.noise_channels:
            if pixel_noise is None:
                pixel_noise = self.pixel_noise(labels, generator=generator, dtype=cond.dtype)
            expected = (cond.shape[0], self.noise_channels, *cond.shape[2:])
            if tuple(pixel_noise.shape) != expected:
                raise ShapeError(f"pixel_noise must have shape {expected}, got {tuple(pixel_noise.shape)}.")
            amplitude = F.softplus(self.noise_amplitude(cond))
            pre = pre + amplitude * self.noise_filter(pixel_noise.to(cond.dtype))
        return torch.tanh(pre)
