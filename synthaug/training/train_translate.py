"""Train a modality-translation generator (NEC, CycleGAN, pix2pix, ResGAN) and export weights + model card.

Python API::

from synthaug.training.train_translate import TranslateConfig, train_translate
    run = train_translate(TranslateConfig(mode="nec", data="brain_t1_t2", iterations=3000), "runs/t1t2_nec")

Command line: ``synthaug train translate --mode nec --out runs/t1t2_nec --set data=brain_t1_t2 iterations=3000``.
``data`` is a built-in name or a spec of the user's own data (``simulated:T1w:PDw``, ``folder:SRC_DIR:TGT_DIR``,
``nnunet:DATASET:0000:0001``, ...: :mod:`synthaug.training.translate_spec`), parsed once in the config and
recorded in the card in its canonical form.

Conventions (shared with :mod:`synthaug.training.train_context`): JSON config + ``--set`` overrides,
:func:`synthaug.training.loop.run_training` (seeded, resumable checkpoint, progress bar, loss log,
sample grids), a safetensors export with its :class:`~synthaug.weights.card.ModelCard`. Weights are
selected on the validation split: every ``validate_every`` iterations (and at the end) the generator
translates the validation volumes (whole volumes: slice-wise in 2D, overlapping patches in 3D) and the
state with the best mean SSIM (foreground-masked, as in :mod:`synthaug.training.eval_translate`) is
kept; its iteration is recorded in the card. The kept state lives in a module of the training step, so
it is checkpointed and a resumed run selects exactly as an uninterrupted one. Unpaired data without
paired validation images (CT -> MR) uses the last state (``select_by="auto"``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from synthaug._validate import check_choice, check_positive, check_probability
from synthaug.errors import ValidationError
from synthaug.networks.discriminators import MultiScalePatchDiscriminator, PatchDiscriminator
from synthaug.training.config import config_to_dict
from synthaug.training.eval_translate import slice_metrics, translate_volume
from synthaug.training.export import export_weights
from synthaug.training.loop import LoopConfig, TrainResult, run_training
from synthaug.training.provenance import training_facts
from synthaug.training.translate import (
    MODES,
    PAIRED_MODES,
    AutoContextGenerator,
    CycleGANStep,
    NECStep,
    Pix2PixStep,
    ResGANStep,
    ResGANWeights,
)
from synthaug.training.translate_data import (
    PatchSampler,
    TranslationData,
    cut_translation_slices,
    get_translation_data,
    normalise_case,
)
from synthaug.training.translate_spec import parse_translation_spec
from synthaug.visualize import write_grid
from synthaug.weights.card import InferenceSpec, ModelCard

__all__ = ["TranslateConfig", "TranslateRun", "build_step", "train_translate", "generator_spec"]

SELECT_BY: tuple[str, ...] = ("auto", "ssim", "last")


@dataclass
class TranslateConfig:
    """Options of ``synthaug train translate`` (plain values; stored in checkpoints and cards)."""

    name: str = "translate"
    mode: str = "nec"
    data: str = "brain_t1_t2"
    spatial_dims: int = 0  # 0 = mode default: 3 (32^3 patches) for resgan, 2 (slices) otherwise
    size: int = 128
    patch: int = 32
    min_foreground: float = 0.05
    # ResNet generator (nec, cyclegan)
    g_width: int = 16
    g_downsample: int = 2
    g_blocks: int = 6
    # U-Net generator (pix2pix, resgan)
    unet_widths: tuple[int, ...] = ()  # () = (32, 64, 128, 256) in 2D, (16, 32, 64) in 3D
    dropout: float = 0.0
    auto_context: bool = False
    norm: str = "instance"
    # discriminators: d_scales 0 = mode default (3 for nec, 1 otherwise)
    d_width: int = 32
    d_layers: int = 3
    d_scales: int = 0
    gan_mode: str = ""  # "" = mode default: bce for resgan (as in the seed), lsgan otherwise
    # losses
    lambda_ngf: float = 1.0
    ngf_eps: float = 0.15
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    lambda_l1: float = 100.0
    resgan_adv: float = 0.5
    resgan_l1: float = 1.0
    resgan_gdl: float = 1.0
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    # loop and selection
    iterations: int = 3000
    batch_size: int = 4
    seed: int = 0
    log_every: int = 25
    sample_every: int = 500
    checkpoint_every: int = 250
    validate_every: int = 250
    select_by: str = "auto"
    validation_overlap: float = 0.5
    threads: int = 0

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES)
        self.data = parse_translation_spec(self.data).text  # parsed once; cards record the canonical text
        if self.spatial_dims == 0:
            self.spatial_dims = 3 if self.mode == "resgan" else 2
        if not self.unet_widths:
            self.unet_widths = (32, 64, 128, 256) if self.spatial_dims == 2 else (16, 32, 64)
        self.unet_widths = tuple(int(w) for w in self.unet_widths)
        if self.spatial_dims not in (2, 3):
            raise ValidationError(f"spatial_dims must be 2 (slices) or 3 (patches), got {self.spatial_dims!r}.")
        check_choice("select_by", self.select_by, SELECT_BY)
        check_choice("norm", self.norm, ("instance", "batch", "none"))
        if self.gan_mode:
            check_choice("gan_mode", self.gan_mode, ("lsgan", "bce", "hinge"))
        check_probability("min_foreground", self.min_foreground)
        check_positive("ngf_eps", self.ngf_eps)
        if self.auto_context and self.mode != "resgan":
            raise ValidationError(f"auto_context is a ResGAN option; got mode={self.mode!r}. Use mode=resgan.")
        for name in ("iterations", "batch_size", "validate_every", "d_layers", "d_width", "g_width", "patch", "size"):
            if int(getattr(self, name)) < 1:
                raise ValidationError(f"{name} must be >= 1, got {getattr(self, name)!r}.")
        divisor = self.divisor
        edge = self.size if self.spatial_dims == 2 else self.patch
        what = "size" if self.spatial_dims == 2 else "patch"
        if edge % divisor:
            raise ValidationError(
                f"{what}={edge} must be divisible by {divisor} (the generator halves it "
                f"{divisor.bit_length() - 1} time(s)); change {what} or the generator depth."
            )
        need = 2 ** (self.d_layers + 1) * 2 ** (self.scales - 1)
        if edge < need:
            raise ValidationError(
                f"{what}={edge} is too small for a discriminator with d_layers={self.d_layers} and d_scales={self.scales} "
                f"(needs >= {need}). Use a larger {what}, d_layers={max(1, self.d_layers - 1)} or fewer scales."
            )

    @property
    def divisor(self) -> int:
        return 2**self.g_downsample if self.mode in ("nec", "cyclegan") else 2 ** len(self.unet_widths)

    @property
    def scales(self) -> int:
        return self.d_scales or (3 if self.mode == "nec" else 1)

    @property
    def gan(self) -> str:
        return self.gan_mode or ("bce" if self.mode == "resgan" else "lsgan")

    @property
    def paired(self) -> bool:
        return self.mode in PAIRED_MODES


@dataclass
class TranslateRun:
    result: TrainResult
    card: ModelCard
    weights: Path
    best_step: int
    best_score: float | None


def generator_spec(cfg: TranslateConfig) -> tuple[str, dict[str, Any]]:
    """(architecture name, constructor arguments) of the exported generator."""
    dims = cfg.spatial_dims
    if cfg.mode in ("nec", "cyclegan"):
        return "resnet_generator", {
            "in_channels": 1, "out_channels": 1, "spatial_dims": dims, "width": cfg.g_width,
            "n_downsample": cfg.g_downsample, "n_blocks": cfg.g_blocks, "norm": cfg.norm, "output": "tanh",
        }
    args = {
        "in_channels": 1, "out_channels": 1, "spatial_dims": dims, "widths": list(cfg.unet_widths), "norm": cfg.norm,
        "dropout": cfg.dropout, "residual": cfg.mode == "resgan", "output": "tanh", "upsample": "transpose",
    }
    if cfg.auto_context:
        return "auto_context_unet", {**args, "n_stages": 2}
    return "unet_generator", args


def _build(architecture: str, args: dict[str, Any]) -> nn.Module:
    from synthaug.weights.architectures import build_network

    return build_network(architecture, args)


def _discriminator(cfg: TranslateConfig, in_channels: int) -> nn.Module:
    if cfg.scales == 1:
        return PatchDiscriminator(in_channels, spatial_dims=cfg.spatial_dims, width=cfg.d_width, n_layers=cfg.d_layers, norm=cfg.norm)
    return MultiScalePatchDiscriminator(
        in_channels, spatial_dims=cfg.spatial_dims, n_scales=cfg.scales, width=cfg.d_width, n_layers=cfg.d_layers, norm=cfg.norm
    )


def build_step(cfg: TranslateConfig):
    """The training step of ``cfg.mode`` with freshly initialised networks (seed the global RNG first)."""
    arch, args = generator_spec(cfg)
    g = _build(arch, args)
    dims, gan = cfg.spatial_dims, cfg.gan
    if cfg.mode == "nec":
        return NECStep(g, _discriminator(cfg, 1), spatial_dims=dims, lambda_ngf=cfg.lambda_ngf, eps=cfg.ngf_eps,
                       gan_mode=gan, lr_g=cfg.lr_g, lr_d=cfg.lr_d)
    if cfg.mode == "cyclegan":
        return CycleGANStep(g, _build(arch, args), _discriminator(cfg, 1), _discriminator(cfg, 1), spatial_dims=dims,
                            lambda_cycle=cfg.lambda_cycle, lambda_identity=cfg.lambda_identity, gan_mode=gan,
                            lr_g=cfg.lr_g, lr_d=cfg.lr_d)
    if cfg.mode == "pix2pix":
        return Pix2PixStep(g, _discriminator(cfg, 2), spatial_dims=dims, lambda_l1=cfg.lambda_l1, gan_mode=gan,
                           lr_g=cfg.lr_g, lr_d=cfg.lr_d)
    n_stages = len(g.stages) if isinstance(g, AutoContextGenerator) else 1
    return ResGANStep(g, [_discriminator(cfg, 2) for _ in range(n_stages)], spatial_dims=dims,
                      weights=ResGANWeights(cfg.resgan_adv, cfg.resgan_l1, cfg.resgan_gdl), gan_mode=gan,
                      lr_g=cfg.lr_g, lr_d=cfg.lr_d)


# ------------------------------------------------------------------------------------------ batches


def make_sampler(cfg: TranslateConfig, data: TranslationData) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    """``sample(generator) -> (source, target)`` batches of ``cfg.batch_size`` from the training splits."""
    b = cfg.batch_size
    if cfg.paired:
        cases = data.split("train_paired")
        if not cases:
            raise ValidationError(
                f"mode={cfg.mode!r} needs paired training data, but {data.name!r} is unpaired "
                f"({data.source_modality} -> {data.target_modality}); use mode=nec or mode=cyclegan."
            )
    if cfg.spatial_dims == 2:
        if cfg.paired:
            s = cut_translation_slices(cases, size=cfg.size, intensity=data.intensity, min_foreground=cfg.min_foreground)

            def paired2d(gen: torch.Generator):
                idx = torch.randint(len(s), (b,), generator=gen)
                return s.source[idx], s.target[idx]

            return paired2d
        src = cut_translation_slices(data.split("train_source"), size=cfg.size, intensity=data.intensity, min_foreground=cfg.min_foreground)
        tgt = cut_translation_slices(data.split("train_target"), size=cfg.size, intensity=data.intensity, min_foreground=cfg.min_foreground)

        def unpaired2d(gen: torch.Generator):
            i = torch.randint(len(src), (b,), generator=gen)
            j = torch.randint(len(tgt), (b,), generator=gen)
            return src.source[i], tgt.target[j]

        return unpaired2d

    def volumes(cases, which: tuple[str, ...]):
        vols, masks = [], []
        for c in cases:
            vols.append(torch.stack([normalise_case(getattr(c, w), data.intensity) for w in which]))
            masks.append(torch.from_numpy(c.mask.copy()))
        return PatchSampler(vols, masks, patch=cfg.patch)

    if cfg.paired:
        ps = volumes(cases, ("source", "target"))

        def paired3d(gen: torch.Generator):
            x = ps.sample(b, generator=gen)
            return x[:, :1], x[:, 1:]

        return paired3d
    ss = volumes(data.split("train_source"), ("source",))
    ts = volumes(data.split("train_target"), ("target",))
    return lambda gen: (ss.sample(b, generator=gen), ts.sample(b, generator=gen))


# ------------------------------------------------------------------------------------------ selection


class _Selection(nn.Module):
    """Holds the best generator state so far, its score and step, and the iteration counter (checkpointed)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.best = copy.deepcopy(generator).requires_grad_(False)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self.register_buffer("best_step", torch.full((), -1, dtype=torch.long))
        self.register_buffer("best_score", torch.full((), float("-inf"), dtype=torch.float64))


class _SelectingStep:
    """Wraps a translation step: after each step, validate every ``every`` iterations and keep the best."""

    def __init__(self, inner, score: Callable[[nn.Module], float], *, every: int, total: int, log: Path) -> None:
        self.inner = inner
        self.keeper = _Selection(inner.generator)
        self.modules = {**inner.modules, "selection": self.keeper}
        self.optimizers = inner.optimizers
        self.score, self.every, self.total, self.log = score, every, total, log

    def step(self, batch, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        losses = self.inner.step(batch, generator=generator)
        it = int(self.keeper.iteration) + 1
        self.keeper.iteration.fill_(it)
        if it % self.every == 0 or it == self.total:
            g = self.inner.generator
            was = g.training
            g.eval()
            value = float(self.score(g))
            g.train(was)
            better = value > float(self.keeper.best_score)
            if better:
                self.keeper.best.load_state_dict(g.state_dict())
                self.keeper.best_score.fill_(value)
                self.keeper.best_step.fill_(it)
            with open(self.log, "a") as f:
                f.write(json.dumps({"step": it, "val_ssim": value, "best": better}) + "\n")
        return losses

    def preview(self, batch, *, generator: torch.Generator) -> list[torch.Tensor]:
        return self.inner.preview(batch, generator=generator)


def make_validator(cfg: TranslateConfig, data: TranslationData, inference: dict[str, Any]) -> Callable[[nn.Module], float]:
    """Mean foreground-masked SSIM of whole-volume translations of the validation split."""
    cases = [c for c in data.split("validation") if c.paired]
    if not cases:
        raise ValidationError(f"data {data.name!r} has no paired validation cases; use select_by=last.")
    prepared = []
    for c in cases:
        mask = torch.from_numpy(c.mask.copy())
        keep = (mask.float().mean(dim=(0, 1)) >= cfg.min_foreground).nonzero().flatten()
        if keep.numel():
            src, tgt = normalise_case(c.source, data.intensity), normalise_case(c.target, data.intensity)
            if cfg.spatial_dims == 2:  # slices are translated independently: skip the unscored ones
                src, tgt, mask = src[:, :, keep], tgt[:, :, keep], mask[:, :, keep]
                keep = torch.arange(keep.numel())
            prepared.append((src, tgt, mask, keep))
    if not prepared:
        raise ValidationError("no validation slice passes min_foreground.")

    @torch.no_grad()
    def score(g: nn.Module) -> float:
        values = []
        for src, tgt, mask, keep in prepared:
            out = translate_volume(g, src, spatial_dims=cfg.spatial_dims, inference=inference, overlap=cfg.validation_overlap)
            o, t = (v[:, :, keep].permute(2, 0, 1)[:, None] for v in (out, tgt))
            values.append(slice_metrics(o, t, mask[:, :, keep].permute(2, 0, 1))["ssim"])
        return float(torch.cat(values).mean())

    return score


# ------------------------------------------------------------------------------------------ training


def _grid(panels, path):
    write_grid(panels, path)


def train_translate(cfg: TranslateConfig, out_dir: Path | str, *, resume: bool = True, progress: bool = True) -> TranslateRun:
    """Train ``cfg.mode`` on ``cfg.data``, select weights on validation, export ``<name>.safetensors`` + card."""
    out_dir = Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = get_translation_data(cfg.data)
    if cfg.paired and not data.paired:
        raise ValidationError(
            f"mode={cfg.mode!r} needs paired data, but {data.name!r} ({data.source_modality} -> {data.target_modality}) "
            "is unpaired; use mode=nec or mode=cyclegan."
        )
    if not cfg.paired and not (data.case_ids["train_source"] and data.case_ids["train_target"]):
        raise ValidationError(
            f"mode={cfg.mode!r} trains on {data.source_modality} and {data.target_modality} images of different cases, "
            f"but {data.name!r} has {len(data.case_ids['train_paired'])} paired training case(s) to split; add cases or "
            "use a paired mode (pix2pix, resgan)."
        )
    if cfg.spatial_dims == 2 and data.size > cfg.size:
        raise ValidationError(
            f"the slices of {data.name!r} need a {data.size}x{data.size} canvas but size={cfg.size} would crop them; set "
            f"size={data.size} (a multiple of {cfg.divisor}) or resample the data to a coarser spacing."
        )
    select = cfg.select_by
    if select == "auto":
        select = "ssim" if data.paired else "last"
    if select == "ssim" and not data.paired:
        raise ValidationError(f"select_by=ssim needs paired validation data; {data.name!r} is unpaired. Use select_by=last.")
    sample = make_sampler(cfg, data)
    torch.manual_seed(cfg.seed)  # parameter initialisation only; every sampled value uses explicit generators
    inner = build_step(cfg)
    inference = (InferenceSpec(canvas=(cfg.size, cfg.size), divisor=cfg.divisor, pad_value=-1.0) if cfg.spatial_dims == 2
                 else InferenceSpec(patch=(cfg.patch,) * 3, divisor=cfg.divisor, overlap=0.5, weighting="uniform",
                                    pad_value=-1.0))
    out_dir.mkdir(parents=True, exist_ok=True)
    step: Any = inner
    if select == "ssim":
        step = _SelectingStep(inner, make_validator(cfg, data, inference), every=cfg.validate_every,
                              total=cfg.iterations, log=out_dir / "validation.jsonl")
    loop = LoopConfig(iterations=cfg.iterations, batch_size=cfg.batch_size, seed=cfg.seed, log_every=cfg.log_every,
                      sample_every=cfg.sample_every, checkpoint_every=cfg.checkpoint_every, progress=progress)
    config = config_to_dict(cfg)
    result = run_training(step, sample, loop=loop, out_dir=out_dir, config=config, resume=resume, write_grid=_grid)

    arch, args = generator_spec(cfg)
    export = _build(arch, args)
    if select == "ssim":
        export.load_state_dict(step.keeper.best.state_dict())
        best_step, best_score = int(step.keeper.best_step), float(step.keeper.best_score)
    else:
        export.load_state_dict(inner.generator.state_dict())
        best_step, best_score = cfg.iterations, None
    export.eval()
    paired_training = cfg.paired
    card = ModelCard(
        name=cfg.name,
        family="translate",
        inference=inference,
        architecture=arch,
        arguments=args,
        spatial_dims=cfg.spatial_dims,
        in_channels=1,
        out_channels=1,
        intensity=data.intensity.to_dict(),
        labels=(),
        spacing=(data.spacing,) * cfg.spatial_dims,
        modality=data.target_modality,
        source_modality=data.source_modality,
        target_modality=data.target_modality,
        training_cases=data.training_cases(paired_training),
        training={
            **training_facts(config, iterations=cfg.iterations, seconds=result.seconds),
            "mode": cfg.mode,
            "data": cfg.data,
            "paired_training": paired_training,
            "simulated": data.simulated,
            "selection": {
                "by": select,
                "best_step": best_step,
                "best_score": best_score,
                "metric": "mean foreground-masked SSIM of whole validation volumes" if select == "ssim" else "last iteration",
                "validate_every": cfg.validate_every,
                "validation_cases": list(data.case_ids["validation"]),
            },
            "test_cases": list(data.case_ids["test"]),
            "label_source": data.label_source,
        },
        notes=(
            f"{cfg.mode.upper() if cfg.mode != 'cyclegan' else 'CycleGAN'}{' + auto-context' if cfg.auto_context else ''} "
            f"{data.source_modality} -> {data.target_modality} ({cfg.spatial_dims}D) trained by synthaug on {cfg.data}. "
            f"Intensities: each volume clipped to its 1-99 percentiles and scaled to [-1, 1]. {data.notes}"
        ),
    )
    card, weights = export_weights(export, card, out_dir)
    return TranslateRun(result, card, weights, best_step, best_score)
