"""Options records: every option of a transform declared once, as a field of a frozen dataclass.

A transform's options record (e.g. :class:`~synthaug.transforms.context_texture.ContextTextureOptions`) is
the single declaration of its options: name, type, default and documentation (the record's ``Args:``
docstring section), with validation in ``validate``. Everything else is derived from it:

- the array form's constructor (:class:`OptionsTransform`): ``ContextTextureSynth("context_ct_a", deform=False)``
  builds the record, and the class's signature (``inspect.signature``, ``help``) lists the record's fields;
- the recipe face (:mod:`synthaug.recipes`): a recipe's ``options`` object is read into the same record, so an
  unknown option or a bad value gets the same error with the closest valid name;
- the MONAI and TorchIO faces (:mod:`synthaug.integrations.monai`, :mod:`synthaug.integrations.torchio`): their
  signatures and docstrings are generated from the record.

Example:
    >>> from synthaug.transforms.labels_to_image import GaussianMixtureOptions
    >>> GaussianMixtureOptions.build({"gamma_std": 0.1}, owner="example").gamma_std
    0.1
    >>> GaussianMixtureOptions.build({"gama_std": 0.1}, owner="example")
    Traceback (most recent call last):
    ...
    synthaug.errors.ValidationError: example has no option 'gama_std'; its options are [...]. Did you mean 'gamma_std'?
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import torch

from synthaug._validate import check_image, check_probability, closest
from synthaug.errors import ValidationError
from synthaug.transforms.sampling import SeededSampling
from synthaug.weights.card import ModelCard

__all__ = ["Options", "OptionsTransform", "option_parameters", "options_doc"]

OptionsT = TypeVar("OptionsT", bound="Options")


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of the options records (subclasses are frozen dataclasses; ``validate`` runs on construction)."""

    def __post_init__(self) -> None:
        self._check_numbers()
        try:
            self.validate()
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError(
                f"{type(self).__name__}: an option has a value of the wrong type ({exc}); the options and their "
                f"types: {self._field_types()}."
            ) from exc

    @classmethod
    def _field_types(cls) -> dict[str, str]:
        return {f.name: str(f.type) for f in dataclasses.fields(cls)}

    def _check_numbers(self) -> None:
        """A number option (annotation ``int``/``float``, optionally ``| None``) given anything but a number is
        refused by name, before ``validate`` tries to convert it."""
        for f in dataclasses.fields(self):
            kinds = {k.strip() for k in str(f.type).split("|")}
            if not kinds or not kinds <= {"int", "float", "None"} or kinds == {"None"}:
                continue
            value = getattr(self, f.name)
            if value is None and "None" in kinds:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                expected = " or ".join(sorted(kinds - {"None"})) + (" (or None)" if "None" in kinds else "")
                raise ValidationError(f"option {f.name!r} must be {expected}, got {value!r}.")

    def validate(self) -> None:  # pragma: no cover - overridden where there is something to check
        """Check (and normalise, with ``object.__setattr__``) the field values; raise ValidationError."""

    def _set(self, name: str, value: Any) -> None:
        """Normalise a field inside ``validate`` (the record is frozen)."""
        object.__setattr__(self, name, value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def build(cls: type[OptionsT], values: Mapping[str, Any], *, owner: str) -> OptionsT:
        """The record from ``values`` (unknown names raise with the closest valid one; never a bare TypeError)."""
        names = cls.names()
        for key in values:
            if key not in names:
                raise ValidationError(
                    f"{owner} has no option {key!r}; its options are {list(names)}.{closest(str(key), names)}"
                )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def non_default(self) -> dict[str, Any]:
        """The options that differ from their defaults (for ``repr`` and records)."""
        out = {}
        for f in dataclasses.fields(self):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
            value = getattr(self, f.name)
            if default is dataclasses.MISSING or value != default:
                out[f.name] = value
        return out

    def replace(self: OptionsT, **changes: Any) -> OptionsT:
        return dataclasses.replace(self, **changes)


def option_parameters(options: type[Options], *, exclude: Sequence[str] = (), positional: Sequence[str] = (),
                      ) -> list[inspect.Parameter]:
    """``inspect.Parameter`` objects for the fields of ``options`` (keyword-only unless listed in ``positional``)."""
    params = []
    for f in dataclasses.fields(options):
        if f.name in exclude:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else inspect.Parameter.empty)
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if f.name in positional else inspect.Parameter.KEYWORD_ONLY
        params.append(inspect.Parameter(f.name, kind, default=default, annotation=f.type))
    # positional ones first, in the declared order
    return sorted(params, key=lambda p: p.kind != inspect.Parameter.POSITIONAL_OR_KEYWORD)


_ARGS = re.compile(r"^\s*(Args|Attributes):\s*$")


def options_doc(options: type[Options], *, exclude: Sequence[str] = ()) -> str:
    """The ``Args:`` block of the record's docstring (one entry per option), without ``exclude``d entries."""
    lines = inspect.cleandoc(options.__doc__ or "").splitlines()
    start = next((i for i, line in enumerate(lines) if _ARGS.match(line)), None)
    if start is None:
        return ""
    block, skip = [], False
    for line in lines[start + 1:]:
        if line and not line.startswith(" "):
            break
        entry = re.match(r"^    ([a-z_][a-z0-9_, ]*):", line)
        if entry:
            names = [n.strip() for n in entry.group(1).split(",")]
            skip = all(n in exclude for n in names)
        if not skip:
            block.append(line)
    return "\n".join(block)


class OptionsTransform(SeededSampling):
    """Array-form base: the constructor takes ``prob`` plus the fields of ``Options`` (see the module docstring).

    Subclasses set ``Options`` (their record), optionally ``positional`` (fields that may be given by
    position, e.g. ``("weights",)``), and implement ``_setup`` (work that needs validated options, such as
    reading the model card), ``params_from_seed`` and ``apply``. Every field is also readable as an
    attribute (``transform.deform``) and the record itself is ``transform.options``.
    """

    Options: ClassVar[type[Options]]
    positional: ClassVar[tuple[str, ...]] = ()
    #: The frozen generator's model card (set in ``_setup`` from the ``weights`` option); None for
    #: generator-free transforms. A transform with a card has a ``weights`` option.
    card: ModelCard | None = None
    #: Whether ``apply``/``apply_batch`` take ``info=DataInfo(...)`` (label names, spacing) from the faces.
    uses_data_info: ClassVar[bool] = False
    #: Whether a sample needs foreground labels (label-to-image generators); transforms that render or alter a
    #: background-only sample too (Gaussian mixture, intensity augmentation) set False, and the batch
    #: synthesiser then selects background-only patches for them as well.
    needs_foreground: ClassVar[bool] = True
    #: Whether the transform reads the label map (image + label in, image + label out); image-only transforms
    #: (translation) pass any label through untouched.
    reads_labels: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Options" in cls.__dict__:
            params = option_parameters(cls.Options, positional=cls.positional)
            prob = inspect.Parameter("prob", inspect.Parameter.KEYWORD_ONLY, default=1.0, annotation="float")
            keyword = [p for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY]
            cls.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
                [p for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY] + [prob] + keyword
            )
            cls.__doc__ = f"{inspect.cleandoc(cls.__doc__ or '')}\n\nOptions (from the options record):\n{options_doc(cls.Options)}\n"

    def __init__(self, *args: Any, prob: float = 1.0, **options: Any) -> None:
        name = type(self).__name__
        if len(args) > len(self.positional):
            raise ValidationError(
                f"{name} takes at most {len(self.positional)} positional argument(s) {list(self.positional)}, got "
                f"{len(args)}; pass the others by name."
            )
        for key, value in zip(self.positional, args):
            if key in options:
                raise ValidationError(f"{name} got {key!r} both by position and by name.")
            options[key] = value
        self.options = self.Options.build(options, owner=name)
        self.prob = check_probability("prob", prob)
        for key, value in self.options.to_dict().items():
            setattr(self, key, value)
        self._setup()

    def _setup(self) -> None:
        """Work after validation (e.g. read the model card); the default does nothing."""

    def _sample_kwargs(self, params: Any) -> dict[str, Any]:
        """Extra ``apply_batch`` arguments a params record implies (e.g. a style swap's style case)."""
        return {}

    def apply(self, image: torch.Tensor, label: Any, params: Any, *, info: Any = None) -> tuple[torch.Tensor, Any]:
        """One sample: ``image`` (1, *spatial) float; ``label`` (1, *spatial) or (*spatial) (any value, returned as
        it is, for image-only transforms); ``info``: what the data container says
        (:class:`~synthaug.transforms.guards.DataInfo`, used by transforms with ``uses_data_info``). A batch of one
        through :meth:`apply_batch`; the label comes back as given unless the transform changed it."""
        if not params.apply:
            return image, label
        if not isinstance(image, torch.Tensor) or (self.reads_labels and not isinstance(label, torch.Tensor)):
            raise ValidationError(
                f"image{' and label' if self.reads_labels else ''} must be torch.Tensor objects, got "
                f"{type(image).__name__}{', ' + type(label).__name__ if self.reads_labels else ''} (use the MONAI/TorchIO "
                "forms for other containers)."
            )
        check_image(image, "image", spatial_dims=(2, 3), channels=1)
        squeeze = self.reads_labels and label.ndim == image.ndim - 1
        batch_label = None if not self.reads_labels else (label[None] if squeeze else label)[None]
        kw = self._sample_kwargs(params)
        if self.uses_data_info:
            kw["info"] = info
        out_img, out_lab = self.apply_batch(image[None], batch_label, seeds=[params.seed], **kw)
        if not self.reads_labels or out_lab is batch_label:
            return out_img[0], label
        return out_img[0], (out_lab[0, 0] if squeeze else out_lab[0])

    def record(self) -> dict[str, Any]:
        """The options that differ from their defaults, as plain values (for provenance records and meta);
        the weights are always named."""
        out: dict[str, Any] = {}
        for key, value in self.options.non_default().items():
            if isinstance(value, (str, int, float, bool, type(None))):
                out[key] = value
            elif isinstance(value, (tuple, list)) and all(isinstance(v, (str, int, float, bool)) for v in value):
                out[key] = list(value)
            elif isinstance(value, os.PathLike):
                out[key] = str(value)
            else:
                out[key] = repr(value)
        if "weights" in self.options.names():
            out["weights"] = str(self.options.weights)  # type: ignore[attr-defined]
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options.non_default().items())
        return f"{type(self).__name__}({args}{', ' if args else ''}prob={self.prob})"
