"""ConText-GAN feature fusion: per-region texture feature maps -> one context map per label.

The input is a stack of ``N_F`` feature maps, each holding one value per label region and
pixel, laid out as ``(B, N_F, N_L, *spatial)``. The module first scales each feature map by a
learned gate (channel attention, one scalar per feature, readable as
:attr:`FeatureFusion.attention_weights`), then convolves the stack down to one channel:

* ``spatial_dims=2``: the stack is a 3D volume ``(N_L, H, W)`` with the features as channels;
  3D convolutions ``N_F -> widths... -> 1`` (as in the ConText-GAN paper) mix neighbouring labels
  and pixels. Padding keeps ``N_L, H, W``.
* ``spatial_dims=3``: there is no 4D convolution in torch, so the label axis is folded into the
  batch and 3D convolutions run over ``(D, H, W)`` for each label with shared weights. Labels are
  *not* mixed in this case; each label's context map depends only on its own features.

>>> import torch
>>> fusion = FeatureFusion(5, 4, spatial_dims=2)
>>> fusion(torch.rand(2, 5, 4, 16, 16)).shape
torch.Size([2, 4, 16, 16])
>>> fusion.attention_weights.shape
torch.Size([5])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from synthaug.errors import ShapeError, ValidationError
from synthaug.networks.layers import check_int, check_spatial_dims, check_widths

__all__ = ["FeatureFusion"]


class FeatureFusion(nn.Module):
    """Fuse ``(B, N_F, N_L, *spatial)`` feature maps into a ``(B, N_L, *spatial)`` context map.

    Args:
        n_features: number of feature maps ``N_F`` (e.g. mean, std, entropy, ...).
        n_labels: number of label regions ``N_L`` (background included if it has features).
        spatial_dims: 2 for slices (3D convolutions over label x H x W) or 3 for volumes
            (labels folded into the batch, 3D convolutions over space).
        widths: channel widths of the hidden convolutions (LeakyReLU 0.2).
        spatial_kernel: spatial extent of the convolution kernels (3 as in the paper; the label axis
            always uses 3). With 1, the context at a voxel depends only on the region it lies in, so
            :meth:`region_table` computes the whole context map from a ``(N_L, N_L)`` table per sample
            (exact, and far cheaper than convolving ``(N_F, N_L, H, W)`` stacks on a CPU).

    The attention gate is ``2 * sigmoid(a)`` with ``a`` initialised to 0, so every feature passes
    unchanged at initialisation (weight exactly 1); a weight tends to 0 when training switches a
    feature off and may grow up to 2 when it amplifies one.
    """

    def __init__(
        self,
        n_features: int,
        n_labels: int,
        *,
        spatial_dims: int = 2,
        widths: Sequence[int] = (16, 32, 16),
        spatial_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.n_features = check_int("n_features", n_features, minimum=1)
        self.n_labels = check_int("n_labels", n_labels, minimum=1)
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.widths = check_widths("widths", widths, min_len=0)
        if spatial_kernel not in (1, 3):
            raise ValidationError(f"spatial_kernel must be 1 or 3, got {spatial_kernel!r}.")
        self.spatial_kernel = spatial_kernel
        self.attention_logits = nn.Parameter(torch.zeros(self.n_features))
        chans = (self.n_features, *self.widths, 1)
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:], strict=True)):
            if self.spatial_dims == 2:
                k = (3, spatial_kernel, spatial_kernel)  # (label, H, W)
            else:
                k = (spatial_kernel,) * 3  # labels folded into the batch
            layers.append(nn.Conv3d(cin, cout, kernel_size=k, padding=tuple(i // 2 for i in k)))
            if i < len(chans) - 2:
                layers.append(nn.LeakyReLU(0.2))
        self.body = nn.Sequential(*layers)

    @property
    def attention_weights(self) -> torch.Tensor:
        """The per-feature gates ``(N_F,)`` in ``(0, 2)``, detached (1 = passed unchanged)."""
        return (2.0 * torch.sigmoid(self.attention_logits)).detach()

    def region_table(self, values: torch.Tensor) -> torch.Tensor:
        """Context of every region: ``values`` (B, N_F, N_L) -> table (B, N_L out, N_L region).

        Only for ``spatial_dims=2`` and ``spatial_kernel=1``: then the context map equals
        ``einsum("bok,bk...->bo...", table, onehot(labels))`` exactly, because a voxel of region k sees
        the feature stack ``values[:, :, l] * [l == k]`` whatever its neighbours are.
        """
        if self.spatial_dims != 2 or self.spatial_kernel != 1:
            raise ValidationError("region_table needs spatial_dims=2 and spatial_kernel=1.")
        if values.ndim != 3 or values.shape[1] != self.n_features or values.shape[2] != self.n_labels:
            raise ShapeError(
                f"values must have shape (B, N_F={self.n_features}, N_L={self.n_labels}), got {tuple(values.shape)}."
            )
        eye = torch.eye(self.n_labels, dtype=values.dtype, device=values.device)
        stack = values[..., None] * eye  # (B, N_F, N_L, K): region k's voxel sees only row l == k
        return self(stack[..., None]).squeeze(-1)  # treat (N_L, K, 1) as (N_L, H, W)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` ``(B, N_F, N_L, *spatial)`` -> context map ``(B, N_L, *spatial)``."""
        expected = 3 + self.spatial_dims
        if not isinstance(features, torch.Tensor):
            raise ValidationError(f"features must be a torch.Tensor, got {type(features).__name__}.")
        if (
            features.ndim != expected
            or features.shape[1] != self.n_features
            or features.shape[2] != self.n_labels
        ):
            axes = ", ".join("DHW"[-self.spatial_dims :])
            raise ShapeError(
                f"features must have shape (B, N_F={self.n_features}, N_L={self.n_labels}, {axes}) "
                f"for spatial_dims={self.spatial_dims}, got shape {tuple(features.shape)}."
            )
        gate = 2.0 * torch.sigmoid(self.attention_logits).to(features.dtype)
        x = features * gate.view(1, -1, *([1] * (expected - 2)))
        if self.spatial_dims == 2:
            return self.body(x).squeeze(1)
        b, nf, nl = x.shape[:3]
        spatial = x.shape[3:]
        folded = x.transpose(1, 2).reshape(b * nl, nf, *spatial)
        return self.body(folded).reshape(b, nl, *spatial)
