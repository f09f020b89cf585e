"""synthaug.losses: adversarial, structural (SSIM/PSNR) and gradient (NGF, GDL, TV) losses.

The texture-control losses live in :mod:`synthaug.losses.texture` and are imported from there.
"""

from synthaug.losses.adversarial import (
    class_balance_weights,
    gan_loss,
    oasis_discriminator_loss,
    oasis_generator_loss,
)
from synthaug.losses.gradient import (
    gradient_difference_loss,
    ngf_loss,
    normalized_gradient_field,
    spatial_gradient,
    total_variation_loss,
)
from synthaug.losses.structural import SSIMLoss, gaussian_window, psnr, ssim, ssim_loss

__all__ = [
    "gan_loss",
    "class_balance_weights",
    "oasis_discriminator_loss",
    "oasis_generator_loss",
    "ssim",
    "ssim_loss",
    "SSIMLoss",
    "psnr",
    "gaussian_window",
    "spatial_gradient",
    "normalized_gradient_field",
    "ngf_loss",
    "gradient_difference_loss",
    "total_variation_loss",
]
