"""Train a style-swap generator (paired or unpaired) and export it with its model card.

Data (labels are TotalSegmentator model predictions mapped to super-classes, not ground truth):

- ``mode="paired"`` (abdominal CT style swap): CT subject A only. Its training slab (z 0-94; the
  in-domain benchmark's test slab z 96-112 is held out) is split into ``n_patients`` contiguous
  sub-slabs that play the role of patients: content slices of one, style slices of another.
  Held-out pairs for evaluation come from the held-out slab only.
- ``mode="unpaired"`` (Med-USIS, CT label -> MR): CT A training-slab label maps as content and the
  *upper half* of MR subject C as unlabelled target-domain images (MR labels are never loaded into
  the generator's data). MR C's lower half stays unseen for evaluation.

Every training slice gets a body mask ``E(real image)`` (the Med-USIS mask pipeline, hard) that the
mask-consistency loss compares with ``E(generated)``; in unpaired mode that is the CT body of the
content labels' own scan. Training runs on random ``crop`` x ``crop`` windows of the content slices
(centred on a random body pixel) to fit a CPU budget; style codes are always pooled from whole style
slices, as at inference. The generator is fully convolutional and renders whole slices afterwards.

Python API::

from synthaug.training.train_style import StyleConfig, train_style
    run = train_style(StyleConfig(mode="paired", iterations=3000), "runs/style_ct_a")

Command line: ``synthaug train style --out runs/style_ct_a --set mode=paired iterations=3000``.

Loss weights (``lambda_*``; ``lambda_style=None`` means 50 paired / 10 unpaired) were set from the
scale of each term on real CT A slices: the region Gram loss between slices of two different
pseudo-patients is ~0.12, a 5x5 blur costs ~0.03 (L1 ~0.09), a +25 HU shift ~0.10.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from synthaug._validate import check_choice, check_probability
from synthaug.data.scenarios import check_no_overlap, parse_case_id
from synthaug.errors import ValidationError
from synthaug.intensity import IntensityConvention
from synthaug.losses.style import extract_mask
from synthaug.networks.style import StyleSwapGenerator
from synthaug.training.config import config_to_dict
from synthaug.training.datasets import case_id, get_training_data, image_data, is_nnunet_raw
from synthaug.training.export import export_weights
from synthaug.training.loop import LoopConfig, TrainResult, run_training
from synthaug.training.provenance import training_facts
from synthaug.training.slices import SliceSet, Volume, cut_slices
from synthaug.training.style import (
    DISCRIMINATORS,
    MaskOptions,
    PairedBatch,
    PairedStyleStep,
    StyleLossWeights,
    UnpairedBatch,
    UnpairedStyleStep,
)
from synthaug.visualize import write_grid
from synthaug.weights.card import BodyMaskSpec, FeatureSpec, ModelCard

__all__ = ["MODES", "StyleConfig", "StyleData", "StyleRun", "load_style_data", "train_style", "body_masks"]

MODES: tuple[str, ...] = ("paired", "unpaired")


@dataclass
class StyleConfig:
    name: str = "style_ct_a"
    mode: str = "paired"
    data: str = "ct_a"
    style_data: str = "mr_c_upper"
    n_patients: int = 4
    size: int = 128
    crop: int = 64
    style_dim: int = 16
    encoder_widths: tuple[int, ...] = (8, 16, 32)
    encoder_downsample: int = 2
    widths: tuple[int, ...] = (64, 64, 32, 16)
    z_dim: int = 16
    spade_hidden: int = 32
    global_code: bool | None = None
    body_class: bool = True
    min_pixels: int = 8
    code_dropout: float = 0.1
    discriminator: str = "both"
    d_width: int = 32
    d_layers: int = 3
    lambda_adv: float = 1.0
    lambda_l1: float = 10.0
    lambda_ssim: float = 2.0
    lambda_style: float | None = None
    lambda_content: float = 5.0
    lambda_seg: float = 1.0
    lambda_mask: float = 5.0
    lambda_tv: float = 0.0
    mask_threshold: float = 0.05
    mask_temperature: float = 0.1
    segmenter: str = ""
    segmenter_iterations: int = 1500
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    lr_s: float = 1e-3
    iterations: int = 3000
    batch_size: int = 8
    seed: int = 0
    sample_every: int = 500
    checkpoint_every: int = 250
    threads: int = 0

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES)
        if self.data != "ct_a" and not is_nnunet_raw(self.data):
            raise ValidationError(
                f"data={self.data!r} is neither 'ct_a' nor an nnU-Net raw dataset folder (DatasetXXX_Name with "
                "dataset.json, imagesTr/, labelsTr/); give one of them."
            )
        if self.style_data != "mr_c_upper" and not Path(self.style_data).is_dir():
            raise ValidationError(
                f"style_data={self.style_data!r} is neither 'mr_c_upper' nor a folder; give the target-domain images "
                "as an nnU-Net raw dataset or an images folder (e.g. an exported scenario's imagesGen/)."
            )
        check_choice("discriminator", self.discriminator, DISCRIMINATORS)
        check_probability("code_dropout", self.code_dropout)
        divisor = 2 ** (len(self.widths) - 1)
        for name in ("size", "crop"):
            v = int(getattr(self, name))
            if v and v % divisor:
                raise ValidationError(f"{name}={v} must be divisible by 2**(len(widths)-1)={divisor}.")
        if self.crop and not 2 ** (self.d_layers + 1) <= self.crop <= self.size:
            raise ValidationError(f"crop={self.crop} must be 0 (whole slices) or lie in [{2 ** (self.d_layers + 1)}, size].")
        if self.mode == "paired" and self.n_patients < 2:
            raise ValidationError(f"paired training needs n_patients >= 2 (content and style patients), got {self.n_patients}.")

    @property
    def use_global_code(self) -> bool:
        return (self.mode == "unpaired") if self.global_code is None else bool(self.global_code)

    @property
    def style_weight(self) -> float:
        if self.lambda_style is not None:
            return float(self.lambda_style)
        return 50.0 if self.mode == "paired" else 10.0

    def generator_arguments(self, n_labels: int) -> dict[str, Any]:
        return {
            "n_labels": n_labels, "spatial_dims": 2, "style_dim": self.style_dim,
            "encoder_widths": list(self.encoder_widths), "encoder_downsample": self.encoder_downsample,
            "widths": list(self.widths), "z_dim": self.z_dim, "hidden": self.spade_hidden,
            "global_code": self.use_global_code, "body_class": self.body_class, "min_pixels": self.min_pixels,
        }


@dataclass
class StyleData:
    """Training and held-out slices of one style-swap setting (see the module docstring)."""

    mode: str
    labels: tuple[str, ...]
    content: SliceSet
    content_masks: torch.Tensor
    patients: torch.Tensor
    patient_cases: tuple[str, ...]
    style: SliceSet
    style_masks: torch.Tensor
    heldout: SliceSet
    heldout_reference: SliceSet | None
    intensity: IntensityConvention
    content_intensity: IntensityConvention
    modality: str
    source_modality: str
    training_cases: tuple[str, ...]
    heldout_cases: tuple[str, ...]
    label_source: str
    description: str = ""


def body_masks(images: torch.Tensor, *, threshold: float = 0.1, batch: int = 64) -> torch.Tensor:
    """Hard Med-USIS masks ``E(image)`` of ``(N, 1, H, W)`` images in [-1, 1] (float {0, 1})."""
    parts = [extract_mask(images[i : i + batch], threshold=threshold, value_range=(-1.0, 1.0), hard=True)
             for i in range(0, images.shape[0], batch)]
    return torch.cat(parts)


def _split_patients(volume: Volume, n: int) -> list[Volume]:
    subject, start, _ = parse_case_id(volume.case_id)
    depth = volume.image.shape[2]
    if depth < 2 * n:
        raise ValidationError(f"{volume.case_id} has {depth} slices, too few for {n} patients.")
    bounds = torch.linspace(0, depth, n + 1).round().long().tolist()
    return [
        Volume(case_id(subject, start + a, start + b), volume.image[:, :, a:b], volume.label[:, :, a:b], volume.spacing)
        for a, b in zip(bounds[:-1], bounds[1:])
    ]


def load_style_data(cfg: StyleConfig) -> StyleData:
    """Slices, patients and body masks for ``cfg.mode`` (see the module docstring)."""
    td = get_training_data(cfg.data)
    size = (cfg.size, cfg.size)
    if cfg.mode == "paired":
        # one training volume (CT A's slab): contiguous sub-slabs play the patients; several (a user's nnU-Net
        # dataset): each training case is a patient
        patients_v = _split_patients(td.train[0], cfg.n_patients) if len(td.train) == 1 else list(td.train)
        parts = [cut_slices([v], intensity=td.intensity, spacing=td.spacing, size=size) for v in patients_v]
        content = SliceSet(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]),
                           [c for p in parts for c in p.case_ids], [i for p in parts for i in p.slice_index])
        patients = torch.cat([torch.full((len(p),), k, dtype=torch.long) for k, p in enumerate(parts)])
        held = cut_slices(td.heldout, intensity=td.intensity, spacing=td.spacing, size=size)
        masks = body_masks(content.images, threshold=cfg.mask_threshold)
        return StyleData(
            "paired", td.labels, content, masks, patients, tuple(v.case_id for v in patients_v), content, masks, held,
            None, td.intensity, td.intensity, td.modality, td.modality, td.training_cases, td.heldout_cases,
            td.label_source,
            "CT subject A only, its training slab split into pseudo-patients. " if cfg.data == "ct_a" else
            f"{td.name}: {len(patients_v)} training cases as patients (content of one, style of another). ",
        )
    from synthaug.training.train_segmenter import MR_INTENSITY, mr_c_halves

    content = cut_slices(td.train, intensity=td.intensity, spacing=td.spacing, size=size)
    if cfg.style_data == "mr_c_upper":
        upper, lower, _ = mr_c_halves()
        style_train, style_held, style_intensity, modality = [upper], [lower], MR_INTENSITY, "MR"
        held_min = 0.01  # MR C's held-out slices with labelled anatomy
        described = "CT A label maps -> MR C upper-half images (unpaired, Med-USIS losses); MR C lower half unseen. "
    else:  # the user's target-domain images (labels never read)
        images = image_data(cfg.style_data)
        style_train, style_held = list(images.train), list(images.heldout)
        style_intensity, modality = images.intensity, images.modality
        held_min = 0.0  # unlabelled: every slice
        described = (f"{td.name} label maps -> {images.name} images (unpaired, Med-USIS losses); "
                     f"{len(style_held)} {images.name} image(s) held out. ")
    style = cut_slices(style_train, intensity=style_intensity, size=size, min_foreground=0.0)
    # Unlabelled target domain: target-domain labels never reach the generator's data.
    style = SliceSet(style.images, torch.zeros_like(style.labels), style.case_ids, style.slice_index)
    held = cut_slices(style_held, intensity=style_intensity, size=size, min_foreground=held_min)
    ct_held = cut_slices(td.heldout, intensity=td.intensity, spacing=td.spacing, size=size)
    return StyleData(
        "unpaired", td.labels, content, body_masks(content.images, threshold=cfg.mask_threshold),
        torch.zeros(len(content), dtype=torch.long), td.training_cases, style,
        body_masks(style.images, threshold=cfg.mask_threshold), held, ct_held, style_intensity, td.intensity, modality,
        td.modality, (*td.training_cases, *(v.case_id for v in style_train)),
        (*(v.case_id for v in style_held), *td.heldout_cases), td.label_source, described,
    )


def _crop_starts(masks: torch.Tensor, crop: int, generator: torch.Generator) -> torch.Tensor:
    """Top-left corners ``(B, 2)`` of windows centred on a random body pixel of each mask."""
    b, _, h, w = masks.shape
    weights = masks.reshape(b, -1).float() + 1e-6
    idx = torch.multinomial(weights, 1, generator=generator)[:, 0]
    centre = torch.stack([idx // w, idx % w], dim=1)
    limit = torch.tensor([h - crop, w - crop])
    return (centre - crop // 2).clamp(min=torch.zeros(2, dtype=torch.long), max=limit)


def _crop(x: torch.Tensor, starts: torch.Tensor, crop: int) -> torch.Tensor:
    """Windows of ``(B, H, W)`` or ``(B, C, H, W)`` tensors at ``starts``."""
    r = torch.arange(crop)
    rows = (starts[:, 0, None] + r)[:, :, None]
    cols = (starts[:, 1, None] + r)[:, None, :]
    bi = torch.arange(x.shape[0])[:, None, None]
    if x.ndim == 3:
        return x[bi, rows, cols]
    return x[bi, :, rows, cols].movedim(-1, 1)


class _Sampler:
    """Draws training batches with the loop's generator (resumed runs draw the same batches)."""

    def __init__(self, data: StyleData, *, batch_size: int, crop: int) -> None:
        self.d, self.b, self.crop = data, batch_size, crop
        counts = torch.bincount(data.patients)
        self.n_patients = len(counts)
        self.starts = torch.cumsum(counts, 0) - counts
        self.counts = counts
        order = torch.argsort(data.patients, stable=True)
        self.order = order

    def _content(self, idx: torch.Tensor, generator: torch.Generator):
        d = self.d
        img, lab, mask = d.content.images[idx], d.content.labels[idx], d.content_masks[idx]
        if self.crop and self.crop < img.shape[-1]:
            s = _crop_starts(mask, self.crop, generator)
            img, lab, mask = _crop(img, s, self.crop), _crop(lab, s, self.crop), _crop(mask, s, self.crop)
        return img, lab, mask

    def __call__(self, generator: torch.Generator):
        d = self.d
        idx = torch.randint(len(d.content), (self.b,), generator=generator)
        img, lab, mask = self._content(idx, generator)
        if d.mode == "unpaired":
            j = torch.randint(len(d.style), (self.b,), generator=generator)
            real = d.style.images[j]
            if self.crop and self.crop < real.shape[-1]:
                real = _crop(real, _crop_starts(d.style_masks[j], self.crop, generator), self.crop)
            return UnpairedBatch(lab, mask, d.style.images[j], real)
        p = d.patients[idx]
        q = (p + torch.randint(1, self.n_patients, (self.b,), generator=generator)) % self.n_patients
        j = self.order[self.starts[q] + (torch.rand(self.b, generator=generator) * self.counts[q]).long().clamp(
            max=self.counts[q] - 1)]
        return PairedBatch(img, lab, mask, d.style.images[j], d.style.labels[j], d.style_masks[j])


@dataclass
class StyleRun:
    result: TrainResult
    card: ModelCard
    weights: Path
    data: StyleData = field(repr=False)


def _segmenter(cfg: StyleConfig, out_dir: Path, progress: bool) -> tuple[nn.Module | None, dict[str, Any]]:
    from synthaug.training.train_segmenter import SegmenterConfig, load_segmenter, train_segmenter

    if cfg.segmenter:
        net, card = load_segmenter(cfg.segmenter)
        return net, {"weights": cfg.segmenter, "sha256": card.sha256, "training_cases": list(card.training_cases)}
    if cfg.mode == "unpaired" or cfg.lambda_seg == 0:
        return None, {"weights": "joint (USIS consistency U-Net trained on generated images)"
                      if cfg.mode == "unpaired" else "none"}
    seg_cfg = SegmenterConfig(name=f"{cfg.name}_segmenter", data=cfg.data, size=cfg.size,
                              iterations=cfg.segmenter_iterations, seed=cfg.seed, threads=cfg.threads)
    run = train_segmenter(seg_cfg, out_dir / "segmenter", progress=progress)
    net, card = load_segmenter(run.weights)
    return net, {"weights": str(run.weights), "sha256": card.sha256, "training_cases": list(card.training_cases),
                 "heldout_dice": run.heldout_dice, "seconds": run.result.seconds}


def train_style(cfg: StyleConfig, out_dir: Path | str, *, resume: bool = True, progress: bool = True) -> StyleRun:
    """Train (resuming from ``out_dir/checkpoint.pt``) and export ``out_dir/<name>.safetensors`` + card."""
    out_dir = Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = load_style_data(cfg)
    check_no_overlap(data.training_cases, data.heldout_cases, what="generator training")
    segmenter, seg_info = _segmenter(cfg, out_dir, progress)
    n_labels = len(data.labels)
    torch.manual_seed(cfg.seed)  # parameter initialisation only; all sampling uses explicit generators
    arguments = cfg.generator_arguments(n_labels)
    g = StyleSwapGenerator(**arguments)
    weights = StyleLossWeights(cfg.lambda_adv, cfg.lambda_l1, cfg.lambda_ssim, cfg.style_weight, cfg.lambda_content,
                               cfg.lambda_seg, cfg.lambda_mask, cfg.lambda_tv)
    mask = MaskOptions(threshold=cfg.mask_threshold, temperature=cfg.mask_temperature)
    common = {"discriminator": cfg.discriminator, "d_width": cfg.d_width, "d_layers": cfg.d_layers,
              "weights": weights, "mask": mask, "lr_g": cfg.lr_g, "lr_d": cfg.lr_d}
    if cfg.mode == "paired":
        step: Any = PairedStyleStep(g, segmenter=segmenter, code_dropout=cfg.code_dropout, **common)
    else:
        step = UnpairedStyleStep(g, segmenter=segmenter, lr_s=cfg.lr_s, **common)
    loop = LoopConfig(iterations=cfg.iterations, batch_size=cfg.batch_size, seed=cfg.seed,
                      sample_every=cfg.sample_every, checkpoint_every=cfg.checkpoint_every, progress=progress)
    config = config_to_dict(cfg)
    sampler = _Sampler(data, batch_size=cfg.batch_size, crop=cfg.crop)
    result = run_training(step, sampler, loop=loop, out_dir=out_dir, config=config, resume=resume,
                          write_grid=write_grid)
    g.eval()
    card = ModelCard(
        name=cfg.name,
        family="style",
        architecture="style_swap_generator",
        arguments=arguments,
        spatial_dims=2,
        in_channels=n_labels,
        out_channels=1,
        intensity=data.intensity.to_dict(),
        labels=data.labels,
        modality=data.modality,
        source_modality=data.source_modality,
        target_modality=data.modality,
        training_cases=data.training_cases,
        features=FeatureSpec(body_mask=BodyMaskSpec(threshold=cfg.mask_threshold, value_range=(-1.0, 1.0),
                                                     opening_size=3, largest_component=True, slice_axis=2)),
        training={
            **training_facts(config, iterations=cfg.iterations, seconds=result.seconds),
            "mode": cfg.mode,
            "heldout_cases": list(data.heldout_cases),
            "patients": list(data.patient_cases),
            "content_intensity": data.content_intensity.to_dict(),
            "segmenter": seg_info,
            "label_source": data.label_source,
        },
        notes=(
            f"Per-organ style swap generator ({cfg.mode}) trained by synthaug: "
            + (data.description or ("CT subject A only, its training slab split into pseudo-patients. "
               if cfg.mode == "paired" else
               "CT A label maps -> MR C upper-half images (unpaired, Med-USIS losses); MR C lower half unseen. "))
            + f"Labels: {data.label_source}."
        ),
    )
    card, path = export_weights(g, card, out_dir)
    return StyleRun(result, card, path, data)
