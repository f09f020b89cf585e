"""ConText-GAN synthesis as an augmentation: label map (+ texture request) -> new image.

The array form :class:`ContextTextureSynth` has no MONAI/TorchIO dependency; the MONAI dictionary
transform ``RandContextTextureSynthd`` and the TorchIO ``RandomContextTextureSynth`` wrap it
(see :mod:`synthaug.integrations`).

Per call:

1. (optional) a random smooth elastic field deforms the label map (nearest neighbour) and, for
   measuring features, the image (linear); the deformed label is returned with the new image;
2. the requested per-region texture features are drawn: ``"perturb"`` measures the sample's own
   features slice by slice and shifts every region by one random offset per volume (so slices stay
   consistent), ``"card"`` draws per class from the training distribution stored in the model card,
   ``"ranges"`` draws uniformly in user-given normalised ranges, ``"appearance"`` (appearance-randomised
   generators, e.g. ``context_dr_ct_a``) samples a whole new per-region appearance per volume from a documented
   random distribution: ``appearance_source="randomised"`` remaps each region of the sample's own image by a
   random transfer function (monotone, inverted or not, with random contrast and noise:
   :func:`synthaug.appearance.remap.sample_appearance`, the ranges the generator was trained with) and asks for
   its features; ``"physics"`` asks for the features of a *simulated* MR rendering of the label map (spin echo,
   gradient echo, in/opposed phase at 1.5 or 3 T: :mod:`synthaug.appearance.physics`; super-class label maps);
   ``"mixed"`` draws physics with probability ``physics_prob``, else randomised; ``"contrast_phase"`` (CT
   generators of the super-classes) draws a contrast phase per volume and per region an attenuation in that
   phase's range, texture kept (:mod:`synthaug.appearance.contrast_phase`);
3. the frozen 2D generator renders every slice (batched, on the input's device), then (default)
   each labelled region is calibrated to the requested mean and texture;
4. (optional, ``acquisition_prob``) the rendered volume passes through a simulated acquisition: blur, bias
   field, a coarser slice spacing (:mod:`synthaug.transforms.acquisition`);
5. the output is mapped back to the input's intensity scale (the card's convention: a fixed CT
   window, or the input volume's own percentiles for MR).

Sampling is split from application: :meth:`ContextTextureSynth.sample_params` draws a tiny record
(one integer seed and whether to apply); :meth:`ContextTextureSynth.apply` is pure given it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from synthaug._validate import check_axis, check_choice, check_int, check_positive, check_range
from synthaug.errors import ValidationError, WeightsError
from synthaug.features import normalise_features
from synthaug.features.calibrate import calibrate_with_stats
from synthaug.features.region import features_of
from synthaug.features.stats import RegionStats
from synthaug.inference.phases import phase
from synthaug.networks.inference import infer
from synthaug.transforms.acquisition import AcquisitionOptions, simulate_acquisition
from synthaug.transforms.elastic import _sampling_grid, sample_displacements
from synthaug.transforms.guards import (
    DataInfo,
    GuardOptions,
    check_batch_guards,
    check_finite_output,
)
from synthaug.transforms.labels import (
    LabelOptions,
    LabelVocabulary,
    check_image_label_batch,
    warn_sparse_labels,
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
from synthaug.weights.registry import card_of, load

__all__ = [
    "ContextTextureOptions", "ContextTextureParams", "ContextTextureSynth", "DEFAULT_CONTEXT_WEIGHTS", "pool_small_regions",
]

DEFAULT_CONTEXT_WEIGHTS = "context_ct_a"
_FEATURE_MODES = ("perturb", "card", "ranges", "appearance")
_APPEARANCE_SOURCES = ("randomised", "physics", "mixed", "contrast_phase")


@dataclass(frozen=True)
class ContextTextureParams:
    """Everything random about one call: replaying it gives the same output."""

    seed: int
    apply: bool


@dataclass(frozen=True)
class ContextTextureOptions(LabelOptions, GuardOptions, AcquisitionOptions):
    """Options of :class:`ContextTextureSynth` (and of its MONAI, TorchIO and recipe faces).

    Args:
        weights: registry name or path of a ``context`` family weights file.
        deform: elastically deform the label map first (a new shape, returned with the image).
        control_points, max_displacement: the elastic field (displacement in voxels).
        features: ``"perturb"``, ``"card"``, ``"ranges"`` or ``"appearance"`` (see the module docstring).
        appearance_source: in ``"appearance"`` mode, ``"randomised"``, ``"physics"`` (simulated MR appearance of
            the label map), ``"mixed"`` or ``"contrast_phase"`` (CT: per-region attenuation of a random contrast
            phase, :mod:`synthaug.appearance.contrast_phase`).
        physics_prob: in ``"mixed"``, the probability that a volume takes the physics prior.
        perturbation: half-width of the uniform offset (normalised units, 0..1) in ``"perturb"`` mode.
        ranges: ``{feature: (low, high)}`` in normalised units for ``"ranges"`` mode.
        label_names, label_map, labels_are_classes: what your label values mean
            (:class:`~synthaug.transforms.labels.LabelOptions`); a label map is read by name, never guessed.
        spacing_tolerance, check_modality: input guards from the model card
            (:class:`~synthaug.transforms.guards.GuardOptions`).
        acquisition_prob, blur_max, bias_max, resolution_max: simulated acquisition of the rendered volume (blur,
            bias field, coarser slice spacing; :class:`~synthaug.transforms.acquisition.AcquisitionOptions`), off
            by default; meant for the ``"appearance"`` mode, where the target domain's scanner is unknown.
        slice_axis: spatial axis along which 3D volumes are cut into 2D slices.
        chunk: slices per generator call (bounds memory on large volumes); None: 8 on CPU, 32 on a GPU.
        calibrate: after the generator, move each labelled region's mean and texture to the request
            (:func:`synthaug.features.calibrate.calibrate_regions`): training-free; on held-out CT it
            cut the controllability error from ~11% to <1% and also lowered KID (see
            benchmarks/results/context.md). ``False`` gives the raw generator output.
        min_texture_voxels: a region with fewer voxels than this in a slice is too small to carry a texture
            (a standard deviation or histogram entropy of a handful of voxels is noise). Documented fallback: in
            ``"perturb"`` mode its request is the region's features pooled over the whole volume (voxel-count
            weighted) instead of that slice's, and calibration sets its mean only, leaving its spread to the
            generator. 0 turns the rule off.
        keep_outside_window: for a CT-window generator, voxels whose (deformed) input lies outside the
            window (air, lung, dense bone) keep the input's value instead of the generator's saturated
            one (:meth:`~synthaug.intensity.IntensityConvention.keep_outside_window`); no effect for MR
            percentile conventions.
    """

    weights: str | Path = DEFAULT_CONTEXT_WEIGHTS
    deform: bool = True
    control_points: int = 4
    max_displacement: float = 6.0
    features: str = "perturb"
    perturbation: float = 0.1
    ranges: Mapping[str, tuple[float, float]] | None = None
    appearance_source: str = "randomised"
    physics_prob: float = 0.5
    slice_axis: int = 2
    chunk: int | None = None
    calibrate: bool = True
    min_texture_voxels: int = 8
    keep_outside_window: bool = True

    def validate(self) -> None:
        super().validate()
        self._set("deform", bool(self.deform))
        self._set("calibrate", bool(self.calibrate))
        self._set("keep_outside_window", bool(self.keep_outside_window))
        self._set("control_points", check_int("control_points", self.control_points, low=2))
        self._set("min_texture_voxels", check_int("min_texture_voxels", self.min_texture_voxels, low=0))
        self._set("max_displacement", float(check_positive("max_displacement", float(self.max_displacement), allow_zero=True)))
        check_choice("features", self.features, _FEATURE_MODES)
        check_choice("appearance_source", self.appearance_source, _APPEARANCE_SOURCES)
        self._set("physics_prob", float(check_range("physics_prob", float(self.physics_prob), 0.0, 1.0)))
        self._set("perturbation", float(check_positive("perturbation", float(self.perturbation), allow_zero=True)))
        self._set("slice_axis", check_axis("slice_axis", self.slice_axis))
        if self.chunk is not None:
            self._set("chunk", check_int("chunk", self.chunk, low=1))
        if self.features == "ranges" and not self.ranges:
            raise ValidationError("features='ranges' needs ranges={feature: (low, high)} in normalised 0..1 units.")
        if self.ranges is not None:
            for n, pair in self.ranges.items():
                lo, hi = pair
                if not 0.0 <= lo <= hi <= 1.0:
                    raise ValidationError(f"ranges[{n!r}] must satisfy 0 <= low <= high <= 1, got ({lo}, {hi}).")
            self._set("ranges", {str(k): (float(v[0]), float(v[1])) for k, v in self.ranges.items()})


class ContextTextureSynth(LabelVocabulary, OptionsTransform):
    """Synthesise a new image for a label map with a frozen ConText-GAN generator.

    Options: :class:`ContextTextureOptions` (``weights`` may be given by position); ``prob`` is the
    probability that a call synthesises (otherwise image and label pass unchanged).

    Example:
        >>> synth = ContextTextureSynth("context_ct_a", deform=False)  # doctest: +SKIP
        >>> params = synth.sample_params(generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
        >>> new_image, new_label = synth.apply(image, label, params)  # doctest: +SKIP
    """

    Options = ContextTextureOptions
    positional = ("weights",)
    uses_data_info = True
    options: ContextTextureOptions

    def _setup(self) -> None:
        self.card = card_of(self.weights, family="context")
        self.names = self.card.features.names
        self.bins = self.card.features.bins
        self.n_labels = self.card.n_labels
        if self.features == "appearance" and not self.card.appearance_randomised:
            raise ValidationError(
                f"features='appearance' needs an appearance-randomised generator (trained with appearance_prob > 0, e.g. "
                f"context_dr_ct_a or context_dr_mni); {self.card.name!r} only knows the appearance of its training scan."
            )
        if self.features == "appearance" and self.appearance_source != "randomised":
            from synthaug.appearance.physics import SUPERCLASS_NAMES

            if tuple(self.card.labels) != tuple(SUPERCLASS_NAMES):
                raise ValidationError(
                    f"appearance_source={self.appearance_source!r} draws appearances of the abdominal super-classes "
                    f"{list(SUPERCLASS_NAMES)}; generator {self.card.name!r} has classes {list(self.card.labels)}. "
                    "Use appearance_source='randomised'."
                )
            if self.appearance_source == "contrast_phase" and self.card.intensity_convention.kind != "ct_window":
                raise ValidationError(
                    f"appearance_source='contrast_phase' sets CT attenuations (HU) per contrast phase; generator "
                    f"{self.card.name!r} is not a CT-window model. Use a CT generator (context_dr_ct_a) or "
                    "appearance_source='randomised'/'physics'."
                )
        if self.features == "ranges":
            missing = [n for n in self.names if n not in self.ranges]
            if missing:
                raise ValidationError(f"ranges lacks feature(s) {missing}; the generator needs {list(self.names)}.")
        if self._vocabulary_setup():
            self.class_table(None)  # refuse a bad vocabulary now, not at the first call

    # ------------------------------------------------------------------ sampling
    def params_from_seed(self, seed: int, apply: bool = True) -> ContextTextureParams:
        return ContextTextureParams(seed=int(seed), apply=bool(apply))

    # ------------------------------------------------------------------ application
    @torch.no_grad()
    def apply_batch(
        self, images: torch.Tensor, labels: torch.Tensor, *, seeds: Sequence[int],
        info: DataInfo | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched synthesis: ``images`` (B, 1, *spatial), ``labels`` (B, 1, *spatial); one seed per sample.

        Sample i's output depends only on its own inputs and ``seeds[i]``, so a batch gives exactly
        what per-sample calls give. Heavy work (warping, the generator) runs batched on the input's
        device; only tiny random draws are made per sample.
        """
        with phase("checks"):
            label_dtype = labels.dtype
            labels = check_image_label_batch(images, labels, purpose="synthesise")
            label_names = (info or DataInfo()).label_names
            self._to_classes(labels, label_names)  # the vocabulary check sees every structure, before any warp
            info = check_batch_guards(self.card, images, seeds=seeds, info=info, slice_axis=self.slice_axis,
                                      spacing_tolerance=self.spacing_tolerance, check_modality_on=self.check_modality)
        device, dtype = images.device, images.dtype
        b, spatial = images.shape[0], tuple(images.shape[2:])
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        net, card = load(self.weights, device=device, dtype=torch.float32)
        conv = card.intensity_convention
        with phase("intensity fit"):
            fit = conv.fit_batch(images.float())
            x = conv.normalise(images.float(), fit)
            reference = images.float()  # raw input, aligned with the output (for keep_outside_window)
        # 1. elastic deformation of the label map (and of the image, for measuring features)
        if self.deform and self.max_displacement > 0:
            with phase("deformation"):
                disp = sample_displacements(spatial, gens, control_points=self.control_points,
                                            max_displacement=self.max_displacement, device=device)
                labels, x, reference = _warp_all(labels, x, reference, disp,
                                                 reference_too=self.keep_outside_window and conv.kind == "ct_window")
        with phase("checks"):
            classes = self._to_classes(labels, label_names)
            warn_sparse_labels(classes, generator=self.card.name)
        # 2. requested features per slice (B*n, N_F, N_L), normalised to [0, 1]; the slices' region index is
        #    built once and shared with the calibration of the generator's output (step 3)
        with phase("features"):
            xs, cs = to_slices(x, self.slice_axis), to_slices(classes, self.slice_axis)[:, 0]
            n_per = xs.shape[0] // b
            stats = RegionStats(xs, cs, n_labels=self.n_labels, bins=self.bins, value_range=(-1.0, 1.0),
                                soft=False, bandwidth=None)
            _ = stats.count  # counted once, shared by every calibration chunk
            if self.features == "appearance":
                requested = self._appearance_requests(x, classes, gens).repeat_interleave(n_per, dim=0)
            else:
                requested = self._requested(xs, cs, gens, n_per, stats=stats)
        # 3. the generator over every slice; OASIS noise shared by the slices of one volume
        spec = card.inference  # canvas, divisor and noise inputs: the card's typed inference section
        with phase("padding"):
            cs_p, pads = pad_to_multiple(cs, spec.divisor, 0, minimum=tuple(spec.canvas) if spec.canvas else (0, 0))
        with phase("noise"):
            noise_seeds = [int(torch.randint(0, 2**62, (), generator=g)) for g in gens]
            latents = _latent(spec.noise.z_dim, noise_seeds, device)  # (B, z) or None
            # Per-voxel noise: one device generator per sample, all of its slices in one draw, so the draws do
            # not depend on the chunk size or on which samples share the batch.
            pixel = None
            if spec.noise.pixel_channels:
                pixel = torch.cat([
                    net.pixel_noise(cs_p[i * n_per:(i + 1) * n_per],
                                    generator=torch.Generator(device=device).manual_seed(s ^ 0x5EED))
                    for i, s in enumerate(noise_seeds)  # one draw per sample (independent generators)
                ])
            owner = torch.arange(b, device=device).repeat_interleave(n_per)

        def render(part: slice) -> torch.Tensor:
            kw: dict[str, torch.Tensor] = {}
            if latents is not None:
                kw["noise"] = latents[owner[part]][:, :, None, None].expand(-1, -1, *cs_p.shape[-2:])
            if pixel is not None:
                kw["pixel_noise"] = pixel[part]
            with phase("generator"):
                out = infer(net, cs_p[part], requested[part], **kw)
            with phase("padding"):
                out = crop_padding(out, pads)
            if self.calibrate:  # per slice and region, on the chunk while it is in cache; the padding (background) never is
                with phase("calibration"):
                    out = calibrate_with_stats(out, stats.rows(part.start, part.stop), requested[part], names=self.names,
                                               min_texture_voxels=self.min_texture_voxels)
            return out

        fake = run_in_chunks(render, cs_p.shape[0], resolve_chunk(self.chunk, cs_p.device))
        with phase("output"):
            out = from_slices(fake, b, self.slice_axis, images.ndim)
        if self.options.simulates_acquisition:  # 4. (optional) blur, bias field, coarser slices; per volume
            with phase("acquisition"):
                out = simulate_acquisition(out, seeds, self.options)
        with phase("output"):
            # 5. back to the input's intensity scale (out-of-window voxels keep the input's values)
            out = conv.denormalise(out, fit)
            if self.keep_outside_window:
                out = conv.keep_outside_window(out, reference)
            out = check_finite_output(out, generator=self.card.name).to(dtype)
        return out, labels.to(dtype=label_dtype)

    def _appearance_requests(self, x: torch.Tensor, classes: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        """One request ``(B, N_F, N_L)`` per volume: the features of a random new appearance (module docstring)."""
        from synthaug.appearance import (
            AppearanceParams,
            AppearanceRanges,
            PhysicsDraw,
            appearance_requests,
            clip_requests,
            measure_requests,
            physics_requests,
            sample_physics,
        )

        draws = [(float(torch.rand((), generator=g)), int(torch.randint(0, 2**62, (), generator=g))) for g in gens]
        physics = [self.appearance_source == "physics" or (self.appearance_source == "mixed" and u < self.physics_prob)
                   for u, _ in draws]
        if self.appearance_source == "contrast_phase":
            from synthaug.appearance.contrast_phase import contrast_phase_image, sample_contrast_phase

            image = contrast_phase_image(x, classes, [sample_contrast_phase(s) for _, s in draws],
                                         labels=self.card.labels, convention=self.card.intensity_convention)
            out = measure_requests(image, classes, n_labels=self.n_labels, names=self.names, bins=self.bins)
        else:
            params = AppearanceParams(tuple(s for _, s in draws), tuple(not p for p in physics),
                                      AppearanceRanges.from_card(self.card))
            out = appearance_requests(x, classes, params, n_labels=self.n_labels, names=self.names, bins=self.bins)
            if any(physics):
                idx = [i for i, p in enumerate(physics) if p]
                # one draw per volume from its own seed: a sample's contrast does not depend on its batch
                one = [sample_physics(1, generator=torch.Generator().manual_seed(draws[i][1])) for i in idx]
                sim = PhysicsDraw(tuple(d.seeds[0] for d in one), tuple(d.contrasts[0] for d in one),
                                  tuple(d.fields_t[0] for d in one))
                phys = physics_requests(classes[idx], sim, names=self.names, bins=self.bins)
                out = out.clone()
                out[torch.tensor(idx, device=out.device)] = phys.to(out)
        # documented fallback: requests outside the generator's trained range are clamped into it
        return clip_requests(out, self.card.features.stats) if self.card.features.stats is not None else out

    def _requested(self, xs: torch.Tensor, cs: torch.Tensor, gens: list[torch.Generator], n_per: int, *,
                   stats: RegionStats | None = None) -> torch.Tensor:
        nf, nl = len(self.names), self.n_labels
        if self.features == "perturb":
            if stats is None:
                stats = RegionStats(xs, cs, n_labels=nl, bins=self.bins, value_range=(-1.0, 1.0), soft=False,
                                    bandwidth=None)
            rf = features_of(stats, self.names)
            base = normalise_features(rf.values, self.names, value_range=(-1.0, 1.0), bins=self.bins, clip=True) / 100
            base = pool_small_regions(base, stats.count, n_per, self.min_texture_voxels)
            offset = torch.stack([(torch.rand(nf, nl, generator=g) * 2 - 1) * self.perturbation for g in gens])
            offset = offset.to(xs.device, xs.dtype).repeat_interleave(n_per, dim=0)
            return (base + offset).clamp(0, 1)
        if self.features == "card":
            stats = self.card.features.stats
            if stats is None:
                raise WeightsError(f"model card {self.card.name!r} records no feature statistics; use features='perturb'.")
            lo = torch.tensor(stats.min, dtype=xs.dtype).T  # (N_F, N_L)
            hi = torch.tensor(stats.max, dtype=xs.dtype).T
        else:
            lo = torch.tensor([[self.ranges[n][0]] * nl for n in self.names], dtype=xs.dtype)
            hi = torch.tensor([[self.ranges[n][1]] * nl for n in self.names], dtype=xs.dtype)
        u = torch.stack([torch.rand(nf, nl, generator=g, dtype=xs.dtype) for g in gens])
        req = (lo + u * (hi - lo)).to(xs.device)
        return req.repeat_interleave(n_per, dim=0)


def pool_small_regions(per_slice: torch.Tensor, count: torch.Tensor, n_per: int, min_voxels: int) -> torch.Tensor:
    """Replace the features of regions too small to carry a texture in a slice by the region's features pooled
    over its volume.

    ``per_slice`` ``(B * n_per, N_F, N_L)`` features measured slice by slice (slices of one volume consecutive),
    ``count`` ``(B * n_per, N_L)`` the voxels of each region in each slice. Where a slice holds fewer than
    ``min_voxels`` voxels of a region, its features become the voxel-count-weighted mean of that region's
    per-slice features over the whole volume; regions absent from the volume keep their (zero) measurement.
    Vectorised over volumes, slices and regions.
    """
    if min_voxels <= 0:
        return per_slice
    n_f, n_l = per_slice.shape[1:]
    f = per_slice.view(-1, n_per, n_f, n_l)
    w = count.to(per_slice.dtype).view(-1, n_per, 1, n_l)
    pooled = (f * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1)  # (B, 1, N_F, N_L)
    small = (w < min_voxels) & (w.sum(1, keepdim=True) > 0)
    return torch.where(small, pooled, f).reshape(per_slice.shape)


def _warp_all(labels: torch.Tensor, x: torch.Tensor, reference: torch.Tensor, disp: torch.Tensor, *,
              reference_too: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`warp_labels` of ``labels`` and :func:`warp` of ``x`` (and ``reference``) with one sampling grid: the
    grid is built once and the two images share one linear ``grid_sample`` (the same values as separate calls)."""
    grid = _sampling_grid(disp)
    lab = F.grid_sample(labels.to(disp.dtype), grid, mode="nearest", padding_mode="border", align_corners=True)
    images = torch.cat([x, reference], dim=1) if reference_too else x
    warped = F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=True)
    x_w = warped[:, :1]
    ref_w = warped[:, 1:] if reference_too else reference
    return lab.round().to(labels.dtype), x_w, ref_w


def _latent(z_dim: int, seeds: list[int], device: torch.device) -> torch.Tensor | None:
    """One latent ``(B, z_dim)`` per volume from its noise seed (None for generators without one)."""
    if not z_dim:
        return None
    z = torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
    return z.to(device)
