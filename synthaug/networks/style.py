"""Per-organ style swap generator: content label map + style image (+ its labels) -> image.

One frozen network renders *any* content label map with the per-organ appearance of *any* style
patient (the seed cGAN trains one model per style image; SEAN-style region codes remove that
limit):

1. :class:`RegionStyleEncoder` encodes the style image **separately inside every region** of the
   style label map: the image is multiplied by the region's mask before every convolution and
   pooled with normalised (masked) averaging, so region ``k``'s features depend only on the pixels
   of region ``k`` (changing pixels outside it cannot change its code). All regions of all samples
   run as one batch ``(B * R, ...)``; there is no loop over samples or classes.
2. The masked mean of the last feature map of each region goes through a small MLP: one style code
   per class, ``(B, N_L, style_dim)``. A class with fewer than ``min_pixels`` pixels in the style
   patient (absent, or a speck) falls back to a **learned per-class default code**.
   ``global_code=True`` adds one extra slot pooled over the whole image (every pixel), added to
   every class's code in the decoder; it lets an *unlabelled* style image (``style_labels=None``,
   the unpaired Med-USIS setting) steer the global appearance while all classes use defaults.
3. ``body_class=True`` adds one class after the vocabulary, "body": unlabelled tissue inside the
   body outline (subcutaneous fat, skin, unlabelled organs), i.e. background pixels inside the
   Med-USIS body mask of the scan the labels belong to (:meth:`StyleSwapGenerator.add_body`). Without
   it the content label map would not say where the body ends (super-class maps label only organs,
   bones and muscles), and neither the generator nor the mask-consistency loss could know.
4. The decoder is :class:`~synthaug.networks.spade.SPADEGenerator` conditioned on the one-hot
   content labels concatenated with the **region-wise code map** (every pixel of content class
   ``k`` carries code ``k``): region-adaptive normalisation, each class's code modulating the pixels
   of that class. The SPADE generator adds the Med-USIS/OASIS 3D noise (``z_dim`` channels per
   pixel) and samples it from a truncated normal of bound ``a`` when ``truncation=a`` is given.

Encoding and rendering are split (:meth:`StyleSwapGenerator.encode`, :meth:`StyleSwapGenerator.render`)
so a style patient is encoded once and reused; :meth:`StyleSwapGenerator.region_sums` +
:meth:`StyleSwapGenerator.codes_from_sums` pool one code over many slices of a 3D style volume.

>>> import torch
>>> g = StyleSwapGenerator(3, style_dim=4, encoder_widths=(4, 4), widths=(8, 4), z_dim=2, hidden=4)
>>> content = torch.zeros(2, 16, 16, dtype=torch.long); content[:, 4:12, 4:12] = 1
>>> style_labels = torch.zeros(2, 16, 16, dtype=torch.long); style_labels[:, 2:10, 2:14] = 2
>>> out = g(content, torch.rand(2, 1, 16, 16) * 2 - 1, style_labels, generator=torch.Generator().manual_seed(0))
>>> out.shape
torch.Size([2, 1, 16, 16])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from synthaug.errors import LabelError, ShapeError, ValidationError
from synthaug.networks.interface import GeneratorModule
from synthaug.networks.layers import check_input, check_int, check_spatial_dims, check_widths, conv
from synthaug.networks.spade import SPADEGenerator

__all__ = ["RegionStyleEncoder", "StyleCodes", "StyleSwapGenerator"]

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    return (F.avg_pool3d if x.ndim == 5 else F.avg_pool2d)(x, factor, ceil_mode=True)


def _masked_pool(h: torch.Tensor, m: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average ``h`` over the masked pixels of each ``factor``-cell; the new mask marks non-empty cells.

    ``h`` is zero outside ``m``, so a cell's value is the mean of its in-region pixels only.
    """
    hs, ms = _pool(h, factor), _pool(m, factor)
    inside = ms > 0
    return hs / ms.clamp_min(1e-6) * inside, inside.to(h.dtype)


class RegionStyleEncoder(nn.Module):
    """Masked convolutional features of each region of an image, summed per region.

    Every ``(sample, region)`` pair is one element of a ``(B * R, 2, *S)`` batch holding the image
    masked to the region and the mask itself; after each ``conv3 -> LeakyReLU`` the features are
    multiplied by the mask again, and downsampling averages over in-region pixels only. Nothing
    outside a region ever enters its features.

    Args:
        spatial_dims: 2 or 3.
        widths: convolution widths; a masked x2 average pooling separates consecutive ones.
        downsample: masked average pooling of the input before the first convolution (1 = none);
            2 makes the encoder four times cheaper on 2D slices.
    """

    def __init__(self, *, spatial_dims: int = 2, widths: Sequence[int] = (16, 32, 32), downsample: int = 2) -> None:
        super().__init__()
        self.spatial_dims = dims = check_spatial_dims(spatial_dims)
        self.widths = w = check_widths("encoder_widths", widths)
        self.downsample = check_int("encoder_downsample", downsample, minimum=1)
        Conv = conv(dims)
        self.convs = nn.ModuleList(
            Conv(2 if i == 0 else w[i - 1], w[i], kernel_size=3, padding=1) for i in range(len(w))
        )
        self.out_channels = w[-1]

    def forward(self, image: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image`` ``(B, 1, *S)``, ``masks`` ``(B, R, *S)`` in {0, 1} -> (feature sums ``(B, R, F)``,
        feature-map pixel counts ``(B, R)``); the mean feature of region r is ``sums / counts``.

        Only non-empty ``(sample, region)`` pairs are encoded (selected with one ``nonzero``, no loop);
        empty ones get zero sums and counts.
        """
        b, r = masks.shape[:2]
        spatial = tuple(masks.shape[2:])
        m_all = masks.reshape(b * r, 1, *spatial).to(image.dtype)
        keep = m_all.flatten(1).amax(1) > 0
        pairs = keep.nonzero().flatten()
        m = m_all.index_select(0, pairs)
        h = image.repeat_interleave(r, dim=0).index_select(0, pairs) * m
        if self.downsample > 1:
            h, m = _masked_pool(h, m, self.downsample)
        h = torch.cat([h, m], dim=1)
        for i, layer in enumerate(self.convs):
            h = F.leaky_relu(layer(h), 0.2) * m
            if i < len(self.convs) - 1:
                h, m = _masked_pool(h, m, 2)
        sums = h.new_zeros((b * r, self.out_channels)).index_copy(0, pairs, h.flatten(2).sum(-1))
        counts = h.new_zeros(b * r).index_copy(0, pairs, m.flatten(1).sum(-1))
        return sums.view(b, r, -1), counts.view(b, r)


@dataclass(frozen=True, eq=False)
class StyleCodes:
    """Style codes ``(B, R, style_dim)`` (R = n_classes, + 1 global slot) and which slots were pooled
    from the style image (``present``; the others hold the learned default code)."""

    codes: torch.Tensor
    present: torch.Tensor


class StyleSwapGenerator(GeneratorModule):
    """Content label map + style image and labels -> image with the style patient's per-organ look.

    Args:
        n_labels: classes of the label vocabulary (background 0 included).
        spatial_dims: 2 or 3.
        style_dim: length of each class's style code.
        encoder_widths, encoder_downsample: the :class:`RegionStyleEncoder`.
        widths, z_dim, hidden, output: the :class:`~synthaug.networks.spade.SPADEGenerator` decoder
            (``z_dim`` = Med-USIS noise channels, 0 = deterministic).
        global_code: add a style slot pooled over the whole style image (see the module docstring).
        body_class: add the "body" class ``n_labels`` (see the module docstring and :meth:`add_body`).
        min_pixels: a class needs at least this many pixels in the style image for its own code;
            otherwise its learned default code is used.

    Example:
        >>> g = StyleSwapGenerator(4, style_dim=4, encoder_widths=(4,), widths=(8, 4), z_dim=2, hidden=4)
        >>> lab = torch.zeros(1, 16, 16, dtype=torch.long); lab[:, 4:12, 4:12] = 3
        >>> codes = g.encode(torch.zeros(1, 1, 16, 16), lab)
        >>> codes.present.tolist()  # background and class 3 are in the style image, 1 and 2 are not
        [[True, False, False, True]]
    """

    def __init__(
        self,
        n_labels: int,
        *,
        spatial_dims: int = 2,
        style_dim: int = 16,
        encoder_widths: Sequence[int] = (16, 32, 32),
        encoder_downsample: int = 2,
        widths: Sequence[int] = (64, 64, 32, 16),
        z_dim: int = 16,
        hidden: int = 32,
        global_code: bool = False,
        body_class: bool = False,
        min_pixels: int = 8,
        output: str = "tanh",
    ) -> None:
        super().__init__()
        self.n_labels = check_int("n_labels", n_labels, minimum=2)
        self.body_class = bool(body_class)
        self.n_classes = self.n_labels + int(self.body_class)
        self.spatial_dims = dims = check_spatial_dims(spatial_dims)
        self.style_dim = check_int("style_dim", style_dim, minimum=1)
        self.min_pixels = check_int("min_pixels", min_pixels, minimum=1)
        self.global_code = bool(global_code)
        self.n_slots = self.n_classes + int(self.global_code)
        self.encoder = RegionStyleEncoder(spatial_dims=dims, widths=encoder_widths, downsample=encoder_downsample)
        f = self.encoder.out_channels
        self.to_code = nn.Sequential(nn.Linear(f, style_dim), nn.LeakyReLU(0.2), nn.Linear(style_dim, style_dim))
        self.default_codes = nn.Parameter(0.1 * torch.randn(self.n_slots, style_dim))
        self.decoder = SPADEGenerator(
            self.n_classes + style_dim, 1, spatial_dims=dims, widths=widths, z_dim=z_dim, hidden=hidden, output=output
        )
        self.z_dim = self.decoder.z_dim
        self.divisor = self.decoder.divisor

    # ------------------------------------------------------------------ validation helpers
    def _labels(self, labels: torch.Tensor, name: str) -> torch.Tensor:
        """``(B, *S)`` or ``(B, 1, *S)`` integer labels in 0..n_classes-1 -> ``(B, *S)`` int64."""
        if not isinstance(labels, torch.Tensor):
            raise ValidationError(f"{name} must be a torch.Tensor, got {type(labels).__name__}.")
        if labels.dtype not in _INTEGER_DTYPES:
            raise ValidationError(
                f"{name} must be an integer label map, got dtype {labels.dtype}. Convert whole-number floats "
                "with .round().long()."
            )
        d = self.spatial_dims
        if labels.ndim == d + 2:
            if labels.shape[1] != 1:
                raise ShapeError(f"{name} must be (B, *spatial) or (B, 1, *spatial), got shape {tuple(labels.shape)}.")
            labels = labels[:, 0]
        if labels.ndim != d + 1:
            raise ShapeError(
                f"{name} must be (B, {', '.join('DHW'[-d:])}) or (B, 1, {', '.join('DHW'[-d:])}) for spatial_dims={d}, "
                f"got shape {tuple(labels.shape)}."
            )
        if labels.numel():
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= self.n_classes:
                bad = lo if lo < 0 else hi
                extra = f" (class {self.n_labels} = body, see add_body)" if self.body_class else ""
                raise LabelError(
                    f"{name} holds label {bad}, outside the generator's classes 0..{self.n_classes - 1}{extra}. Map the "
                    "labels to the generator's vocabulary first (synthaug.data.vocabulary)."
                )
        return labels.long()

    def add_body(self, labels: torch.Tensor, body_mask: torch.Tensor) -> torch.Tensor:
        """Labels with background pixels inside ``body_mask`` set to the body class ``n_labels``.

        ``labels`` ``(B, *S)`` or ``(B, 1, *S)``, ``body_mask`` of the same shape (or with/without the channel),
        e.g. :func:`synthaug.losses.style.extract_mask` of the labels' own scan. Identity without ``body_class``.
        """
        if not self.body_class:
            return labels
        mask = body_mask
        if mask.ndim == labels.ndim + 1:
            mask = mask[:, 0]
        elif mask.ndim == labels.ndim - 1:
            mask = mask.unsqueeze(1)
        if mask.shape != labels.shape:
            raise ShapeError(f"body_mask {tuple(body_mask.shape)} must match labels {tuple(labels.shape)}.")
        return torch.where((labels == 0) & (mask > 0.5), torch.full_like(labels, self.n_labels), labels)

    def strip_body(self, labels: torch.Tensor) -> torch.Tensor:
        """The vocabulary labels again: the body class becomes background 0."""
        if not self.body_class:
            return labels
        return torch.where(labels == self.n_labels, torch.zeros_like(labels), labels)

    def _masks(self, style_image: torch.Tensor, style_labels: torch.Tensor | None) -> torch.Tensor:
        b, spatial = style_image.shape[0], tuple(style_image.shape[2:])
        if style_labels is None:
            masks = style_image.new_zeros((b, self.n_classes, *spatial))
        else:
            lab = self._labels(style_labels, "style_labels")
            if lab.shape[0] != b or tuple(lab.shape[1:]) != spatial:
                raise ShapeError(
                    f"style_labels {tuple(style_labels.shape)} must match style_image {tuple(style_image.shape)} in batch "
                    "and spatial size."
                )
            masks = F.one_hot(lab, self.n_classes).movedim(-1, 1).to(style_image.dtype)
        if self.global_code:
            masks = torch.cat([masks, style_image.new_ones((b, 1, *spatial))], dim=1)
        return masks

    # ------------------------------------------------------------------ style
    def region_sums(
        self, style_image: torch.Tensor, style_labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Additive per-region statistics ``(feature sums (B, R, F), feature counts (B, R), pixel counts (B, R))``.

        Sum them over the slices of a volume (dimension 0) and pass them to :meth:`codes_from_sums` to get
        one code per region of the whole volume. ``style_labels=None`` means an unlabelled image: no class
        slot is pooled (only the global one, if any).
        """
        check_input(style_image, "style_image", spatial_dims=self.spatial_dims, channels=1)
        masks = self._masks(style_image, style_labels)
        sums, counts = self.encoder(style_image, masks)
        return sums, counts, masks.flatten(2).sum(-1)

    def codes_from_sums(
        self,
        sums: torch.Tensor,
        feature_counts: torch.Tensor,
        pixel_counts: torch.Tensor,
        *,
        drop: torch.Tensor | None = None,
    ) -> StyleCodes:
        """Codes from (pooled) :meth:`region_sums`; slots with < ``min_pixels`` pixels, or ``drop=True``
        (``(B, R)`` bool, code dropout in training), take the learned default code."""
        mean = sums / feature_counts.clamp_min(1.0).unsqueeze(-1)
        codes = self.to_code(mean)
        present = (pixel_counts >= self.min_pixels) & (feature_counts > 0)
        if drop is not None:
            present = present & ~drop.to(device=present.device, dtype=torch.bool)
        default = self.default_codes.to(codes.dtype).unsqueeze(0).expand_as(codes)
        return StyleCodes(torch.where(present.unsqueeze(-1), codes, default), present)

    def encode(self, style_image: torch.Tensor, style_labels: torch.Tensor | None) -> StyleCodes:
        """Style codes of each sample: ``style_image`` ``(B, 1, *S)`` in [-1, 1], labels ``(B, *S)`` or None."""
        return self.codes_from_sums(*self.region_sums(style_image, style_labels))

    def default_style(self, batch: int = 1, *, device: torch.device | None = None) -> StyleCodes:
        """Every slot at its learned default code (no style patient)."""
        codes = self.default_codes.unsqueeze(0).expand(batch, -1, -1)
        if device is not None:
            codes = codes.to(device)
        return StyleCodes(codes, torch.zeros(batch, self.n_slots, dtype=torch.bool, device=codes.device))

    # ------------------------------------------------------------------ rendering
    def code_map(self, content_labels: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The SPADE conditioning map ``(B, n_classes + style_dim, *S)``: one-hot labels and, at every pixel
        of class k, code k (+ the global code)."""
        labels = self._labels(content_labels, "content_labels")
        b = labels.shape[0]
        if codes.ndim != 3 or codes.shape[1:] != (self.n_slots, self.style_dim) or codes.shape[0] not in (1, b):
            raise ShapeError(
                f"codes must have shape ({b} or 1, {self.n_slots}, {self.style_dim}), got {tuple(codes.shape)}."
            )
        codes = codes.expand(b, -1, -1)
        onehot = F.one_hot(labels, self.n_classes).movedim(-1, 1).to(codes.dtype)  # (B, K, *S)
        flat = onehot.flatten(2).transpose(1, 2)  # (B, P, K)
        painted = torch.bmm(flat, codes[:, : self.n_classes])  # (B, P, D): each pixel gets its class's code
        if self.global_code:
            painted = painted + codes[:, self.n_classes].unsqueeze(1)
        painted = painted.transpose(1, 2).reshape(b, self.style_dim, *labels.shape[1:])
        return torch.cat([onehot, painted], dim=1)

    def render(
        self,
        content_labels: torch.Tensor,
        codes: StyleCodes | torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        truncation: float | None = None,
    ) -> torch.Tensor:
        """Image ``(B, 1, *S)`` in [-1, 1] of ``content_labels`` with the given style codes."""
        c = codes.codes if isinstance(codes, StyleCodes) else codes
        return self.decoder(self.code_map(content_labels, c), noise=noise, generator=generator, truncation=truncation)

    def forward(
        self,
        content_labels: torch.Tensor,
        style_image: torch.Tensor,
        style_labels: torch.Tensor | None,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        truncation: float | None = None,
    ) -> torch.Tensor:
        """Render ``content_labels`` ``(B, *S)`` with the per-class style of ``style_image`` ``(B or 1, 1, *S')``.

        ``style_labels`` (same batch and size as ``style_image``, or None for an unlabelled image) say
        which pixels each class's code is pooled from. Noise: ``noise`` ``(B, z_dim)`` or
        ``(B, z_dim, *S)``, else drawn with ``generator`` (truncated to ``[-truncation, truncation]``).
        """
        style = self.encode(style_image, style_labels)
        return self.render(content_labels, style, noise=noise, generator=generator, truncation=truncation)
