"""MONAI faces of every registered synthaug transform (array + dictionary), generated from the registry.

For each :class:`~synthaug.recipes.registry.TransformDecl` this module defines two classes (names from the
declaration): an array form (``RandContextTextureSynth``: ``t(image, label) -> (image, label)``; image-only
transforms: ``t(image) -> image``) and a dictionary form (``RandContextTextureSynthd``; image-only:
``ModalityTranslated``). Their options are the core's options record: visible in ``inspect.signature``,
``help()`` and the docstring, validated by the record, with the same defaults as the array form, the recipe
face and the TorchIO face.

Randomness comes from MONAI's ``self.R`` (so ``set_random_state`` and ``Compose(...).set_random_state`` replay
pipelines); it is reduced to one integer seed per call that the pure core consumes. The transforms hold only a
weights *name* (and a style bank read from a folder is held by reference), never a network, so MONAI's
``CacheDataset`` can deep-copy them cheaply; the frozen network is resolved per process and device by
:func:`synthaug.weights.registry.load`. They are neither lazy nor invertible (an intensity synthesis has no
inverse): ``Compose(lazy=True)`` applies pending resampling before them; resample labels with
``mode="nearest"`` there, since MONAI's fused resampling otherwise leaves non-integer label values.

Example:
    >>> from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged  # doctest: +SKIP
    >>> from synthaug.integrations.monai import RandContextTextureSynthd  # doctest: +SKIP
    >>> t = Compose([LoadImaged(keys), EnsureChannelFirstd(keys),
    ...              RandContextTextureSynthd(image_key="image", label_key="label", prob=0.5)])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch

from synthaug._optional import require
from synthaug.errors import ValidationError
from synthaug.recipes.registry import TransformDecl, declarations
from synthaug.transforms.guards import DataInfo
from synthaug.transforms.labels import names_from_data
from synthaug.transforms.options import option_parameters, options_doc

_monai_transforms = require("monai.transforms")
_monai_data = require("monai.data")
MapTransform = _monai_transforms.MapTransform
RandomizableTransform = _monai_transforms.RandomizableTransform
MetaTensor = _monai_data.MetaTensor

__all__ = ["check_same_affine", "make_faces"]


def check_same_affine(image: Any, label: Any, names: tuple[str, str] = ("image", "label"), atol: float = 1e-3) -> None:
    """Raise if two MetaTensors carry different affines (a label from another grid)."""
    a, b = getattr(image, "affine", None), getattr(label, "affine", None)
    if a is None or b is None:
        return
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape or not torch.allclose(a, b, atol=atol):
        raise ValidationError(
            f"{names[0]} and {names[1]} have different affines:\n{a.numpy()}\nvs\n{b.numpy()}\n"
            "They do not lie on the same grid: resample the label onto the image (e.g. monai.transforms."
            "ResampleToMatchd with mode='nearest') before this transform."
        )


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.as_tensor() if isinstance(x, MetaTensor) else x
    return torch.as_tensor(x)


def _like(out: torch.Tensor, ref: Any) -> Any:
    """``out`` in the container type of ``ref`` (MetaTensor keeps ``ref``'s meta)."""
    if isinstance(ref, MetaTensor):
        return MetaTensor(out, meta=dict(ref.meta), applied_operations=list(ref.applied_operations))
    if isinstance(ref, torch.Tensor):
        return out
    return out.cpu().numpy()


def _record(core: Any, params: Any) -> dict[str, Any]:
    """What a call did, for the output MetaTensor's meta (``synthaug_<name>``): its params and its options."""
    return {**dataclasses.asdict(params), **core.record()}


# ------------------------------------------------------------------------------------------ bases


class _SeededArray(RandomizableTransform):
    """Array forms: one integer seed per call drawn from MONAI's ``self.R``; the core in ``self.core``."""

    decl: TransformDecl

    def __init__(self, *args: Any, prob: float = 1.0, **options: Any) -> None:
        RandomizableTransform.__init__(self, prob)
        self.core = self.decl.core(*args, prob=1.0, **options)
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._seed = int(self.R.randint(0, 2**31 - 1))

    def _run(self, image: Any, label: Any) -> tuple[Any, Any]:
        """The core on one (image, label) pair; integer images are read as float32."""
        params = self.core.params_from_seed(self._seed, True)
        img_t = _as_tensor(image)
        x = img_t if img_t.is_floating_point() else img_t.float()
        lab_t = None if label is None else _as_tensor(label)
        if self.decl.core.uses_data_info:  # what the MetaTensors say: meta["labels"], the affine's spacing
            names = names_from_data(label.meta.get("labels")) if isinstance(label, MetaTensor) else None
            spacing = tuple(float(s) for s in image.pixdim) if isinstance(image, MetaTensor) else None
            info = DataInfo(label_names=names, spacing=spacing)
            out_img, out_lab = self.core.apply(x, lab_t, params, info=info)
        else:
            out_img, out_lab = self.core.apply(x, lab_t, params)
        out = _like(out_img, image)
        if isinstance(out, MetaTensor):
            out.meta[f"synthaug_{self.decl.name}"] = _record(self.core, params)
        if lab_t is None:
            return out, None
        return out, _like(out_lab.to(lab_t.dtype), label)


class _ImageLabelArray(_SeededArray):
    def __call__(self, image: Any, label: Any, randomize: bool = True) -> tuple[Any, Any]:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return image, label
        check_same_affine(image, label)
        return self._run(image, label)


class _ImageArray(_SeededArray):
    def __call__(self, img: Any, randomize: bool = True) -> Any:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        return self._run(img, None)[0]


class _DictBase(RandomizableTransform, MapTransform):
    """Dictionary forms: one array form in ``self.array`` that shares this transform's random state."""

    array_class: type[_SeededArray]

    def __init__(self, keys: Any, prob: float, allow_missing_keys: bool, args: tuple, options: dict) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.array = self.array_class(*args, prob=1.0, **options)

    def set_random_state(self, seed: int | None = None, state: Any = None) -> _DictBase:
        super().set_random_state(seed, state)
        self.array.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self.array.randomize()

    def _has_keys(self, d: Mapping[Hashable, Any], needed: Sequence[Hashable], hint: str) -> bool:
        """True when ``d`` holds every key; False when some are missing and that is allowed; else raise."""
        missing = [k for k in needed if k not in d]
        if missing and not self.allow_missing_keys:
            raise ValidationError(
                f"{type(self).__name__} needs keys {missing} which are not in the data (keys: {sorted(map(str, d))}); "
                f"set {hint}, or allow_missing_keys=True."
            )
        return not missing


class _ImageLabelDict(_DictBase):
    def __init__(self, *args: Any, image_key: str = "image", label_key: str = "label", prob: float = 1.0,
                 allow_missing_keys: bool = False, **options: Any) -> None:
        super().__init__((image_key, label_key), prob, allow_missing_keys, args, options)
        self.image_key, self.label_key = image_key, label_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize()
        if not self._do_transform or not self._has_keys(d, (self.image_key, self.label_key), "image_key/label_key"):
            return d
        d[self.image_key], d[self.label_key] = self.array(d[self.image_key], d[self.label_key], randomize=False)
        return d


class _ImageDict(_DictBase):
    def __init__(self, keys: Any, *args: Any, output_key: str | Sequence[str] | None = None, prob: float = 1.0,
                 allow_missing_keys: bool = False, **options: Any) -> None:
        super().__init__(keys, prob, allow_missing_keys, args, options)
        if output_key is None:
            out_keys = tuple(self.keys)
        else:
            out_keys = (output_key,) if isinstance(output_key, str) else tuple(output_key)
            if len(out_keys) != len(self.keys):
                raise ValidationError(
                    f"output_key must be one key per input key ({len(self.keys)}: {list(self.keys)}), got {output_key!r}."
                )
            if len(set(out_keys)) != len(out_keys):
                raise ValidationError(f"output_key entries must be distinct, got {list(out_keys)}.")
        self.output_keys = out_keys

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self._has_keys(d, self.keys, "keys=...")
        self.randomize()
        for key, out_key in zip(self.keys, self.output_keys):
            if key not in d:
                continue
            d[out_key] = self.array(d[key], randomize=False) if self._do_transform else d[key]
        return d


# ------------------------------------------------------------------------------------------ generation

_P = inspect.Parameter
_PROB = _P("prob", _P.KEYWORD_ONLY, default=1.0, annotation="float")
_MISSING = _P("allow_missing_keys", _P.KEYWORD_ONLY, default=False, annotation="bool")
_CALLS = {
    "image_label": "``t(image, label) -> (image, label)`` (channel-first tensors, MetaTensors or arrays; meta kept)",
    "image": "``t(image) -> image`` in the target convention (labels are not an argument: they stay untouched)",
}


def _doc(decl: TransformDecl, what: str) -> str:
    core = decl.core.__name__
    return (f"{what} of :class:`synthaug.transforms.{core}` ({decl.description}).\n\n"
            f"Generated from the registry entry ``{decl.name!r}``; the options are those of "
            f":class:`{decl.options.__module__}.{decl.options.__name__}`, with the same defaults everywhere.\n\n"
            f"Options:\n{options_doc(decl.options)}\n")


def _make(name: str, bases: tuple[type, ...], decl: TransformDecl, params: list[_P], doc: str,
          extra: dict[str, Any] | None = None) -> type:
    cls = type(name, bases, {"decl": decl, "__doc__": doc, "__module__": __name__, **(extra or {})})
    cls.__qualname__ = name
    cls.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return cls


def make_faces(decl: TransformDecl) -> tuple[type, type]:
    """The MONAI (array form, dictionary form) classes of ``decl`` (also for plug-in transforms)."""
    pos = option_parameters(decl.options, positional=decl.core.positional)
    positional = [p for p in pos if p.kind == _P.POSITIONAL_OR_KEYWORD]
    keyword = [p for p in pos if p.kind == _P.KEYWORD_ONLY]
    image_only = decl.inputs == "image"
    array_base = _ImageArray if image_only else _ImageLabelArray
    array = _make(decl.monai, (array_base,), decl, positional + [_PROB] + keyword,
                  _doc(decl, "MONAI array form") + f"\nCall: {_CALLS[decl.inputs]}; ``prob`` from MONAI's random state.\n")
    if image_only:
        head = [_P("keys", _P.POSITIONAL_OR_KEYWORD)]
        opts = [p.replace(kind=_P.KEYWORD_ONLY) for p in positional] + keyword
        lead = [_P("output_key", _P.KEYWORD_ONLY, default=None)]
        extra_doc = ("\nKeys: ``keys`` (the images to transform); ``output_key`` None transforms in place, a key "
                     "(one per input key) writes the result there and keeps the source (when a call does not apply, "
                     "the new key receives the unchanged image, so every item has the same keys).\n")
        base = _ImageDict
    else:
        head = [_P("image_key", _P.KEYWORD_ONLY, default="image"), _P("label_key", _P.KEYWORD_ONLY, default="label")]
        opts = [p.replace(kind=_P.KEYWORD_ONLY) for p in positional] + keyword
        lead = []
        extra_doc = ("\nKeys: ``data[image_key]`` is replaced by the synthetic image and ``data[label_key]`` by the "
                     "(possibly deformed) label; meta is kept.\n")
        base = _ImageLabelDict
    dictionary = _make(decl.monai_dict, (base,), decl, head + lead + [_PROB, _MISSING] + opts,
                       _doc(decl, "MONAI dictionary form") + extra_doc, {"array_class": array})
    return array, dictionary


for _decl in declarations():
    _array, _dict = make_faces(_decl)
    globals()[_decl.monai], globals()[_decl.monai_dict] = _array, _dict
    __all__ += [_decl.monai, _decl.monai_dict]
del _decl, _array, _dict
