"""The small interface transforms need from a frozen generator, declared once.

Every network a model card can name derives from :class:`GeneratorModule`, which declares three plain
attributes with their defaults; a network sets what applies to it in its constructor. The training export
(:mod:`synthaug.training.export`) copies them into the card's typed ``inference`` section, and transforms read
the card, never the module's attributes.
"""

from __future__ import annotations

import torch.nn as nn

__all__ = ["GeneratorModule"]


class GeneratorModule(nn.Module):
    """Base of the generator (and frozen judge) networks.

    Attributes:
        divisor: spatial sizes must be multiples of this (the network halves them ``log2(divisor)`` times).
        z_dim: size of the per-volume latent the network takes (0: none).
        noise_channels: per-voxel noise channels the network takes (0: none).
    """

    divisor: int = 1
    z_dim: int = 0
    noise_channels: int = 0
