"""Modality translation as an augmentation or a preprocessing step: an image of the source modality
rendered as the target modality by a frozen translation generator (NEC, CycleGAN, pix2pix, ResGAN).

The array form :class:`ModalityTranslate` has no MONAI/TorchIO dependency; ``ModalityTranslated`` /
``RandModalityTranslate`` / ``ModalityTranslated`` (MONAI, :mod:`synthaug.integrations.monai`) and ``RandomModalityTranslate``
(TorchIO, :mod:`synthaug.integrations.torchio`) are generated from its registry entry.

Per call:

1. the source and target modality names you give are checked against the weights' model card
   (``card.source_modality`` / ``card.target_modality``), at construction;
2. the input is normalised with the card's intensity convention, fitted on each input volume (the
   convention the generator was trained and evaluated with, e.g. the volume's own 1-99 percentiles to
   [-1, 1]);
3. the frozen generator runs on the input's device: a 2D generator slice by slice along ``slice_axis``
   (all slices of all volumes batched, ``chunk`` slices per call, each slice padded with the card's
   background value to the generator's training size and size divisor, then cropped back), or by
   overlapping patches (``mode="patches"``; 3D generators always) reassembled by averaging
   (:func:`synthaug.inference.sliding_window.sliding_window_inference`, the card's patch size,
   ``overlap`` and ``weighting``): the same inference as ``synthaug eval translate``;
4. the output, an image in the target modality's convention ([-1, 1] for the card's convention), is
   mapped to ``output_range``:

   - ``"input"`` (default): the card's convention inverted with the *input's* fit, i.e. the target-
     modality image occupies the intensity range the input had (for a percentile convention: the
     input's 1st..99th percentile values; for a CT-window convention: the window in HU). Pipelines
     that normalise per image afterwards (z-score, nnU-Net) see values of the usual magnitude;
   - ``"normalised"``: the generator's output as it is, in the card's target convention ([-1, 1]);
   - ``(low, high)``: [-1, 1] mapped linearly onto that range.

Labels are never read or changed: they are passed through untouched (CT training images rendered as
MR keep their CT labels). The translation itself is deterministic; the only random choice is whether a
call applies (``prob``), so :meth:`ModalityTranslate.sample_params` draws ``(seed, apply)`` for the
common transform interface and ``apply`` is pure given it.

Example:
    >>> t = ModalityTranslate("translate_brain_pd_t2_resgan", source="PDw", target="T2w")  # doctest: +SKIP
    >>> t2w, label = t.apply(pdw, label, ModalityTranslateParams(seed=0, apply=True))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from synthaug._validate import check_axis, check_choice, check_image, check_int, check_range
from synthaug.errors import ShapeError, ValidationError, WeightsError
from synthaug.inference.phases import phase
from synthaug.inference.sliding_window import WEIGHTINGS, sliding_window_inference
from synthaug.networks.inference import infer
from synthaug.transforms.guards import (
    DataInfo,
    GuardOptions,
    check_batch_guards,
    check_finite_output,
)
from synthaug.transforms.options import OptionsTransform
from synthaug.transforms.slicewise import (
    crop_padding,
    from_slices,
    pad_to_multiple,
    resolve_chunk,
    run_in_chunks,
    to_slices,
)
from synthaug.weights.card import ModelCard
from synthaug.weights.registry import card_of, list_weights, load

__all__ = ["DEFAULT_TRANSLATE_WEIGHTS", "MODES", "OUTPUT_RANGES", "ModalityTranslateOptions", "ModalityTranslateParams",
           "ModalityTranslate"]

DEFAULT_TRANSLATE_WEIGHTS = "translate_brain_pd_t2_resgan"
MODES: tuple[str, ...] = ("auto", "slices", "patches")
OUTPUT_RANGES: tuple[str, ...] = ("input", "normalised")


@dataclass(frozen=True)
class ModalityTranslateParams:
    """Everything random about one call (only whether it applies: the translation is deterministic)."""

    seed: int
    apply: bool


def _directions() -> dict[str, str]:
    """``{weights name: "source -> target"}`` of every registered translation model."""
    return {
        c.name: f"{c.source_modality or '?'} -> {c.target_modality or '?'}"
        for c in list_weights()
        if c.family == "translate"
    }


def _check_modalities(card: ModelCard, weights: Any, source: str | None, target: str | None) -> tuple[str, str]:
    """The card's (source, target) modality names; raise when a given name does not match them."""
    stated = {"source": card.source_modality, "target": card.target_modality}
    given = {"source": source, "target": target}
    for role, name in given.items():
        if name is None:
            continue
        if not isinstance(name, str) or not name:
            raise ValidationError(f"{role} must be a modality name such as 'T2w' (or None), got {name!r}.")
        if not stated[role]:
            raise WeightsError(
                f"model card {card.name!r} does not state its {role}_modality, so {role}={name!r} cannot be checked; "
                f"pass {role}=None or use weights exported by synthaug train translate."
            )
    bad = [r for r, n in given.items() if n is not None and n.casefold() != stated[r].casefold()]
    if bad:
        want_s = source if source is not None else card.source_modality
        want_t = target if target is not None else card.target_modality
        fit = [c.name for c in list_weights() if c.family == "translate"
               and c.source_modality.casefold() == want_s.casefold() and c.target_modality.casefold() == want_t.casefold()]
        hint = (f" Weights that translate {want_s} -> {want_t}: {fit}." if fit else
                f" No registered weights translate {want_s} -> {want_t}; known translation weights: {_directions()}.")
        parts = "; ".join(f"{r}={given[r]!r} but the card's {r}_modality is {stated[r]!r}" for r in bad)
        raise ValidationError(
            f"weights {str(weights)!r} translate {card.source_modality} -> {card.target_modality}: {parts}.{hint}"
        )
    return card.source_modality, card.target_modality


@dataclass(frozen=True)
class ModalityTranslateOptions(GuardOptions):
    """Options of :class:`ModalityTranslate` (and of its MONAI, TorchIO and recipe faces).

    Args:
        weights: registry name or path of a ``translate`` family weights file.
        source, target: the modality names you expect (e.g. ``"PDw"``, ``"T2w"``); checked against the
            card (case-insensitive), a mismatch raises naming the card's modalities. None: take the card's.
        mode: ``"auto"`` (the card's: 2D generators slice-wise, 3D generators by patches), ``"slices"``
            (2D generators only) or ``"patches"`` (overlapping patches, averaged; 2D generators run 2D
            patches over each slice).
        overlap: fraction of a patch shared with its neighbour, in [0, 1) (None: the card's, else 0.5).
        weighting: ``"uniform"`` (plain averaging, ResGAN) or ``"gaussian"`` (None: the card's).
        patch_size: patch edge (None: the card's training patch; 2D patch mode: the training slice size).
        slice_axis: spatial axis along which 2D generators cut 3D volumes into slices.
        chunk: slices (2D) or patches (3D) per generator call: bounds memory; None: 8 on CPU, 32 on a GPU.
        output_range: ``"input"``, ``"normalised"`` or ``(low, high)``; see the module docstring.
        spacing_tolerance, check_modality: input guards from the model card
            (:class:`~synthaug.transforms.guards.GuardOptions`).
    """

    weights: str | Path = DEFAULT_TRANSLATE_WEIGHTS
    source: str | None = None
    target: str | None = None
    mode: str = "auto"
    overlap: float | None = None
    weighting: str | None = None
    patch_size: int | tuple[int, ...] | None = None
    slice_axis: int = 2
    chunk: int | None = None
    output_range: str | tuple[float, float] = "input"

    def validate(self) -> None:
        super().validate()
        check_choice("mode", self.mode, MODES)
        if self.overlap is not None:
            self._set("overlap", float(check_range("overlap", float(self.overlap), 0.0, 0.999)))
        if self.weighting is not None:
            check_choice("weighting", str(self.weighting), WEIGHTINGS)
        self._set("slice_axis", check_axis("slice_axis", self.slice_axis))
        if self.chunk is not None:
            self._set("chunk", check_int("chunk", self.chunk, low=1))
        self._set("output_range", _output_range(self.output_range))
        if self.patch_size is not None and not isinstance(self.patch_size, (int, float)):
            self._set("patch_size", tuple(self.patch_size))


def _output_range(value: Any) -> str | tuple[float, float]:
    if isinstance(value, str):
        return check_choice("output_range", value, OUTPUT_RANGES)
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"output_range must be 'input', 'normalised' or a (low, high) pair of numbers, got {value!r}."
        ) from None
    if not low < high:
        raise ValidationError(f"output_range (low, high) needs low < high, got {value!r}.")
    return (low, high)


class ModalityTranslate(OptionsTransform):
    """Translate a source-modality image into the target modality with a frozen generator.

    Options: :class:`ModalityTranslateOptions` (``weights`` may be given by position); ``prob`` is the
    probability that a call translates (otherwise image and label pass unchanged).

    Example:
        >>> t = ModalityTranslate("translate_brain_pd_t2_resgan", source="PDw", target="T2w")  # doctest: +SKIP
        >>> t2w, _ = t(pdw_volume)  # (1, X, Y, Z) -> (1, X, Y, Z), on pdw_volume's device  # doctest: +SKIP
    """

    Options = ModalityTranslateOptions
    positional = ("weights",)
    uses_data_info = True
    reads_labels = False
    options: ModalityTranslateOptions

    def _setup(self) -> None:
        self.card = card_of(self.weights, family="translate")
        self.source, self.target = _check_modalities(self.card, self.weights, self.options.source, self.options.target)
        dims = self.card.spatial_dims
        if self.options.mode == "slices" and dims == 3:
            raise ValidationError(
                f"weights {self.card.name!r} are a 3D generator: it runs on overlapping 3D patches, not on slices. "
                "Use mode='patches' (or 'auto')."
            )
        self.mode = ("slices" if dims == 2 else "patches") if self.options.mode == "auto" else self.options.mode
        spec = self.card.inference
        o = self.options
        self.overlap = float(check_range("overlap", spec.overlap if o.overlap is None else o.overlap, 0.0, 0.999))
        self.weighting = check_choice("weighting", spec.weighting if o.weighting is None else str(o.weighting), WEIGHTINGS)
        self.pad_value = spec.pad_value
        self.size = int(spec.canvas[0]) if spec.canvas else 0
        self.patch_size = self._patch_size(o.patch_size, spec.patch)

    def _patch_size(self, patch_size: Any, trained: tuple[int, ...]) -> tuple[int, ...] | None:
        if self.mode != "patches":
            return None
        dims = self.card.spatial_dims
        if patch_size is None:
            patch_size = trained or (self.size if dims == 2 else None)
            if not patch_size:
                raise WeightsError(
                    f"model card {self.card.name!r} does not record its training patch size (inference.patch); "
                    "pass patch_size=..."
                )
        sizes = (patch_size,) * dims if isinstance(patch_size, (int, float)) else tuple(patch_size)
        if len(sizes) != dims or any(isinstance(s, bool) or int(s) != s or s < 1 for s in sizes):
            raise ValidationError(f"patch_size must be a positive integer or {dims} of them, got {patch_size!r}.")
        return tuple(int(s) for s in sizes)

    def __repr__(self) -> str:
        return (f"ModalityTranslate({self.card.name!r}, {self.source or '?'} -> {self.target or '?'}, mode={self.mode!r}, "
                f"prob={self.prob})")

    # ------------------------------------------------------------------ sampling
    def params_from_seed(self, seed: int, apply: bool = True) -> ModalityTranslateParams:
        return ModalityTranslateParams(int(seed), bool(apply))

    # ------------------------------------------------------------------ application
    def _check_batch(self, images: torch.Tensor, labels: Any) -> None:
        check_image(images, "image", spatial_dims=(2, 3), channels=1, batched=True)
        if self.card.spatial_dims == 3 and images.ndim != 5:
            raise ShapeError(
                f"weights {self.card.name!r} are a 3D generator (patch mode): the image must be a volume "
                f"(B, 1, X, Y, Z), got shape {tuple(images.shape)}. Use 2D translation weights for 2D images."
            )
        if isinstance(labels, torch.Tensor):
            spatial = tuple(images.shape[2:])
            if labels.ndim < len(spatial) + 1 or labels.shape[0] != images.shape[0] or tuple(labels.shape[-len(spatial):]) != spatial:
                raise ShapeError(
                    f"label {tuple(labels.shape)} must match image {tuple(images.shape)} (same batch size and spatial "
                    "shape); resample the label onto the image grid (nearest neighbour) first."
                )

    @torch.no_grad()
    def apply_batch(self, images: torch.Tensor, labels: Any = None, *, seeds: Sequence[int],
                    info: DataInfo | None = None) -> tuple[torch.Tensor, Any]:
        """Batched translation: ``images`` (B, 1, *spatial) float; ``labels`` (B, 1, *spatial) or None, returned
        untouched (the same object); one seed per sample (kept for the common interface; unused).

        Runs on the images' device; the result has their dtype. Sample i's output depends only on sample i
        (per-volume intensity fit, instance-normalised generators), so a batch gives what per-sample calls give.
        """
        with phase("checks"):
            self._check_batch(images, labels)
            check_batch_guards(self.card, images, seeds=seeds, info=info, slice_axis=self.slice_axis,
                               spacing_tolerance=self.spacing_tolerance, check_modality_on=self.check_modality)
        device, dtype = images.device, images.dtype
        net, card = load(self.weights, device=device, dtype=torch.float32)
        conv = card.intensity_convention
        with phase("intensity fit"):
            x = images.float()
            fit = conv.fit_batch(x)
            x = conv.normalise(x, fit)
        y = self._translate(net, x, card.inference.divisor)
        with phase("output"):
            if self.output_range == "input":
                y = conv.denormalise(y, fit)
            elif isinstance(self.output_range, tuple):
                low, high = self.output_range
                y = (y + 1) / 2 * (high - low) + low
            y = check_finite_output(y, generator=self.card.name).to(dtype)
        return y, labels

    def _translate(self, net: torch.nn.Module, x: torch.Tensor, divisor: int) -> torch.Tensor:
        """``x`` (B, 1, *spatial) in the card's convention -> the generator's output, same shape."""
        if self.patch_size is not None and any(p % divisor for p in self.patch_size):
            raise ValidationError(
                f"patch_size {self.patch_size} must be divisible by {divisor} (the size divisor of {self.card.name!r})."
            )

        def generator(v: torch.Tensor) -> torch.Tensor:
            with phase("generator"):
                return infer(net, v)

        def patches(v: torch.Tensor) -> torch.Tensor:
            with phase("patches"):  # gathering, padding and weighted averaging (the generator is its own phase)
                return sliding_window_inference(
                    v, generator, patch_size=self.patch_size, overlap=self.overlap, weighting=self.weighting,
                    batch_size=resolve_chunk(self.chunk, v.device), pad_mode="constant", pad_value=self.pad_value,
                )

        if self.card.spatial_dims == 3:
            return patches(x)
        xs = to_slices(x, self.slice_axis)
        if self.mode == "patches":
            ys = patches(xs)
        else:
            with phase("padding"):
                xs_p, pads = pad_to_multiple(xs, divisor, self.pad_value, minimum=(self.size, self.size))
            step = resolve_chunk(self.chunk, xs_p.device)
            ys = run_in_chunks(lambda part: generator(xs_p[part]), xs_p.shape[0], step)
            with phase("padding"):
                ys = crop_padding(ys, pads)
        return from_slices(ys, x.shape[0], self.slice_axis, x.ndim)
