"""Train a small frozen 2D U-Net segmenter on *real* slices only (family ``"segmenter"``).

The style-swap family uses it twice: as the Med-USIS segmentation-consistency network of paired
training (frozen, so the generator must render organs a real-data segmenter recognises) and as the
judge of **label fidelity** in evaluation (Dice of ``segmenter(generated)`` against the content
labels). It never sees a generated image and never a held-out slice.

Data (``SegmenterConfig.data``):

- ``"ct_a"``: the CT A training slab of :func:`synthaug.training.datasets.get_training_data`
  (the in-domain held-out slab z 96-112 is only scored);
- ``"mr_c_upper"``: the upper half of MR C with its super-class labels (the lower half is only
  scored). This segmenter exists to *evaluate* unpaired CT-label -> MR generators; the generator
  itself never sees MR labels.

Labels are TotalSegmentator model predictions mapped to super-classes, not manual ground truth.

Python API::

from synthaug.training.train_segmenter import SegmenterConfig, train_segmenter
    run = train_segmenter(SegmenterConfig(data="ct_a", iterations=1500), "runs/seg_ct_a")

Command line: ``synthaug train segmenter --out runs/seg_ct_a --set data=ct_a iterations=1500``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from synthaug._validate import closest
from synthaug.errors import ValidationError
from synthaug.intensity import IntensityConvention
from synthaug.losses.adversarial import class_balance_weights
from synthaug.networks.discriminators import SegmentationDiscriminator
from synthaug.training.config import config_to_dict
from synthaug.training.datasets import case_id, get_training_data, is_nnunet_raw
from synthaug.training.export import export_weights
from synthaug.training.loop import LoopConfig, TrainResult, run_training
from synthaug.training.provenance import training_facts
from synthaug.training.slices import SliceSet, Volume, cut_slices
from synthaug.visualize import write_grid
from synthaug.weights.card import InferenceSpec, ModelCard

__all__ = [
    "SEGMENTER_DATA",
    "MR_INTENSITY",
    "SegmenterConfig",
    "SegmenterData",
    "SegmenterRun",
    "SegmenterStep",
    "dice_per_class",
    "load_segmenter",
    "mr_c_halves",
    "segment",
    "segmenter_data",
    "train_segmenter",
]

SEGMENTER_DATA: tuple[str, ...] = ("ct_a", "mr_c_upper")
MR_INTENSITY = IntensityConvention.percentile(1.0, 99.0)
"""MR C intensities: each volume clipped to its own 1-99 percentiles, linear to [-1, 1]."""


@dataclass(frozen=True)
class SegmenterData:
    name: str
    train: SliceSet
    heldout: SliceSet
    labels: tuple[str, ...]
    intensity: IntensityConvention
    modality: str
    training_cases: tuple[str, ...]
    heldout_cases: tuple[str, ...]
    label_source: str


def mr_c_halves() -> tuple[Volume, Volume, str]:
    """MR C as (upper-half volume, lower-half volume, label source) with super-class labels.

    The upper half (``slab_indices(mr, "upper")``) is the only MR any synthaug generator may see; the
    lower half stays unseen for evaluation (the cross-modality scenario's test group).
    """
    from synthaug.data.scenarios import map_labels
    from synthaug.data.subjects import load_subject, slab_indices

    mr = load_subject("mr_c")
    label = map_labels(np.asarray(mr.label), mr, "superclass")
    n = mr.image.shape[2]
    out = []
    for part in ("upper", "lower"):
        s = slab_indices(mr, part)
        a, b = s.start or 0, s.stop if s.stop is not None else n
        out.append(Volume(case_id("mr_c", a, b), mr.image[:, :, a:b], label[:, :, a:b], mr.spacing))
    return out[0], out[1], mr.label_source


def _check_data(name: str) -> None:
    if name not in SEGMENTER_DATA and not is_nnunet_raw(name):
        raise ValidationError(
            f"data={name!r} is neither one of {list(SEGMENTER_DATA)} nor an nnU-Net raw dataset folder (with "
            f"dataset.json).{closest(str(name), SEGMENTER_DATA)}"
        )


def segmenter_data(name: str, *, size: int = 128) -> SegmenterData:
    """Real training and held-out slices of one segmenter dataset (see the module docstring): ``ct_a``,
    ``mr_c_upper`` or an nnU-Net raw dataset folder (its held-out cases as :func:`nnunet_raw_data` picks them)."""
    _check_data(name)
    if name not in SEGMENTER_DATA or name == "ct_a":
        td = get_training_data(name)
        train = cut_slices(td.train, intensity=td.intensity, spacing=td.spacing, size=(size, size))
        held = cut_slices(td.heldout, intensity=td.intensity, spacing=td.spacing, size=(size, size))
        return SegmenterData(td.name, train, held, td.labels, td.intensity, td.modality, td.training_cases,
                             td.heldout_cases, td.label_source)
    from synthaug.data.vocabulary import superclass_vocabulary

    upper, lower, source = mr_c_halves()
    train = cut_slices([upper], intensity=MR_INTENSITY, size=(size, size))
    held = cut_slices([lower], intensity=MR_INTENSITY, size=(size, size))
    return SegmenterData(name, train, held, tuple(superclass_vocabulary().names), MR_INTENSITY, "MR",
                         (upper.case_id,), (lower.case_id,), source)


@dataclass
class SegmenterConfig:
    name: str = "segmenter_ct_a"
    data: str = "ct_a"
    size: int = 128
    widths: tuple[int, ...] = (16, 32, 64, 128)
    lr: float = 1e-3
    dice_weight: float = 1.0
    jitter: float = 0.1
    iterations: int = 1500
    batch_size: int = 8
    seed: int = 0
    sample_every: int = 500
    checkpoint_every: int = 250
    threads: int = 0

    def __post_init__(self) -> None:
        _check_data(self.data)
        if self.size % (2 ** (len(self.widths) - 1)):
            raise ValidationError(f"size={self.size} must be divisible by 2**(len(widths)-1)={2 ** (len(self.widths) - 1)}.")
        if not 0.0 <= self.jitter < 1.0:
            raise ValidationError(f"jitter must lie in [0, 1), got {self.jitter}.")


def build_segmenter(n_classes: int, widths: tuple[int, ...], spatial_dims: int = 2) -> tuple[nn.Module, dict[str, Any]]:
    arguments = {"in_channels": 1, "n_classes": n_classes, "spatial_dims": spatial_dims, "widths": list(widths),
                 "spectral": False}
    return SegmentationDiscriminator(**arguments), arguments


def dice_per_class(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dice per class over the whole set ``(K,)`` and whether the class occurs in ``target`` ``(K,)``."""
    p = F.one_hot(pred.long().reshape(-1), n_classes)
    t = F.one_hot(target.long().reshape(-1), n_classes)
    inter = (p & t).sum(0).double()
    total = (p.sum(0) + t.sum(0)).double()
    dice = torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total))
    return dice.float(), t.sum(0) > 0


def _soft_dice(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    k = logits.shape[1]
    prob = logits.softmax(1)
    onehot = F.one_hot(labels, k).movedim(-1, 1).to(prob.dtype)
    dims = (0, *range(2, prob.ndim))
    inter = (prob * onehot).sum(dims)
    total = prob.sum(dims) + onehot.sum(dims)
    present = onehot.sum(dims) > 0
    dice = 2 * inter / total.clamp_min(1e-6)
    return 1 - dice[present].mean()


class SegmenterStep:
    """Class-balanced cross-entropy + soft Dice on real slices, with a mild intensity jitter."""

    def __init__(self, net: nn.Module, *, lr: float = 1e-3, dice_weight: float = 1.0, jitter: float = 0.1) -> None:
        self.net = net
        self.modules = {"segmenter": net}
        self.optimizers = {"segmenter": torch.optim.Adam(net.parameters(), lr=lr)}
        self.dice_weight, self.jitter = dice_weight, jitter

    def step(self, batch: Any, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        images, labels = batch
        b = images.shape[0]
        if self.jitter > 0:
            u = torch.rand(2, b, generator=generator).to(images.device, images.dtype) * 2 - 1
            shape = (b,) + (1,) * (images.ndim - 1)
            images = images * (1 + self.jitter * u[0].view(shape)) + self.jitter * u[1].view(shape)
        logits = self.net(images)
        k = logits.shape[1]
        alpha = class_balance_weights(labels, k, dtype=logits.dtype)
        ce = (F.cross_entropy(logits, labels, reduction="none") * alpha[labels]).mean()
        dice = _soft_dice(logits, labels)
        loss = ce + self.dice_weight * dice
        self.optimizers["segmenter"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["segmenter"].step()
        return {"ce": ce.detach(), "dice_loss": dice.detach(), "loss": loss.detach()}

    @torch.no_grad()
    def preview(self, batch: Any, *, generator: torch.Generator) -> list[torch.Tensor]:
        images, labels = batch
        self.net.eval()
        pred = self.net(images).argmax(1)
        self.net.train()
        return [images, labels, pred]


@torch.no_grad()
def segment(net: nn.Module, images: torch.Tensor, *, batch_size: int = 32) -> torch.Tensor:
    """Argmax labels ``(N, *S)`` of ``images`` ``(N, 1, *S)`` in [-1, 1] (batched)."""
    outs = [net(images[i : i + batch_size]).argmax(1) for i in range(0, images.shape[0], batch_size)]
    return torch.cat(outs) if outs else images.new_zeros((0, *images.shape[2:]), dtype=torch.long)


def load_segmenter(name_or_path: str | Path, *, device: torch.device | str | None = None) -> tuple[nn.Module, ModelCard]:
    """A frozen segmenter and its card (refuses weights of another family)."""
    from synthaug.weights.registry import load

    net, card = load(name_or_path, device=device, family="segmenter")
    return net, card


@dataclass
class SegmenterRun:
    result: TrainResult
    card: ModelCard
    weights: Path
    heldout_dice: dict[str, float] = field(default_factory=dict)


def train_segmenter(cfg: SegmenterConfig, out_dir: Path | str, *, resume: bool = True, progress: bool = True) -> SegmenterRun:
    """Train on real training slices, score Dice on the real held-out slices, export weights + card."""
    out_dir = Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = segmenter_data(cfg.data, size=cfg.size)
    k = len(data.labels)
    torch.manual_seed(cfg.seed)
    net, arguments = build_segmenter(k, tuple(cfg.widths))
    step = SegmenterStep(net, lr=cfg.lr, dice_weight=cfg.dice_weight, jitter=cfg.jitter)
    loop = LoopConfig(iterations=cfg.iterations, batch_size=cfg.batch_size, seed=cfg.seed, sample_every=cfg.sample_every,
                      checkpoint_every=cfg.checkpoint_every, progress=progress)
    config = config_to_dict(cfg)
    result = run_training(step, lambda gen: data.train.sample(cfg.batch_size, generator=gen), loop=loop,
                          out_dir=out_dir, config=config, resume=resume, write_grid=write_grid)
    net.eval()
    pred = segment(net, data.heldout.images)
    dice, present = dice_per_class(pred, data.heldout.labels, k)
    per_class = {data.labels[i]: round(float(dice[i]), 4) for i in range(1, k) if bool(present[i])}
    mean_fg = float(dice[1:][present[1:]].mean()) if bool(present[1:].any()) else float("nan")
    card = ModelCard(
        name=cfg.name,
        family="segmenter",
        inference=InferenceSpec(canvas=(cfg.size, cfg.size)),
        architecture="segmentation_unet",
        arguments=arguments,
        spatial_dims=2,
        in_channels=1,
        out_channels=k,
        intensity=data.intensity.to_dict(),
        labels=data.labels,
        modality=data.modality,
        training_cases=data.training_cases,
        training={
            **training_facts(config, iterations=cfg.iterations, seconds=result.seconds),
            "heldout_cases": list(data.heldout_cases),
            "label_source": data.label_source,
        },
        metrics={"heldout_dice": per_class, "heldout_mean_dice": round(mean_fg, 4),
                 "note": "Dice on real held-out slices; labels are TotalSegmentator predictions, not ground truth."},
        notes=f"2D U-Net segmenter trained by synthaug on real {cfg.data} slices only (frozen judge / consistency "
              f"network of the style family). Labels: {data.label_source}.",
    )
    card, weights = export_weights(net, card, out_dir)
    return SegmenterRun(result, card, weights, {**per_class, "mean": round(mean_fg, 4)})
