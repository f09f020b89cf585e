"""synthaug: on-the-fly generative data augmentation for medical image segmentation.

``import synthaug`` is light: it imports torch and numpy but none of MONAI, TorchIO or
nnU-Net. The sub-packages say what they hold:

- :mod:`synthaug.data` - open sample data (fetched from the package registry), label vocabularies,
  the simulated multi-contrast brain MR, nnU-Net export.
- :mod:`synthaug.features` - per-region texture features (mean, std, entropy, ...).
- :mod:`synthaug.networks` - plain dimension-aware ``nn.Module`` generators and discriminators.
- :mod:`synthaug.losses` - adversarial, structural, texture-control, style, NGF, GDL losses.
- :mod:`synthaug.weights` - typed weight records (model cards), safe checksum-verified loading.
- :mod:`synthaug.training` - trainers for every generator family.
- :mod:`synthaug.transforms` - the augmentation transforms (pure apply + sampled parameters).
- :mod:`synthaug.integrations` - MONAI / TorchIO / nnU-Net adapters (lazy imports).
- :mod:`synthaug.cli` - the ``synthaug`` command.
"""

from synthaug.errors import (
    DataError,
    FetchError,
    LabelError,
    LeakageError,
    MissingDependencyError,
    ShapeError,
    SynthAugError,
    ValidationError,
    WeightsError,
)

__version__ = "0.2.0.dev0"

__all__ = [
    "__version__",
    "SynthAugError",
    "ValidationError",
    "ShapeError",
    "LabelError",
    "DataError",
    "FetchError",
    "WeightsError",
    "MissingDependencyError",
    "LeakageError",
]
