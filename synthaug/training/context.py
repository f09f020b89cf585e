"""ConText-GAN training step (P2P, P2PF, OASIS) on 2D slices.

Losses (paper: L_tot = L_G + lambda1 L_CT + lambda2 L_S with lambda1 = lambda2 = 0.5):

- L_G: adversarial (PatchGAN, least squares) + ``lambda_l1`` * L1 for the pix2pix variants; for
  OASIS the segmentation discriminator's class-balanced cross-entropy (and no L1 by default).
- L_CT: texture control, |Theta(y) - Theta(y_hat)| on soft (differentiable) region features
  normalised to [0, 1]; L_S: 1 - SSIM.
- lambda_ct and lambda_ssim default to 0.5 x lambda_l1, i.e. the paper's 0.5 relative to the
  reconstruction term (our L1 is on [-1, 1] images, weighted 10 as a pix2pix-style reconstruction).

synthaug addition (documented in the model card): with probability ``random_context_prob`` a
sample's requested features are perturbed ("random context"); such samples have no reference image,
so only the adversarial and texture-control terms apply. This trains the generator on the
feature combinations that augmentation will ask for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from synthaug.features import normalise_features, region_features
from synthaug.losses.adversarial import gan_loss, oasis_discriminator_loss, oasis_generator_loss
from synthaug.losses.structural import ssim
from synthaug.networks.context import ContextGenerator
from synthaug.networks.discriminators import PatchDiscriminator, SegmentationDiscriminator

__all__ = ["ContextLossWeights", "ContextStep", "measure_features"]


@dataclass(frozen=True)
class ContextLossWeights:
    adv: float = 1.0
    l1: float = 10.0
    ct: float = 5.0
    ssim: float = 5.0


def measure_features(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    n_labels: int,
    names: tuple[str, ...],
    bins: int,
    soft: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised region features in [0, 1] (B, N_F, N_L) and the presence mask (B, N_L)."""
    rf = region_features(images, labels, n_labels=n_labels, names=names, bins=bins, value_range=(-1.0, 1.0), soft=soft)
    values = normalise_features(rf.values, rf.names, value_range=(-1.0, 1.0), bins=bins) / 100.0
    return values.clamp(0, 1), rf.present


class ContextStep:
    """One optimisation step of ConText-GAN; owns G, D, their optimisers and the losses."""

    def __init__(
        self,
        generator: ContextGenerator,
        *,
        features: tuple[str, ...],
        bins: int = 32,
        d_width: int = 32,
        weights: ContextLossWeights = ContextLossWeights(),
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        random_context_prob: float = 0.25,
        random_context_scale: float = 0.15,
    ) -> None:
        self.g = generator
        self.n_labels = generator.n_labels
        self.features, self.bins, self.w = tuple(features), bins, weights
        self.oasis = generator.variant == "oasis"
        sd = generator.spatial_dims
        if self.oasis:
            self.d: nn.Module = SegmentationDiscriminator(1, self.n_labels + 1, spatial_dims=sd, widths=(d_width, 2 * d_width, 4 * d_width))
        else:
            self.d = PatchDiscriminator(self.n_labels + 1, spatial_dims=sd, width=d_width, n_layers=3)
        self.modules = {"generator": self.g, "discriminator": self.d}
        self.optimizers = {
            "generator": torch.optim.Adam(self.g.parameters(), lr=lr_g, betas=(0.5, 0.999)),
            "discriminator": torch.optim.Adam(self.d.parameters(), lr=lr_d, betas=(0.5, 0.999)),
        }
        self.random_context_prob = random_context_prob
        self.random_context_scale = random_context_scale

    def _d_input(self, image: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.oasis:
            return image
        onehot = F.one_hot(labels, self.n_labels).movedim(-1, 1).to(image.dtype)
        return torch.cat([onehot, image], dim=1)

    def _requested(self, images, labels, generator):
        """Measured features, with a random subset of samples perturbed (random context)."""
        with torch.no_grad():
            measured, present = measure_features(images, labels, n_labels=self.n_labels, names=self.features, bins=self.bins)
        b = images.shape[0]
        rand = torch.rand(b, generator=generator) < self.random_context_prob
        rand = rand.to(images.device)
        noise = (torch.rand(measured.shape, generator=generator) * 2 - 1).to(images.device) * self.random_context_scale
        requested = torch.where(rand[:, None, None], (measured + noise).clamp(0, 1), measured)
        return requested, present, rand

    def step(self, batch, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        images, labels = batch
        requested, present, rand = self._requested(images, labels, generator)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        noise_gen = torch.Generator(device=images.device).manual_seed(seed)
        fake = self.g(labels, requested, generator=noise_gen)

        # Discriminator
        self.optimizers["discriminator"].zero_grad(set_to_none=True)
        d_real = self.d(self._d_input(images, labels))
        d_fake = self.d(self._d_input(fake.detach(), labels))
        if self.oasis:
            loss_d = oasis_discriminator_loss(d_real, d_fake, labels, n_labels=self.n_labels)
        else:
            loss_d = 0.5 * (gan_loss(d_real, target_real=True, mode="lsgan") + gan_loss(d_fake, target_real=False, mode="lsgan"))
        loss_d.backward()
        self.optimizers["discriminator"].step()

        # Generator
        self.optimizers["generator"].zero_grad(set_to_none=True)
        d_fake = self.d(self._d_input(fake, labels))
        if self.oasis:
            adv = oasis_generator_loss(d_fake, labels, n_labels=self.n_labels)
        else:
            adv = gan_loss(d_fake, target_real=True, mode="lsgan", for_discriminator=False)
        rec = (~rand).to(images.dtype)  # reference available
        n_rec = rec.sum().clamp(min=1)
        l1 = ((fake - images).abs().flatten(1).mean(1) * rec).sum() / n_rec
        l_ssim = ((1 - ssim(fake, images, data_range=2.0)) * rec).sum() / n_rec
        got, _ = measure_features(fake, labels, n_labels=self.n_labels, names=self.features, bins=self.bins, soft=True)
        mask = present[:, None, :].to(images.dtype)
        l_ct = ((got - requested).abs() * mask).sum() / (mask.sum() * len(self.features)).clamp(min=1)
        w = self.w
        l1_weight = 0.0 if self.oasis else w.l1
        loss_g = w.adv * adv + l1_weight * l1 + w.ct * l_ct + w.ssim * l_ssim
        loss_g.backward()
        self.optimizers["generator"].step()
        return {"d": loss_d.detach(), "g_adv": adv.detach(), "l1": l1.detach(), "ssim": l_ssim.detach(), "ct": l_ct.detach(), "g": loss_g.detach()}

    @torch.no_grad()
    def preview(self, batch, *, generator: torch.Generator) -> list[torch.Tensor]:
        images, labels = batch
        self.g.eval()
        measured, _ = measure_features(images, labels, n_labels=self.n_labels, names=self.features, bins=self.bins)
        fake = self.g(labels, measured, generator=torch.Generator(device=images.device).manual_seed(0))
        brighter = measured.clone()
        brighter[:, 0] = (brighter[:, 0] + 0.15).clamp(0, 1)  # first feature (mean) raised
        fake2 = self.g(labels, brighter, generator=torch.Generator(device=images.device).manual_seed(0))
        self.g.train()
        return [labels, images, fake, fake2]
