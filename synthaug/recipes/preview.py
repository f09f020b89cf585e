"""See what a recipe does to your data before training: checks and a captioned preview grid.

- :func:`check_recipe` validates a recipe against an nnU-Net raw dataset for the path that will run it
  (``"trainer"``: ``nnUNetTrainerSynthAug``; ``"expand"``: ``synthaug expand``): every transform builds with the
  dataset's label names (a label its generator does not know is refused), weights are found and verified, each
  generator reads the dataset channel's modality and was trained at the dataset's spacing (the median over the
  training cases' headers, as nnU-Net plans it), no generator was trained on one of the dataset's test cases,
  no style bank holds a test case (by id or content), and the recipe uses no key the path ignores
  (expansion draws no schedule, targeting or gate: such a key is an error, not silently dropped).
- :func:`preview_recipe` runs every transform of the recipe (forced on) on a few training cases and writes one
  grid: a row per case (titled with the case id), the label, the real image and one column per transform (titled
  with the transform, its seed and its non-default options), the middle axial slice of each.

CLI: ``synthaug recipe check RECIPE --dataset DIR [--for expand]`` and
``synthaug recipe preview RECIPE --dataset DIR --out grid.png``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synthaug.errors import ValidationError
from synthaug.recipes.batch import build_transform, deform_batch
from synthaug.recipes.leakage import TestSplit
from synthaug.recipes.recipe import Recipe, TransformSpec, derive_seed
from synthaug.recipes.shipped import load_shipped
from synthaug.transforms.guards import DataInfo, check_channel_modality, check_spacing

__all__ = ["RecipeCheck", "check_recipe", "preview_recipe", "PATHS"]

PATHS = ("trainer", "expand")


@dataclass(frozen=True)
class RecipeCheck:
    """What :func:`check_recipe` established (every entry passed; failures raise)."""

    recipe: str
    dataset: str
    path: str
    transforms: tuple[str, ...]
    weights: tuple[str, ...]
    labels: tuple[str, ...]


def _dataset(folder: Path) -> tuple[dict, dict[str, int], int | None]:
    from synthaug.data.nnunet_export import check_nnunet_raw

    check_nnunet_raw(folder)
    meta = json.loads((folder / "dataset.json").read_text())
    labels = {str(k): int(v) for k, v in meta["labels"].items() if isinstance(v, int) and k != "ignore"}
    ignore = meta["labels"].get("ignore")
    return meta, labels, int(ignore) if isinstance(ignore, int) else None


def _spacing(folder: Path, channel: int) -> tuple[float, ...] | None:
    """The median voxel size (mm) of the training images (what nnU-Net plans at); None for non-NIfTI data."""
    from synthaug.data.nnunet_export import training_spacings

    zooms = list(training_spacings(folder, channel=channel).values())
    return tuple(float(v) for v in np.median(np.asarray(zooms), axis=0)) if zooms else None


def check_recipe(recipe: str | Path | Recipe, dataset: str | Path, *, path: str = "trainer") -> RecipeCheck:
    """Validate ``recipe`` against ``dataset`` for ``path`` (see the module docstring); raise on the first problem."""
    from synthaug.recipes.expand import check_card_leakage, expansion_support

    if path not in PATHS:
        raise ValidationError(f"path must be one of {list(PATHS)}, got {path!r}.")
    rec = recipe if isinstance(recipe, Recipe) else load_shipped(str(recipe))
    meta, labels, ignore = _dataset(Path(dataset))
    if path == "expand":
        expansion_support(rec)
    if rec.targeting is not None:
        rec.targeting.resolve(labels)
    names, weights = [], []
    split = TestSplit.from_raw_dataset(Path(dataset))
    spacing = _spacing(Path(dataset), rec.channel)
    for spec in rec.transforms:
        t = build_transform(spec, dataset_labels=labels, ignore_label=ignore, test_split=split)
        names.append(spec.name)
        if t.card is not None:
            check_card_leakage(t.card, meta)
            if t.uses_data_info:
                check_spacing(t.card, spacing, slice_axis=t.slice_axis, tolerance=t.spacing_tolerance, dims=3)
            channel = str(meta.get("channel_names", {}).get(str(rec.channel), ""))
            if channel:
                check_channel_modality(t.card, channel)
            weights.append(t.card.name)
    if rec.gate is not None:
        from synthaug.recipes.gate import load_checker

        load_checker(rec.gate.checker)
    return RecipeCheck(recipe=rec.source or str(recipe), dataset=str(dataset), path=path, transforms=tuple(names),
                       weights=tuple(weights), labels=tuple(labels))


_QUIET = ("weights", "label_names", "label_map", "labels_are_classes", "deform")


def _caption(spec: TransformSpec, seed: int, record: dict) -> str:
    """Transform, weights, seed, deformation and the options that differ from their defaults (not the vocabulary)."""
    opts = ", ".join(f"{k}={v}" for k, v in record.items() if k not in _QUIET)
    w = record.get("weights")
    d = spec.deform
    deform = f"deform {d.max_displacement:g} vox" if d.enabled else "no deform"
    return f"{spec.name}{f' ({w})' if w else ''}; seed {seed % 10000}; {deform}" + (f"; {opts}" if opts else "")


@torch.no_grad()
def preview_recipe(recipe: str | Path | Recipe, dataset: str | Path, out: str | Path, *, cases: int = 3,
                   seed: int = 0, device: str | torch.device = "cpu", cases_ids: Sequence[str] | None = None) -> Path:
    """Write a captioned grid of what ``recipe`` makes of ``cases`` training cases of ``dataset`` (module docstring)."""
    import nibabel as nib

    from synthaug.visualize import write_grid

    rec = recipe if isinstance(recipe, Recipe) else load_shipped(str(recipe))
    if not rec.transforms:
        raise ValidationError("the recipe has no transforms (synthesis off): there is nothing to preview.")
    folder = Path(dataset)
    meta, labels, ignore = _dataset(folder)
    ending = str(meta["file_ending"])
    ids = sorted(p.name[: -len(ending)] for p in (folder / "labelsTr").glob(f"*{ending}"))
    chosen = list(cases_ids) if cases_ids is not None else ids[: max(1, int(cases))]
    unknown = [c for c in chosen if c not in ids]
    if unknown:
        raise ValidationError(f"case(s) {unknown} are not training cases of {folder} (it has {ids[:8]}...).")
    split = TestSplit.from_raw_dataset(folder)
    built = [build_transform(s, dataset_labels=labels, ignore_label=ignore, test_split=split) for s in rec.transforms]
    dev = torch.device(device)
    spacing = _spacing(folder, rec.channel)
    info = DataInfo(spacing=spacing) if spacing is not None else None
    label_col, image_col, synth_cols = [], [], [[] for _ in built]
    titles = [["label", "real image"] + [""] * len(built) for _ in chosen]
    ranges = []
    for row, case in enumerate(chosen):
        img = np.asarray(nib.load(str(folder / "imagesTr" / f"{case}_{rec.channel:04d}{ending}")).dataobj, np.float32)
        lab = np.asarray(nib.load(str(folder / "labelsTr" / f"{case}{ending}")).dataobj).astype(np.int64)
        x = torch.from_numpy(img)[None, None].to(dev)
        y = torch.from_numpy(lab)[None, None].to(dev)
        if ignore is not None:
            y = torch.where(y == ignore, torch.zeros_like(y), y)
        mid = x.shape[-1] // 2 if x.ndim == 5 else None

        def cut(t: torch.Tensor, mid: int | None = mid) -> torch.Tensor:
            return t[..., mid] if mid is not None else t

        lo, hi = float(np.percentile(img, 0.5)), float(np.percentile(img, 99.5))
        ranges.append((lo, hi))
        label_col.append(cut(y)[0, 0])
        image_col.append(cut(x)[0])
        for j, (spec, t) in enumerate(zip(rec.transforms, built)):
            s = derive_seed(seed, "preview", case, j)
            xi, yi = (deform_batch(x, y, spec=spec.deform, seeds=[s]) if spec.deform.enabled else (x, y))
            kw = {"info": info} if t.uses_data_info and info is not None else {}
            out_img, out_lab = t.apply_batch(xi.float(), yi, seeds=[s], **kw)
            synth_cols[j].append(cut(out_img)[0])
            titles[row][2 + j] = _caption(spec, s, t.record())
        titles[row][0] = f"{case}: label"
    lo = min(r[0] for r in ranges)
    hi = max(r[1] for r in ranges)
    panels = [_stack(label_col), _stack(image_col)] + [_stack(c) for c in synth_cols]
    return write_grid(panels, Path(out), max_rows=len(chosen), value_range=(lo, hi), titles=titles)


def _stack(items: list[torch.Tensor]) -> torch.Tensor:
    """Stack 2D slices of different sizes (cases differ), padded with their own minimum to the largest."""
    h = max(t.shape[-2] for t in items)
    w = max(t.shape[-1] for t in items)
    out = []
    for t in items:
        pad = (0, w - t.shape[-1], 0, h - t.shape[-2])
        fill = float(t.min()) if t.numel() else 0.0
        out.append(torch.nn.functional.pad(t.float(), pad, value=fill).to(t.dtype) if any(pad) else t)
    return torch.stack([t.cpu() for t in out])
