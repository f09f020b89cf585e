"""Controllability and realism of ConText-GAN generators under randomised per-region appearance.

For held-out slices (never trained on) and ``draws`` appearance records per slice
(:func:`synthaug.appearance.sample_appearance` with the DR generator's ranges), the real slice is remapped
(:func:`synthaug.appearance.remap_appearance`), its features are the request, the generator renders the
label map with it, and the features of the output are compared with the request (0..100 scale, labelled
regions only, as :mod:`synthaug.training.eval_context`):

- ``randomised``: mean absolute error overall, per feature, per transfer-function kind (increasing /
  decreasing / non-monotone) and per requested-mean bin (the whole randomised range, not only the real
  one), with and without region calibration (:func:`synthaug.features.calibrate.calibrate_regions`), plus
  SSIM/PSNR of the output against the remapped target (does the texture follow the new appearance?);
- ``uniform``: requests drawn uniformly in per-class feature ranges (``stats``, e.g. a DR card's
  ``feature_stats``), so two generators can be compared on one range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from synthaug.appearance.remap import (
    KINDS,
    AppearanceRanges,
    draw_region_appearance,
    remap_appearance,
    sample_appearance,
)
from synthaug.appearance.requests import measure_requests
from synthaug.features.calibrate import calibrate_regions
from synthaug.losses.structural import psnr, ssim
from synthaug.training.eval_context import load_with_held_out, sample_random_context

__all__ = ["evaluate_appearance_control", "appearance_ranges_of", "MEAN_BINS"]

#: Requested region-mean bins (normalised 0..1 scale: 0 = -1, 1 = +1 on the generator's intensity scale).
MEAN_BINS: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def appearance_ranges_of(card: Any) -> AppearanceRanges:
    """The appearance ranges a card's generator was trained with (defaults for a card without them)."""
    return AppearanceRanges.from_card(card)


def _ms(x: torch.Tensor) -> list[float]:
    return [float(x.mean()), float(x.std()) if x.numel() > 1 else 0.0] if x.numel() else [float("nan"), 0.0]


@torch.no_grad()
def evaluate_appearance_control(
    weights: str | Path,
    *,
    data: str | None = None,
    ranges: AppearanceRanges | None = None,
    stats: dict[str, Any] | None = None,
    draws: int = 8,
    seed: int = 0,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Measure ``weights`` on held-out slices under randomised appearance (see the module docstring).

    ``ranges`` defaults to the card's training ranges; ``stats`` (per-class ``min``/``max``) to the card's
    ``feature_stats``. Pass another card's ranges and stats to compare two generators on the same requests.
    """
    g, card, td, held = load_with_held_out(weights, data)
    names, bins, n_labels = card.features.names, card.features.bins, card.n_labels
    ranges = ranges if ranges is not None else appearance_ranges_of(card)
    stats = stats if stats is not None else card.features.stats
    gen = torch.Generator().manual_seed(seed)
    errs, errs_c, kinds, req_means, ssims, psnrs, errs_u, errs_uc = [], [], [], [], [], [], [], []
    for _ in range(draws):
        for i in range(0, len(held), batch_size):
            img, lab = held.images[i : i + batch_size], held.labels[i : i + batch_size]
            params = sample_appearance(img.shape[0], generator=gen, ranges=ranges)
            target = remap_appearance(img, lab, params, n_labels=n_labels)
            target_req = measure_requests(target, lab, n_labels=n_labels, names=names, bins=bins)
            noise_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
            fake = g(lab, target_req, generator=torch.Generator().manual_seed(noise_seed))
            fake_c = calibrate_regions(fake, lab, target_req, names=names, n_labels=n_labels, bins=bins)
            mask = torch.nn.functional.one_hot(lab, n_labels).flatten(1, -2).any(1)  # (B, N_L) present
            mask[:, 0] = False
            for out, acc in ((fake, errs), (fake_c, errs_c)):
                got = measure_requests(out, lab, n_labels=n_labels, names=names, bins=bins)
                acc.append(((got - target_req).abs() * 100).permute(1, 0, 2)[:, mask])  # (N_F, regions)
            kinds.append(draw_region_appearance(params, n_labels=n_labels).kind[mask])
            req_means.append(target_req[:, names.index("mean")][mask] if "mean" in names else target_req[:, 0][mask])
            a, b = (fake + 1) / 2, (target + 1) / 2
            ssims.append(ssim(a, b, data_range=1.0))
            psnrs.append(psnr(a, b, data_range=1.0))
            # Uniform requests in the given per-class ranges
            req_u = sample_random_context(mask, stats, generator=gen)
            fake_u = g(lab, req_u, generator=torch.Generator().manual_seed(noise_seed + 1))
            fake_uc = calibrate_regions(fake_u, lab, req_u, names=names, n_labels=n_labels, bins=bins)
            for out, acc in ((fake_u, errs_u), (fake_uc, errs_uc)):
                got = measure_requests(out, lab, n_labels=n_labels, names=names, bins=bins)
                acc.append(((got - req_u).abs() * 100).permute(1, 0, 2)[:, mask])
    err, err_c = torch.cat(errs, 1), torch.cat(errs_c, 1)  # (N_F, regions)
    kind, rmean = torch.cat(kinds), torch.cat(req_means)
    err_u, err_uc = torch.cat(errs_u, 1), torch.cat(errs_uc, 1)

    def per_feature(e: torch.Tensor) -> dict[str, list[float]]:
        return {n: _ms(e[f]) for f, n in enumerate(names)}

    by_kind = {KINDS[k]: {"n": int((kind == k).sum()), **{n: _ms(err[f][kind == k]) for f, n in enumerate(names)}}
               for k in range(len(KINDS))}
    by_mean = []
    for lo, hi in zip(MEAN_BINS[:-1], MEAN_BINS[1:], strict=True):
        sel = (rmean >= lo) & ((rmean < hi) | (hi == MEAN_BINS[-1]))
        by_mean.append({"requested_mean": [lo, hi], "n": int(sel.sum()),
                        **{n: _ms(err[f][sel]) for f, n in enumerate(names)},
                        **{f"{n}_calibrated": _ms(err_c[f][sel]) for f, n in enumerate(names)}})
    return {
        "weights": card.name,
        "data": td.name,
        "heldout_cases": list(td.heldout_cases),
        "n_slices": len(held),
        "draws": draws,
        "ranges": ranges.to_dict(),
        "randomised": {
            "controllability": _ms(err.flatten()),
            "per_feature": per_feature(err),
            "controllability_calibrated": _ms(err_c.flatten()),
            "per_feature_calibrated": per_feature(err_c),
            "by_kind": by_kind,
            "by_requested_mean": by_mean,
            "ssim_vs_target": _ms(torch.cat(ssims)),
            "psnr_vs_target": _ms(torch.cat(psnrs)),
            "requested_mean_range": [float(rmean.min()), float(rmean.max())],
        },
        "uniform": {
            "controllability": _ms(err_u.flatten()),
            "per_feature": per_feature(err_u),
            "controllability_calibrated": _ms(err_uc.flatten()),
        },
    }
