"""One evaluation protocol for every modality-translation method (NEC, CycleGAN, pix2pix, ResGAN, baseline).

Protocol (identical for every method, recorded in the result under ``"protocol"``):

1. **Intensity**: every source and target volume is clipped to its own 1-99 percentile range and
   scaled to [-1, 1] (the NEC recipe, ``IntensityConvention.percentile(1, 99)``); networks receive the
   source normalised with their card's convention (the same recipe for weights trained here) and
   return [-1, 1] images.
2. **Inference**: 2D models run slice by slice (axial, axis 2, padded with -1 to their training size);
   3D models run on the whole volume by overlapping patches averaged (``overlap``, ``weighting``).
3. **Foreground mask**: the brain / body mask computed from the *source* volume
   (:func:`synthaug.training.translate_data.foreground_mask`); only axial slices whose mask covers at
   least ``min_foreground`` of the slice are scored.
4. **Histogram matching** (flag ``histogram_matching``, reported): when on, every method's output
   volume is matched, inside the mask, to the real target of the same case (paired data, as in the NEC
   paper) or to the pooled target-domain reference images (unpaired data), before scoring. It is
   applied the same way to every row, the baseline included.
5. **Metrics** per slice, mean and standard deviation over slices: with ground truth (paired data),
   PSNR (data range 2), SSIM (Gaussian window, :func:`synthaug.losses.structural.ssim`) on images
   whose background (outside the mask) is set to -1 in both, and MAE inside the mask; for every dataset,
   structural faithfulness = mean over the mask of ``<n_eps(source), n_eps(output)>^2`` (NGF alignment,
   eps 0.15; 1 means every edge kept its orientation) and KID x 1000 on fixed random conv features
   (:mod:`synthaug.metrics.distribution`; not Inception features) between output slices and real target
   slices (paired: the test targets; unpaired: unseen target images, e.g. the lower half of MR C);
   label fidelity (Dice of ``segmenter(output)`` against the source labels) only when a frozen
   target-modality segmenter is given.
6. **Baseline**: ``histogram matching`` = the normalised source matched, inside its mask, to the pooled
   target-domain reference images (validation subjects' targets for simulated brain; MR C upper half
   for abdomen): the trivial floor, a row like the others.

Weights are refused unless their card is a translation card whose ``source_modality`` /
``target_modality`` match the data, and none of the test cases is among the card's training cases.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from synthaug._validate import check_choice, check_range
from synthaug.data.scenarios import check_no_overlap
from synthaug.errors import ValidationError, WeightsError
from synthaug.inference.histogram import match_histogram
from synthaug.inference.sliding_window import WEIGHTINGS, slice_inference, sliding_window_inference
from synthaug.losses.gradient import normalized_gradient_field
from synthaug.losses.structural import ssim
from synthaug.metrics.distribution import RandomFeatureExtractor, kernel_distance
from synthaug.training.provenance import machine_line, today
from synthaug.training.translate_data import (
    TranslationCase,
    TranslationData,
    _pad_xy,
    get_translation_data,
    normalise_case,
    subject_of,
)
from synthaug.weights.card import InferenceSpec, ModelCard
from synthaug.weights.registry import check_family

__all__ = [
    "Segmenter",
    "translate_volume",
    "slice_metrics",
    "ngf_alignment",
    "evaluate_translation",
    "markdown_table",
    "check_card_for_data",
    "frozen_segmenter",
]

Segmenter = Callable[[torch.Tensor], torch.Tensor]
"""Label-fidelity hook: ``(N, 1, H, W)`` target-modality images in [-1, 1] -> ``(N, H, W)`` integer labels
in the data's label vocabulary (``TranslationData.label_names``)."""

BASELINE = "histogram matching"


def frozen_segmenter(weights: str | Path, data: TranslationData, *, device: str | torch.device = "cpu") -> Segmenter:
    """The label-fidelity judge from segmenter weights (``synthaug train segmenter``), checked against ``data``.

    Refused unless the segmenter was trained on the *target* modality with ``data``'s label vocabulary and
    never on a test case. Slices are centre-padded with -1 to the segmenter's training canvas (its
    ``size``) and the prediction is cropped back, so any slice size up to that canvas works.
    """
    from synthaug.training.train_segmenter import load_segmenter, segment

    net, card = load_segmenter(weights, device=device)
    if (card.modality or "").upper() != data.target_modality.upper():
        raise ValidationError(
            f"segmenter {card.name!r} was trained on {card.modality!r} images, but the label-fidelity judge of {data.name!r} "
            f"must segment the target modality {data.target_modality!r}; train one with synthaug train segmenter."
        )
    if tuple(card.labels) != tuple(data.label_names):
        raise ValidationError(
            f"segmenter {card.name!r} predicts labels {list(card.labels)}, but {data.name!r} uses {list(data.label_names)}."
        )
    if card.intensity != data.intensity.to_dict():
        raise ValidationError(
            f"segmenter {card.name!r} expects intensities {card.intensity}, but the protocol of {data.name!r} "
            f"produces {data.intensity.to_dict()}; train the segmenter with the same convention."
        )
    check_no_overlap(card.training_cases, data.case_ids["test"], what=f"training (segmenter {card.name!r})")
    canvas = int(card.inference.canvas[0]) if card.inference.canvas else 0
    if canvas <= 0:
        raise WeightsError(f"segmenter card {card.name!r} does not record its training size (inference.canvas).")

    def judge(images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        if h > canvas or w > canvas:
            raise ValidationError(f"slices of {h}x{w} are larger than segmenter {card.name!r}'s canvas {canvas}x{canvas}.")
        top, left = (canvas - h) // 2, (canvas - w) // 2
        x = F.pad(images, (left, canvas - w - left, top, canvas - h - top), value=-1.0)
        pred = segment(net, x.to(next(net.parameters()).device))
        return pred[:, top : top + h, left : left + w].cpu()

    judge.name = card.name  # type: ignore[attr-defined]
    return judge


def translate_volume(
    network: nn.Module,
    source: torch.Tensor,
    *,
    spatial_dims: int,
    inference: InferenceSpec,
    overlap: float = 0.5,
    weighting: str = "uniform",
    batch_size: int = 16,
) -> torch.Tensor:
    """Translate one normalised ``(X, Y, Z)`` volume: slice-wise (2D) or by overlapping patches (3D)."""
    x = source[None, None]
    divisor = int(inference.divisor)
    if spatial_dims == 2:
        out = slice_inference(
            x, network, axis=-1, batch_size=batch_size, multiple=divisor,
            min_size=int(inference.canvas[0]) if inference.canvas else 0, pad_value=-1.0
        )
    else:
        out = sliding_window_inference(
            x, network, patch_size=int(inference.patch[0]), overlap=overlap, weighting=weighting,
            batch_size=batch_size, pad_mode="constant", pad_value=-1.0,
        )
    return out[0, 0]


def _slices(vol: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``(X, Y, Z)`` -> ``(N, 1, X, Y)`` axial slices ``keep``."""
    return vol[:, :, keep].permute(2, 0, 1)[:, None]


def slice_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-slice PSNR, SSIM (background set to -1 in both) and MAE inside ``mask``; images ``(N, 1, H, W)`` in [-1, 1]."""
    m = mask[:, None].to(torch.bool)
    p = torch.where(m, pred, torch.full_like(pred, -1.0))
    t = torch.where(m, target, torch.full_like(target, -1.0))
    w = m.to(pred.dtype)
    n = w.flatten(1).sum(1).clamp(min=1)
    mse = (((p - t) ** 2) * w).flatten(1).sum(1) / n
    mae = ((p - t).abs() * w).flatten(1).sum(1) / n
    return {
        "psnr": 10.0 * torch.log10(4.0 / mse.clamp(min=1e-12)),
        "ssim": ssim(p, t, data_range=2.0),
        "mae": mae,
    }


def ngf_alignment(source: torch.Tensor, output: torch.Tensor, mask: torch.Tensor, *, eps: float = 0.15) -> torch.Tensor:
    """Per-slice mean over ``mask`` of ``<n_eps(source), n_eps(output)>^2`` (1 = every edge orientation kept)."""
    ns = normalized_gradient_field(source, eps=eps)
    no = normalized_gradient_field(output, eps=eps)
    a = (ns * no).sum(dim=1) ** 2
    w = mask.to(a.dtype)
    return (a * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp(min=1)


def _dice(pred: torch.Tensor, ref: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Per-slice mean Dice over foreground classes present in either map (NaN when none is)."""
    p = torch.nn.functional.one_hot(pred.long().clamp(0, n_classes - 1), n_classes).flatten(1, -2)[..., 1:].float()
    r = torch.nn.functional.one_hot(ref.long().clamp(0, n_classes - 1), n_classes).flatten(1, -2)[..., 1:].float()
    inter = (p * r).sum(1)
    total = p.sum(1) + r.sum(1)
    present = total > 0
    d = torch.where(present, 2 * inter / total.clamp(min=1), torch.zeros_like(total))
    n_present = present.sum(1)
    mean = d.sum(1) / n_present.clamp(min=1)
    return torch.where(n_present > 0, mean, torch.full_like(mean, float("nan")))


def _mean_std(x: torch.Tensor) -> list[float]:
    x = x[torch.isfinite(x)]
    if x.numel() == 0:
        return [float("nan"), float("nan")]
    return [float(x.mean()), float(x.std()) if x.numel() > 1 else 0.0]


def check_card_for_data(card: ModelCard, data: TranslationData, *, split: str = "test") -> None:
    """Raise unless ``card`` is a translation card for ``data``'s modalities that never trained on ``split``."""
    check_family(card, "translate")
    if not card.source_modality or not card.target_modality:
        raise WeightsError(
            f"model card {card.name!r} does not state its source_modality/target_modality "
            f"(got {card.source_modality!r} -> {card.target_modality!r}); re-export it with synthaug train translate."
        )
    if (card.source_modality, card.target_modality) != (data.source_modality, data.target_modality):
        raise ValidationError(
            f"weights {card.name!r} translate {card.source_modality} -> {card.target_modality}, but data {data.name!r} "
            f"is {data.source_modality} -> {data.target_modality}. Pick weights trained for that direction."
        )
    check_no_overlap(
        [subject_of(c) for c in card.training_cases],
        [subject_of(c) for c in data.case_ids[split]],
        what=f"training (weights {card.name!r})",
    )


def _pooled(cases: Sequence[TranslationCase], intensity) -> torch.Tensor:
    vals = [normalise_case(c.target, intensity)[torch.from_numpy(c.mask)] for c in cases if c.target is not None]
    if not vals:
        raise ValidationError("the reference split holds no target images for histogram matching.")
    return torch.cat(vals)


def _prepare(data: TranslationData, *, min_foreground: float) -> list[dict[str, Any]]:
    cases = []
    for case in data.split("test"):
        if case.source is None:
            raise ValidationError(f"test case {case.case_id!r} of {data.name!r} has no source image.")
        mask = torch.from_numpy(case.mask.copy())
        keep = (mask.float().mean(dim=(0, 1)) >= min_foreground).nonzero().flatten()
        if keep.numel() == 0:
            continue
        cases.append(
            {
                "case": case,
                "source": normalise_case(case.source, data.intensity),
                "target": None if case.target is None else normalise_case(case.target, data.intensity),
                "mask": mask,
                "keep": keep,
            }
        )
    if not cases:
        raise ValidationError(f"no test slice of {data.name!r} has a foreground fraction >= {min_foreground}.")
    return cases


def _real_slices(data: TranslationData, cases: list[dict[str, Any]], *, size: int, min_foreground: float) -> torch.Tensor:
    """Real target slices for the distribution distance, padded to ``size`` with -1."""
    if data.paired:
        vols = [(c["target"], c["keep"]) for c in cases]
    else:
        vols = []
        for case in data.split("test_target"):
            mask = torch.from_numpy(case.mask)
            keep = (mask.float().mean(dim=(0, 1)) >= min_foreground).nonzero().flatten()
            vols.append((normalise_case(case.target, data.intensity), keep))
    return torch.cat([_slices(_pad_xy(v, size, -1.0), k) for v, k in vols])


def _score(
    name: str,
    outputs: list[torch.Tensor],
    cases: list[dict[str, Any]],
    *,
    data: TranslationData,
    reference: torch.Tensor | None,
    histogram_matching: bool,
    extractor: RandomFeatureExtractor,
    real_features: torch.Tensor,
    size: int,
    segmenter: Segmenter | None,
) -> dict[str, Any]:
    per: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": [], "mae": [], "ngf_alignment": [], "dice": []}
    fake_features = []
    for out, c in zip(outputs, cases):
        if histogram_matching:
            if c["target"] is not None:
                out = match_histogram(out[None], c["target"][None], source_mask=c["mask"][None], reference_mask=c["mask"][None])[0]
            else:
                out = match_histogram(out[None], reference[None], source_mask=c["mask"][None])[0]
        keep, mask = c["keep"], c["mask"]
        o, s, m = _slices(out, keep), _slices(c["source"], keep), mask[:, :, keep].permute(2, 0, 1)
        if c["target"] is not None:
            for k, v in slice_metrics(o, _slices(c["target"], keep), m).items():
                per[k].append(v)
        per["ngf_alignment"].append(ngf_alignment(s, o, m))
        padded = _slices(_pad_xy(out, size, -1.0), keep)
        fake_features.append(extractor(padded))
        if segmenter is not None and c["case"].label is not None:
            lab = torch.from_numpy(c["case"].label[:, :, keep.numpy()].astype("int64")).permute(2, 0, 1)
            pred = segmenter(o)
            if pred.shape != lab.shape:
                raise ValidationError(f"segmenter must return (N, H, W) labels {tuple(lab.shape)}, got {tuple(pred.shape)}.")
            per["dice"].append(_dice(pred, lab, len(data.label_names)))
    ff = torch.cat(fake_features)
    n = min(100, ff.shape[0], real_features.shape[0])
    kid = kernel_distance(real_features, ff, subset_size=n) if n >= 2 else (float("nan"), float("nan"))
    row: dict[str, Any] = {"method": name, "n_slices": int(ff.shape[0])}
    for k, v in per.items():
        row[k] = _mean_std(torch.cat(v)) if v else None
    row["kid_x1000"] = [1000 * kid[0], 1000 * kid[1]]
    return row


@torch.no_grad()
def evaluate_translation(
    weights: Sequence[str | Path],
    *,
    data: str | None = None,
    histogram_matching: bool = False,
    baseline: bool = True,
    overlap: float = 0.5,
    weighting: str = "uniform",
    min_foreground: float = 0.05,
    batch_size: int = 16,
    segmenter: Segmenter | str | Path | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Score every weights file (and the histogram-matching baseline) with the one protocol above.

    Returns ``{"data", "protocol", "methods": [row, ...], ...}``; each row holds ``[mean, std]`` over
    slices for ``psnr``, ``ssim``, ``mae`` (None without ground truth), ``ngf_alignment``, ``kid_x1000``,
    ``dice`` (None without a segmenter), plus the card's training time, iterations and selected step.
    """
    from synthaug.weights.registry import load

    weights = list(weights)
    if not weights and not baseline:
        raise ValidationError("nothing to evaluate: give at least one weights file or keep the baseline.")
    check_range("overlap", float(overlap), 0.0, 0.999)
    check_choice("weighting", weighting, WEIGHTINGS)
    check_range("min_foreground", float(min_foreground), 0.0, 1.0)
    loaded = [load(w, device=device) for w in weights]
    if data is None:
        if not loaded:
            raise ValidationError("give data=NAME when evaluating the baseline alone.")
        data = str(loaded[0][1].training.get("data", ""))
    td = get_translation_data(data)
    for _, card in loaded:
        check_card_for_data(card, td)
    if isinstance(segmenter, (str, Path)):
        segmenter = frozen_segmenter(segmenter, td, device=device)
    cases = _prepare(td, min_foreground=min_foreground)
    size = td.size
    reference = _pooled(td.split("reference"), td.intensity)
    extractor = RandomFeatureExtractor()
    real = _real_slices(td, cases, size=size, min_foreground=min_foreground)
    real_features = extractor(real)
    common = dict(
        data=td, reference=reference, histogram_matching=histogram_matching, extractor=extractor,
        real_features=real_features, size=size, segmenter=segmenter,
    )
    rows = []
    if baseline:
        t0 = time.perf_counter()
        outs = [match_histogram(c["source"][None], reference[None], source_mask=c["mask"][None])[0] for c in cases]
        row = _score(BASELINE, outs, cases, **common)
        row.update(mode="baseline", spatial_dims=None, weights=None, training_seconds=0.0, iterations=0,
                   best_step=None, parameters=0, inference_seconds=round(time.perf_counter() - t0, 2))
        rows.append(row)
    for w, (net, card) in zip(weights, loaded):
        inference = card.inference
        if card.spatial_dims == 3 and not inference.patch:
            raise WeightsError(f"model card {card.name!r} (3D) does not record its training patch size (inference.patch).")
        t0 = time.perf_counter()
        outs = []
        for c in cases:
            src = c["case"].source
            x = normalise_case(src, card.intensity_convention).to(device)
            outs.append(
                translate_volume(net, x, spatial_dims=card.spatial_dims, inference=inference, overlap=overlap,
                                 weighting=weighting, batch_size=batch_size).cpu()
            )
        row = _score(card.name, outs, cases, **common)
        selection = card.training.get("selection", {})
        row.update(
            mode=card.training.get("mode", "") + ("+auto-context" if card.architecture == "auto_context_unet" else ""),
            spatial_dims=card.spatial_dims, weights=str(w),
            training_seconds=card.training.get("seconds"), iterations=card.training.get("iterations"),
            best_step=selection.get("best_step"), parameters=sum(p.numel() for p in net.parameters()),
            inference_seconds=round(time.perf_counter() - t0, 2),
        )
        rows.append(row)
    return {
        "data": td.name,
        "source_modality": td.source_modality,
        "target_modality": td.target_modality,
        "paired": td.paired,
        "simulated": td.simulated,
        "test_cases": list(td.case_ids["test"]),
        "test_subjects": sorted({subject_of(i) for i in td.case_ids["test"]}),
        "ngf_ceiling": _mean_std(torch.cat([ngf_alignment(_slices(c["source"], c["keep"]), _slices(c["source"], c["keep"]),
                                                           c["mask"][:, :, c["keep"]].permute(2, 0, 1)) for c in cases])),
        "n_slices": rows[0]["n_slices"] if rows else 0,
        "protocol": {
            "intensity": td.intensity.to_dict(),
            "mask": "foreground mask from the source volume (translate_data.foreground_mask)",
            "min_foreground": min_foreground,
            "histogram_matching": bool(histogram_matching),
            "histogram_reference": "the case's real target (paired)" if td.paired else "pooled target-domain reference images",
            "baseline_reference": list(td.case_ids["reference"]),
            "kid_real": "test targets" if td.paired else list(td.case_ids["test_target"]),
            "kid_features": "fixed random conv features (synthaug.metrics.distribution), not Inception",
            "overlap_3d": overlap,
            "weighting_3d": weighting,
            "ssim": "Gaussian window sigma 1.5, data range 2, background outside the mask set to -1 in both images",
            "segmenter": None if segmenter is None else getattr(segmenter, "name", "custom callable"),
        },
        "label_source": td.label_source,
        "notes": td.notes,
        "machine": machine_line(),
        "date": today(),
        "methods": rows,
    }


def _fmt(v: Any, digits: int) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, (list, tuple)):
        if v[0] != v[0]:  # NaN
            return "n/a"
        return f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}"
    return f"{v}"


def markdown_table(result: dict[str, Any]) -> str:
    """Every method side by side: PSNR, SSIM, MAE, NGF alignment, KID, Dice, training time."""
    p = result["protocol"]
    head = (
        f"**{result['data']}** ({result['source_modality']} -> {result['target_modality']}"
        f"{', simulated' if result.get('simulated') else ''}), {result['n_slices']} test slices of "
        f"{len(result.get('test_subjects', result['test_cases']))} held-out case(s); histogram matching before scoring: "
        f"{'on' if p['histogram_matching'] else 'off'}.\n\n"
    )
    lines = [
        "| method | mode | dims | PSNR (dB) | SSIM | MAE | NGF alignment | KID x1000 | Dice | train time (s) | iterations (best) | params |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["methods"]:
        best = f"{r['iterations']} ({r['best_step']})" if r.get("best_step") is not None else f"{r.get('iterations')}"
        secs = r.get("training_seconds")
        dims = f"{r['spatial_dims']}D" if r.get("spatial_dims") else "-"
        lines.append(
            f"| {r['method']} | {r.get('mode', '')} | {dims} "
            f"| {_fmt(r['psnr'], 2)} | {_fmt(r['ssim'], 3)} | {_fmt(r['mae'], 3)} | {_fmt(r['ngf_alignment'], 3)} "
            f"| {_fmt(r['kid_x1000'], 1)} | {_fmt(r['dice'], 3)} | {'-' if secs is None else f'{float(secs):.0f}'} "
            f"| {best} | {r.get('parameters', 0):,} |"
        )
    foot = (
        "\nPSNR/SSIM/MAE inside the source foreground mask against the real target (n/a without paired ground truth); "
        f"NGF alignment = mean <n(source), n(output)>^2 in the mask (faithfulness; the source against itself scores "
        f"{_fmt(result.get('ngf_ceiling'), 3)}); KID on fixed random conv features "
        "(not Inception; comparable only within synthaug). "
    )
    if result.get("simulated"):
        foot += "All images are simulated MR."
    else:
        foot += f"Labels: {result.get('label_source', '')}."
    return head + "\n".join(lines) + "\n" + foot + "\n"
