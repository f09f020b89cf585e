"""Train a ConText-GAN generator and export it as a weights file with its model card.

Python API::

from synthaug.training.train_context import ContextConfig, train_context
    result = train_context(ContextConfig(data="ct_a", variant="p2pf", iterations=3000), out_dir="runs/ct")

Command line: ``synthaug train context --data ct_a --set variant=p2pf --set iterations=3000 --out runs/ct``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from synthaug._validate import check_choice, check_probability
from synthaug.appearance.remap import AppearanceRanges, remap_appearance, sample_appearance
from synthaug.errors import ValidationError
from synthaug.intensity import IntensityConvention
from synthaug.networks.context import VARIANTS, ContextGenerator
from synthaug.training.config import config_to_dict
from synthaug.training.context import ContextLossWeights, ContextStep, measure_features
from synthaug.training.datasets import get_training_data
from synthaug.training.export import export_weights
from synthaug.training.loop import LoopConfig, TrainResult, run_training
from synthaug.training.provenance import training_facts
from synthaug.training.slices import SliceSet, cut_slices
from synthaug.visualize import write_grid
from synthaug.weights.card import FeatureSpec, InferenceSpec, ModelCard

__all__ = [
    "ContextConfig",
    "ContextRun",
    "train_context",
    "feature_statistics",
    "parse_intensity",
    "appearance_batches",
    "randomised_slices",
]


def parse_intensity(text: str) -> IntensityConvention:
    """``"ct_window:-200,300"`` or ``"percentile:1,99"`` -> an :class:`IntensityConvention`."""
    try:
        kind, values = text.split(":")
        low, high = (float(v) for v in values.split(","))
    except ValueError as exc:
        raise ValidationError(
            f"intensity={text!r} must look like 'ct_window:-200,300' or 'percentile:1,99'."
        ) from exc
    return IntensityConvention(kind.strip(), low, high)


@dataclass
class ContextConfig:
    name: str = "context"
    data: str = "ct_a"
    variant: str = "p2pf"
    features: tuple[str, ...] = ("mean", "entropy")
    bins: int = 32
    size: int = 128
    axis: int = 2
    spacing: float = 0.0
    intensity: str = ""
    widths: tuple[int, ...] = (32, 64, 128, 256)
    fusion_widths: tuple[int, ...] = (16, 32, 16)
    fusion_kernel: int = 1
    noise_channels: int = 0
    spade_hidden: int = 32
    z_dim: int = 16
    d_width: int = 32
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    lambda_adv: float = 1.0
    lambda_l1: float = 10.0
    lambda_ct: float = 5.0
    lambda_ssim: float = 5.0
    random_context_prob: float = 0.25
    random_context_scale: float = 0.15
    iterations: int = 3000
    batch_size: int = 8
    seed: int = 0
    sample_every: int = 500
    checkpoint_every: int = 250
    threads: int = 0
    init_from: str = ""
    appearance_prob: float = 0.0
    appearance: dict[str, Any] = field(default_factory=dict)
    appearance_stats_draws: int = 4

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, VARIANTS)
        check_choice("axis", str(self.axis), ("0", "1", "2"))
        if self.intensity:
            parse_intensity(self.intensity)
        check_probability("random_context_prob", self.random_context_prob)
        check_probability("appearance_prob", self.appearance_prob)
        _ = self.appearance_ranges  # validates the appearance options
        if isinstance(self.appearance_stats_draws, bool) or not isinstance(self.appearance_stats_draws, int) \
                or self.appearance_stats_draws < 1:
            raise ValidationError(f"appearance_stats_draws must be an integer >= 1, got {self.appearance_stats_draws!r}.")
        if self.size % (2 ** len(self.widths)) != 0:
            raise ValidationError(
                f"size={self.size} must be divisible by 2**len(widths)={2 ** len(self.widths)}."
            )

    @property
    def appearance_ranges(self) -> AppearanceRanges:
        """The appearance distribution of the training targets (``appearance`` holds its non-default fields)."""
        if not isinstance(self.appearance, dict):
            raise ValidationError(f"appearance must be a JSON object of AppearanceRanges options, got {self.appearance!r}.")
        return AppearanceRanges.from_dict(self.appearance)


@dataclass
class ContextRun:
    result: TrainResult
    card: ModelCard
    weights: Path
    heldout: SliceSet = field(repr=False)


def feature_statistics(slices: SliceSet, *, n_labels: int, names: tuple[str, ...], bins: int) -> dict[str, Any]:
    """Per-class distributions of the normalised features over training slices (stored in the card).

    ``{"mean": [[...N_F] per class], "std": ..., "min": ..., "max": ..., "count": [...]}``; transforms
    sample requested features from these.
    """
    vals, present = [], []
    for i in range(0, len(slices), 64):
        v, p = measure_features(slices.images[i : i + 64], slices.labels[i : i + 64], n_labels=n_labels, names=names, bins=bins)
        vals.append(v)
        present.append(p)
    v = torch.cat(vals)  # (N, N_F, N_L)
    p = torch.cat(present).to(v.dtype)  # (N, N_L)
    w = p[:, None, :]
    count = p.sum(0).clamp(min=1)
    mean = (v * w).sum(0) / count
    std = (((v - mean) ** 2) * w).sum(0).div(count).sqrt()
    big = torch.where(w.bool(), v, torch.full_like(v, float("inf")))
    small = torch.where(w.bool(), v, torch.full_like(v, float("-inf")))
    lo = big.min(0).values
    hi = small.max(0).values
    lo = torch.where(torch.isfinite(lo), lo, mean)
    hi = torch.where(torch.isfinite(hi), hi, mean)
    t = lambda x: x.transpose(0, 1).tolist()  # noqa: E731 -> per class rows
    return {"mean": t(mean), "std": t(std), "min": t(lo), "max": t(hi), "count": p.sum(0).tolist()}


def appearance_batches(
    slices: SliceSet, *, batch_size: int, n_labels: int, prob: float, ranges: AppearanceRanges
) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    """Batch sampler for the training loop: real slices whose targets are appearance-randomised.

    Each sample is remapped with probability ``prob`` (:func:`synthaug.appearance.remap_appearance`); the
    features the generator is asked for are then measured on the remapped target by the step, so requests
    span the randomised range. Everything is drawn from the loop's generator (a resumed run draws the same).
    """

    def sample(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = slices.sample(batch_size, generator=gen)
        params = sample_appearance(images.shape[0], generator=gen, ranges=ranges, prob=prob)
        return remap_appearance(images, labels, params, n_labels=n_labels), labels

    return sample


def randomised_slices(
    slices: SliceSet, *, n_labels: int, ranges: AppearanceRanges, draws: int, seed: int, prob: float = 1.0
) -> SliceSet:
    """``draws`` appearance-randomised copies of every slice (for the card's feature statistics)."""
    gen = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for _ in range(draws):  # a handful of passes over ~100 slices
        params = sample_appearance(len(slices), generator=gen, ranges=ranges, prob=prob)
        images.append(remap_appearance(slices.images, slices.labels, params, n_labels=n_labels))
        labels.append(slices.labels)
    return SliceSet(torch.cat(images), torch.cat(labels), slices.case_ids * draws, slices.slice_index * draws)


def _initialise_from(g: ContextGenerator, source: Path) -> None:
    """Start from another run's generator (a ``checkpoint.pt`` or a weights file): staged training."""
    from synthaug.training.loop import load_checkpoint
    from synthaug.weights.store import load_network

    if source.is_dir():
        source = source / "checkpoint.pt"
    if source.suffix == ".pt":
        state = load_checkpoint(source)["modules"]["generator"]
    else:
        state = load_network(source)[0].state_dict()
    try:
        g.load_state_dict(state)
    except RuntimeError as exc:
        raise ValidationError(f"init_from={str(source)!r} does not match this generator's architecture: {exc}") from exc


def _grid(panels, path):
    write_grid(panels, path)


def train_context(cfg: ContextConfig, out_dir: Path | str, *, resume: bool = True, progress: bool = True) -> ContextRun:
    out_dir = Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = get_training_data(cfg.data)
    if cfg.intensity or cfg.spacing:
        data = replace(
            data,
            intensity=parse_intensity(cfg.intensity) if cfg.intensity else data.intensity,
            spacing=cfg.spacing or data.spacing,
        )
    n_labels = len(data.labels)
    cut = {"intensity": data.intensity, "spacing": data.spacing, "size": (cfg.size, cfg.size), "axis": cfg.axis}
    train = cut_slices(data.train, **cut)
    heldout = cut_slices(data.heldout, **cut)
    torch.manual_seed(cfg.seed)  # parameter initialisation only; all sampling uses explicit generators
    g = ContextGenerator(
        n_labels, len(cfg.features), variant=cfg.variant, widths=cfg.widths, fusion_widths=cfg.fusion_widths,
        z_dim=cfg.z_dim, spade_hidden=cfg.spade_hidden, fusion_kernel=cfg.fusion_kernel,
        noise_channels=cfg.noise_channels,
    )
    if cfg.init_from:
        _initialise_from(g, Path(cfg.init_from))
    step = ContextStep(
        g, features=cfg.features, bins=cfg.bins, d_width=cfg.d_width,
        weights=ContextLossWeights(cfg.lambda_adv, cfg.lambda_l1, cfg.lambda_ct, cfg.lambda_ssim),
        lr_g=cfg.lr_g, lr_d=cfg.lr_d, random_context_prob=cfg.random_context_prob,
        random_context_scale=cfg.random_context_scale,
    )
    loop = LoopConfig(
        iterations=cfg.iterations, batch_size=cfg.batch_size, seed=cfg.seed, sample_every=cfg.sample_every,
        checkpoint_every=cfg.checkpoint_every, progress=progress,
    )
    config = config_to_dict(cfg)
    if cfg.appearance_prob > 0:
        sample_batch = appearance_batches(
            train, batch_size=cfg.batch_size, n_labels=n_labels, prob=cfg.appearance_prob, ranges=cfg.appearance_ranges
        )
        # The card's feature ranges (what transforms request from) span the randomised targets, real ones included.
        stats_slices = randomised_slices(
            train, n_labels=n_labels, ranges=cfg.appearance_ranges, draws=cfg.appearance_stats_draws, seed=cfg.seed,
            prob=cfg.appearance_prob,
        )
    else:
        sample_batch, stats_slices = (lambda gen: train.sample(cfg.batch_size, generator=gen)), train
    result = run_training(
        step, sample_batch, loop=loop, out_dir=out_dir, config=config, resume=resume, write_grid=_grid,
    )
    g.eval()
    arguments = {
        "n_labels": n_labels, "n_features": len(cfg.features), "variant": cfg.variant, "spatial_dims": 2,
        "widths": list(cfg.widths), "fusion_widths": list(cfg.fusion_widths), "z_dim": cfg.z_dim,
        "spade_hidden": cfg.spade_hidden, "fusion_kernel": cfg.fusion_kernel, "noise_channels": cfg.noise_channels,
    }
    card = ModelCard(
        name=cfg.name,
        family="context",
        architecture="context_generator",
        arguments=arguments,
        spatial_dims=2,
        in_channels=n_labels,
        out_channels=1,
        intensity=data.intensity.to_dict(),
        labels=data.labels,
        spacing=(data.spacing,) * 2 if data.spacing else (),
        modality=data.modality,
        features=FeatureSpec(names=tuple(cfg.features), bins=cfg.bins, value_range=(-1.0, 1.0),
                             stats=feature_statistics(stats_slices, n_labels=n_labels, names=tuple(cfg.features),
                                                      bins=cfg.bins)),
        inference=InferenceSpec(canvas=(cfg.size, cfg.size)),
        training_cases=data.training_cases,
        training={
            **training_facts(config, iterations=cfg.iterations, seconds=result.seconds),
            "heldout_cases": list(data.heldout_cases),
            "label_source": data.label_source,
        },
        notes=f"ConText-GAN {cfg.variant.upper()} trained by synthaug on {cfg.data}. Labels: {data.label_source}.",
    )
    card, weights = export_weights(g, card, out_dir)
    return ContextRun(result, card, weights, heldout)
