"""The label-faithfulness gate: a frozen segmenter re-segments synthetic samples; unfaithful ones are dropped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from synthaug.errors import ShapeError, WeightsError

__all__ = ["label_dice", "gate_samples", "Checker", "load_checker"]


def label_dice(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample mean foreground Dice of integer maps ``(B, *sp)`` over the classes in either map.

    A sample with no foreground in either map scores 1. Computed from one batched confusion matrix.
    """
    if pred.shape != target.shape:
        raise ShapeError(f"prediction {tuple(pred.shape)} and label {tuple(target.shape)} must have the same shape.")
    b = pred.shape[0]
    p, t = pred.long().flatten(1), target.long().flatten(1)
    k = int(max(int(p.max()), int(t.max()), 0)) + 1
    p, t = p.clamp_min(0), t.clamp_min(0)
    w = torch.ones_like(p, dtype=torch.float32) if valid is None else valid.flatten(1).to(torch.float32)
    idx = (torch.arange(b, device=p.device)[:, None] * k + t) * k + p
    conf = torch.zeros(b * k * k, device=p.device, dtype=torch.float32).index_add_(0, idx.flatten(), w.flatten())
    conf = conf.reshape(b, k, k)  # [sample, label class, predicted class]
    inter = conf.diagonal(dim1=1, dim2=2)[:, 1:]
    t_sum = conf.sum(2)[:, 1:]
    p_sum = conf.sum(1)[:, 1:]
    present = (t_sum + p_sum) > 0
    dice = torch.where(present, 2 * inter / (t_sum + p_sum).clamp_min(1e-12), torch.zeros_like(inter))
    n = present.sum(1)
    return torch.where(n > 0, dice.sum(1) / n.clamp_min(1), torch.ones(b, device=p.device))


def gate_samples(
    checker: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    *,
    threshold: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(accepted (B,) bool, dice (B,))``: the checker's segmentation of ``images`` vs ``labels``.

    ``checker(images)`` returns logits ``(B, K, *sp)`` or an integer map ``(B, 1, *sp)`` / ``(B, *sp)``;
    ``labels`` and ``valid`` are ``(B, 1, *sp)``; only ``valid`` voxels count.
    """
    out = checker(images)
    if out.is_floating_point() and out.ndim == images.ndim and out.shape[1] > 1:
        pred = out.argmax(1)
    elif out.ndim == images.ndim:
        pred = out[:, 0]
    else:
        pred = out
    pred = pred.round().long() if pred.is_floating_point() else pred.long()
    dice = label_dice(pred, labels[:, 0].long(), valid[:, 0])
    return dice >= threshold, dice


class Checker:
    """A frozen segmenter used by the gate: raw images -> logits, in the card's intensity convention."""

    def __init__(self, net: torch.nn.Module, card: Any, *, slice_axis: int = 2) -> None:
        self.net, self.card, self.slice_axis = net, card, int(slice_axis)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        from synthaug.transforms.slicewise import from_slices, to_slices

        conv = self.card.intensity_convention
        x = conv.normalise(images.float(), conv.fit_batch(images.float()))
        if self.card.spatial_dims == 2 and x.ndim == 5:
            out = self.net(to_slices(x, self.slice_axis))
            return from_slices(out, x.shape[0], self.slice_axis, x.ndim)
        return self.net(x)


def load_checker(name: str, *, device: torch.device | str | None = None, slice_axis: int = 2) -> Checker:
    """Load frozen ``segmenter`` weights by registry name for the gate."""
    from synthaug.weights.registry import check_family, get_card, list_weights, load

    need = (f"recipe gate.checker={name!r}: the gate needs a 'segmenter' model trained on the training cases only "
            "(`synthaug train segmenter --out DIR --set data=...`, registered through SYNTHAUG_WEIGHTS_PATH); remove "
            "'gate' from the recipe otherwise.")
    try:
        card = get_card(name)
    except WeightsError as exc:
        known = sorted(c.name for c in list_weights() if c.family == "segmenter")
        raise WeightsError(f"{need} {exc} Registered 'segmenter' weights: {', '.join(known) or 'none'}.") from None
    try:
        check_family(card, "segmenter", name)
    except WeightsError as exc:
        raise WeightsError(f"{need} {exc}") from None
    net, card = load(name, device=device)
    return Checker(net, card, slice_axis=slice_axis)
