"""Input checks and the label vocabulary by name, shared by the generator transforms.

A generator renders *its* classes (``card.labels``). A label map is only read when the transform knows what its
values mean, never by guessing that the integers already are the generator's classes:

- ``label_names`` ``{name: value}`` (the dataset.json ``"labels"`` form; also taken from the data itself: a MONAI
  MetaTensor's ``meta["labels"]``, a TorchIO LabelMap's ``labels`` attribute, an nnU-Net dataset.json) matched
  to the generator's class names;
- ``label_map`` ``{your value or name: generator class index or name}`` (overrides/extends the names);
- ``labels_are_classes=True``: an explicit statement that the values are the generator's class indices.

Without any of them a generator transform raises :class:`~synthaug.errors.LabelError` naming the three fixes.
:class:`LabelOptions` declares these three options once for every generator transform's options record.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from synthaug._validate import check_image, closest
from synthaug.errors import LabelError, ShapeError, ValidationError
from synthaug.transforms.options import Options

__all__ = ["LabelOptions", "LabelVocabulary", "check_image_label_batch", "resolve_classes", "to_generator_classes", "warn_sparse_labels",
           "names_from_data"]


@dataclasses.dataclass(frozen=True)
class LabelOptions(Options):
    """The label-vocabulary options every generator transform shares (see the module docstring).

    Args:
        label_names: ``{name: label value}`` of your label map (dataset.json ``"labels"`` form); names are matched
            to the generator's class names (``card.labels``). None: taken from the data when it carries names
            (MetaTensor ``meta["labels"]``, TorchIO ``LabelMap.labels``, the recipe's dataset.json).
        label_map: ``{your label value or name: generator class index or name}``, for values whose names differ
            from the generator's (or instead of names).
        labels_are_classes: your label values already are the generator's class indices (explicit opt-in).
    """

    label_names: Mapping[str, int] | None = None
    label_map: Mapping[int | str, int | str] | None = None
    labels_are_classes: bool = False

    def validate(self) -> None:
        super().validate()
        self._set("labels_are_classes", bool(self.labels_are_classes))
        if self.label_names is not None:
            if not isinstance(self.label_names, Mapping):
                raise ValidationError(f"label_names must be a mapping {{name: value}}, got {self.label_names!r}.")
            self._set("label_names", {str(k): _int(v, f"label_names[{k!r}]") for k, v in self.label_names.items()})
        if self.label_map is not None:
            if not isinstance(self.label_map, Mapping):
                raise ValidationError(f"label_map must be a mapping {{value or name: class}}, got {self.label_map!r}.")
            self._set("label_map", {_key(k): _key(v) for k, v in self.label_map.items()} or None)


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)) or not str(v).lstrip("-").isdigit():
        raise ValidationError(f"{what} must be an integer label value, got {v!r}.")
    return int(v)


def _key(v: Any) -> int | str:
    """An integer (given as int or digit string) or a name."""
    if isinstance(v, bool):
        raise ValidationError(f"label values and classes must be integers or names, got {v!r}.")
    if isinstance(v, int) or (isinstance(v, float) and v == int(v)):
        return int(v)
    s = str(v)
    return int(s) if s.lstrip("-").isdigit() else s


def names_from_data(meta: Any) -> dict[str, int] | None:
    """``{name: value}`` from a data container's label names (``{name: value}`` or ``{value: name}``), else None."""
    if not isinstance(meta, Mapping) or not meta:
        return None
    out: dict[str, int] = {}
    for k, v in meta.items():
        if isinstance(v, (int,)) and not isinstance(v, bool):
            out[str(k)] = int(v)
        elif isinstance(k, int) or str(k).lstrip("-").isdigit():
            out[str(v)] = int(k)
        else:
            return None
    return out


def resolve_classes(
    card_labels: Sequence[str],
    *,
    generator: str,
    label_map: Mapping[int | str, int | str] | None,
    label_names: Mapping[str, int] | None,
    labels_are_classes: bool,
    ignore_label: int | None = None,
) -> dict[int, int] | None:
    """``{your label value: generator class index}`` (None: the values already are class indices).

    Raises :class:`LabelError` when nothing says what the values mean, or when a named label is not one of the
    generator's classes and ``label_map`` does not place it.
    """
    card_index = {n: i for i, n in enumerate(card_labels)}
    if label_map is None and label_names is None:
        if labels_are_classes:
            return None
        raise LabelError(
            f"generator {generator!r} reads a label map by name, and this one comes without names, so its values "
            f"cannot be matched to the generator's classes {list(card_labels)}. Give label_names={{name: value}} "
            "(e.g. your dataset.json 'labels'; MONAI: meta['labels'], TorchIO: LabelMap(..., labels={...})), or "
            "label_map={your value: generator class name or index}, or labels_are_classes=True if your values "
            f"already are its class indices 0..{len(card_labels) - 1}."
        )
    names = dict(label_names or {})
    if ignore_label is not None:
        names = {n: v for n, v in names.items() if v != ignore_label}
    out: dict[int, int] = {}
    explicit: dict[int, int] = {}
    for k, v in (label_map or {}).items():
        if isinstance(k, str):
            if k not in names:
                if label_names is not None:  # a mapping may cover more classes than this dataset has
                    continue
                raise LabelError(
                    f"label_map names the label {k!r}, but no label_names say which value it has; give "
                    f"label_names={{{k!r}: value, ...}} or use the value as the key."
                )
            k = names[k]
        if isinstance(v, str):
            if v not in card_index:
                raise LabelError(
                    f"label_map maps {k!r} to {v!r}, which is not a class of generator {generator!r} "
                    f"{list(card_labels)}.{closest(v, card_index)}"
                )
            v = card_index[v]
        if not 0 <= int(v) < len(card_labels):
            raise LabelError(
                f"label_map maps {k!r} to class {v}, but generator {generator!r} has classes 0..{len(card_labels) - 1} "
                f"{list(card_labels)}."
            )
        explicit[int(k)] = int(v)
    unknown = sorted(n for n, v in names.items() if v not in explicit and n not in card_index and v != 0)
    if unknown:
        raise LabelError(
            f"label(s) {unknown} are not classes of generator {generator!r} {list(card_labels)}. Map them with "
            "label_map={name or value: generator class} (e.g. a tumour to the organ it sits in), or use weights "
            "trained on your label set."
        )
    for n, v in names.items():
        if n in card_index:
            out[v] = card_index[n]
    out.update(explicit)
    out.setdefault(0, card_index.get("background", 0))
    return out


class LabelVocabulary:
    """Mixin of the generator transforms: their label values -> the generator's classes, by name.

    Needs ``self.card`` and the :class:`LabelOptions` fields; :meth:`class_table` is cached per set of names.
    """

    card: Any
    label_names: Mapping[str, int] | None
    label_map: Mapping[int | str, int | str] | None
    labels_are_classes: bool

    def _vocabulary_setup(self) -> bool:
        """Start the table cache; True when the options alone say what the values mean."""
        self._tables: dict[Any, dict[int, int] | None] = {}
        return self.label_names is not None or self.label_map is not None or self.labels_are_classes

    def class_table(self, data_names: Mapping[str, int] | None = None) -> dict[int, int] | None:
        """``{label value: generator class}`` from the options, else from the names the data carries
        (``data_names``); None: the values are the classes (``labels_are_classes=True``)."""
        names = self.label_names if self.label_names is not None else data_names
        key = None if names is None else tuple(sorted(names.items()))
        if key not in self._tables:
            self._tables[key] = resolve_classes(
                self.card.labels, generator=self.card.name, label_map=self.label_map, label_names=names,
                labels_are_classes=self.labels_are_classes)
        return self._tables[key]

    def _to_classes(self, labels: torch.Tensor, data_names: Mapping[str, int] | None = None,
                    name: str = "label") -> torch.Tensor:
        return to_generator_classes(labels, generator_name=self.card.name, class_names=self.card.labels,
                                    label_map=self.class_table(data_names), name=name)


_WARNED: set[str] = set()


def warn_sparse_labels(classes: torch.Tensor, *, generator: str, minimum: float = 0.05) -> None:
    """Warn once per process and generator when foreground covers under ``minimum`` of a sample's voxels: a
    label-to-image generator renders everything else as background, so such a mask (e.g. a tumour alone)
    gives an image with most anatomy erased."""
    if generator in _WARNED:
        return
    frac = (classes != 0).flatten(1).float().mean(1)
    if bool((frac < minimum).any()):
        _WARNED.add(generator)
        warnings.warn(
            f"generator {generator!r}: a label map covers only {float(frac.min()):.1%} of its voxels with "
            f"foreground; everything else is rendered as background. Label-to-image synthesis needs label maps "
            "of the whole anatomy (e.g. TotalSegmentator's), not a single structure.", UserWarning, stacklevel=3,
        )


def check_image_label_batch(images: torch.Tensor, labels: torch.Tensor, *, purpose: str = "synthesise",
                            allow_empty: bool = False) -> torch.Tensor:
    """Validate ``images`` (B, 1, *spatial) float and ``labels`` (B, 1, *spatial); return labels as int64.

    Refuses NaN images, non-integer labels, batch and shape mismatches and (unless ``allow_empty``: transforms that render
    background too) empty label maps (naming the sample).
    """
    check_image(images, "image", spatial_dims=(2, 3), channels=1, batched=True)
    if labels.ndim != images.ndim or labels.shape[1] != 1:
        raise ShapeError(
            f"label must have shape (B, 1, *spatial) matching image {tuple(images.shape)}, got {tuple(labels.shape)}."
        )
    if labels.shape[0] != images.shape[0]:
        raise ShapeError(
            f"image batch {tuple(images.shape)} and label batch {tuple(labels.shape)} hold different numbers of "
            "samples; give one label map per image (same first dimension)."
        )
    if labels.shape[2:] != images.shape[2:]:
        raise ShapeError(
            f"image {tuple(images.shape)} and label {tuple(labels.shape)} must share their spatial shape; "
            "resample the label onto the image grid (nearest neighbour)."
        )
    if labels.is_floating_point():
        if not bool(torch.isfinite(labels).all()) or not bool((labels == labels.round()).all()):
            raise LabelError("label holds non-integer or NaN values; a label map must hold integer class ids.")
        labels = labels.round()
    labels = labels.long()
    if allow_empty:
        return labels
    empty = ~(labels != 0).flatten(1).any(1)
    if bool(empty.any()):
        raise LabelError(
            f"label map of sample(s) {empty.nonzero().flatten().tolist()} is empty (only background 0): there "
            f"are no regions to {purpose}. Skip such samples or use prob=0 for them."
        )
    return labels


def to_generator_classes(
    labels: torch.Tensor,
    *,
    generator_name: str,
    class_names: Sequence[str],
    label_map: Mapping[int, int] | None,
    name: str = "label",
) -> torch.Tensor:
    """Map label values to the generator's class indices (identity without ``label_map``), refusing unknowns."""
    n_labels = len(class_names)
    present = torch.unique(labels)
    if label_map is None:
        bad = present[(present < 0) | (present >= n_labels)]
        if bad.numel():
            raise LabelError(
                f"{name} holds value(s) {bad.tolist()} that the generator {generator_name!r} does not know; it "
                f"knows 0..{n_labels - 1} = {list(class_names)}. Pass label_map={{your value: class}} "
                "or map your labels (synthaug.data.vocabulary) first."
            )
        return labels
    keys = torch.tensor(sorted(label_map), device=labels.device)
    unknown = present[~torch.isin(present, keys)]
    if unknown.numel():
        raise LabelError(
            f"{name} holds value(s) {unknown.tolist()} that label_map does not cover (it maps {sorted(label_map)})."
        )
    lo = min(0, int(keys.min()))
    lut = torch.zeros(int(keys.max()) - lo + 1, dtype=torch.long, device=labels.device)
    lut[keys - lo] = torch.tensor([label_map[int(k)] for k in keys.tolist()], device=labels.device)
    return lut[labels - lo]
