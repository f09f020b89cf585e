"""Evaluate ConText-GAN generators on held-out slices, following the paper's protocol.

(a) Realism: held-out label maps are deformed by a random elastic field E; the generator renders
    E(label) with the features measured on E(image); the output is compared with E(image):
    L1, PSNR, SSIM on images scaled to [0, 1].
(b) Distribution distance: KID (and a Frechet distance) between real held-out slices and images
    generated from deformed labels with *random* context (features drawn uniformly within each
    class's training range from the model card), on fixed random conv features
    (:mod:`synthaug.metrics.distribution`; not Inception: not comparable to published FID).
(c) Controllability: on the random-context set, features are measured on the output and compared
    with the requested ones, both normalised to 0..100: mean absolute error per feature and averaged
    (a percent; lower is better; the paper reports 4.5-8.4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from synthaug.data.scenarios import check_no_overlap
from synthaug.features import normalise_features, region_features
from synthaug.features.calibrate import calibrate_regions
from synthaug.losses.structural import gaussian_window, psnr, ssim
from synthaug.metrics.distribution import RandomFeatureExtractor, frechet_distance, kernel_distance
from synthaug.training.context import measure_features
from synthaug.training.datasets import get_training_data
from synthaug.training.slices import cut_slices
from synthaug.transforms.elastic import sample_displacement, warp, warp_labels
from synthaug.weights.card import FeatureStats
from synthaug.weights.registry import load

__all__ = ["evaluate_context", "sample_random_context", "markdown_table"]


def sample_random_context(
    present: torch.Tensor, stats: FeatureStats, *, generator: torch.Generator
) -> torch.Tensor:
    """Requested normalised features (B, N_F, N_L), uniform in each class's [min, max] from the card."""
    lo = torch.tensor(stats.min, dtype=torch.float32).T  # (N_F, N_L)
    hi = torch.tensor(stats.max, dtype=torch.float32).T
    b = present.shape[0]
    u = torch.rand((b, *lo.shape), generator=generator)
    return (lo + u * (hi - lo)).clamp(0, 1).to(present.device)


def _smooth(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur of (B, 1, H, W) with replicate padding (keeps the size)."""
    taps = gaussian_window(sigma, dtype=x.dtype, device=x.device)
    k = taps.numel()
    pad = k // 2
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    x = F.conv2d(x, taps.reshape(1, 1, 1, k))
    return F.conv2d(x, taps.reshape(1, 1, k, 1))


def _mean_std(x: torch.Tensor) -> list[float]:
    return [float(x.mean()), float(x.std()) if x.numel() > 1 else 0.0]


@torch.no_grad()
def load_with_held_out(weights: str | Path, data: str | None = None) -> tuple[torch.nn.Module, Any, Any, Any]:
    """A context generator, its card, its training data (``data`` or the card's) and that data's held-out
    slices cut as the generator saw its training slices; refuses a card whose training cases overlap the
    held-out ones."""
    g, card = load(weights)
    td = get_training_data(data or card.training["config"]["data"])
    check_no_overlap(card.training_cases, td.heldout_cases, what="generator training")
    cfg = card.training["config"]
    size = int(cfg["size"])
    held = cut_slices(td.heldout, intensity=card.intensity_convention, spacing=cfg.get("spacing") or td.spacing,
                      size=(size, size), axis=int(cfg.get("axis", 2)))
    return g, card, td, held


def evaluate_context(
    weights: str | Path,
    *,
    data: str | None = None,
    seed: int = 0,
    control_points: int = 5,
    max_displacement: float = 6.0,
    batch_size: int = 32,
) -> dict[str, Any]:
    g, card, td, held = load_with_held_out(weights, data)
    data_name = data or card.training["config"]["data"]
    size = int(card.training["config"]["size"])
    names, bins, n_labels = card.features.names, card.features.bins, card.n_labels
    gen = torch.Generator().manual_seed(seed)
    l1s, psnrs, ssims, ssims_smooth, ctrl, real_imgs, fake_imgs, ctrl_per_feature = [], [], [], [], [], [], [], []
    ctrl_c, ctrl_per_feature_c, calibrated_imgs = [], [], []
    for i in range(0, len(held), batch_size):
        img, lab = held.images[i : i + batch_size], held.labels[i : i + batch_size]
        disp = sample_displacement((size, size), batch=img.shape[0], control_points=control_points,
                                   max_displacement=max_displacement, generator=gen)
        img_d, lab_d = warp(img, disp), warp_labels(lab, disp)
        feats, present = measure_features(img_d, lab_d, n_labels=n_labels, names=names, bins=bins)
        noise_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        fake = g(lab_d, feats, generator=torch.Generator().manual_seed(noise_seed))
        a, b = (fake + 1) / 2, (img_d + 1) / 2
        l1s.append((a - b).abs().flatten(1).mean(1))
        psnrs.append(psnr(a, b, data_range=1.0))
        ssims.append(ssim(a, b, data_range=1.0))
        ssims_smooth.append(ssim(_smooth(a), _smooth(b), data_range=1.0))
        # Random context
        req = sample_random_context(present, card.features.stats, generator=gen)
        fake_r = g(lab_d, req, generator=torch.Generator().manual_seed(noise_seed + 1))
        fake_c = calibrate_regions(fake_r, lab_d, req, names=names, n_labels=n_labels, bins=bins)
        for out, per_feature_list, all_list in ((fake_r, ctrl_per_feature, ctrl), (fake_c, ctrl_per_feature_c, ctrl_c)):
            rf = region_features(out, lab_d, n_labels=n_labels, names=names, bins=bins, value_range=(-1.0, 1.0))
            got = normalise_features(rf.values, names, value_range=(-1.0, 1.0), bins=bins)
            err = (got - req * 100).abs()  # (B, N_F, N_L)
            # Background (region 0) is excluded: controllability is about the labelled regions.
            mask = rf.present.clone()
            mask[:, 0] = False
            per_feature_list.append(torch.stack([err[:, f][mask] for f in range(len(names))], dim=0))
            all_list.append(err[mask[:, None, :].expand_as(err)])
        real_imgs.append(img)
        fake_imgs.append(fake_r)
        calibrated_imgs.append(fake_c)
    l1, ps, ss = torch.cat(l1s), torch.cat(psnrs), torch.cat(ssims)
    per_feature = torch.cat(ctrl_per_feature, dim=1)
    per_feature_c = torch.cat(ctrl_per_feature_c, dim=1)
    extractor = RandomFeatureExtractor()
    fr = torch.cat([extractor(x) for x in real_imgs])
    ff = torch.cat([extractor(x) for x in fake_imgs])
    fc = torch.cat([extractor(x) for x in calibrated_imgs])
    kid = kernel_distance(fr, ff, subset_size=min(100, len(fr)))
    kid_c = kernel_distance(fr, fc, subset_size=min(100, len(fr)))
    return {
        "weights": card.name,
        "variant": card.arguments["variant"],
        "data": data_name,
        "heldout_cases": list(td.heldout_cases),
        "n_slices": len(held),
        "l1": _mean_std(l1),
        "psnr": _mean_std(ps),
        "ssim": _mean_std(ss),
        "ssim_smoothed": _mean_std(torch.cat(ssims_smooth)),
        "kid_x1000": [1000 * kid[0], 1000 * kid[1]],
        "frechet_random_features": frechet_distance(fr, ff),
        "controllability": _mean_std(torch.cat(ctrl)),
        "controllability_per_feature": {n: _mean_std(per_feature[f]) for f, n in enumerate(names)},
        "controllability_calibrated": _mean_std(torch.cat(ctrl_c)),
        "controllability_calibrated_per_feature": {n: _mean_std(per_feature_c[f]) for f, n in enumerate(names)},
        "kid_x1000_calibrated": [1000 * kid_c[0], 1000 * kid_c[1]],
        "training_seconds": card.training.get("seconds"),
        "iterations": card.training.get("iterations"),
        "parameters": sum(p.numel() for p in g.parameters()),
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Tables I (realism) and II (controllability) of the paper, one row per (data, variant)."""
    out = [
        "| model (run) | data | variant | L1 | PSNR (dB) | SSIM | SSIM (both smoothed, σ=1 px) | KID x1000 (random conv features) | controllability (%) | mean err | entropy err | controllability with calibration (%) | KID x1000 with calibration | train time (s) | iterations | params |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pf = r["controllability_per_feature"]
        out.append(
            f"| {r.get('run', r['weights'])} | {r['data']} | {r['variant'].upper()} | {r['l1'][0]:.3f} ± {r['l1'][1]:.3f} | {r['psnr'][0]:.2f} ± {r['psnr'][1]:.2f} "
            f"| {r['ssim'][0]:.3f} ± {r['ssim'][1]:.3f} | {r['ssim_smoothed'][0]:.3f} ± {r['ssim_smoothed'][1]:.3f} | {r['kid_x1000'][0]:.1f} ± {r['kid_x1000'][1]:.1f} "
            f"| {r['controllability'][0]:.2f} ± {r['controllability'][1]:.2f} "
            f"| {pf.get('mean', [float('nan')])[0]:.2f} | {pf.get('entropy', [float('nan')])[0]:.2f} "
            f"| {r['controllability_calibrated'][0]:.2f} ± {r['controllability_calibrated'][1]:.2f} "
            f"| {r['kid_x1000_calibrated'][0]:.1f} "
            f"| {r['training_seconds']} | {r['iterations']} | {r['parameters']:,} |"
        )
    return "\n".join(out) + "\n"
