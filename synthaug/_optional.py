"""Lazy import of optional dependencies behind one helper with an install hint.

The core of synthaug imports none of MONAI, TorchIO or nnU-Net; the integrations call
:func:`require` at first use so a missing package gives one clear message naming the extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from synthaug.errors import MissingDependencyError

# module name -> (pip extra of synthaug, pip distribution name)
_EXTRAS: dict[str, tuple[str, str]] = {
    "monai": ("monai", "monai"),
    "torchio": ("torchio", "torchio"),
    "nnunetv2": ("nnunet", "nnunetv2"),
    "batchgeneratorsv2": ("nnunet", "batchgeneratorsv2"),
    "matplotlib": ("plots", "matplotlib"),
}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install.

    >>> require("math").sqrt(4.0)
    2.0
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra, dist = _EXTRAS.get(top, (None, top))
        hint = f"pip install 'synthaug[{extra}]'" if extra else f"pip install {dist}"
        raise MissingDependencyError(
            f"{module!r} is needed for this feature but could not be imported ({exc}). Install it with: {hint}"
        ) from exc


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without raising)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
