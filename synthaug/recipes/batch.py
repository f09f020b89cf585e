"""Batched synthesis on a training batch, on its device (GPU or CPU), driven by a recipe.

:class:`BatchSynthesizer` takes a batch (``data`` ``(B, C, *spatial)`` in the pipeline's normalisation,
``target`` ``(B, 1, *spatial)`` integer labels, or a deep-supervision list whose entry 0 is full resolution)
and replaces a scheduled share of the samples by synthetic ones:

1. selection: each sample is synthesised with the recipe's probability (x schedule factor x per-class
   targeting weight), drawn from an explicit ``torch.Generator`` seeded per process/rank; samples whose
   label holds no foreground (after removing padding ``-1`` and the ignore label) are never selected;
2. optional elastic deformation of the label map (nearest neighbour, padding ``-1`` and the ignore label
   move with it) and of the real image (linear), one field per sample;
3. the caller's :class:`IntensityMapping` maps the normalised data to the raw intensities the transform
   expects (the caller knows its normalisation: :mod:`synthaug.integrations.nnunet.normalization` is
   nnU-Net's; the default is the identity, for data already in raw units);
4. the transform's ``apply_batch`` with one seed per sample (padding and ignore voxels are background
   for the generator);
5. the mapping brings the output back to the pipeline's normalisation;
6. padding (``-1``) and ignore-label voxels keep their (deformed) real image values and labels;
7. optional label-faithfulness gate (:mod:`synthaug.recipes.gate`): a frozen checker re-segments every
   synthetic sample; samples whose Dice against the conditioning label is below the threshold are replaced
   by their real sample;
8. deep-supervision targets of changed samples are regenerated from the new full-resolution target with
   nnU-Net's operator (``interpolate(..., mode="nearest-exact")``).

The wall time of each call (device-synchronised) and the counts are accumulated for the per-epoch log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from synthaug.errors import ShapeError, ValidationError
from synthaug.recipes.gate import gate_samples, load_checker
from synthaug.recipes.leakage import TestSplit
from synthaug.recipes.recipe import DeformSpec, Recipe, TransformSpec, derive_seed
from synthaug.recipes.registry import get_transform
from synthaug.transforms.elastic import sample_displacements, warp, warp_labels
from synthaug.transforms.guards import DataInfo, check_channel_modality
from synthaug.transforms.options import OptionsTransform

__all__ = [
    "IntensityMapping",
    "IdentityMapping",
    "MappingFactory",
    "BatchResult",
    "BatchSynthesizer",
    "build_transform",
    "deform_batch",
    "regenerate_deep_supervision",
]


class IntensityMapping(Protocol):
    """The caller's raw <-> normalised mapping for one transform (see the module docstring)."""

    def to_raw(self, x: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Normalised ``x`` ``(B, 1, *sp)`` -> the raw scale the transform expects (``labels``: generator labels)."""

    def from_raw(self, y: torch.Tensor, x_ref: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Raw output ``y`` -> the pipeline's normalisation (``x_ref``: the real normalised sample)."""


class IdentityMapping:
    """Data already in the transforms' raw units (e.g. HU, or MR in any scale): nothing to map."""

    def to_raw(self, x: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return x

    def from_raw(self, y: torch.Tensor, x_ref: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return y


#: Builds the mapping of one transform from its model card (None for generator-free transforms).
MappingFactory = Callable[[Any], IntensityMapping]


def _identity(card: Any) -> IntensityMapping:
    return IdentityMapping()


def build_transform(
    spec: TransformSpec,
    *,
    dataset_labels: Mapping[str, int] | None = None,
    ignore_label: int | None = None,
    slice_axis: int | None = None,
    test_split: TestSplit | None = None,
) -> OptionsTransform:
    """Build the registered transform for ``spec``: the dataset's label names (dataset.json), the slice axis and
    the test split (ids and image content a style bank must not hold) filled in unless the recipe sets them (the
    transform matches names to its generator's classes). Per-patch modality checks are off on this path (a
    training patch may lie inside the body); :class:`BatchSynthesizer` checks the dataset's channel instead."""
    decl = get_transform(spec.name)
    names = decl.options.names()
    options = dict(spec.options)
    if test_split is not None:
        options.update(test_split.options_for(names, options))
    if "check_modality" in names and "check_modality" not in options:
        options["check_modality"] = False
    if slice_axis is not None and "slice_axis" in names and "slice_axis" not in options:
        options["slice_axis"] = int(slice_axis)
    if "label_names" in names and "label_names" not in options and dataset_labels is not None:
        options["label_names"] = {n: int(v) for n, v in dataset_labels.items() if ignore_label is None or v != ignore_label}
    return decl.build(options)


def deform_batch(
    images: torch.Tensor, labels: torch.Tensor, *, spec: DeformSpec, seeds: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deform ``images`` (linear, all channels) and ``labels`` (nearest, any integer values) per sample.

    One displacement field per sample from ``torch.Generator().manual_seed(seeds[i])``: the coarse control
    points are drawn on the CPU (the same on every device), upsampled and applied batched on the inputs' device.
    """
    spatial = tuple(images.shape[2:])
    disp = sample_displacements(spatial, [torch.Generator().manual_seed(int(s)) for s in seeds],
                                control_points=spec.control_points, max_displacement=spec.max_displacement,
                                device=images.device)
    return warp(images.float(), disp).to(images.dtype), warp_labels(labels, disp)


def regenerate_deep_supervision(full: torch.Tensor, shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Downsample a full-resolution target ``(B, C, *sp)`` to each spatial shape like nnU-Net does."""
    out = []
    as_float = None
    for shape in shapes:
        if tuple(shape) == tuple(full.shape[2:]):
            out.append(full)
            continue
        if as_float is None:
            as_float = full.float()
        out.append(F.interpolate(as_float, size=[int(s) for s in shape], mode="nearest-exact").to(full.dtype))
    return out


# ------------------------------------------------------------------------------------ the synthesiser


@dataclass
class BatchResult:
    """Output of one :class:`BatchSynthesizer` call, with what happened per sample."""

    data: torch.Tensor
    target: torch.Tensor | list[torch.Tensor]
    choice: list[int]          # transform index per sample, -1 when the sample stayed real
    seeds: list[int]           # synthesis seed per sample (drawn for every sample)
    deform_seeds: list[int]    # deformation seed per sample
    accepted: list[bool]       # synthetic and kept (False when real or rejected by the gate)
    dice: list[float | None]   # gate Dice per synthesised sample
    seconds: float


@dataclass
class _Stats:
    samples: int = 0
    selected: int = 0
    accepted: int = 0
    seconds: float = 0.0
    calls: int = 0

    def summary(self) -> dict[str, float]:
        return {
            "samples": self.samples,
            "synthesised": self.selected,
            "accepted": self.accepted,
            "synthetic_fraction": self.accepted / self.samples if self.samples else 0.0,
            "acceptance_rate": self.accepted / self.selected if self.selected else 1.0,
            "seconds": self.seconds,
            "batches": self.calls,
        }


class BatchSynthesizer:
    """Apply a recipe to nnU-Net batches on their device (see the module docstring).

    Args:
        recipe: the validated recipe.
        intensity: the caller's raw <-> normalised mapping, one per transform from its model card (e.g.
            :func:`synthaug.integrations.nnunet.normalization.intensity_for`); default: the identity.
        dataset_labels: ``dataset.json["labels"]`` (``{name: id}``) to map labels to the generator's
            vocabulary by name and to resolve targeting by name; ``None``: labels are generator classes.
        ignore_label: nnU-Net's ignore label (left untouched, background for the generator).
        slice_axis: spatial axis along which 2D generators slice 3D patches (default: the transform's).
        seed, rank: the selection stream is ``derive_seed(seed, "batch", rank)`` (``seed`` defaults to the
            recipe's), so every process/rank draws differently and reproducibly.
        checker: a callable for the gate (raw images -> logits); default: loaded from ``recipe.gate``.
        channel_modality: the synthesised channel's modality name (nnU-Net's ``channel_names``, e.g. ``"CT"``);
            a generator that reads another modality is refused here, once, instead of per patch.
        spacing: voxel size (mm) of the batches' spatial axes (nnU-Net: the configuration's spacing), checked
            against each generator's training spacing.
        test_split: the dataset's test cases and image content (:class:`~synthaug.recipes.leakage.TestSplit`);
            a style bank holding one is refused.

    Example:
        >>> synth = BatchSynthesizer(recipe)  # data in raw units (HU)                  # doctest: +SKIP
        >>> out = synth(data, target, epoch=0)                                                           # doctest: +SKIP
    """

    def __init__(
        self,
        recipe: Recipe,
        *,
        intensity: MappingFactory = _identity,
        dataset_labels: Mapping[str, int] | None = None,
        ignore_label: int | None = None,
        slice_axis: int | None = None,
        seed: int | None = None,
        rank: int = 0,
        checker: Callable[[torch.Tensor], torch.Tensor] | None = None,
        channel_modality: str | None = None,
        spacing: Sequence[float] | None = None,
        test_split: TestSplit | None = None,
    ) -> None:
        self.recipe = recipe
        self.dataset_labels = dict(dataset_labels) if dataset_labels is not None else None
        self.ignore_label = ignore_label
        self.slice_axis = slice_axis
        self.transforms = [
            build_transform(s, dataset_labels=self.dataset_labels, ignore_label=ignore_label, slice_axis=slice_axis,
                            test_split=test_split)
            for s in recipe.transforms
        ]
        self.info = DataInfo(spacing=tuple(spacing)) if spacing is not None else None
        for t in self.transforms:
            if t.card is not None and channel_modality is not None:
                check_channel_modality(t.card, channel_modality)
        self.intensity = intensity
        self.mappings = [intensity(t.card) for t in self.transforms]
        self.class_weights = recipe.targeting.resolve(self.dataset_labels) if recipe.targeting else None
        self.generator = torch.Generator().manual_seed(derive_seed(recipe.seed if seed is None else seed, "batch", rank))
        self.checker = checker
        self._stats = _Stats()

    # -------------------------------------------------------------- set-up
    def prepare(self, device: torch.device | str) -> None:
        """Load every frozen network once onto ``device`` (call in the training process, not in workers)."""
        from synthaug.weights.registry import load

        for t in self.transforms:
            if t.card is not None:
                load(t.options.weights, device=device, dtype=torch.float32)
        if self.recipe.gate is not None and self.checker is None:
            self.checker = load_checker(self.recipe.gate.checker, device=device, slice_axis=self.slice_axis or 2)

    def pop_epoch_stats(self) -> dict[str, float]:
        """Counts and seconds since the last call (synthetic fraction, acceptance rate, time)."""
        out = self._stats.summary()
        self._stats = _Stats()
        return out

    # -------------------------------------------------------------- helpers
    def _presence(self, labels: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` bool on the host: which label ids each sample contains (one transfer)."""
        b = labels.shape[0]
        flat = labels.flatten(1).long()
        k = int(flat.max()) + 1 if flat.numel() else 1
        k = max(k, 1)
        idx = torch.arange(b, device=flat.device)[:, None] * k + flat.clamp_min(0)
        counts = torch.bincount(idx.flatten(), minlength=b * k).reshape(b, k)
        return (counts > 0).cpu()

    def _weights(self, presence: torch.Tensor) -> torch.Tensor:
        b, k = presence.shape
        if not self.class_weights:
            return torch.ones(b)
        listed = torch.full((k,), float("nan"))
        for cls, w in self.class_weights.items():
            if 0 < cls < k:
                listed[cls] = w
        fg = presence.clone()
        fg[:, 0] = False
        vals = torch.where(fg & ~listed.isnan(), listed.expand(b, k), torch.full((b, k), -1.0))
        best = vals.max(1).values
        return torch.where(best >= 0, best, torch.full((b,), self.recipe.targeting.default_weight))

    # -------------------------------------------------------------- the call
    @torch.no_grad()
    def __call__(self, data: torch.Tensor, target: torch.Tensor | Sequence[torch.Tensor], *, epoch: int = 0) -> BatchResult:
        sync = data.device.type == "cuda"
        if sync:
            torch.cuda.synchronize(data.device)
        t0 = time.perf_counter()
        is_list = isinstance(target, (list, tuple))
        full = target[0] if is_list else target
        self._check(data, full)
        b = data.shape[0]
        ch = self.recipe.channel
        # Fixed amount of randomness per batch: the stream does not depend on the data.
        g = self.generator
        u_sel = torch.rand(b, generator=g, dtype=torch.float64)
        u_pick = torch.rand(b, generator=g, dtype=torch.float64)
        seeds = torch.randint(0, 2**62, (b,), generator=g).tolist()
        dseeds = torch.randint(0, 2**62, (b,), generator=g).tolist()
        probs = torch.tensor([t.probability for t in self.recipe.transforms], dtype=torch.float64)
        probs = probs * self.recipe.schedule.factor(epoch)
        choice = [-1] * b
        accepted = [False] * b
        dice: list[float | None] = [None] * b
        out_data, out_full = data, full
        changed: list[int] = []
        n_selected = 0
        if float(probs.sum()) > 0:
            ignore = self.ignore_label
            valid = (full >= 0) if ignore is None else (full >= 0) & (full != ignore)
            gen_lab = torch.where(valid, full, torch.zeros_like(full))
            presence = self._presence(gen_lab)
            has_fg = presence[:, 1:].any(1) if presence.shape[1] > 1 else torch.zeros(b, dtype=torch.bool)
            p_total = (float(probs.sum()) * self._weights(presence).double()).clamp(max=1.0)
            cum = torch.cumsum(probs / probs.sum(), 0)
            pick = torch.searchsorted(cum, u_pick, right=True).clamp_max(len(probs) - 1)
            # label-to-image generators need foreground; transforms that render background too take any sample
            needs_fg = torch.tensor([t.needs_foreground for t in self.transforms], dtype=torch.bool)[pick]
            selected = (u_sel < p_total) & (has_fg | ~needs_fg)
            out_data, out_full = data.clone(), full.clone()
            for i, (spec, transform, mapping) in enumerate(zip(self.recipe.transforms, self.transforms, self.mappings)):
                idx = [j for j in range(b) if bool(selected[j]) and int(pick[j]) == i]
                if not idx:
                    continue
                done, gate_dice = self._synthesise(
                    spec, transform, mapping, data, full, out_data, out_full, idx, seeds, dseeds, ch
                )
                for j, ok, dj in zip(idx, done, gate_dice):
                    if ok is None:  # label emptied by the deformation: stays real, not counted
                        continue
                    n_selected += 1
                    choice[j] = i
                    dice[j] = dj
                    accepted[j] = ok
                    if ok:
                        changed.append(j)
        out_target: torch.Tensor | list[torch.Tensor]
        if is_list:
            levels = list(target)
            if changed:
                idx_t = torch.tensor(sorted(changed), device=full.device)
                shapes = [tuple(t.shape[2:]) for t in levels[1:]]
                regen = regenerate_deep_supervision(out_full[idx_t], shapes)
                new_levels = [out_full]
                for lvl, r in zip(levels[1:], regen):
                    lvl = lvl.clone()
                    lvl[idx_t] = r
                    new_levels.append(lvl)
                levels = new_levels
            out_target = levels
        else:
            out_target = out_full
        if sync:
            torch.cuda.synchronize(data.device)
        seconds = time.perf_counter() - t0
        st = self._stats
        st.samples += b
        st.selected += n_selected
        st.accepted += len(changed)
        st.seconds += seconds
        st.calls += 1
        return BatchResult(out_data, out_target, choice, seeds, dseeds, accepted, dice, seconds)

    def _check(self, data: torch.Tensor, full: torch.Tensor) -> None:
        if not isinstance(data, torch.Tensor) or data.ndim not in (4, 5) or not data.is_floating_point():
            raise ShapeError(
                f"data must be a float tensor (B, C, *spatial) with 2 or 3 spatial dims, got "
                f"{getattr(data, 'shape', type(data).__name__)}."
            )
        if not isinstance(full, torch.Tensor) or full.ndim != data.ndim or full.shape[1] != 1:
            raise ShapeError(
                f"target (entry 0 under deep supervision) must be an integer label map (B, 1, *spatial) matching data "
                f"{tuple(data.shape)}, got {getattr(full, 'shape', type(full).__name__)}. Region-based (one-hot) "
                "targets must be synthesised before the region conversion (nnUNetTrainerSynthAug does this)."
            )
        if full.dtype == torch.bool or full.is_floating_point():
            raise ValidationError(f"target must hold integer labels, got dtype {full.dtype}.")
        if full.shape[0] != data.shape[0] or full.shape[2:] != data.shape[2:]:
            raise ShapeError(f"data {tuple(data.shape)} and target {tuple(full.shape)} must share batch and spatial shape.")
        if self.recipe.channel >= data.shape[1]:
            raise ValidationError(
                f"recipe channel={self.recipe.channel} but the data has {data.shape[1]} channel(s)."
            )

    def _synthesise(
        self,
        spec: TransformSpec,
        transform: OptionsTransform,
        mapping: IntensityMapping,
        data: torch.Tensor,
        full: torch.Tensor,
        out_data: torch.Tensor,
        out_full: torch.Tensor,
        idx: list[int],
        seeds: list[int],
        dseeds: list[int],
        ch: int,
    ) -> tuple[list[bool | None], list[float | None]]:
        """Synthesise samples ``idx`` with one transform, writing accepted ones into ``out_*``.

        Returns per sample: accepted (True/False) or None when deformation left no foreground, and the gate Dice.
        """
        dev = data.device
        it = torch.tensor(idx, device=dev)
        x_all, lab = data[it], full[it]
        if spec.deform.enabled and spec.deform.max_displacement > 0:
            x_all, lab = deform_batch(x_all, lab, spec=spec.deform, seeds=[dseeds[j] for j in idx])
        ignore = self.ignore_label
        valid = (lab >= 0) if ignore is None else (lab >= 0) & (lab != ignore)
        gen = torch.where(valid, lab, torch.zeros_like(lab)).long()
        nonempty = (gen != 0).flatten(1).any(1).tolist() if transform.needs_foreground else [True] * len(idx)
        keep = [k for k, ok in enumerate(nonempty) if ok]
        status: list[bool | None] = [None] * len(idx)
        dices: list[float | None] = [None] * len(idx)
        if not keep:
            return status, dices
        if len(keep) < len(idx):
            kt = torch.tensor(keep, device=dev)
            x_all, lab, valid, gen = x_all[kt], lab[kt], valid[kt], gen[kt]
        x = x_all[:, ch : ch + 1]
        raw = mapping.to_raw(x.float(), gen, valid)
        kw = {"info": self.info} if transform.uses_data_info and self.info is not None else {}
        out_raw, out_gen = transform.apply_batch(raw, gen, seeds=[seeds[idx[k]] for k in keep], **kw)
        new_lab = torch.where(valid, out_gen.to(lab.dtype), lab)
        y = mapping.from_raw(out_raw.float(), x.float(), valid)
        y = torch.where(valid, y, x.float()).to(data.dtype)
        ok = torch.ones(len(keep), dtype=torch.bool)
        if self.recipe.gate is not None or self.checker is not None:
            if self.checker is None:
                raise ValidationError("the recipe has a gate but no checker was loaded; call prepare(device) first.")
            threshold = self.recipe.gate.threshold if self.recipe.gate is not None else 0.5
            acc, d = gate_samples(self.checker, out_raw.float(), gen, valid, threshold=threshold)
            ok = acc.cpu()
            for n, k in enumerate(keep):
                dices[k] = float(d[n])
        for n, k in enumerate(keep):
            status[k] = bool(ok[n])
        if bool(ok.any()):
            sel = ok.nonzero().flatten()
            dst = torch.tensor([idx[keep[int(n)]] for n in sel], device=dev)
            sel = sel.to(dev)
            block = x_all[sel].clone()
            block[:, ch : ch + 1] = y[sel]
            out_data[dst] = block
            out_full[dst] = new_lab[sel]
        return status, dices
