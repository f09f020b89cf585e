"""nnU-Net v2 integration: the ``nnUNetTrainerSynthAug`` trainer and nnU-Net's normalisation mapping.

- :mod:`~synthaug.integrations.nnunet.trainer` - ``nnUNetTrainerSynthAug`` (imports nnunetv2): the recipe's
  :class:`synthaug.recipes.BatchSynthesizer` in ``train_step``;
- :mod:`~synthaug.integrations.nnunet.normalization` - nnU-Net's intensity normalisation inverted and
  re-applied around the synthesiser, and nnU-Net's last target transforms on the device.

Recipes, batched synthesis and offline expansion are framework-independent: :mod:`synthaug.recipes`.

nnU-Net finds the trainer through the folder that :func:`trainer_folder` returns (``synthaug
nnunet-path``): set ``nnUNet_extTrainer`` to it. Importing this package imports no nnunetv2; the
trainer class is resolved on first access.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["TRAINER_NAME", "trainer_folder", "nnUNetTrainerSynthAug"]

#: The trainer's class name (what ``nnUNetv2_train ... -tr`` takes).
TRAINER_NAME = "nnUNetTrainerSynthAug"


def trainer_folder() -> Path:
    """The folder for ``nnUNet_extTrainer``: a thin re-export of the trainer shipped inside the package
    (``synthaug/integrations/nnunet/ext/``), so it exists in a source checkout and in an installed wheel."""
    return Path(__file__).resolve().parent / "ext"


def __getattr__(name: str) -> Any:
    if name == "nnUNetTrainerSynthAug":
        from synthaug.integrations.nnunet.trainer import nnUNetTrainerSynthAug

        return nnUNetTrainerSynthAug
    raise AttributeError(f"module 'synthaug.integrations.nnunet' has no attribute {name!r}")
