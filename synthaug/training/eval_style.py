"""Evaluate style-swap generators on held-out slices (JSON results + a Markdown table).

Labels are TotalSegmentator model predictions mapped to super-classes, not manual ground truth.

**Paired models** (CT A): the content slices are the held-out slab of CT A (never trained on); each
content slice ``i`` gets the style of held-out slice ``(i + n/2) mod n`` (another level of the slab),
or, with ``style_source="ct_b"``, of a CT B slice (another scanner, resampled to 3 mm; never trained on).

- *label fidelity*: Dice of a frozen segmenter (trained on real CT A training slices only) on the
  swapped outputs against the content labels, per class, and its Dice on the real content slices as a
  reference; also on the reconstructions (own style).
- *style match*: per region (classes present in both slices), the distance of the output's intensity
  statistics (mean + standard deviation, [-1, 1] units) to the real **style** slice versus to the real
  **content** slice, and the same for the region Gram matrices of the fixed random texture features
  (:class:`synthaug.losses.style.TextureFeatures`); ``closer_to_style`` is the fraction of (slice,
  class) pairs whose distance to the style is the smaller one. ``content_style_gap`` says how
  different the two real slices were to begin with.
- *realism*: KID x 1000 between real held-out slices and outputs on fixed random conv features
  (:mod:`synthaug.metrics.distribution`, the distribution distance of the ConText evaluation; not
  Inception features, not comparable with published numbers).
- *inter-slice consistency*: the held-out slab rendered as the transform renders a volume (one style
  pooled over all slices, one noise draw): through-plane / in-plane neighbour difference inside the
  body, generated vs real (:func:`synthaug.metrics.consistency.interslice_ratio`).
- *diversity*: mean pairwise absolute difference between ``noise_draws`` outputs of the same content
  and style (different noise, truncated normal of bound ``truncation``), over the whole slice and
  inside the body.

Generators with a body class get it from the Med-USIS body mask of the content slice's own scan (the
held-out CT, or the real MR slice of MR C's lower half), as in training and in the transform.

**Unpaired models** (CT labels -> MR): content label maps of MR C's lower half (unseen; their real MR
slices are the reference) and of CT A's held-out slab; style images are the MR C upper-half slices
the model trained on (unlabelled). The Med-USIS noise ablation is reported as rows: noise from a
truncated normal of bound ``truncation``, standard normal noise, the noise input set to zero, and any
``ablation_weights`` (e.g. the same recipe trained with ``z_dim=0``). Realism (KID vs real MR lower
half), label fidelity with an MR segmenter (trained on MR C's upper half; evaluation only, the
generator never sees MR labels), per-region intensity error against the real MR slice of the same
labels, and diversity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from synthaug._validate import check_choice, check_positive
from synthaug.errors import LeakageError, ValidationError, WeightsError
from synthaug.features import region_features
from synthaug.losses.style import TextureFeatures, gram_distance, region_gram
from synthaug.metrics.distribution import RandomFeatureExtractor, kernel_distance
from synthaug.networks.style import StyleSwapGenerator
from synthaug.training.slices import SliceSet
from synthaug.training.train_segmenter import dice_per_class, load_segmenter, segment
from synthaug.training.train_style import StyleConfig, StyleData, body_masks, load_style_data
from synthaug.weights.registry import load

__all__ = ["MAIN_ORGANS", "evaluate_style", "markdown_table"]

MAIN_ORGANS: tuple[str, ...] = ("liver", "spleen", "kidneys", "bone", "muscle")
"""Super-classes the "main organs" Dice averages over (large, well-defined regions)."""

_LABEL_NOTE = "Labels are TotalSegmentator model predictions (super-classes), not manual ground truth."


def _generator(weights: str | Path) -> tuple[StyleSwapGenerator, Any]:
    net, card = load(weights, family="style")
    if not isinstance(net, StyleSwapGenerator):
        raise WeightsError(f"weights {str(weights)!r} build a {type(net).__name__}, not a StyleSwapGenerator.")
    return net, card


def _check_leakage(card: Any, heldout: tuple[str, ...]) -> None:
    from synthaug.data.scenarios import check_no_overlap

    try:
        check_no_overlap(card.training_cases, heldout, what="generator training")
    except LeakageError as exc:
        raise LeakageError(f"cannot evaluate {card.name!r} on its own training data: {exc}") from exc


def _render(g: StyleSwapGenerator, labels, style_images, style_labels, *, seed: int, truncation: float | None,
            batch_size: int, zero_noise: bool = False) -> torch.Tensor:
    outs = []
    for i in range(0, labels.shape[0], batch_size):
        lab = labels[i : i + batch_size]
        codes = g.encode(style_images[i : i + batch_size],
                         None if style_labels is None else style_labels[i : i + batch_size])
        kw: dict[str, Any] = {}
        if g.z_dim and zero_noise:
            kw["noise"] = torch.zeros(lab.shape[0], g.z_dim)
        elif g.z_dim:
            kw["generator"] = torch.Generator().manual_seed(seed + i)
            kw["truncation"] = truncation
        outs.append(g.render(lab, codes, **kw))
    return torch.cat(outs)


def _dice_report(pred: torch.Tensor, labels: torch.Tensor, names: tuple[str, ...]) -> dict[str, Any]:
    dice, present = dice_per_class(pred, labels, len(names))
    per = {names[k]: round(float(dice[k]), 4) for k in range(1, len(names)) if bool(present[k])}
    main = [per[n] for n in MAIN_ORGANS if n in per]
    return {"per_class": per, "mean": round(sum(per.values()) / max(len(per), 1), 4),
            "main_organs": round(sum(main) / max(len(main), 1), 4) if main else None}


def _kid(real: torch.Tensor, fake: torch.Tensor) -> list[float]:
    ext = RandomFeatureExtractor()
    fr, ff = ext(real), ext(fake)
    m = min(100, fr.shape[0], ff.shape[0])
    mean, std = kernel_distance(fr, ff, subset_size=m)
    return [round(1000 * mean, 3), round(1000 * std, 3)]


def _diversity(g, labels, style_images, style_labels, *, draws: int, truncation, batch_size, seed) -> dict[str, float]:
    if not g.z_dim or draws < 2:
        return {"all": 0.0, "body": 0.0}
    outs = torch.stack([_render(g, labels, style_images, style_labels, seed=seed + 1000 * k, truncation=truncation,
                                batch_size=batch_size) for k in range(draws)])  # (draws, N, 1, H, W)
    diffs = (outs.unsqueeze(0) - outs.unsqueeze(1)).abs()  # (draws, draws, N, 1, H, W)
    iu = torch.triu_indices(draws, draws, 1)
    pair = diffs[iu[0], iu[1]]  # (pairs, N, 1, H, W)
    body = body_masks(outs[0]).bool().expand_as(pair)
    return {"all": round(float(pair.mean()), 5), "body": round(float(pair[body].mean()), 5) if bool(body.any()) else 0.0}


def _region_stats(images, labels, n_labels):
    rf = region_features(images, labels, n_labels=n_labels, names=("mean", "std"))
    counts = torch.nn.functional.one_hot(labels.long(), n_labels).flatten(1, -2).sum(1)
    return rf.values, counts  # (N, 2, K), (N, K)


def _style_match(out, content_img, content_lab, style_img, style_lab, names, *, min_pixels: int) -> dict[str, Any]:
    k = len(names)
    vo, co = _region_stats(out, content_lab, k)
    vc, _ = _region_stats(content_img, content_lab, k)
    vs, cs = _region_stats(style_img, style_lab, k)
    valid = (co >= min_pixels) & (cs >= min_pixels)
    valid[:, 0] = False  # background is not an organ
    d_style = (vo - vs).abs().sum(1)
    d_content = (vo - vc).abs().sum(1)
    gap = (vc - vs).abs().sum(1)
    tf = TextureFeatures()
    go, gc, gs = (region_gram(tf(x), lab, n_labels=k) for x, lab in ((out, content_lab), (content_img, content_lab),
                                                                       (style_img, style_lab)))
    g_style, _ = gram_distance(go, gs)
    g_content, _ = gram_distance(go, gc)
    per_class: dict[str, Any] = {}
    for c in range(1, k):  # one row per class of the report (9 classes), not a hot path
        v = valid[:, c]
        if not bool(v.any()):
            continue
        per_class[names[c]] = {
            "pairs": int(v.sum()),
            "stats_to_style": round(float(d_style[v, c].mean()), 4),
            "stats_to_content": round(float(d_content[v, c].mean()), 4),
            "content_style_gap": round(float(gap[v, c].mean()), 4),
            "stats_closer_to_style": round(float((d_style[v, c] < d_content[v, c]).float().mean()), 3),
            "gram_to_style": float(g_style[v, c].mean()),
            "gram_to_content": float(g_content[v, c].mean()),
            "gram_closer_to_style": round(float((g_style[v, c] < g_content[v, c]).float().mean()), 3),
        }
    n_closer = sum(1 for r in per_class.values() if r["stats_to_style"] < r["stats_to_content"])
    return {
        "per_class": per_class,
        "stats_closer_to_style": round(float((d_style < d_content)[valid].float().mean()), 3) if bool(valid.any()) else None,
        "gram_closer_to_style": round(float((g_style < g_content)[valid].float().mean()), 3) if bool(valid.any()) else None,
        "classes_closer_to_style": f"{n_closer}/{len(per_class)}",
    }


def _mask_threshold(card: Any) -> float:
    body = card.features.body_mask
    return float(body.threshold) if body is not None else 0.05


def _with_body(g: StyleSwapGenerator, images: torch.Tensor, labels: torch.Tensor, threshold: float) -> torch.Tensor:
    """Labels with the generator's body class painted from the images' own Med-USIS body masks."""
    if not g.body_class:
        return labels
    return g.add_body(labels, body_masks(images, threshold=threshold))


def _style_slices(source: str, size: int) -> SliceSet:
    from synthaug.data.scenarios import map_labels
    from synthaug.data.subjects import load_subject
    from synthaug.intensity import IntensityConvention
    from synthaug.training.datasets import case_id
    from synthaug.training.slices import Volume, cut_slices

    sub = load_subject("ct_b")
    label = map_labels(sub.label, sub, "superclass")
    vol = Volume(case_id("ct_b", 0, sub.image.shape[2]), sub.image, label, sub.spacing)
    return cut_slices([vol], intensity=IntensityConvention.ct_window(-200.0, 300.0), spacing=3.0, size=(size, size))


def _resolve_segmenter(segmenter: str | Path | None, card: Any) -> tuple[nn.Module | None, str | None]:
    if segmenter is None:
        info = card.training.get("segmenter", {}) if isinstance(card.training, dict) else {}
        path = info.get("weights") if isinstance(info, dict) else None
        if not path or not Path(str(path)).is_file():
            return None, None
        segmenter = path
    net, scard = load_segmenter(segmenter)
    if tuple(scard.labels) != tuple(card.labels):
        raise ValidationError(f"segmenter {scard.name!r} labels {list(scard.labels)} differ from the generator's "
                              f"{list(card.labels)}.")
    return net, scard.name


@torch.no_grad()
def evaluate_style(
    weights: str | Path,
    *,
    segmenter: str | Path | None = None,
    ablation_weights: list[str | Path] | None = None,
    style_source: str = "heldout",
    seed: int = 0,
    noise_draws: int = 4,
    truncation: float = 1.0,
    min_pixels: int = 20,
    batch_size: int = 16,
    data: StyleData | None = None,
) -> dict[str, Any]:
    """Score one style generator (see the module docstring); ``data`` overrides the card's data (tests)."""
    check_choice("style_source", style_source, ("heldout", "ct_b"))
    check_positive("truncation", truncation)
    g, card = _generator(weights)
    cfg = StyleConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in card.training["config"].items()})
    data = data if data is not None else load_style_data(cfg)
    _check_leakage(card, tuple(data.heldout_cases))
    seg, seg_name = _resolve_segmenter(segmenter, card)
    names = tuple(card.labels)
    base = {"weights": card.name, "mode": card.training.get("mode"), "heldout_cases": list(data.heldout_cases),
            "training_seconds": card.training.get("seconds"), "iterations": card.training.get("iterations"),
            "parameters": sum(p.numel() for p in g.parameters()), "segmenter": seg_name, "truncation": truncation,
            "label_note": _LABEL_NOTE}
    if card.training.get("mode") == "unpaired":
        return {**base, **_evaluate_unpaired(g, data, seg, names, ablation_weights or [], seed=seed,
                                             draws=noise_draws, truncation=truncation, batch_size=batch_size,
                                             threshold=_mask_threshold(card))}
    held = data.heldout
    n = len(held)
    if n < 2:
        raise ValidationError("paired evaluation needs at least 2 held-out slices.")
    ci = torch.arange(n)
    if style_source == "heldout":
        style = held
        si = (ci + n // 2) % n
    else:
        style = _style_slices(style_source, held.images.shape[-1])
        si = ci % len(style)
    x, lab = held.images, held.labels
    sx, slab = style.images[si], style.labels[si]
    thr = _mask_threshold(card)
    lab_g, slab_g = _with_body(g, x, lab, thr), _with_body(g, sx, slab, thr)
    swap = _render(g, lab_g, sx, slab_g, seed=seed, truncation=truncation, batch_size=batch_size)
    rec = _render(g, lab_g, x, lab_g, seed=seed, truncation=truncation, batch_size=batch_size)
    out: dict[str, Any] = {**base, "style_source": style_source, "n_pairs": n}
    if seg is not None:
        out["label_fidelity"] = {
            "swap": _dice_report(segment(seg, swap), lab, names),
            "reconstruction": _dice_report(segment(seg, rec), lab, names),
            "real_reference": _dice_report(segment(seg, x), lab, names),
        }
    out["style_match"] = _style_match(swap, x, lab, sx, slab, names, min_pixels=min_pixels)
    out["kid_x1000"] = {"swap": _kid(x, swap), "reconstruction": _kid(x, rec)}
    out["l1_reconstruction"] = round(float((rec - x).abs().mean()), 4)
    out["interslice_ratio"] = _interslice(g, x, lab_g, truncation=truncation, seed=seed, batch_size=batch_size,
                                          threshold=thr)
    out["diversity"] = _diversity(g, lab_g, sx, slab_g, draws=noise_draws, truncation=truncation,
                                  batch_size=batch_size, seed=seed + 7)
    return out


def _interslice(g: StyleSwapGenerator, x: torch.Tensor, lab_g: torch.Tensor, *, truncation, seed: int,
                batch_size: int, threshold: float) -> dict[str, float]:
    """Through-plane / in-plane neighbour differences inside the body of the held-out slab rendered as the
    transform renders a volume (one style pooled over all its slices, one noise draw), vs the real slab."""
    from synthaug.metrics.consistency import interslice_ratio
    from synthaug.networks.spade import truncated_normal

    sums = None
    for i in range(0, x.shape[0], batch_size):
        part = tuple(p.sum(0, keepdim=True) for p in g.region_sums(x[i : i + batch_size], lab_g[i : i + batch_size]))
        sums = part if sums is None else tuple(a + b for a, b in zip(sums, part))
    codes = g.codes_from_sums(*sums).codes
    kw: dict[str, Any] = {}
    if g.z_dim:
        gen = torch.Generator().manual_seed(seed)
        z = truncated_normal((1, g.z_dim), truncation, generator=gen) if truncation else torch.randn(1, g.z_dim, generator=gen)
    outs = []
    for i in range(0, x.shape[0], batch_size):
        lab = lab_g[i : i + batch_size]
        if g.z_dim:
            kw["noise"] = z.expand(lab.shape[0], -1)
        outs.append(g.render(lab, codes.expand(lab.shape[0], -1, -1), **kw))
    fake = torch.cat(outs)[:, 0].permute(1, 2, 0)  # (H, W, Z)
    real = x[:, 0].permute(1, 2, 0)
    body = body_masks(x, threshold=threshold)[:, 0].permute(1, 2, 0).bool()
    return {"generated": round(interslice_ratio(fake, axis=2, mask=body), 4),
            "real": round(interslice_ratio(real, axis=2, mask=body), 4)}


def _evaluate_unpaired(g, data: StyleData, seg, names, ablation, *, seed, draws, truncation, batch_size,
                       threshold) -> dict[str, Any]:
    real = data.heldout  # MR C lower half, with labels (content) and real MR (reference)
    style = data.style.images
    contents = {"mr_c_lower": real}
    if data.heldout_reference is not None:
        contents["ct_a_heldout"] = data.heldout_reference
    models: list[tuple[str, StyleSwapGenerator, dict[str, Any]]] = []
    if g.z_dim:
        models += [(f"noise, truncated normal a={truncation}", g, {"truncation": truncation}),
                   ("noise, standard normal", g, {"truncation": None}),
                   ("noise input set to 0", g, {"zero_noise": True})]
    else:
        models.append(("no noise input (z_dim=0)", g, {"truncation": None}))
    for w in ablation:
        g2, card2 = _generator(w)
        _check_leakage(card2, tuple(data.heldout_cases))
        label = f"{card2.name} (z_dim={g2.z_dim})"
        models.append((label, g2, {"truncation": truncation if g2.z_dim else None}))
    rows = []
    k = len(names)
    for label, net, kw in models:
        row: dict[str, Any] = {"model": label}
        for cname, cset in contents.items():
            lab = cset.labels
            lab_g = _with_body(net, cset.images, lab, threshold)
            si = torch.arange(len(cset)) % style.shape[0]
            fake = _render(net, lab_g, style[si], None, seed=seed, batch_size=batch_size, **{"truncation": None, **kw})
            entry: dict[str, Any] = {"kid_x1000": _kid(real.images, fake)}
            if seg is not None:
                entry["dice"] = _dice_report(segment(seg, fake), lab, names)
            if cname == "mr_c_lower":
                vo, co = _region_stats(fake, lab, k)
                vr, _ = _region_stats(real.images, lab, k)
                ok = co >= 20
                ok[:, 0] = False
                entry["region_stats_error_vs_real_mr"] = round(float((vo - vr).abs().sum(1)[ok].mean()), 4)
            if kw.get("zero_noise") or not net.z_dim:
                entry["diversity"] = {"all": 0.0, "body": 0.0}
            else:
                entry["diversity"] = _diversity(net, lab_g, style[si], None, draws=draws,
                                                truncation=kw.get("truncation"), batch_size=batch_size, seed=seed + 7)
            row[cname] = entry
        rows.append(row)
    out: dict[str, Any] = {"rows": rows, "n_slices": {c: len(s) for c, s in contents.items()}}
    if seg is not None:
        out["real_reference_dice"] = _dice_report(segment(seg, real.images), real.labels, names)
    return out


def markdown_table(results: list[dict[str, Any]]) -> str:
    """One table for paired results and one for the unpaired noise ablation."""
    lines: list[str] = [f"_{_LABEL_NOTE}_", ""]
    paired = [r for r in results if r.get("mode") != "unpaired"]
    if paired:
        lines += [
            "| weights | style source | Dice swap (main / all) | Dice real ref. (main / all) | region stats closer to style | Gram closer to style | classes closer | KID x1000 swap | KID x1000 rec. | diversity (body) | inter-slice ratio gen. / real | train time (s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in paired:
            lf = r.get("label_fidelity")
            d_swap = f"{lf['swap']['main_organs']} / {lf['swap']['mean']}" if lf else "n/a"
            d_ref = f"{lf['real_reference']['main_organs']} / {lf['real_reference']['mean']}" if lf else "n/a"
            sm = r["style_match"]
            lines.append(
                f"| {r['weights']} | {r['style_source']} | {d_swap} | {d_ref} | {sm['stats_closer_to_style']} "
                f"| {sm['gram_closer_to_style']} | {sm['classes_closer_to_style']} | {r['kid_x1000']['swap'][0]:.1f} "
                f"| {r['kid_x1000']['reconstruction'][0]:.1f} | {r['diversity']['body']:.4f} "
                f"| {r['interslice_ratio']['generated']} / {r['interslice_ratio']['real']} | {r['training_seconds']} |"
            )
        lines.append("")
    for r in (r for r in results if r.get("mode") == "unpaired"):
        lines += [
            f"Unpaired {r['weights']} (noise ablation; KID vs real MR C lower half):",
            "",
            "| model | KID x1000 (MR C lower labels) | Dice (main / all) | region stats error vs real MR | diversity (body) | KID x1000 (CT A held-out labels) | Dice CT labels (main / all) |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in r["rows"]:
            a = row["mr_c_lower"]
            b = row.get("ct_a_heldout", {})
            da = f"{a['dice']['main_organs']} / {a['dice']['mean']}" if "dice" in a else "n/a"
            db = f"{b['dice']['main_organs']} / {b['dice']['mean']}" if "dice" in b else "n/a"
            kb = f"{b['kid_x1000'][0]:.1f}" if b else "n/a"
            lines.append(f"| {row['model']} | {a['kid_x1000'][0]:.1f} | {da} | {a['region_stats_error_vs_real_mr']} "
                         f"| {a['diversity']['body']:.4f} | {kb} | {db} |")
        if "real_reference_dice" in r:
            ref = r["real_reference_dice"]
            lines.append(f"\nSegmenter on the real MR C lower half: Dice main {ref['main_organs']}, all {ref['mean']}.")
        lines.append("")
    return "\n".join(lines) + "\n"
