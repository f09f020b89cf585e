"""TorchIO forms of the synthaug transforms: a random transform and its deterministic twin.

``RandomContextTextureSynth`` samples one integer seed and hands it to ``ContextTextureSynth``,
which declares its ``args_names``; the subject's history therefore replays exactly. The same holds for
``RandomStyleSwap`` / ``StyleSwap``. ``ModalityTranslate`` (alias ``RandomModalityTranslate``) is
deterministic apart from TorchIO's ``p``, so it needs no twin.
"""

from __future__ import annotations

from typing import Any

import torch

from synthaug._optional import require
from synthaug.errors import ValidationError
from synthaug.transforms.context_texture import DEFAULT_CONTEXT_WEIGHTS, ContextTextureParams
from synthaug.transforms.context_texture import ContextTextureSynth as _Core

tio = require("torchio")
_RandomTransform = require("torchio.transforms.augmentation").RandomTransform

__all__ = ["ContextTextureSynth", "RandomContextTextureSynth"]

_OPTION_NAMES = ("deform", "control_points", "max_displacement", "features", "perturbation", "ranges", "label_map", "slice_axis", "chunk")


def _check_pair(subject: Any, image_name: str, label_name: str) -> None:
    for name in (image_name, label_name):
        if name not in subject:
            raise ValidationError(f"subject has no image named {name!r} (it has {sorted(subject.keys())}).")
    a, b = subject[image_name].affine, subject[label_name].affine
    import numpy as np

    if not np.allclose(a, b, atol=1e-3):
        raise ValidationError(
            f"{image_name!r} and {label_name!r} have different affines; resample the label onto the image first "
            "(tio.Resample(image_name) applies nearest-neighbour to label maps)."
        )


class ContextTextureSynth(tio.Transform):
    """Deterministic twin: synthesise with a given ``seed`` (see :class:`synthaug.transforms.ContextTextureSynth`)."""

    def __init__(
        self,
        seed: int,
        *,
        weights: str = DEFAULT_CONTEXT_WEIGHTS,
        image_name: str = "image",
        label_name: str = "label",
        deform: bool = True,
        control_points: int = 4,
        max_displacement: float = 6.0,
        features: str = "perturb",
        perturbation: float = 0.1,
        ranges: dict | None = None,
        label_map: dict | None = None,
        slice_axis: int = 2,
        chunk: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.seed, self.weights, self.image_name, self.label_name = int(seed), weights, image_name, label_name
        self.deform, self.control_points, self.max_displacement = deform, control_points, max_displacement
        self.features, self.perturbation, self.ranges, self.label_map = features, perturbation, ranges, label_map
        self.slice_axis, self.chunk = slice_axis, chunk
        self.args_names = ["seed", "weights", "image_name", "label_name", *_OPTION_NAMES]
        self._core = _Core(weights, prob=1.0, **{k: getattr(self, k) for k in _OPTION_NAMES})

    def apply_transform(self, subject: Any) -> Any:
        _check_pair(subject, self.image_name, self.label_name)
        image, label = subject[self.image_name], subject[self.label_name]
        img = image.data.float()
        lab = label.data
        out_img, out_lab = self._core.apply(img, lab, ContextTextureParams(seed=self.seed, apply=True))
        image.set_data(out_img.to(image.data.dtype) if image.data.is_floating_point() else out_img)
        label.set_data(out_lab.to(label.data.dtype))
        return subject


class RandomContextTextureSynth(_RandomTransform):
    """Random ConText-GAN synthesis for TorchIO subjects (``p`` is TorchIO's probability)."""

    def __init__(
        self,
        *,
        weights: str = DEFAULT_CONTEXT_WEIGHTS,
        image_name: str = "image",
        label_name: str = "label",
        **options: Any,
    ) -> None:
        base = {k: options.pop(k) for k in list(options) if k not in _OPTION_NAMES}
        super().__init__(**base)
        self.weights, self.image_name, self.label_name = weights, image_name, label_name
        self.options = options
        _Core(weights, prob=1.0, **options)  # validate now, not at the first call

    def apply_transform(self, subject: Any) -> Any:
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        transform = ContextTextureSynth(
            seed, weights=self.weights, image_name=self.image_name, label_name=self.label_name, **self.options,
            **self._get_base_args(),
        )
        return transform(subject)


# ------------------------------------------------------------------------------------------ style swap

from synthaug.transforms.style_swap import DEFAULT_STYLE_WEIGHTS, StyleBank  # noqa: E402
from synthaug.transforms.style_swap import StyleSwap as _StyleCore  # noqa: E402

__all__ += ["StyleSwap", "RandomStyleSwap"]

_STYLE_OPTIONS = ("deform", "control_points", "max_displacement", "truncation", "label_map", "slice_axis", "chunk")


class StyleSwap(tio.Transform):
    """Deterministic twin: style swap with a given ``seed`` (it picks the bank case and the noise);
    see :class:`synthaug.transforms.StyleSwap`."""

    def __init__(
        self,
        seed: int,
        *,
        weights: str = DEFAULT_STYLE_WEIGHTS,
        bank: StyleBank | None = None,
        image_name: str = "image",
        label_name: str = "label",
        deform: bool = False,
        control_points: int = 4,
        max_displacement: float = 4.0,
        truncation: float | None = 1.0,
        label_map: dict | None = None,
        slice_axis: int = 2,
        chunk: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.seed, self.weights, self.bank = int(seed), weights, bank
        self.image_name, self.label_name = image_name, label_name
        self.deform, self.control_points, self.max_displacement = deform, control_points, max_displacement
        self.truncation, self.label_map, self.slice_axis, self.chunk = truncation, label_map, slice_axis, chunk
        self.args_names = ["seed", "weights", "bank", "image_name", "label_name", *_STYLE_OPTIONS]
        self._core = _StyleCore(weights, bank, prob=1.0, **{k: getattr(self, k) for k in _STYLE_OPTIONS})

    def apply_transform(self, subject: Any) -> Any:
        _check_pair(subject, self.image_name, self.label_name)
        image, label = subject[self.image_name], subject[self.label_name]
        params = self._core.params_from_seed(self.seed)
        out_img, out_lab = self._core.apply(image.data.float(), label.data, params)
        image.set_data(out_img.to(image.data.dtype) if image.data.is_floating_point() else out_img)
        label.set_data(out_lab.to(label.data.dtype))
        return subject


class RandomStyleSwap(_RandomTransform):
    """Random per-organ style swap for TorchIO subjects (``p`` is TorchIO's probability).

    Each call draws one seed (the bank patient and the noise); the subject's history holds a
    :class:`StyleSwap` with that seed, so ``subject.get_composed_history()`` replays it exactly.
    """

    def __init__(
        self,
        *,
        weights: str = DEFAULT_STYLE_WEIGHTS,
        bank: StyleBank | None = None,
        image_name: str = "image",
        label_name: str = "label",
        **options: Any,
    ) -> None:
        base = {k: options.pop(k) for k in list(options) if k not in _STYLE_OPTIONS}
        super().__init__(**base)
        self.weights, self.bank, self.image_name, self.label_name = weights, bank, image_name, label_name
        self.options = options
        _StyleCore(weights, bank, prob=1.0, **options)  # validate now, not at the first call

    def apply_transform(self, subject: Any) -> Any:
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        transform = StyleSwap(
            seed, weights=self.weights, bank=self.bank, image_name=self.image_name, label_name=self.label_name,
            **self.options, **self._get_base_args(),
        )
        return transform(subject)


# ------------------------------------------------------------------------------------------ modality translation

from synthaug.transforms.modality_translate import DEFAULT_TRANSLATE_WEIGHTS  # noqa: E402
from synthaug.transforms.modality_translate import ModalityTranslate as _TranslateCore  # noqa: E402

__all__ += ["ModalityTranslate", "RandomModalityTranslate"]

_TRANSLATE_OPTIONS = ("mode", "overlap", "weighting", "patch_size", "slice_axis", "chunk", "output_range")


class ModalityTranslate(tio.Transform):
    """Translate ``subject[image_name]`` into the target modality (see :class:`synthaug.transforms.ModalityTranslate`).

    ``p`` is TorchIO's probability; the translation itself is deterministic, so the subject's history
    (``subject.get_composed_history()``) replays a call exactly. With ``output_name`` the translation is
    added as a new :class:`torchio.ScalarImage` (same affine) and the source image is kept; otherwise it
    replaces the image in place. Label maps are never touched. Integer images are read as float32.

    Example:
        >>> t = ModalityTranslate(weights="translate_brain_pd_t2_resgan", source="PDw", target="T2w",
        ...                       output_name="t2w", p=0.5)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        weights: str = DEFAULT_TRANSLATE_WEIGHTS,
        source: str | None = None,
        target: str | None = None,
        image_name: str = "image",
        output_name: str | None = None,
        mode: str = "auto",
        overlap: float | None = None,
        weighting: str | None = None,
        patch_size: int | tuple[int, ...] | None = None,
        slice_axis: int = 2,
        chunk: int = 16,
        output_range: str | tuple[float, float] = "input",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.weights, self.source, self.target = weights, source, target
        self.image_name, self.output_name = image_name, output_name
        self.mode, self.overlap, self.weighting, self.patch_size = mode, overlap, weighting, patch_size
        self.slice_axis, self.chunk, self.output_range = slice_axis, chunk, output_range
        self.args_names = ["weights", "source", "target", "image_name", "output_name", *_TRANSLATE_OPTIONS]
        self._core = _TranslateCore(weights, source=source, target=target, prob=1.0,
                                    **{k: getattr(self, k) for k in _TRANSLATE_OPTIONS})

    def apply_transform(self, subject: Any) -> Any:
        if self.image_name not in subject:
            raise ValidationError(f"subject has no image named {self.image_name!r} (it has {sorted(subject.keys())}).")
        image = subject[self.image_name]
        if isinstance(image, tio.LabelMap):
            raise ValidationError(
                f"{self.image_name!r} is a LabelMap; modality translation applies to intensity images (ScalarImage)."
            )
        data = image.data
        x = data if data.is_floating_point() else data.float()
        out, _ = self._core.apply(x, None, self._core.params_from_seed(0))
        if self.output_name is None:
            image.set_data(out)
        else:
            subject.add_image(tio.ScalarImage(tensor=out, affine=image.affine), self.output_name)
        return subject


RandomModalityTranslate = ModalityTranslate  # the name that sits next to RandomStyleSwap / RandomContextTextureSynth
