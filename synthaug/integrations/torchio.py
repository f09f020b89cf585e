"""TorchIO faces of every registered synthaug transform, generated from the registry.

For each :class:`~synthaug.recipes.registry.TransformDecl` this module defines one random transform (name from
the declaration, e.g. ``RandomContextTextureSynth``): it draws one integer seed per call from torch's RNG (as
TorchIO's own random transforms do; ``torch.manual_seed`` replays) and hands it to :class:`SynthAugReplay`,
the one deterministic twin of every synthaug transform, which declares its ``args_names``; the subject's
history therefore replays exactly (``subject.get_composed_history()``). Options are the core's options record:
visible in ``inspect.signature`` and the docstring, with the same defaults as every other face.

Image + label transforms read ``subject[image_name]`` (a ScalarImage) and ``subject[label_name]`` (a LabelMap)
and write both back; image-only transforms (modality translation) replace ``subject[image_name]`` or, with
``output_name``, add the result as a new ScalarImage; label maps are never touched.

Example:
    >>> import torchio as tio  # doctest: +SKIP
    >>> from synthaug.integrations.torchio import RandomContextTextureSynth  # doctest: +SKIP
    >>> t = tio.Compose([tio.RandomAffine(), RandomContextTextureSynth(weights="context_ct_a", p=0.5)])  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from synthaug._optional import require
from synthaug.errors import ValidationError
from synthaug.recipes.registry import TransformDecl, declarations, get_transform
from synthaug.transforms.guards import DataInfo
from synthaug.transforms.labels import names_from_data
from synthaug.transforms.options import option_parameters, options_doc

tio = require("torchio")
_RandomTransform = require("torchio.transforms.augmentation").RandomTransform

__all__ = ["SynthAugReplay", "make_face"]

#: TorchIO's own keyword arguments that every face passes through to ``tio.Transform``.
_BASE = ("p", "include", "exclude", "copy", "keep")


def _check_image(subject: Any, name: str, kind: type, what: str) -> Any:
    if name not in subject:
        raise ValidationError(f"subject has no image named {name!r} (it has {sorted(subject.keys())}).")
    image = subject[name]
    if not isinstance(image, kind):
        raise ValidationError(f"{name!r} is a {type(image).__name__}; {what}.")
    return image


class SynthAugReplay(tio.Transform):
    """Deterministic twin of every synthaug TorchIO face: run registered ``transform`` with a given ``seed``.

    Args:
        transform: registry name (``synthaug.recipes.transform_names()``).
        seed: the integer seed the random face drew (it fixes every random choice of the call).
        image_name, label_name: the subject's image and label map (``label_name`` unused by image-only
            transforms).
        output_name: image-only transforms: None replaces the image, a name adds the result as a new image.
        options: the core's options (``synthaug.recipes.get_transform(transform).options``).
    """

    def __init__(self, transform: str, seed: int, *, image_name: str = "image", label_name: str = "label",
                 output_name: str | None = None, options: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transform, self.seed = str(transform), int(seed)
        self.image_name, self.label_name, self.output_name = image_name, label_name, output_name
        self.options = dict(options or {})
        self.args_names = ["transform", "seed", "image_name", "label_name", "output_name", "options"]
        self._decl = get_transform(self.transform)
        self._core = self._decl.core(prob=1.0, **self.options)

    def apply_transform(self, subject: Any) -> Any:
        params = self._core.params_from_seed(self.seed, True)
        if self._decl.inputs == "image":
            image = _check_image(subject, self.image_name, tio.ScalarImage,
                                 "this transform applies to intensity images (ScalarImage)")
            data = image.data
            kw = {"info": DataInfo(spacing=tuple(image.spacing))} if self._decl.core.uses_data_info else {}
            out, _ = self._core.apply(data if data.is_floating_point() else data.float(), None, params, **kw)
            if self.output_name is None:
                image.set_data(out)
            else:
                subject.add_image(tio.ScalarImage(tensor=out, affine=image.affine), self.output_name)
            return subject
        image = _check_image(subject, self.image_name, tio.ScalarImage, "the image must be a ScalarImage")
        label = _check_image(subject, self.label_name, tio.LabelMap, "the label must be a LabelMap")
        if not np.allclose(image.affine, label.affine, atol=1e-3):
            raise ValidationError(
                f"{self.image_name!r} and {self.label_name!r} have different affines; resample the label onto the image "
                "first (tio.Resample(image_name) applies nearest-neighbour to label maps)."
            )
        if self._decl.core.uses_data_info:  # what the images say: LabelMap(..., labels={...}), the spacing
            info = DataInfo(label_names=names_from_data(label.get("labels")), spacing=tuple(image.spacing))
            out_img, out_lab = self._core.apply(image.data.float(), label.data, params, info=info)
        else:
            out_img, out_lab = self._core.apply(image.data.float(), label.data, params)
        image.set_data(out_img.to(image.data.dtype) if image.data.is_floating_point() else out_img)
        label.set_data(out_lab.to(label.data.dtype))
        return subject


class _RandomFace(_RandomTransform):
    """Random face: validates the options at construction, draws one seed per call, runs the twin."""

    decl: TransformDecl

    def __init__(self, *args: Any, image_name: str = "image", label_name: str = "label",
                 output_name: str | None = None, **kwargs: Any) -> None:
        base = {k: kwargs.pop(k) for k in list(kwargs) if k in _BASE}
        super().__init__(**base)
        core = self.decl.core(*args, prob=1.0, **kwargs)  # validate now, not at the first call
        self.options = {k: getattr(core.options, k) for k in core.options.non_default()}
        self.image_name, self.label_name, self.output_name = image_name, label_name, output_name

    def apply_transform(self, subject: Any) -> Any:
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        twin = SynthAugReplay(self.decl.name, seed, image_name=self.image_name, label_name=self.label_name,
                              output_name=self.output_name, options=self.options, **self._get_base_args())
        return twin(subject)


_P = inspect.Parameter


def make_face(decl: TransformDecl) -> type:
    """The TorchIO random transform class of ``decl`` (also for plug-in transforms)."""
    params = option_parameters(decl.options, positional=decl.core.positional)
    names = [_P("image_name", _P.KEYWORD_ONLY, default="image")]
    if decl.inputs == "image":
        names.append(_P("output_name", _P.KEYWORD_ONLY, default=None))
        call = ("translates ``subject[image_name]`` (a ScalarImage) in place, or adds it as ``output_name``; "
                "label maps are never touched")
    else:
        names.append(_P("label_name", _P.KEYWORD_ONLY, default="label"))
        call = "replaces ``subject[image_name]`` and ``subject[label_name]`` (possibly deformed)"
    base = [_P("p", _P.KEYWORD_ONLY, default=1.0), _P("include", _P.KEYWORD_ONLY, default=None),
            _P("exclude", _P.KEYWORD_ONLY, default=None)]
    positional = [p for p in params if p.kind == _P.POSITIONAL_OR_KEYWORD]
    keyword = [p for p in params if p.kind == _P.KEYWORD_ONLY]
    doc = (f"TorchIO random form of :class:`synthaug.transforms.{decl.core.__name__}` ({decl.description}).\n\n"
           f"Each call {call}; the subject's history holds a :class:`SynthAugReplay` with the drawn seed.\n"
           f"Generated from the registry entry ``{decl.name!r}``; ``p`` is TorchIO's probability.\n\n"
           f"Options:\n{options_doc(decl.options)}\n")
    cls = type(decl.torchio, (_RandomFace,), {"decl": decl, "__doc__": doc, "__module__": __name__})
    cls.__qualname__ = decl.torchio
    cls.__signature__ = inspect.Signature(positional + names + base + keyword)  # type: ignore[attr-defined]
    return cls


def _faces(decls: Sequence[TransformDecl]) -> dict[str, type]:
    return {d.torchio: make_face(d) for d in decls}


for _name, _cls in _faces(declarations()).items():
    globals()[_name] = _cls
    __all__.append(_name)
del _name, _cls
