"""Modality-translation training steps: NEC, CycleGAN, pix2pix and ResGAN (+ auto-context), 2D and 3D.

Every step satisfies :class:`synthaug.training.loop.TrainStep`: it owns its networks (``modules``),
optimisers (``optimizers``), computes its losses in :meth:`step` and returns them detached, and
draws preview panels in :meth:`preview`. Batches are ``(source, target)`` tensors ``(B, 1, *S)`` in
[-1, 1]: unpaired (independent draws) for NEC and CycleGAN, paired (same voxels) for pix2pix and ResGAN.
The only randomness inside a step (U-Net dropout) comes from the ``torch.Generator`` passed in.

Losses:

- **NEC** (Jaouen et al., ISBI 2024): one generator ``G: S -> T`` and a multi-scale PatchGAN;
  ``L = L_GAN + lambda_ngf * L_NGF(s, G(s))`` with ``L_NGF = 1 - 0.5 <n_eps(s), n_eps(G(s))>^2``
  (:func:`synthaug.losses.gradient.ngf_loss`, ``eps = 0.15``).
- **CycleGAN** (Zhu et al., 2017): ``G: S -> T``, ``F: T -> S``, discriminators ``D_T``, ``D_S``;
  ``L = L_GAN(G) + L_GAN(F) + lambda_cycle (|F(G(s)) - s| + |G(F(t)) - t|)
  + lambda_identity * lambda_cycle (|G(t) - t| + |F(s) - s|)`` (least squares GAN, 10 and 0.5 by
  default). No image history pool (the checkpoint holds only module and optimiser states).
- **pix2pix** (Isola et al., 2017; paired upper bound): U-Net generator, PatchGAN on
  ``[source, image]``; ``L_G = L_GAN + lambda_l1 |G(s) - t|`` (100 by default).
- **ResGAN** (Nie et al., 2018; paired): U-Net with an input->output skip, conditional PatchGAN;
  ``L_G = 0.5 L_GAN + |G(s) - t| + GDL(G(s), t)`` (GDL on every spatial axis,
  :func:`synthaug.losses.gradient.gradient_difference_loss`). With auto-context
  (:class:`AutoContextGenerator`) each stage has its own discriminator and loss; stage ``k`` sees
  ``[stage k-1 output (detached), source]`` and its skip adds the previous output, so it learns a
  correction. All stages train together, from the first iteration.

Discriminators: least squares by default (``gan_mode``), one update per generator update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from synthaug._validate import check_choice, check_positive
from synthaug.errors import ShapeError, ValidationError
from synthaug.losses.adversarial import GAN_MODES, gan_loss
from synthaug.losses.gradient import gradient_difference_loss, ngf_loss
from synthaug.networks.auto_context import AutoContextGenerator
from synthaug.networks.layers import check_input, check_spatial_dims
from synthaug.networks.unet_generator import UNetGenerator

__all__ = [
    "MODES",
    "PAIRED_MODES",
    "AutoContextGenerator",
    "NECStep",
    "CycleGANStep",
    "Pix2PixStep",
    "ResGANStep",
    "ResGANWeights",
    "check_batch",
    "run_generator",
    "middle_slice",
]

MODES: tuple[str, ...] = ("nec", "cyclegan", "pix2pix", "resgan")
PAIRED_MODES: tuple[str, ...] = ("pix2pix", "resgan")


def run_generator(g: nn.Module, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Call a generator, passing the dropout ``generator`` to those that accept one."""
    if isinstance(g, (UNetGenerator, AutoContextGenerator)):
        return g(x, generator=generator)
    return g(x)


def check_batch(batch: object, *, spatial_dims: int, paired: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(source, target)`` of one-channel ``(B, 1, *S)`` float tensors; paired batches share their shape."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValidationError(f"a translation batch must be a (source, target) pair of tensors, got {type(batch).__name__}.")
    source, target = batch
    for name, t in (("source", source), ("target", target)):
        check_input(t, name, spatial_dims=spatial_dims, channels=1)
        if not bool(torch.isfinite(t).all()):
            raise ValidationError(f"{name} batch contains NaN or infinite values; check the data normalisation.")
    if paired and source.shape != target.shape:
        raise ShapeError(
            f"paired source and target must have the same shape, got {tuple(source.shape)} and {tuple(target.shape)}."
        )
    return source, target


def middle_slice(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` unchanged; ``(B, C, D, H, W)`` -> its middle slice along the last axis."""
    return x[..., x.shape[-1] // 2] if x.ndim == 5 else x


def _adam(params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


def _gan_g(logits, mode: str) -> torch.Tensor:
    return gan_loss(logits, target_real=True, mode=mode, for_discriminator=False)


def _gan_d(real_logits, fake_logits, mode: str) -> torch.Tensor:
    return 0.5 * (gan_loss(real_logits, target_real=True, mode=mode) + gan_loss(fake_logits, target_real=False, mode=mode))


class _Base:
    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    paired: bool = False

    def __init__(self, spatial_dims: int, gan_mode: str) -> None:
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.gan_mode = check_choice("gan_mode", gan_mode, GAN_MODES)

    def _batch(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return check_batch(batch, spatial_dims=self.spatial_dims, paired=self.paired)

    @property
    def generator(self) -> nn.Module:
        """The source -> target network that gets exported."""
        return self.modules["generator"]

    def translate(self, source: torch.Tensor) -> torch.Tensor:
        return run_generator(self.generator, source)

    @torch.no_grad()
    def preview(self, batch, *, generator: torch.Generator) -> list[torch.Tensor]:
        source, target = self._batch(batch)
        g = self.generator
        was = g.training
        g.eval()
        fake = self.translate(source)
        g.train(was)
        return [middle_slice(source), middle_slice(fake), middle_slice(target)]


class NECStep(_Base):
    """NEC: one-sided unpaired translation with a normalized-gradient-field (edge) consistency loss."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        *,
        spatial_dims: int,
        lambda_ngf: float = 1.0,
        eps: float = 0.15,
        gan_mode: str = "lsgan",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
    ) -> None:
        super().__init__(spatial_dims, gan_mode)
        self.lambda_ngf = float(check_positive("lambda_ngf", float(lambda_ngf), allow_zero=True))
        self.eps = float(check_positive("eps", float(eps)))
        self.g, self.d = generator, discriminator
        self.modules = {"generator": generator, "discriminator": discriminator}
        self.optimizers = {"generator": _adam(generator.parameters(), lr_g), "discriminator": _adam(discriminator.parameters(), lr_d)}

    def step(self, batch, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        source, target = self._batch(batch)
        fake = run_generator(self.g, source, generator=generator)
        opt_d, opt_g = self.optimizers["discriminator"], self.optimizers["generator"]
        opt_d.zero_grad(set_to_none=True)
        loss_d = _gan_d(self.d(target), self.d(fake.detach()), self.gan_mode)
        loss_d.backward()
        opt_d.step()

        opt_g.zero_grad(set_to_none=True)
        adv = _gan_g(self.d(fake), self.gan_mode)
        ngf = ngf_loss(source, fake, eps=self.eps)
        loss_g = adv + self.lambda_ngf * ngf
        loss_g.backward()
        opt_g.step()
        return {"d": loss_d.detach(), "g_adv": adv.detach(), "ngf": ngf.detach(), "g": loss_g.detach()}


class CycleGANStep(_Base):
    """CycleGAN: two generators (S->T, T->S) and two discriminators, cycle + identity L1."""

    def __init__(
        self,
        generator: nn.Module,
        inverse: nn.Module,
        discriminator_target: nn.Module,
        discriminator_source: nn.Module,
        *,
        spatial_dims: int,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        gan_mode: str = "lsgan",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
    ) -> None:
        super().__init__(spatial_dims, gan_mode)
        self.lambda_cycle = float(check_positive("lambda_cycle", float(lambda_cycle), allow_zero=True))
        self.lambda_identity = float(check_positive("lambda_identity", float(lambda_identity), allow_zero=True))
        self.g, self.f = generator, inverse
        self.d_t, self.d_s = discriminator_target, discriminator_source
        self.modules = {
            "generator": generator,
            "inverse": inverse,
            "discriminator": discriminator_target,
            "discriminator_source": discriminator_source,
        }
        self.optimizers = {
            "generator": _adam(list(generator.parameters()) + list(inverse.parameters()), lr_g),
            "discriminator": _adam(list(discriminator_target.parameters()) + list(discriminator_source.parameters()), lr_d),
        }

    def step(self, batch, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        source, target = self._batch(batch)
        opt_d, opt_g = self.optimizers["discriminator"], self.optimizers["generator"]
        fake_t = run_generator(self.g, source, generator=generator)
        fake_s = run_generator(self.f, target, generator=generator)

        opt_g.zero_grad(set_to_none=True)
        self.d_t.requires_grad_(False)
        self.d_s.requires_grad_(False)
        adv = _gan_g(self.d_t(fake_t), self.gan_mode) + _gan_g(self.d_s(fake_s), self.gan_mode)
        rec_s = run_generator(self.f, fake_t, generator=generator)
        rec_t = run_generator(self.g, fake_s, generator=generator)
        cycle = (rec_s - source).abs().mean() + (rec_t - target).abs().mean()
        loss_g = adv + self.lambda_cycle * cycle
        identity = torch.zeros((), device=source.device)
        if self.lambda_identity > 0:
            identity = (run_generator(self.g, target, generator=generator) - target).abs().mean() + (
                run_generator(self.f, source, generator=generator) - source
            ).abs().mean()
            loss_g = loss_g + self.lambda_identity * self.lambda_cycle * identity
        loss_g.backward()
        opt_g.step()
        self.d_t.requires_grad_(True)
        self.d_s.requires_grad_(True)

        opt_d.zero_grad(set_to_none=True)
        loss_d = _gan_d(self.d_t(target), self.d_t(fake_t.detach()), self.gan_mode) + _gan_d(
            self.d_s(source), self.d_s(fake_s.detach()), self.gan_mode
        )
        loss_d.backward()
        opt_d.step()
        return {
            "d": loss_d.detach(),
            "g_adv": adv.detach(),
            "cycle": cycle.detach(),
            "identity": identity.detach(),
            "g": loss_g.detach(),
        }


class Pix2PixStep(_Base):
    """pix2pix: paired U-Net translation with a PatchGAN conditioned on the source."""

    paired = True

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        *,
        spatial_dims: int,
        lambda_l1: float = 100.0,
        gan_mode: str = "lsgan",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
    ) -> None:
        super().__init__(spatial_dims, gan_mode)
        self.lambda_l1 = float(check_positive("lambda_l1", float(lambda_l1), allow_zero=True))
        self.g, self.d = generator, discriminator
        self.modules = {"generator": generator, "discriminator": discriminator}
        self.optimizers = {"generator": _adam(generator.parameters(), lr_g), "discriminator": _adam(discriminator.parameters(), lr_d)}

    def step(self, batch, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        source, target = self._batch(batch)
        fake = run_generator(self.g, source, generator=generator)
        opt_d, opt_g = self.optimizers["discriminator"], self.optimizers["generator"]
        opt_d.zero_grad(set_to_none=True)
        loss_d = _gan_d(self.d(torch.cat([source, target], 1)), self.d(torch.cat([source, fake.detach()], 1)), self.gan_mode)
        loss_d.backward()
        opt_d.step()

        opt_g.zero_grad(set_to_none=True)
        adv = _gan_g(self.d(torch.cat([source, fake], 1)), self.gan_mode)
        l1 = (fake - target).abs().mean()
        loss_g = adv + self.lambda_l1 * l1
        loss_g.backward()
        opt_g.step()
        return {"d": loss_d.detach(), "g_adv": adv.detach(), "l1": l1.detach(), "g": loss_g.detach()}


@dataclass(frozen=True)
class ResGANWeights:
    """ResGAN generator loss weights (Nie et al.; the seed's lambda_1..3)."""

    adv: float = 0.5
    l1: float = 1.0
    gdl: float = 1.0


class ResGANStep(_Base):
    """ResGAN: residual U-Net + conditional PatchGAN, 0.5 adversarial + L1 + GDL; optional auto-context.

    ``generator`` is a :class:`~synthaug.networks.unet_generator.UNetGenerator` (one stage) or an
    :class:`AutoContextGenerator`; ``discriminators`` holds one conditional discriminator
    (``in_channels=2``) per stage.
    """

    paired = True

    def __init__(
        self,
        generator: nn.Module,
        discriminators: Sequence[nn.Module],
        *,
        spatial_dims: int,
        weights: ResGANWeights = ResGANWeights(),
        gan_mode: str = "bce",
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
    ) -> None:
        super().__init__(spatial_dims, gan_mode)
        for name in ("adv", "l1", "gdl"):
            check_positive(f"weights.{name}", float(getattr(weights, name)), allow_zero=True)
        self.w = weights
        self.g = generator
        self.stages: list[nn.Module] = list(generator.stages) if isinstance(generator, AutoContextGenerator) else [generator]
        ds = list(discriminators)
        if len(ds) != len(self.stages):
            raise ValidationError(f"ResGANStep needs one discriminator per generator stage ({len(self.stages)}), got {len(ds)}.")
        self.ds = ds
        self.modules = {"generator": generator}
        self.optimizers = {"generator": _adam(generator.parameters(), lr_g)}
        for k, d in enumerate(ds):
            key = "discriminator" if k == 0 else f"discriminator_{k}"
            self.modules[key] = d
            self.optimizers[key] = _adam(d.parameters(), lr_d)

    def step(self, batch, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        source, target = self._batch(batch)
        fakes: list[torch.Tensor] = []
        prev: torch.Tensor | None = None
        for stage in self.stages:
            inp = source if prev is None else torch.cat([prev.detach(), source], dim=1)
            prev = run_generator(stage, inp, generator=generator)
            fakes.append(prev)

        loss_d = torch.zeros((), device=source.device)
        for k, (d, fake) in enumerate(zip(self.ds, fakes)):
            opt = self.optimizers["discriminator" if k == 0 else f"discriminator_{k}"]
            opt.zero_grad(set_to_none=True)
            ld = _gan_d(d(torch.cat([source, target], 1)), d(torch.cat([source, fake.detach()], 1)), self.gan_mode)
            ld.backward()
            opt.step()
            loss_d = loss_d + ld.detach()

        opt_g = self.optimizers["generator"]
        opt_g.zero_grad(set_to_none=True)
        adv = l1 = gdl = torch.zeros((), device=source.device)
        for d, fake in zip(self.ds, fakes):
            adv = adv + _gan_g(d(torch.cat([source, fake], 1)), self.gan_mode)
            l1 = l1 + (fake - target).abs().mean()
            gdl = gdl + gradient_difference_loss(fake, target)
        loss_g = self.w.adv * adv + self.w.l1 * l1 + self.w.gdl * gdl
        loss_g.backward()
        opt_g.step()
        out = {"d": loss_d, "g_adv": adv.detach(), "l1": l1.detach(), "gdl": gdl.detach(), "g": loss_g.detach()}
        if len(fakes) > 1:
            out["l1_first"] = (fakes[0] - target).abs().mean().detach()
            out["l1_last"] = (fakes[-1] - target).abs().mean().detach()
        return out

    @torch.no_grad()
    def preview(self, batch, *, generator: torch.Generator) -> list[torch.Tensor]:
        source, target = self._batch(batch)
        was = self.g.training
        self.g.eval()
        if isinstance(self.g, AutoContextGenerator):
            fakes = self.g(source, all_stages=True)
        else:
            fakes = [self.g(source)]
        self.g.train(was)
        return [middle_slice(source), *(middle_slice(f) for f in fakes), middle_slice(target)]
