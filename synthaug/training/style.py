"""Training steps of the style-swap family: paired (seed 001 + SEAN-style codes) and unpaired (Med-USIS).

Both plug into :func:`synthaug.training.loop.run_training` (the :class:`~synthaug.training.loop.TrainStep`
protocol: ``modules``, ``optimizers``, ``step``, ``preview``).

**Paired** (:class:`PairedStyleStep`; images with their labels, several "patients"): every batch
holds content slices and, for each, a style slice of *another* patient. The generator renders the
content labels twice in one batch of ``2B``:

- *reconstruction*: with the content slice's own style codes -> L1 + (1 - SSIM) to the content image,
  region Gram style loss and content loss to it, adversarial;
- *swap*: with the style patient's codes -> region Gram style loss to the **style** image (class k of
  the output against class k of the style patient), content loss to the content image, and
  segmentation consistency to the content labels (a frozen segmenter trained on real data), adversarial.

Mask consistency (Med-USIS) and total variation apply to both halves. Code dropout replaces a random
fraction of pooled class codes by the learned defaults, so the defaults learn each class's typical
appearance (they render classes absent from a style patient).

**Unpaired** (:class:`UnpairedStyleStep`; Med-USIS, e.g. CT labels -> MR images): content label maps
of one domain and *unlabelled* images of another. The style image is encoded with
``style_labels=None`` (only the generator's global slot is pooled; classes use their learned
defaults). Only adversarial (unconditional: the discriminator sees images, not labels),
segmentation consistency, mask consistency and a whole-image Gram style term are used: there is no
reference image for the content labels in the target domain. The segmentation network is, as in
USIS, trained jointly on the generated images (``segmenter=None``), or a given frozen one.

Discriminators: ``"patch"`` (PatchGAN), ``"wavelet"`` (Med-USIS: PatchGAN on Haar sub-bands) or
``"both"`` (their losses averaged). Least-squares GAN losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from synthaug._validate import check_choice, check_probability
from synthaug.errors import ValidationError
from synthaug.losses.adversarial import gan_loss
from synthaug.losses.gradient import total_variation_loss
from synthaug.losses.structural import ssim
from synthaug.losses.style import (
    TextureFeatures,
    content_loss,
    largest_component,
    mask_consistency_loss,
    region_style_loss,
    segmentation_consistency_loss,
)
from synthaug.networks.discriminators import PatchDiscriminator
from synthaug.networks.style import StyleSwapGenerator
from synthaug.networks.wavelet import WaveletDiscriminator

__all__ = [
    "DISCRIMINATORS",
    "StyleLossWeights",
    "MaskOptions",
    "PairedBatch",
    "UnpairedBatch",
    "PairedStyleStep",
    "UnpairedStyleStep",
]

DISCRIMINATORS: tuple[str, ...] = ("patch", "wavelet", "both")


@dataclass(frozen=True)
class StyleLossWeights:
    """Weights of the generator's loss terms (unused terms of a mode are ignored)."""

    adv: float = 1.0
    l1: float = 10.0
    ssim: float = 2.0
    style: float = 50.0
    content: float = 5.0
    seg: float = 1.0
    mask: float = 5.0
    tv: float = 0.0


@dataclass(frozen=True)
class MaskOptions:
    """Options of the Med-USIS mask pipeline on generated images in [-1, 1] (see :func:`extract_mask`)."""

    threshold: float = 0.1
    temperature: float = 0.1
    opening_size: int = 3
    value_range: tuple[float, float] | None = (-1.0, 1.0)

    def kwargs(self) -> dict:
        return {"threshold": self.threshold, "temperature": self.temperature, "opening_size": self.opening_size,
                "value_range": self.value_range}


@dataclass(frozen=True)
class PairedBatch:
    """Content slices ``(B, 1, H, W)`` / ``(B, H, W)`` + their body masks ``(B, 1, H, W)``, and one style
    slice of another patient per sample (its own size allowed) with its labels and body mask."""

    content_images: torch.Tensor
    content_labels: torch.Tensor
    content_masks: torch.Tensor
    style_images: torch.Tensor
    style_labels: torch.Tensor
    style_masks: torch.Tensor


@dataclass(frozen=True)
class UnpairedBatch:
    """Content label maps ``(B, H, W)`` (+ body masks of their own scans), unlabelled target-domain style
    images ``(B, 1, H', W')`` (whole slices, encoded) and real target-domain images the discriminator and
    the style term compare with (crops of the size of the content, so real and fake patches match)."""

    content_labels: torch.Tensor
    content_masks: torch.Tensor
    style_images: torch.Tensor
    real_images: torch.Tensor


def _onehot(labels: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    return F.one_hot(labels.long(), n).movedim(-1, 1).to(dtype)


class _Discriminators:
    """One or two discriminators (PatchGAN / wavelet) with a shared optimiser and LSGAN losses."""

    def __init__(self, kind: str, *, cond_channels: int, spatial_dims: int, width: int, n_layers: int, lr: float) -> None:
        self.kind = check_choice("discriminator", kind, DISCRIMINATORS)
        self.cond_channels = cond_channels
        self.nets: dict[str, nn.Module] = {}
        if kind in ("patch", "both"):
            self.nets["disc_patch"] = PatchDiscriminator(1 + cond_channels, spatial_dims=spatial_dims, width=width, n_layers=n_layers)
        if kind in ("wavelet", "both"):
            self.nets["disc_wavelet"] = WaveletDiscriminator(1, cond_channels=cond_channels, spatial_dims=spatial_dims,
                                                             width=width, n_layers=max(1, n_layers - 1))
        params = [p for n in self.nets.values() for p in n.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))

    def logits(self, image: torch.Tensor, cond: torch.Tensor | None) -> list[torch.Tensor]:
        out = []
        for name, net in self.nets.items():
            if name == "disc_patch":
                out.append(net(image if cond is None else torch.cat([cond, image], dim=1)))
            else:
                out.append(net(image, cond))
        return out

    def update(self, real: torch.Tensor, real_cond, fake: torch.Tensor, fake_cond) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        d_real = self.logits(real, real_cond)
        d_fake = self.logits(fake.detach(), fake_cond)
        loss = 0.5 * (gan_loss(d_real, target_real=True) + gan_loss(d_fake, target_real=False))
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def generator_loss(self, fake: torch.Tensor, cond) -> torch.Tensor:
        return gan_loss(self.logits(fake, cond), target_real=True, for_discriminator=False)


def _freeze(net: nn.Module | None) -> nn.Module | None:
    if net is not None:
        net.eval().requires_grad_(False)
    return net


def _noise_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def _target_masks(masks: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Body masks of real content scans, restricted like ``E(fake)`` to their largest component."""
    m = masks.to(dtype)
    return m * largest_component(m).to(dtype)


class PairedStyleStep:
    """One optimisation step of paired style-swap training (see the module docstring)."""

    def __init__(
        self,
        generator: StyleSwapGenerator,
        *,
        segmenter: nn.Module | None = None,
        discriminator: str = "both",
        d_width: int = 32,
        d_layers: int = 3,
        weights: StyleLossWeights = StyleLossWeights(),
        mask: MaskOptions = MaskOptions(),
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        code_dropout: float = 0.1,
        texture_widths: tuple[int, ...] = (8, 16, 32),
    ) -> None:
        self.g = generator
        self.n_labels = generator.n_labels
        self.n_classes = generator.n_classes
        self.w, self.mask = weights, mask
        self.code_dropout = check_probability("code_dropout", code_dropout)
        if weights.seg > 0 and segmenter is None:
            raise ValidationError(
                "paired training with seg weight > 0 needs a frozen segmenter trained on real data "
                "(synthaug.training.train_segmenter); pass segmenter=... or set the seg weight to 0."
            )
        self.segmenter = _freeze(segmenter)
        self.disc = _Discriminators(discriminator, cond_channels=self.n_classes, spatial_dims=generator.spatial_dims,
                                    width=d_width, n_layers=d_layers, lr=lr_d)
        self.features = TextureFeatures(spatial_dims=generator.spatial_dims, widths=texture_widths)
        self.modules: dict[str, nn.Module] = {"generator": self.g, **self.disc.nets}
        self.optimizers = {
            "generator": torch.optim.Adam(self.g.parameters(), lr=lr_g, betas=(0.5, 0.999)),
            "discriminator": self.disc.optimizer,
        }

    def _labels(self, batch: PairedBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(vocabulary content labels, content labels with the body class, style labels with it)."""
        lab_v = batch.content_labels.long()
        lab = self.g.add_body(lab_v, batch.content_masks)
        style = self.g.add_body(batch.style_labels.long(), batch.style_masks)
        return lab_v, lab, style

    def _codes(self, batch: PairedBatch, lab, style_lab, generator: torch.Generator):
        """Codes of [own style (reconstruction); other patient's style (swap)], with code dropout."""
        g = self.g
        own = g.region_sums(batch.content_images, lab)
        other = g.region_sums(batch.style_images, style_lab)
        sums = [torch.cat([a, b]) for a, b in zip(own, other)]
        drop = None
        if self.code_dropout > 0:
            drop = torch.rand(sums[0].shape[:2], generator=generator) < self.code_dropout
        return g.codes_from_sums(*sums, drop=drop)

    def step(self, batch: PairedBatch, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        x = batch.content_images
        lab_v, lab, style_lab = self._labels(batch)
        b = x.shape[0]
        codes = self._codes(batch, lab, style_lab, generator)
        lab2 = torch.cat([lab, lab])
        fake = self.g.render(lab2, codes, generator=_noise_generator(generator, x.device))
        cond2 = _onehot(lab2, self.n_classes, x.dtype)
        loss_d = self.disc.update(x, cond2[:b], fake, cond2)

        self.optimizers["generator"].zero_grad(set_to_none=True)
        w = self.w
        adv = self.disc.generator_loss(fake, cond2)
        rec = fake[:b]
        l1 = (rec - x).abs().mean()
        l_ssim = 1 - ssim(rec, x, data_range=2.0).mean()
        feats_fake = self.features(fake)
        with torch.no_grad():
            feats_content = self.features(x)
            feats_style = self.features(batch.style_images)
        style_targets_same_size = batch.style_images.shape[2:] == x.shape[2:]
        if style_targets_same_size:
            l_style = region_style_loss(
                feats_fake, lab2, [torch.cat([a, s]) for a, s in zip(feats_content, feats_style)],
                torch.cat([lab, style_lab]), n_labels=self.n_classes,
            )
        else:
            l_style = 0.5 * (
                region_style_loss([f[:b] for f in feats_fake], lab, feats_content, lab, n_labels=self.n_classes)
                + region_style_loss([f[b:] for f in feats_fake], lab, feats_style, style_lab, n_labels=self.n_classes)
            )
        l_content = content_loss(feats_fake, [torch.cat([c, c]) for c in feats_content])
        if w.mask > 0:
            masks = _target_masks(batch.content_masks, fake.dtype)
            l_mask = mask_consistency_loss(fake, torch.cat([masks, masks]), **self.mask.kwargs())
        else:
            l_mask = fake.new_zeros(())
        l_seg = segmentation_consistency_loss(self.segmenter(fake[b:]), lab_v) if w.seg > 0 else fake.new_zeros(())
        l_tv = total_variation_loss(fake) if w.tv > 0 else fake.new_zeros(())
        loss = (w.adv * adv + w.l1 * l1 + w.ssim * l_ssim + w.style * l_style + w.content * l_content
                + w.seg * l_seg + w.mask * l_mask + w.tv * l_tv)
        loss.backward()
        self.optimizers["generator"].step()
        return {"d": loss_d, "g_adv": adv.detach(), "l1": l1.detach(), "ssim": l_ssim.detach(),
                "style": l_style.detach(), "content": l_content.detach(), "seg": l_seg.detach(),
                "mask": l_mask.detach(), "g": loss.detach()}

    @torch.no_grad()
    def preview(self, batch: PairedBatch, *, generator: torch.Generator) -> list[torch.Tensor]:
        """[content labels, content image, reconstruction, style image, swap, swap with other noise]."""
        self.g.eval()
        x = batch.content_images
        _, lab, style_lab = self._labels(batch)
        own = self.g.encode(x, lab)
        other = self.g.encode(batch.style_images, style_lab)
        rec = self.g.render(lab, own, generator=torch.Generator(device=x.device).manual_seed(0), truncation=1.0)
        swap = self.g.render(lab, other, generator=torch.Generator(device=x.device).manual_seed(0), truncation=1.0)
        swap2 = self.g.render(lab, other, generator=torch.Generator(device=x.device).manual_seed(1), truncation=1.0)
        self.g.train()
        style = batch.style_images
        if style.shape[2:] != x.shape[2:]:
            style = F.interpolate(style, size=x.shape[2:], mode="bilinear", align_corners=False)
        return [lab, x, rec, style, swap, swap2]


class UnpairedStyleStep:
    """One optimisation step of unpaired (Med-USIS) training: adversarial, segmentation, mask, style."""

    def __init__(
        self,
        generator: StyleSwapGenerator,
        *,
        segmenter: nn.Module | None = None,
        segmenter_widths: tuple[int, ...] = (16, 32, 64),
        discriminator: str = "both",
        d_width: int = 32,
        d_layers: int = 3,
        weights: StyleLossWeights = StyleLossWeights(style=10.0),
        mask: MaskOptions = MaskOptions(),
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        lr_s: float = 1e-3,
        texture_widths: tuple[int, ...] = (8, 16, 32),
    ) -> None:
        from synthaug.networks.discriminators import SegmentationDiscriminator

        self.g = generator
        self.n_labels = generator.n_labels
        self.w, self.mask = weights, mask
        self.disc = _Discriminators(discriminator, cond_channels=0, spatial_dims=generator.spatial_dims,
                                    width=d_width, n_layers=d_layers, lr=lr_d)
        self.features = TextureFeatures(spatial_dims=generator.spatial_dims, widths=texture_widths)
        self.modules: dict[str, nn.Module] = {"generator": self.g, **self.disc.nets}
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "generator": torch.optim.Adam(self.g.parameters(), lr=lr_g, betas=(0.5, 0.999)),
            "discriminator": self.disc.optimizer,
        }
        self.joint = segmenter is None
        if self.joint:
            self.segmenter = SegmentationDiscriminator(1, self.n_labels, spatial_dims=generator.spatial_dims,
                                                       widths=segmenter_widths, spectral=False)
            self.modules["segmenter"] = self.segmenter
            self.optimizers["segmenter"] = torch.optim.Adam(self.segmenter.parameters(), lr=lr_s, betas=(0.9, 0.999))
        else:
            self.segmenter = _freeze(segmenter)

    def step(self, batch: UnpairedBatch, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        lab_v, y = batch.content_labels.long(), batch.style_images
        lab = self.g.add_body(lab_v, batch.content_masks)
        codes = self.g.encode(y, None)
        fake = self.g.render(lab, codes, generator=_noise_generator(generator, y.device))
        real = batch.real_images
        loss_d = self.disc.update(real, None, fake, None)
        out: dict[str, torch.Tensor] = {"d": loss_d}
        if self.joint:  # USIS: the consistency U-Net learns to segment the generated images
            self.optimizers["segmenter"].zero_grad(set_to_none=True)
            self.segmenter.requires_grad_(True)
            l_s = segmentation_consistency_loss(self.segmenter(fake.detach()), lab_v)
            l_s.backward()
            self.optimizers["segmenter"].step()
            self.segmenter.requires_grad_(False)
            out["seg_net"] = l_s.detach()

        self.optimizers["generator"].zero_grad(set_to_none=True)
        w = self.w
        adv = self.disc.generator_loss(fake, None)
        l_seg = segmentation_consistency_loss(self.segmenter(fake), lab_v) if w.seg > 0 else fake.new_zeros(())
        if w.mask > 0:
            l_mask = mask_consistency_loss(fake, _target_masks(batch.content_masks, fake.dtype), **self.mask.kwargs())
        else:
            l_mask = fake.new_zeros(())
        if w.style > 0:  # whole-image Gram statistics: the target images carry no labels
            feats_fake = self.features(fake)
            with torch.no_grad():
                feats_style = self.features(real)
            whole = torch.zeros_like(lab)
            whole_y = torch.zeros((real.shape[0], *real.shape[2:]), dtype=torch.long, device=real.device)
            l_style = region_style_loss(feats_fake, whole, feats_style, whole_y, n_labels=1)
        else:
            l_style = fake.new_zeros(())
        l_tv = total_variation_loss(fake) if w.tv > 0 else fake.new_zeros(())
        loss = w.adv * adv + w.seg * l_seg + w.mask * l_mask + w.style * l_style + w.tv * l_tv
        loss.backward()
        self.optimizers["generator"].step()
        out.update({"g_adv": adv.detach(), "seg": l_seg.detach(), "mask": l_mask.detach(),
                    "style": l_style.detach(), "g": loss.detach()})
        return out

    @torch.no_grad()
    def preview(self, batch: UnpairedBatch, *, generator: torch.Generator) -> list[torch.Tensor]:
        """[content labels, target-domain image (unpaired), output with noise 0, 1, and without noise]."""
        self.g.eval()
        lab, y = self.g.add_body(batch.content_labels.long(), batch.content_masks), batch.style_images
        codes = self.g.encode(y, None)
        real = batch.real_images
        panels: list[torch.Tensor] = [lab, real if real.shape[2:] == lab.shape[1:] else
                                      F.interpolate(real, size=lab.shape[1:], mode="bilinear", align_corners=False)]
        for s in (0, 1):
            panels.append(self.g.render(lab, codes, generator=torch.Generator(device=y.device).manual_seed(s), truncation=1.0))
        if self.g.z_dim:
            panels.append(self.g.render(lab, codes, noise=torch.zeros(lab.shape[0], self.g.z_dim, device=y.device)))
        self.g.train()
        return panels
