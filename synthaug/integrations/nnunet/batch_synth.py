"""Batched synthesis on an nnU-Net training batch, on the training device (GPU or CPU).

:class:`BatchSynthesizer` takes the batch *after* the host-to-device copy (``data`` ``(B, C, *spatial)``
normalised by nnU-Net, ``target`` ``(B, 1, *spatial)`` or nnU-Net's deep-supervision list whose entry 0
is full resolution) and replaces a scheduled share of the samples by synthetic ones:

1. selection: each sample is synthesised with the recipe's probability (x schedule factor x per-class
   targeting weight), drawn from an explicit ``torch.Generator`` seeded per process/rank; samples whose
   label holds no foreground (after removing padding and the ignore label) are never selected;
2. optional elastic deformation of the label map (nearest neighbour, padding ``-1`` and the ignore label
   move with it) and of the real image (linear), one field per sample;
3. nnU-Net-normalised data -> the raw intensities the transform expects (:class:`IntensityMapping`):
   ``CTNormalization`` is inverted exactly with the dataset fingerprint (``x * std + mean``);
   per-image schemes (``ZScoreNormalization``, ``RescaleTo01Normalization``) lost the raw scale, so the
   normalised values are handed over as they are (the generators' percentile convention is invariant to
   any per-image affine map), or, for a fixed-window (CT) generator, mapped to approximate raw units by
   matching the patch's foreground mean/std to the fingerprint's foreground mean/std;
4. the transform's ``apply_batch`` with one seed per sample (padding and ignore voxels are background
   for the generator);
5. the output -> the plan's normalisation: ``CTNormalization`` with the fingerprint (clip to
   percentile_00_5/99_5, ``(x - mean) / std``); ``ZScoreNormalization`` re-z-scored so that the synthetic
   patch has the real patch's mean and standard deviation over the synthesised voxels (the per-image
   z-score nnU-Net would have applied, estimated from the patch); ``RescaleTo01Normalization`` matched to
   the real patch's range;
6. padding (``-1``) and ignore-label voxels keep their (deformed) real image values and labels;
7. optional label-faithfulness gate: a frozen checker re-segments every synthetic sample; samples whose
   Dice against the conditioning label is below the threshold are replaced by their real sample;
8. deep-supervision targets of changed samples are regenerated from the new full-resolution target with
   nnU-Net's operator (``interpolate(..., mode="nearest-exact")``).

The wall time of each call (device-synchronised) and the counts are accumulated for the per-epoch log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from synthaug._validate import closest
from synthaug.errors import LabelError, ShapeError, ValidationError, WeightsError
from synthaug.integrations.nnunet.recipe import DeformSpec, Recipe, TransformSpec, derive_seed, get_transform
from synthaug.transforms.elastic import sample_displacement, warp, warp_labels

__all__ = [
    "SCHEMES",
    "ChannelNormalization",
    "IntensityMapping",
    "BatchResult",
    "BatchSynthesizer",
    "build_transform",
    "resolve_label_map",
    "deform_batch",
    "label_dice",
    "gate_samples",
    "Checker",
    "load_checker",
    "nnunet_targets",
    "regenerate_deep_supervision",
]

SCHEMES = (
    "CTNormalization",
    "ZScoreNormalization",
    "RescaleTo01Normalization",
    "RGBTo01Normalization",
    "NoNormalization",
)
_EPS = 1e-8


# ------------------------------------------------------------------------------------ normalisation


@dataclass(frozen=True)
class ChannelNormalization:
    """nnU-Net's normalisation of one input channel and the fingerprint's foreground intensities.

    ``properties`` is ``plans["foreground_intensity_properties_per_channel"][str(channel)]`` (raw
    intensities of the training foreground: ``mean``, ``std``, ``percentile_00_5``, ``percentile_99_5``).
    """

    scheme: str
    properties: Mapping[str, float] = field(default_factory=dict)
    use_mask_for_norm: bool = False

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValidationError(
                f"normalisation scheme {self.scheme!r} is not supported by synthaug's nnU-Net integration; "
                f"supported: {list(SCHEMES)}.{closest(self.scheme, SCHEMES)}"
            )
        if self.scheme == "CTNormalization":
            self._need("mean", "std", "percentile_00_5", "percentile_99_5")

    def _need(self, *keys: str) -> None:
        missing = [k for k in keys if k not in self.properties]
        if missing:
            raise ValidationError(
                f"{self.scheme} needs the dataset fingerprint's foreground intensity properties {list(keys)}; "
                f"missing {missing}. Pass plans['foreground_intensity_properties_per_channel'][channel] "
                "(written by nnUNetv2_plan_and_preprocess)."
            )

    @classmethod
    def from_plans(cls, plans: Mapping[str, Any], configuration: str, channel: int = 0) -> ChannelNormalization:
        """From a plans dict (as in ``nnUNetPlans.json``; follows ``inherits_from``)."""
        configs = plans.get("configurations", {})
        if configuration not in configs:
            raise ValidationError(
                f"plans have no configuration {configuration!r}; known: {sorted(configs)}.{closest(configuration, configs)}"
            )
        cfg, seen = dict(configs[configuration]), {configuration}
        while "inherits_from" in cfg and cfg["inherits_from"] not in seen:
            parent = cfg.pop("inherits_from")
            seen.add(parent)
            cfg = {**configs[parent], **cfg}
        props = plans.get("foreground_intensity_properties_per_channel", {}).get(str(channel), {})
        return cls(
            scheme=cfg["normalization_schemes"][channel],
            properties=dict(props),
            use_mask_for_norm=bool(cfg.get("use_mask_for_norm", [False] * (channel + 1))[channel]),
        )


def _masked_moments(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean and population std of ``x`` over ``mask`` (both ``(B, 1, *sp)``) -> ``(B,)`` each."""
    m = mask.flatten(1).to(x.dtype)
    v = x.flatten(1)
    n = m.sum(1).clamp_min(1.0)
    mean = (v * m).sum(1) / n
    var = (((v - mean[:, None]) ** 2) * m).sum(1) / n
    return mean, var.sqrt()


def _masked_range(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    v = x.flatten(1)
    m = mask.flatten(1)
    big = torch.finfo(x.dtype).max
    lo = torch.where(m, v, torch.full_like(v, big)).amin(1)
    hi = torch.where(m, v, torch.full_like(v, -big)).amax(1)
    return lo, hi


def _bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.ndim - 1)))


class IntensityMapping:
    """nnU-Net-normalised values <-> the raw scale a transform works in (see the module docstring).

    ``fixed_scale`` is True for generators with a fixed intensity window (CT Hounsfield units): those need
    real raw units; percentile-convention generators work on any per-image affine rescaling.
    """

    def __init__(self, normalization: ChannelNormalization, *, fixed_scale: bool) -> None:
        self.norm = normalization
        self.fixed_scale = bool(fixed_scale)
        if self.fixed_scale and normalization.scheme in ("ZScoreNormalization", "RescaleTo01Normalization"):
            normalization._need("mean", "std")

    def to_raw(self, x: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, 1, *sp)`` normalised -> raw. ``labels``: generator labels (0 = background)."""
        s, p = self.norm.scheme, self.norm.properties
        if s == "CTNormalization":
            return x * max(float(p["std"]), _EPS) + float(p["mean"])
        if s == "RGBTo01Normalization":
            return x * 255.0
        if s == "NoNormalization" or not self.fixed_scale:
            return x
        # Per-image scheme + fixed-window generator: estimate the lost affine map from the foreground.
        fg = valid & (labels > 0)
        enough = fg.flatten(1).sum(1) >= 2
        mask = torch.where(_bc(enough, fg), fg, valid)
        mean, std = _masked_moments(x, mask)
        a = float(p["std"]) / std.clamp_min(1e-6)
        b = float(p["mean"]) - a * mean
        return _bc(a, x) * x + _bc(b, x)

    def from_raw(self, y: torch.Tensor, x_ref: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Raw output ``y`` -> the plan's normalisation; ``x_ref`` is the real normalised sample."""
        s, p = self.norm.scheme, self.norm.properties
        if s == "CTNormalization":
            y = y.clamp(float(p["percentile_00_5"]), float(p["percentile_99_5"]))
            return (y - float(p["mean"])) / max(float(p["std"]), _EPS)
        if s == "ZScoreNormalization":
            my, sy = _masked_moments(y, valid)
            mx, sx = _masked_moments(x_ref, valid)
            return (y - _bc(my, y)) / _bc(sy.clamp_min(_EPS), y) * _bc(sx, y) + _bc(mx, y)
        if s == "RescaleTo01Normalization":
            ly, hy = _masked_range(y, valid)
            lx, hx = _masked_range(x_ref, valid)
            return (y - _bc(ly, y)) / _bc((hy - ly).clamp_min(_EPS), y) * _bc(hx - lx, y) + _bc(lx, y)
        if s == "RGBTo01Normalization":
            return y / 255.0
        return y


# ------------------------------------------------------------------------------------ labels and transforms


def _label_id(key: Any, names: Mapping[str, int] | None, what: str) -> int:
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    k = str(key)
    if names is not None and k in names:
        return int(names[k])
    if k.lstrip("-").isdigit():
        return int(k)
    known = list(names) if names else []
    raise ValidationError(f"label_map: {what} {k!r} is not a known label name or id (known: {known}).{closest(k, known)}")


def resolve_label_map(
    option: Mapping[Any, Any] | None,
    *,
    dataset_labels: Mapping[str, int] | None,
    card_labels: Sequence[str],
    ignore_label: int | None = None,
) -> dict[int, int] | None:
    """``{dataset label id: generator class index}`` for a transform's ``label_map`` option.

    Without an option, dataset labels are matched to the generator's vocabulary by name; a dataset label
    the generator does not know raises :class:`LabelError`. Keys may be dataset label names or ids, values
    generator class names or indices. Background (0) maps to the generator's background when not given.
    Returns ``None`` when neither an option nor dataset label names are available (labels are then taken
    to be generator class indices already).
    """
    card_index = {n: i for i, n in enumerate(card_labels)}
    if option is None:
        if dataset_labels is None:
            return None
        wanted = {n: int(i) for n, i in dataset_labels.items() if ignore_label is None or int(i) != ignore_label}
        unknown = sorted(n for n in wanted if n not in card_index)
        if unknown:
            raise LabelError(
                f"dataset label(s) {unknown} are not in the generator's vocabulary {list(card_labels)}. Add "
                "\"label_map\": {dataset label name or id: generator class name or index} to the transform's options "
                "in the recipe (or use weights trained on your label set)."
            )
        return {i: card_index[n] for n, i in wanted.items()}
    out: dict[int, int] = {}
    for k, v in option.items():
        try:
            key = _label_id(k, dataset_labels, "dataset label")
        except ValidationError:
            if dataset_labels is not None:  # a recipe may cover more classes than this dataset has
                continue
            raise
        if isinstance(v, str) and not v.lstrip("-").isdigit():
            if v not in card_index:
                raise LabelError(
                    f"label_map maps {k!r} to {v!r}, which is not a generator class {list(card_labels)}.{closest(v, card_index)}"
                )
            out[key] = card_index[v]
        else:
            out[key] = int(v)
    if dataset_labels is not None:
        missing = sorted(
            n for n, i in dataset_labels.items() if int(i) not in out and int(i) != 0 and int(i) != ignore_label
        )
        if missing:
            raise LabelError(
                f"label_map does not cover the dataset label(s) {missing}; map every dataset label to a generator "
                f"class {list(card_labels)}."
            )
    out.setdefault(0, card_index.get("background", 0))
    return out


def build_transform(
    spec: TransformSpec,
    *,
    dataset_labels: Mapping[str, int] | None = None,
    ignore_label: int | None = None,
    slice_axis: int | None = None,
) -> Any:
    """Build the registered transform for ``spec`` with label map and slice axis resolved."""
    entry = get_transform(spec.name)
    options = dict(spec.options)
    if slice_axis is not None and "slice_axis" in entry.options and "slice_axis" not in options:
        options["slice_axis"] = int(slice_axis)
    if "label_map" in entry.options:
        given = options.pop("label_map", None)
        probe = entry.build(**options)
        card = getattr(probe, "card", None)
        if card is None:
            return entry.build(**options) if given is None else entry.build(label_map=given, **options)
        lm = resolve_label_map(given, dataset_labels=dataset_labels, card_labels=card.labels, ignore_label=ignore_label)
        return probe if lm is None else entry.build(label_map=lm, **options)
    return entry.build(**options)


def deform_batch(
    images: torch.Tensor, labels: torch.Tensor, *, spec: DeformSpec, seeds: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deform ``images`` (linear, all channels) and ``labels`` (nearest, any integer values) per sample.

    One displacement field per sample from ``torch.Generator().manual_seed(seeds[i])``: the coarse control
    points are drawn on the CPU (the same on every device), upsampled and applied batched on the inputs' device.
    """
    spatial = tuple(images.shape[2:])
    disp = torch.cat([
        sample_displacement(spatial, batch=1, control_points=spec.control_points, device=images.device,
                            max_displacement=spec.max_displacement, generator=torch.Generator().manual_seed(int(s)))
        for s in seeds
    ])
    return warp(images.float(), disp).to(images.dtype), warp_labels(labels, disp)


# ------------------------------------------------------------------------------------ gate


def label_dice(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample mean foreground Dice of integer maps ``(B, *sp)`` over the classes in either map.

    A sample with no foreground in either map scores 1. Computed from one batched confusion matrix.
    """
    if pred.shape != target.shape:
        raise ShapeError(f"prediction {tuple(pred.shape)} and label {tuple(target.shape)} must have the same shape.")
    b = pred.shape[0]
    p, t = pred.long().flatten(1), target.long().flatten(1)
    k = int(max(int(p.max()), int(t.max()), 0)) + 1
    p, t = p.clamp_min(0), t.clamp_min(0)
    w = torch.ones_like(p, dtype=torch.float32) if valid is None else valid.flatten(1).to(torch.float32)
    idx = (torch.arange(b, device=p.device)[:, None] * k + t) * k + p
    conf = torch.zeros(b * k * k, device=p.device, dtype=torch.float32).index_add_(0, idx.flatten(), w.flatten())
    conf = conf.reshape(b, k, k)  # [sample, label class, predicted class]
    inter = conf.diagonal(dim1=1, dim2=2)[:, 1:]
    t_sum = conf.sum(2)[:, 1:]
    p_sum = conf.sum(1)[:, 1:]
    present = (t_sum + p_sum) > 0
    dice = torch.where(present, 2 * inter / (t_sum + p_sum).clamp_min(1e-12), torch.zeros_like(inter))
    n = present.sum(1)
    return torch.where(n > 0, dice.sum(1) / n.clamp_min(1), torch.ones(b, device=p.device))


def gate_samples(
    checker: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    *,
    threshold: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(accepted (B,) bool, dice (B,))``: the checker's segmentation of ``images`` vs ``labels``.

    ``checker(images)`` returns logits ``(B, K, *sp)`` or an integer map ``(B, 1, *sp)`` / ``(B, *sp)``;
    ``labels`` and ``valid`` are ``(B, 1, *sp)``; only ``valid`` voxels count.
    """
    out = checker(images)
    if out.is_floating_point() and out.ndim == images.ndim and out.shape[1] > 1:
        pred = out.argmax(1)
    elif out.ndim == images.ndim:
        pred = out[:, 0]
    else:
        pred = out
    pred = pred.round().long() if pred.is_floating_point() else pred.long()
    dice = label_dice(pred, labels[:, 0].long(), valid[:, 0])
    return dice >= threshold, dice


class Checker:
    """A frozen segmenter used by the gate: raw images -> logits, in the card's intensity convention."""

    def __init__(self, net: torch.nn.Module, card: Any, *, slice_axis: int = 2) -> None:
        self.net, self.card, self.slice_axis = net, card, int(slice_axis)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        from synthaug.transforms.slicewise import from_slices, to_slices

        conv = self.card.intensity_convention
        x = conv.normalise(images.float(), conv.fit_batch(images.float()))
        if self.card.spatial_dims == 2 and x.ndim == 5:
            out = self.net(to_slices(x, self.slice_axis))
            return from_slices(out, x.shape[0], self.slice_axis, x.ndim)
        return self.net(x)


def load_checker(name: str, *, device: torch.device | str | None = None, slice_axis: int = 2) -> Checker:
    """Load frozen ``segmenter`` weights by registry name for the gate."""
    from synthaug.weights.registry import get_card, load

    try:
        card = get_card(name)
    except WeightsError as exc:
        raise WeightsError(
            f"recipe gate.checker={name!r}: no segmenter weights of that name. synthaug ships no 'segmenter' "
            "weights yet (the checker family is reserved for a small segmenter trained on the training cases only). "
            f"Remove 'gate' from the recipe, or register segmenter weights through SYNTHAUG_WEIGHTS_PATH. ({exc})"
        ) from None
    if card.family != "segmenter":
        raise WeightsError(
            f"recipe gate.checker={name!r} names {card.family!r} weights; the gate needs a 'segmenter' model."
        )
    net, card = load(name, device=device)
    return Checker(net, card, slice_axis=slice_axis)


# ------------------------------------------------------------------------------------ nnU-Net targets


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


def nnunet_targets(
    seg: torch.Tensor,
    *,
    ds_scales: Sequence[Sequence[float]] | None = None,
    regions: Sequence[Any] | None = None,
    ignore_label: int | None = None,
) -> torch.Tensor | list[torch.Tensor]:
    """nnU-Net's last training transforms, batched on the device: ``-1 -> 0``, regions, deep supervision.

    Equivalent to ``RemoveLabelTransform(-1, 0)``, ``ConvertSegmentationToRegionsTransform`` and
    ``DownsampleSegForDSTransform`` applied per sample (``seg`` is ``(B, 1, *sp)``).
    """
    seg = torch.where(seg == -1, torch.zeros_like(seg), seg)
    if regions is not None:
        regs = list(regions) + ([ignore_label] if ignore_label is not None else [])
        members = [[r] if isinstance(r, int) else [int(v) for v in r] for r in regs]
        top = max(int(seg.max()), max(max(m) for m in members)) + 1
        lut = torch.zeros(top, len(members), dtype=torch.bool, device=seg.device)
        for j, m in enumerate(members):  # a few regions, not a per-voxel loop
            lut[torch.tensor([v for v in m if v >= 0], dtype=torch.long, device=seg.device), j] = True
        seg = lut[seg[:, 0].long().clamp_min(0)].movedim(-1, 1)
    if ds_scales is None:
        return seg
    shapes = []
    for s in ds_scales:
        s = list(s) if isinstance(s, (list, tuple)) else [s] * (seg.ndim - 2)
        shapes.append([round(i * j) for i, j in zip(seg.shape[2:], s)])
    return regenerate_deep_supervision(seg, shapes)


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
        normalization: the plan's normalisation of the synthesised channel (``recipe.channel``).
        dataset_labels: ``dataset.json["labels"]`` (``{name: id}``) to map labels to the generator's
            vocabulary by name and to resolve targeting by name; ``None``: labels are generator classes.
        ignore_label: nnU-Net's ignore label (left untouched, background for the generator).
        slice_axis: spatial axis along which 2D generators slice 3D patches (default: the transform's).
        seed, rank: the selection stream is ``derive_seed(seed, "batch", rank)`` (``seed`` defaults to the
            recipe's), so every process/rank draws differently and reproducibly.
        checker: a callable for the gate (raw images -> logits); default: loaded from ``recipe.gate``.

    Example:
        >>> synth = BatchSynthesizer(recipe, normalization=ChannelNormalization("ZScoreNormalization"))  # doctest: +SKIP
        >>> out = synth(data, target, epoch=0)                                                           # doctest: +SKIP
    """

    def __init__(
        self,
        recipe: Recipe,
        *,
        normalization: ChannelNormalization,
        dataset_labels: Mapping[str, int] | None = None,
        ignore_label: int | None = None,
        slice_axis: int | None = None,
        seed: int | None = None,
        rank: int = 0,
        checker: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.recipe = recipe
        self.normalization = normalization
        self.dataset_labels = dict(dataset_labels) if dataset_labels is not None else None
        self.ignore_label = ignore_label
        self.slice_axis = slice_axis
        self.transforms = [
            build_transform(s, dataset_labels=self.dataset_labels, ignore_label=ignore_label, slice_axis=slice_axis)
            for s in recipe.transforms
        ]
        self.mappings = []
        for t in self.transforms:
            card = getattr(t, "card", None)
            fixed = card is not None and card.intensity_convention.kind == "ct_window"
            self.mappings.append(IntensityMapping(normalization, fixed_scale=fixed))
        self.class_weights = recipe.targeting.resolve(self.dataset_labels) if recipe.targeting else None
        self.generator = torch.Generator().manual_seed(derive_seed(recipe.seed if seed is None else seed, "batch", rank))
        self.checker = checker
        self._stats = _Stats()

    # -------------------------------------------------------------- set-up
    def prepare(self, device: torch.device | str) -> None:
        """Load every frozen network once onto ``device`` (call in the training process, not in workers)."""
        from synthaug.weights.registry import load

        for t in self.transforms:
            weights = getattr(t, "weights", None)
            if weights is not None:
                load(weights, device=device, dtype=torch.float32)
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
            eligible = presence[:, 1:].any(1) if presence.shape[1] > 1 else torch.zeros(b, dtype=torch.bool)
            p_total = (float(probs.sum()) * self._weights(presence).double()).clamp(max=1.0)
            selected = (u_sel < p_total) & eligible
            cum = torch.cumsum(probs / probs.sum(), 0)
            pick = torch.searchsorted(cum, u_pick, right=True).clamp_max(len(probs) - 1)
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
        transform: Any,
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
        nonempty = (gen != 0).flatten(1).any(1).tolist()
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
        out_raw, out_gen = transform.apply_batch(raw, gen, seeds=[seeds[idx[k]] for k in keep])
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
