"""synthaug.networks: plain dimension-aware ``nn.Module`` generators and discriminators.

Every network takes ``spatial_dims`` (2 or 3) and explicit keyword arguments; none does file
I/O or device placement. Randomness (SPADE noise, U-Net dropout) comes from an explicit
``torch.Generator`` passed to ``forward``.
"""

from synthaug.networks.discriminators import (
    MultiScalePatchDiscriminator,
    PatchDiscriminator,
    SegmentationDiscriminator,
)
from synthaug.networks.fusion import FeatureFusion
from synthaug.networks.resnet_generator import ResidualBlock, ResNetGenerator
from synthaug.networks.spade import SPADE, SPADEGenerator, SPADEResBlock, truncated_normal
from synthaug.networks.unet_generator import UNetGenerator

__all__ = [
    "FeatureFusion",
    "UNetGenerator",
    "SPADE",
    "SPADEResBlock",
    "SPADEGenerator",
    "truncated_normal",
    "ResNetGenerator",
    "ResidualBlock",
    "PatchDiscriminator",
    "MultiScalePatchDiscriminator",
    "SegmentationDiscriminator",
]
