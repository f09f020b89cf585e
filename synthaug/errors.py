"""The one exception root of synthaug and its few subclasses.

Every error synthaug raises on purpose derives from :class:`SynthAugError`, so callers can
catch the package's failures with one ``except``. The subclasses also derive from the closest
builtin (``ValueError``, ``TypeError``, ``ImportError``, ``OSError``) so code written against the
builtins keeps working.
"""

from __future__ import annotations

__all__ = [
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


class SynthAugError(Exception):
    """Root of every error raised by synthaug."""


class ValidationError(SynthAugError, ValueError):
    """An argument or input value breaks a documented rule (the message names both)."""


class ShapeError(ValidationError):
    """A tensor or array does not have the expected named dimensions."""


class LabelError(ValidationError):
    """A label map holds values a generator or vocabulary does not know, or is empty."""


class DataError(SynthAugError, OSError):
    """A dataset, cache entry or file on disk is missing, corrupt or not what it claims to be."""


class FetchError(DataError):
    """Fetching open sample data through the package registry failed."""


class WeightsError(SynthAugError, OSError):
    """A weights file is unknown, missing, corrupt, or does not match its model card."""


class MissingDependencyError(SynthAugError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class LeakageError(SynthAugError):
    """A test case would enter generator training or a style bank used for that test."""
