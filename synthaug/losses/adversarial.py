"""Adversarial losses: LSGAN / BCE / hinge GAN losses and the OASIS segmentation-based losses.

>>> import torch
>>> float(gan_loss(torch.zeros(1, 1, 4, 4), target_real=True, mode="lsgan"))
1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from synthaug._validate import check_choice
from synthaug.errors import LabelError, ShapeError, ValidationError

__all__ = [
    "GAN_MODES",
    "gan_loss",
    "class_balance_weights",
    "oasis_discriminator_loss",
    "oasis_generator_loss",
]

GAN_MODES: tuple[str, ...] = ("lsgan", "bce", "hinge")


def _single(logits: torch.Tensor, target_real: bool, mode: str, for_discriminator: bool) -> torch.Tensor:
    if mode == "lsgan":
        return ((logits - (1.0 if target_real else 0.0)) ** 2).mean()
    if mode == "bce":
        target = torch.ones_like(logits) if target_real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)
    if for_discriminator:
        return F.relu(1.0 - logits).mean() if target_real else F.relu(1.0 + logits).mean()
    return -logits.mean()


def gan_loss(
    logits: torch.Tensor | Sequence[torch.Tensor],
    *,
    target_real: bool,
    mode: str = "lsgan",
    for_discriminator: bool = True,
) -> torch.Tensor:
    """GAN loss of discriminator logits against a real (True) or fake (False) target.

    Modes:
        ``"lsgan"``: ``mean((D - t)^2)`` with ``t`` = 1 (real) or 0 (fake).
        ``"bce"``: binary cross-entropy with logits against ``t``.
        ``"hinge"``: discriminator ``mean(relu(1 - D))`` (real) / ``mean(relu(1 + D))`` (fake);
        generator (``for_discriminator=False``) ``-mean(D)``, which needs ``target_real=True``.

    ``for_discriminator`` matters only for hinge. A list of logit maps (multi-scale
    discriminator) gives the mean of the per-map losses.
    """
    check_choice("mode", mode, GAN_MODES)
    if mode == "hinge" and not for_discriminator and not target_real:
        raise ValidationError(
            "gan_loss(mode='hinge', for_discriminator=False) is the generator loss and needs "
            "target_real=True (the generator wants its fakes judged real), got target_real=False."
        )
    maps = [logits] if isinstance(logits, torch.Tensor) else list(logits)
    if not maps or not all(isinstance(m, torch.Tensor) for m in maps):
        raise ValidationError("logits must be a tensor or a non-empty list of tensors.")
    losses = [_single(m, bool(target_real), mode, for_discriminator) for m in maps]
    return losses[0] if len(losses) == 1 else torch.stack(losses).mean()


def _flat_labels(labels: torch.Tensor, n_classes: int, name: str = "labels") -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        raise ValidationError(f"{name} must be a torch.Tensor, got {type(labels).__name__}.")
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise ValidationError(f"{name} must be an integer label map, got dtype {labels.dtype}.")
    if labels.numel() == 0:
        raise ShapeError(f"{name} is empty, got shape {tuple(labels.shape)}.")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= n_classes:
        raise LabelError(
            f"{name} values must lie in [0, {n_classes - 1}] for n_classes={n_classes}, got range "
            f"[{lo}, {hi}]. Map labels to consecutive ids first."
        )
    return labels.long()


def class_balance_weights(
    labels: torch.Tensor, n_classes: int, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """OASIS class-balancing weights ``(n_classes,)`` for one batch of integer labels.

    ``alpha_c = N / (n_present * count_c)`` where ``N`` is the number of voxels in the batch,
    ``count_c`` the voxels of class ``c`` and ``n_present`` the number of classes present;
    absent classes get weight 0. The voxel-weighted mean of ``alpha`` over the batch is 1, so a
    class-balanced mean is ``mean(loss * alpha[labels])``. Computed with one ``bincount``.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise ValidationError(f"n_classes must be an integer >= 1, got {n_classes!r}.")
    flat = _flat_labels(labels, n_classes).reshape(-1)
    counts = torch.bincount(flat, minlength=n_classes).to(dtype)
    present = counts > 0
    n_present = present.sum().to(dtype)
    safe = torch.where(present, counts, torch.ones_like(counts))
    return torch.where(present, flat.numel() / (n_present * safe), torch.zeros_like(counts))


def _check_seg(
    logits: torch.Tensor, labels: torch.Tensor, n_labels: int, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels < 1:
        raise ValidationError(f"n_labels must be an integer >= 1, got {n_labels!r}.")
    if not isinstance(logits, torch.Tensor) or logits.ndim not in (4, 5) or logits.shape[1] != n_labels + 1:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ShapeError(
            f"{name} must have shape (B, n_labels + 1 = {n_labels + 1}, *spatial) with 2 or 3 spatial "
            f"dimensions (the last class means 'fake'), got {shape}."
        )
    lab = labels[:, 0] if labels.ndim == logits.ndim else labels
    if tuple(lab.shape) != (logits.shape[0], *logits.shape[2:]):
        raise ShapeError(
            f"labels must have shape (B, *spatial) or (B, 1, *spatial) matching {name} "
            f"{tuple(logits.shape)}, got {tuple(labels.shape)}."
        )
    lab = _flat_labels(lab, n_labels)
    weights = class_balance_weights(lab, n_labels, dtype=logits.dtype)[lab]
    return lab, weights


def oasis_discriminator_loss(
    seg_logits_real: torch.Tensor,
    seg_logits_fake: torch.Tensor,
    labels: torch.Tensor,
    *,
    n_labels: int,
) -> torch.Tensor:
    """OASIS discriminator loss: (N_L+1)-class, class-balanced cross-entropy.

    Real pixels should be segmented as their label, every fake pixel as the extra class
    ``n_labels``; both terms are weighted per pixel by :func:`class_balance_weights` of the true
    labels (as in OASIS) and summed. Logits ``(B, n_labels + 1, *S)``, labels ``(B, *S)`` or
    ``(B, 1, *S)`` with values in ``[0, n_labels)``.
    """
    lab, w = _check_seg(seg_logits_real, labels, n_labels, "seg_logits_real")
    if seg_logits_fake.shape != seg_logits_real.shape:
        raise ShapeError(
            f"seg_logits_fake must match seg_logits_real {tuple(seg_logits_real.shape)}, "
            f"got {tuple(seg_logits_fake.shape)}."
        )
    real = (F.cross_entropy(seg_logits_real, lab, reduction="none") * w).mean()
    fake_target = torch.full_like(lab, n_labels)
    fake = (F.cross_entropy(seg_logits_fake, fake_target, reduction="none") * w).mean()
    return real + fake


def oasis_generator_loss(
    seg_logits_fake: torch.Tensor, labels: torch.Tensor, *, n_labels: int
) -> torch.Tensor:
    """OASIS generator loss: fake pixels should be segmented as their true label (class-balanced CE)."""
    lab, w = _check_seg(seg_logits_fake, labels, n_labels, "seg_logits_fake")
    return (F.cross_entropy(seg_logits_fake, lab, reduction="none") * w).mean()
