"""nnU-Net v2 integration: the ``nnUNetTrainerSynthAug`` trainer, recipes, batched synthesis, expansion.

- :mod:`~synthaug.integrations.nnunet.recipe` - typed recipes (JSON/YAML) and the transform registry;
- :mod:`~synthaug.integrations.nnunet.batch_synth` - synthesis on an nnU-Net batch on its device;
- :mod:`~synthaug.integrations.nnunet.trainer` - ``nnUNetTrainerSynthAug`` (imports nnunetv2);
- :mod:`~synthaug.integrations.nnunet.expand` - offline expansion of an nnU-Net raw dataset.

nnU-Net finds the trainer through the folder that :func:`trainer_folder` returns (``synthaug
nnunet-path``): set ``nnUNet_extTrainer`` to it. Importing this package imports no nnunetv2; the
trainer class is resolved on first access.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["trainer_folder", "nnUNetTrainerSynthAug", "TRAINER_FILE"]

TRAINER_FILE = "nnUNetTrainerSynthAug.py"
_THIN = '''"""Thin re-export for nnU-Net's trainer lookup (nnUNet_extTrainer); the code lives in synthaug."""

from synthaug.integrations.nnunet.trainer import nnUNetTrainerSynthAug

__all__ = ["nnUNetTrainerSynthAug"]
'''


def trainer_folder() -> Path:
    """The folder for ``nnUNet_extTrainer``: the checkout's ``integrations/nnunet`` when synthaug runs
    from a source tree, else a copy of the thin re-export written once under the synthaug cache."""
    repo = Path(__file__).resolve().parents[3] / "integrations" / "nnunet"
    if (repo / TRAINER_FILE).is_file():
        return repo
    from synthaug.data.cache import cache_root

    folder = cache_root() / "nnunet_ext"
    target = folder / TRAINER_FILE
    if not target.is_file() or target.read_text() != _THIN:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{TRAINER_FILE}.tmp-{os.getpid()}"
        tmp.write_text(_THIN)
        os.replace(tmp, target)
    return folder


def __getattr__(name: str) -> Any:
    if name == "nnUNetTrainerSynthAug":
        from synthaug.integrations.nnunet.trainer import nnUNetTrainerSynthAug

        return nnUNetTrainerSynthAug
    raise AttributeError(f"module 'synthaug.integrations.nnunet' has no attribute {name!r}")
