"""MONAI forms of the synthaug transforms (array + dictionary).

Randomness comes from MONAI's ``self.R`` (so ``set_random_state`` and ``Compose(...).set_random_state``
replay pipelines); it is reduced to one integer seed per call that the pure core consumes. The
transforms hold only a weights *name* and its model card, never a network, so MONAI's
``CacheDataset`` can deep-copy them cheaply; the frozen network is resolved per process and device
by :func:`synthaug.weights.registry.load`. They are neither lazy nor invertible (an intensity
synthesis has no inverse): ``Compose(lazy=True)`` applies pending resampling before them.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch

from synthaug._optional import require
from synthaug.errors import ValidationError
from synthaug.transforms.context_texture import (
    DEFAULT_CONTEXT_WEIGHTS,
    ContextTextureParams,
    ContextTextureSynth,
)
from synthaug.transforms.modality_translate import DEFAULT_TRANSLATE_WEIGHTS
from synthaug.transforms.modality_translate import ModalityTranslate as _TranslateCore
from synthaug.transforms.style_swap import DEFAULT_STYLE_WEIGHTS, StyleBank, StyleSwap

_monai_transforms = require("monai.transforms")
_monai_data = require("monai.data")
MapTransform = _monai_transforms.MapTransform
RandomizableTransform = _monai_transforms.RandomizableTransform
MetaTensor = _monai_data.MetaTensor

__all__ = [
    "RandContextTextureSynth",
    "RandContextTextureSynthd",
    "RandStyleSwap",
    "RandStyleSwapd",
    "ModalityTranslate",
    "ModalityTranslated",
    "RandModalityTranslate",
    "check_same_affine",
]


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
        res = MetaTensor(out, meta=dict(ref.meta), applied_operations=list(ref.applied_operations))
        return res
    if isinstance(ref, torch.Tensor):
        return out
    return out.cpu().numpy()


class _SeededPairTransform(RandomizableTransform):
    """Array forms: one integer seed per call drawn from MONAI's ``self.R``; ``__call__(image, label)``."""

    def __init__(self, prob: float) -> None:
        RandomizableTransform.__init__(self, prob)
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._seed = int(self.R.randint(0, 2**31 - 1))


class _ArrayDictTransform(RandomizableTransform, MapTransform):
    """Dictionary forms: one array form in ``self.array`` that shares this transform's random state."""

    def __init__(self, keys: Any, array: _SeededPairTransform, prob: float, allow_missing_keys: bool) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.array = array

    def set_random_state(self, seed: int | None = None, state: Any = None) -> _ArrayDictTransform:
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


class _ImageLabelDictTransform(_ArrayDictTransform):
    """Dictionary forms of the (image, label) transforms: ``data[image_key]``, ``data[label_key]`` -> array form."""

    def __init__(self, array: _SeededPairTransform, image_key: str, label_key: str, prob: float,
                 allow_missing_keys: bool) -> None:
        super().__init__((image_key, label_key), array, prob, allow_missing_keys)
        self.image_key, self.label_key = image_key, label_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize()
        if not self._do_transform or not self._has_keys(d, (self.image_key, self.label_key), "image_key/label_key"):
            return d
        d[self.image_key], d[self.label_key] = self.array(d[self.image_key], d[self.label_key], randomize=False)
        return d


class RandContextTextureSynth(_SeededPairTransform):
    """Array form: ``synth(image, label) -> (image, label)``; see :class:`ContextTextureSynth`."""

    def __init__(self, weights: str = DEFAULT_CONTEXT_WEIGHTS, prob: float = 1.0, **options: Any) -> None:
        super().__init__(prob)
        self.synth = ContextTextureSynth(weights, prob=1.0, **options)

    def __call__(self, image: Any, label: Any, randomize: bool = True) -> tuple[Any, Any]:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return image, label
        check_same_affine(image, label)
        params = ContextTextureParams(seed=self._seed, apply=True)
        img_t, lab_t = _as_tensor(image), _as_tensor(label)
        out_img, out_lab = self.synth.apply(img_t, lab_t, params)
        return _like(out_img, image), _like(out_lab.to(lab_t.dtype), label)


class RandContextTextureSynthd(_ImageLabelDictTransform):
    """Dictionary form of :class:`RandContextTextureSynth` (MONAI).

    Replaces ``data[image_key]`` by a synthetic image for ``data[label_key]`` (elastically deformed
    first when ``deform=True``; the deformed label replaces ``data[label_key]``), keeping meta.

    Example:
        >>> from monai.transforms import Compose  # doctest: +SKIP
        >>> t = Compose([LoadImaged(keys), EnsureChannelFirstd(keys),
        ...              RandContextTextureSynthd(image_key="image", label_key="label", prob=0.5)])  # doctest: +SKIP
    """

    def __init__(
        self,
        image_key: str = "image",
        label_key: str = "label",
        weights: str = DEFAULT_CONTEXT_WEIGHTS,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(RandContextTextureSynth(weights, prob=1.0, **options), image_key, label_key, prob, allow_missing_keys)


# ------------------------------------------------------------------------------------------ style swap


class RandStyleSwap(_SeededPairTransform):
    """Array form: ``swap(image, label) -> (image, label)``; see :class:`synthaug.transforms.StyleSwap`.

    The seed drawn from MONAI's ``self.R`` picks the style patient and the noise, so
    ``set_random_state`` replays the call; the applied seed and style case are recorded in the output
    MetaTensor's meta under ``"synthaug_style_swap"``.
    """

    def __init__(
        self, weights: str = DEFAULT_STYLE_WEIGHTS, bank: StyleBank | None = None, prob: float = 1.0, **options: Any
    ) -> None:
        super().__init__(prob)
        self.swap = StyleSwap(weights, bank, prob=1.0, **options)

    def __call__(self, image: Any, label: Any, randomize: bool = True) -> tuple[Any, Any]:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return image, label
        check_same_affine(image, label)
        params = self.swap.params_from_seed(self._seed)
        img_t, lab_t = _as_tensor(image), _as_tensor(label)
        out_img, out_lab = self.swap.apply(img_t.float() if not img_t.is_floating_point() else img_t, lab_t, params)
        out_img = _like(out_img.to(img_t.dtype) if img_t.is_floating_point() else out_img, image)
        if isinstance(out_img, MetaTensor):
            out_img.meta["synthaug_style_swap"] = {"seed": params.seed, "style_case": params.style_id,
                                                   "weights": str(self.swap.weights)}
        return out_img, _like(out_lab.to(lab_t.dtype), label)


class RandStyleSwapd(_ImageLabelDictTransform):
    """Dictionary form of :class:`RandStyleSwap` (MONAI).

    Replaces ``data[image_key]`` by the content label map rendered in a random bank patient's per-organ
    style (with ``deform=True`` the perturbed label replaces ``data[label_key]``), keeping meta.

    Example:
        >>> bank = StyleBank.from_folder("style_cases/")  # doctest: +SKIP
        >>> t = Compose([LoadImaged(keys), EnsureChannelFirstd(keys),
        ...              RandStyleSwapd(image_key="image", label_key="label", bank=bank, prob=0.5)])  # doctest: +SKIP
    """

    def __init__(
        self,
        image_key: str = "image",
        label_key: str = "label",
        weights: str = DEFAULT_STYLE_WEIGHTS,
        bank: StyleBank | None = None,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(RandStyleSwap(weights, bank, prob=1.0, **options), image_key, label_key, prob, allow_missing_keys)


# ------------------------------------------------------------------------------------------ modality translation


class ModalityTranslate(_SeededPairTransform):
    """Array form: ``translate(image) -> image`` in the target modality; see
    :class:`synthaug.transforms.ModalityTranslate` (``source``/``target`` checked against the card).

    Takes one image (MetaTensor, tensor or numpy array, channel first); returns the same container with
    meta kept and the call recorded under ``"synthaug_modality_translate"``. Integer images are read as
    float32. ``prob`` is drawn from MONAI's ``self.R`` (``set_random_state`` replays); labels are never
    touched (they are not an argument).
    """

    def __init__(
        self,
        weights: str = DEFAULT_TRANSLATE_WEIGHTS,
        source: str | None = None,
        target: str | None = None,
        prob: float = 1.0,
        **options: Any,
    ) -> None:
        super().__init__(prob)
        self.translator = _TranslateCore(weights, source=source, target=target, prob=1.0, **options)

    def __call__(self, img: Any, randomize: bool = True) -> Any:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        t = _as_tensor(img)
        x = t if t.is_floating_point() else t.float()
        out, _ = self.translator.apply(x, None, self.translator.params_from_seed(self._seed))
        out = _like(out, img)
        if isinstance(out, MetaTensor):
            tr = self.translator
            out.meta["synthaug_modality_translate"] = {"weights": str(tr.weights), "source": tr.source,
                                                       "target": tr.target, "output_range": str(tr.output_range)}
        return out


RandModalityTranslate = ModalityTranslate  # the name that sits next to RandStyleSwap / RandContextTextureSynth


class ModalityTranslated(_ArrayDictTransform):
    """Dictionary form of :class:`ModalityTranslate` (MONAI): translate ``data[key]`` for every key in ``keys``.

    Args:
        keys: the image key(s) to translate (labels: leave them out, they stay untouched).
        weights, source, target: the translation weights and the expected modality names (checked).
        output_key: None translates in place; a key (or one per key) writes the translation to a new key and
            keeps the source image. When a call does not apply (``prob``), the new key receives the
            untranslated image, so every item has the same keys (batch collation).
        prob: probability that a call translates (one draw for all keys).
        options: ``mode``, ``overlap``, ``weighting``, ``patch_size``, ``slice_axis``, ``chunk``, ``output_range``.

    Example:
        >>> t = Compose([LoadImaged(keys), EnsureChannelFirstd(keys),
        ...              ModalityTranslated(keys="image", weights="translate_brain_pd_t2_resgan",
        ...                                 source="PDw", target="T2w", output_key="image_t2w")])  # doctest: +SKIP
    """

    def __init__(
        self,
        keys: Any,
        weights: str = DEFAULT_TRANSLATE_WEIGHTS,
        source: str | None = None,
        target: str | None = None,
        output_key: str | Sequence[str] | None = None,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(keys, ModalityTranslate(weights, source, target, prob=1.0, **options), prob, allow_missing_keys)
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
