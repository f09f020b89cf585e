"""Style-swap losses: per-region Gram style and content losses, Med-USIS mask and segmentation consistency.

**Feature extractor (documented choice).** Seed 001 computes its style (Gram) and content losses on
ImageNet VGG-19 activations. Those weights cannot be downloaded here, and VGG describes photographs,
not grey-level CT/MR. :class:`TextureFeatures` uses **fixed random multi-scale filters** instead:
three stages of 3x3 convolutions with Kaiming-normal weights drawn from a fixed seed, ReLU, and x2
average pooling between stages (receptive fields 3, 8 and 18 pixels). Shallow networks with random
filters are known to carry enough second-order statistics for Gram-matrix texture synthesis
(Ustyuzhaninov et al., 2017); the filters need no training data (so no leakage and no training run
to reproduce), are identical on every machine, and the module is frozen. The test suite checks that
its region Gram distance separates two different textures (same mean and variance) far more than
two draws of one texture. The content loss uses the last (coarsest) stage, the style loss all three.

Gram matrices are **region-masked** (seed 001's per-organ style loss): at every stage the label
map's one-hot channels are area-averaged to the stage's grid, giving each feature pixel a weight per
class, and ``G_k = sum_p w_kp f_p f_p^T / (C sum_p w_kp)`` for every sample and class in one batched
matrix product (no loop over samples or classes).

**Mask consistency (Med-USIS).** ``E(image)``: per-image min-max normalisation to [0, 1],
binarisation at ``threshold``, a binary opening (``opening_size`` square element), and the largest
connected component. Binarisation is a steep sigmoid (``temperature``) so the L2 loss has gradients;
the opening is done in torch with max pooling on that soft mask (erosion = 1 - maxpool(1 - x) with
the outside counted as background, dilation = maxpool). Connected components are labelled exactly on
the hard mask (``soft > 0.5``) by iterative 3x3 (2D) / 3x3x3 (3D) max-propagation of pixel ids
(8-/26-connectivity) in torch; the largest component's indicator (piecewise constant, so gradients
flow through the soft opened mask it selects) multiplies the soft mask. With ``hard=True`` the
pipeline is the exact binary one and matches scipy (tested).

**Segmentation consistency (Med-USIS).** A U-Net segments the generated image; the loss is the
cross-entropy against the content labels weighted per class by ``alpha_c``
(:func:`synthaug.losses.adversarial.class_balance_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from synthaug._validate import check_positive, check_range
from synthaug.errors import ShapeError, ValidationError
from synthaug.losses.adversarial import class_balance_weights

__all__ = [
    "TextureFeatures",
    "region_gram",
    "gram_distance",
    "region_style_loss",
    "content_loss",
    "binary_opening",
    "connected_components",
    "largest_component",
    "extract_mask",
    "mask_consistency_loss",
    "segmentation_consistency_loss",
]


# ---------------------------------------------------------------------------------------- features


class TextureFeatures(nn.Module):
    """Fixed random multi-scale filter features of ``(B, 1, *S)`` images (a frozen VGG stand-in).

    Args:
        spatial_dims: 2 or 3.
        widths: channels of each stage (x2 average pooling between stages).
        seed: seed of the filter draw (fixed: the features are part of the loss definition).

    ``forward`` returns a list of feature maps, finest first. Gradients flow to the input; the
    filters are buffers, never trained and not part of any saved generator.
    """

    def __init__(self, *, spatial_dims: int = 2, widths: Sequence[int] = (8, 16, 32), seed: int = 20240607) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValidationError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        self.spatial_dims = spatial_dims
        self.widths = tuple(int(w) for w in widths)
        if not self.widths or min(self.widths) < 1:
            raise ValidationError(f"widths must be positive integers, got {widths!r}.")
        g = torch.Generator().manual_seed(int(seed))
        cin = 1
        for i, w in enumerate(self.widths):
            fan_in = cin * 3**spatial_dims
            weight = torch.randn((w, cin) + (3,) * spatial_dims, generator=g) * (2.0 / fan_in) ** 0.5
            self.register_buffer(f"weight_{i}", weight, persistent=False)
            cin = w

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.ndim != self.spatial_dims + 2 or x.shape[1] != 1:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ShapeError(f"TextureFeatures needs (B, 1, *spatial) with {self.spatial_dims} spatial dims, got {shape}.")
        conv = F.conv3d if self.spatial_dims == 3 else F.conv2d
        pool = F.avg_pool3d if self.spatial_dims == 3 else F.avg_pool2d
        out = []
        h = x
        for i in range(len(self.widths)):
            if i > 0:
                h = pool(h, 2, ceil_mode=True)
            h = F.relu(conv(h, getattr(self, f"weight_{i}").to(h.dtype), padding=1))
            out.append(h)
        return out


def _class_weights(labels: torch.Tensor, n_labels: int, size: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """Area fraction of every class in every cell of a grid of ``size``: ``(B, K, *size)``."""
    onehot = F.one_hot(labels.long(), n_labels).movedim(-1, 1).to(dtype)
    if tuple(onehot.shape[2:]) == tuple(size):
        return onehot
    return F.interpolate(onehot, size=tuple(size), mode="area")


def _check_features(features: Sequence[torch.Tensor], labels: torch.Tensor) -> None:
    if not features:
        raise ValidationError("features must be a non-empty list of (B, C, *spatial) maps.")
    for f in features:
        if f.ndim != labels.ndim + 1 or f.shape[0] != labels.shape[0]:
            raise ShapeError(
                f"feature map {tuple(f.shape)} does not match labels {tuple(labels.shape)} (need (B, C, *spatial) "
                "with the labels' batch size and number of spatial dimensions)."
            )


def region_gram(
    features: Sequence[torch.Tensor], labels: torch.Tensor, *, n_labels: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-class Gram matrices of each feature map: a list of ``(G (B, K, C, C), mass (B, K))``.

    ``labels`` ``(B, *S)`` at image resolution; ``mass`` is the summed class weight on that stage's grid
    (in feature pixels; 0 for an absent class, whose Gram matrix is 0).
    """
    _check_features(features, labels)
    out = []
    for f in features:
        b, c = f.shape[:2]
        w = _class_weights(labels, n_labels, f.shape[2:], f.dtype).flatten(2)  # (B, K, P)
        flat = f.flatten(2).transpose(1, 2)  # (B, P, C)
        mass = w.sum(-1)  # (B, K)
        outer = (flat.unsqueeze(-1) * flat.unsqueeze(-2)).flatten(2)  # (B, P, C*C): f_p f_p^T per pixel
        gram = torch.bmm(w, outer).view(b, n_labels, c, c)  # one batched product for all classes
        gram = gram / (c * mass.clamp_min(1e-6))[..., None, None]
        out.append((gram, mass))
    return out


def gram_distance(
    grams_a: Sequence[tuple[torch.Tensor, torch.Tensor]],
    grams_b: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    min_mass: float = 4.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared Frobenius distance of region Gram matrices summed over stages: ``(B, K)`` and a ``(B, K)``
    validity mask (the class has at least ``min_mass`` pixels on the finest grid in both)."""
    if len(grams_a) != len(grams_b) or not grams_a:
        raise ValidationError("gram_distance needs two equally long, non-empty lists of region Gram matrices.")
    valid = (grams_a[0][1] >= min_mass) & (grams_b[0][1] >= min_mass)
    dist = sum(((ga - gb) ** 2).flatten(2).sum(-1) for (ga, _), (gb, _) in zip(grams_a, grams_b))
    return dist, valid


def region_style_loss(
    fake_features: Sequence[torch.Tensor],
    fake_labels: torch.Tensor,
    style_features: Sequence[torch.Tensor],
    style_labels: torch.Tensor,
    *,
    n_labels: int,
    min_mass: float = 4.0,
) -> torch.Tensor:
    """Seed 001's per-organ style loss: mean over (sample, class) pairs present in both images of the
    squared Gram distance, summed over stages. 0 when no class is shared."""
    ga = region_gram(fake_features, fake_labels, n_labels=n_labels)
    gb = region_gram(style_features, style_labels, n_labels=n_labels)
    dist, valid = gram_distance(ga, gb, min_mass=min_mass)
    v = valid.to(dist.dtype)
    return (dist * v).sum() / v.sum().clamp_min(1.0)


def content_loss(
    fake_features: Sequence[torch.Tensor], reference_features: Sequence[torch.Tensor], *, stages: Sequence[int] = (-1,)
) -> torch.Tensor:
    """Mean squared difference of the feature maps of the given stages (seed 001's content loss)."""
    terms = []
    for s in stages:
        a, b = fake_features[s], reference_features[s]
        if a.shape != b.shape:
            raise ShapeError(f"content_loss: feature maps differ in shape, {tuple(a.shape)} vs {tuple(b.shape)}.")
        terms.append(((a - b) ** 2).mean())
    return torch.stack(terms).sum()


# ---------------------------------------------------------------------------------------- mask consistency


def _spatial_check(x: torch.Tensor, name: str) -> int:
    if not isinstance(x, torch.Tensor) or x.ndim not in (4, 5) or x.shape[1] != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ShapeError(f"{name} must have shape (B, 1, H, W) or (B, 1, D, H, W), got {shape}.")
    return x.ndim - 2


def binary_opening(mask: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Opening (erosion then dilation) with a ``size``-wide square/cube element; soft masks allowed.

    Outside the image counts as background (scipy's ``border_value=0``). ``(B, 1, *S)`` in [0, 1].
    """
    dims = _spatial_check(mask, "mask")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValidationError(f"opening size must be a positive odd integer, got {size!r}.")
    if size == 1:
        return mask
    pool = F.max_pool3d if dims == 3 else F.max_pool2d
    r = size // 2
    pads = [r] * (2 * dims)
    eroded = 1.0 - pool(F.pad(1.0 - mask, pads, value=1.0), size, stride=1)
    return pool(F.pad(eroded, pads, value=0.0), size, stride=1)


def connected_components(mask: torch.Tensor, *, check_every: int = 16) -> torch.Tensor:
    """Label the connected components of a binary ``(B, 1, *S)`` mask (8-/26-connectivity).

    Returns int64 ids of the same shape: 0 outside the mask; inside, every pixel of a component holds
    the same id (1 + the largest flat index in that component). Each pixel repeatedly takes the
    maximum id of its 3x3(x3) neighbourhood inside the mask, then the id its id points to (pointer
    jumping), until nothing changes (checked at steps 1, 2, 4, 8 and every ``check_every`` steps; at most
    one step per pixel, so it always terminates).
    """
    dims = _spatial_check(mask, "mask")
    m = mask.detach() > 0.5
    b = m.shape[0]
    n = m[0].numel()
    dtype = torch.float32 if n < 2**24 else torch.float64
    ids = torch.arange(1, n + 1, device=m.device, dtype=dtype).reshape(1, *m.shape[1:]).expand(b, *m.shape[1:])
    ids = ids * m
    fm = m.to(dtype)
    for step in range(1, n + 1):
        new = _box_max(ids, dims) * fm
        # Pointer jumping: an id is the flat index (+1) of a pixel of the same component, whose own id is at
        # least as large; taking it spreads the maximum along a long component in logarithmically many steps
        # (same fixed point: every pixel holds its component's largest index + 1).
        flat = new.reshape(b, -1)
        new = flat.gather(1, (flat - 1).clamp_min(0).long()).reshape(new.shape) * fm
        if step % check_every == 0 or step & (step - 1) == 0 or step == n:  # also at 1, 2, 4, 8: jumping converges fast
            if torch.equal(new, ids):
                break
        ids = new
    return ids.long()


def _box_max(x: torch.Tensor, dims: int) -> torch.Tensor:
    """Maximum over each 3x3(x3) neighbourhood of a non-negative ``(B, 1, *S)`` tensor (zero outside), as
    one shifted maximum per axis (separable; several times faster than a stride-1 max pool on CPU)."""
    out = x
    for axis in range(2, 2 + dims):
        n = out.shape[axis]
        if n < 2:
            continue
        shifted = out.clone()
        lo, hi = out.narrow(axis, 0, n - 1), out.narrow(axis, 1, n - 1)
        shifted.narrow(axis, 1, n - 1).copy_(torch.maximum(shifted.narrow(axis, 1, n - 1), lo))
        shifted.narrow(axis, 0, n - 1).copy_(torch.maximum(shifted.narrow(axis, 0, n - 1), hi))
        out = shifted
    return out


def largest_component(mask: torch.Tensor) -> torch.Tensor:
    """Bool indicator ``(B, 1, *S)`` of each sample's largest connected component of ``mask > 0.5``."""
    ids = connected_components(mask)
    b = ids.shape[0]
    n = ids[0].numel()
    flat = ids.reshape(b, -1)
    offsets = torch.arange(b, device=ids.device).unsqueeze(1) * (n + 1)
    sizes = torch.bincount((flat + offsets).reshape(-1), minlength=b * (n + 1)).view(b, n + 1)
    sizes[:, 0] = 0
    best = sizes.argmax(dim=1)  # ties: the smallest id
    keep = (flat == best.unsqueeze(1)) & (flat > 0)
    return keep.view_as(ids)


def extract_mask(
    image: torch.Tensor,
    *,
    threshold: float = 0.1,
    temperature: float = 0.1,
    opening_size: int = 3,
    largest: bool = True,
    hard: bool = False,
    value_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Med-USIS ``E(image)``: normalise, binarise, open, keep the largest connected component.

    ``image`` ``(B, 1, *S)``; returns ``(B, 1, *S)`` in [0, 1] (exactly {0, 1} with ``hard=True``).
    Normalisation is per-image min-max (Med-USIS; the min/max are not differentiated through), or,
    with ``value_range=(low, high)``, the fixed linear map of that range to [0, 1] (synthaug's trainers
    use (-1, 1), the generator's output range, so crops that lie entirely inside the body are not
    stretched).
    """
    dims = _spatial_check(image, "image")
    check_range("threshold", float(threshold), 0.0, 1.0)
    check_positive("temperature", float(temperature))
    if value_range is None:
        flat = image.detach().flatten(1)
        shape = (-1, 1) + (1,) * dims
        lo, hi = flat.min(1).values.view(shape), flat.max(1).values.view(shape)
        norm = (image - lo) / (hi - lo).clamp_min(1e-6)
    else:
        lo_v, hi_v = (float(v) for v in value_range)
        if not lo_v < hi_v:
            raise ValidationError(f"value_range must have low < high, got {value_range!r}.")
        norm = (image - lo_v) / (hi_v - lo_v)
    soft = (norm > threshold).to(image.dtype) if hard else torch.sigmoid((norm - threshold) / temperature)
    opened = binary_opening(soft, opening_size)
    if not largest:
        return opened
    return opened * largest_component(opened).to(opened.dtype)


def mask_consistency_loss(
    fake: torch.Tensor,
    target_mask: torch.Tensor,
    *,
    threshold: float = 0.1,
    temperature: float = 0.1,
    opening_size: int = 3,
    largest: bool = True,
    value_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Med-USIS mask loss ``mean((target - E(fake))^2)``; ``target_mask`` ``(B, 1, *S)`` or ``(B, *S)`` in {0, 1}.

    ``target_mask`` is the label's foreground mask; synthaug's trainers use ``E(real image)`` of the
    content labels' own scan (same pipeline, hard), because super-class label maps leave subcutaneous fat
    unlabelled and ``labels > 0`` would ask for a body without it.
    """
    _spatial_check(fake, "fake")
    target = target_mask.unsqueeze(1) if target_mask.ndim == fake.ndim - 1 else target_mask
    if target.shape != fake.shape:
        raise ShapeError(f"target_mask {tuple(target_mask.shape)} must match fake {tuple(fake.shape)} (channel optional).")
    got = extract_mask(fake, threshold=threshold, temperature=temperature, opening_size=opening_size,
                       largest=largest, value_range=value_range)
    return ((target.to(got.dtype) - got) ** 2).mean()


# ---------------------------------------------------------------------------------------- segmentation


def segmentation_consistency_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Class-balanced cross-entropy of segmenter ``logits`` ``(B, K, *S)`` against ``labels`` ``(B, *S)``.

    Each pixel is weighted by ``alpha_c`` of its true class (Med-USIS; ``alpha`` from
    :func:`~synthaug.losses.adversarial.class_balance_weights`, mean weight 1 over the batch).
    """
    if not isinstance(logits, torch.Tensor) or logits.ndim not in (4, 5):
        raise ShapeError("logits must have shape (B, K, H, W) or (B, K, D, H, W).")
    lab = labels[:, 0] if labels.ndim == logits.ndim else labels
    if tuple(lab.shape) != (logits.shape[0], *logits.shape[2:]):
        raise ShapeError(f"labels {tuple(labels.shape)} must match logits {tuple(logits.shape)} (B, *spatial).")
    alpha = class_balance_weights(lab, logits.shape[1], dtype=logits.dtype)
    lab = lab.long()
    return (F.cross_entropy(logits, lab, reduction="none") * alpha[lab]).mean()
