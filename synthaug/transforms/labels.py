"""Input checks and label-to-class mapping shared by the generator transforms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from synthaug._validate import check_image
from synthaug.errors import LabelError, ShapeError

__all__ = ["check_image_label_batch", "to_generator_classes"]


def check_image_label_batch(images: torch.Tensor, labels: torch.Tensor, *, purpose: str = "synthesise") -> torch.Tensor:
    """Validate ``images`` (B, 1, *spatial) float and ``labels`` (B, 1, *spatial); return labels as int64.

    Refuses NaN images, non-integer labels, shape mismatches and empty label maps (naming the sample).
    """
    check_image(images, "image", spatial_dims=(2, 3), channels=1, batched=True)
    if labels.ndim != images.ndim or labels.shape[1] != 1:
        raise ShapeError(
            f"label must have shape (B, 1, *spatial) matching image {tuple(images.shape)}, got {tuple(labels.shape)}."
        )
    if labels.shape[2:] != images.shape[2:]:
        raise ShapeError(
            f"image {tuple(images.shape)} and label {tuple(labels.shape)} must share their spatial shape; "
            "resample the label onto the image grid (nearest neighbour)."
        )
    if labels.is_floating_point():
        if not bool(torch.isfinite(labels).all()) or not bool((labels == labels.round()).all()):
            raise LabelError("label holds non-integer or NaN values; a label map must hold integer class ids.")
        labels = labels.round()
    labels = labels.long()
    empty = ~(labels != 0).flatten(1).any(1)
    if bool(empty.any()):
        raise LabelError(
            f"label map of sample(s) {empty.nonzero().flatten().tolist()} is empty (only background 0): there "
            f"are no regions to {purpose}. Skip such samples or use prob=0 for them."
        )
    return labels


def to_generator_classes(
    labels: torch.Tensor,
    *,
    generator_name: str,
    class_names: Sequence[str],
    label_map: Mapping[int, int] | None,
    name: str = "label",
) -> torch.Tensor:
    """Map label values to the generator's class indices (identity without ``label_map``), refusing unknowns."""
    n_labels = len(class_names)
    present = torch.unique(labels)
    if label_map is None:
        bad = present[(present < 0) | (present >= n_labels)]
        if bad.numel():
            raise LabelError(
                f"{name} holds value(s) {bad.tolist()} that the generator {generator_name!r} does not know; it "
                f"knows 0..{n_labels - 1} = {list(class_names)}. Pass label_map={{your value: class}} "
                "or map your labels (synthaug.data.vocabulary) first."
            )
        return labels
    keys = torch.tensor(sorted(label_map), device=labels.device)
    unknown = present[~torch.isin(present, keys)]
    if unknown.numel():
        raise LabelError(
            f"{name} holds value(s) {unknown.tolist()} that label_map does not cover (it maps {sorted(label_map)})."
        )
    lo = min(0, int(keys.min()))
    lut = torch.zeros(int(keys.max()) - lo + 1, dtype=torch.long, device=labels.device)
    lut[keys - lo] = torch.tensor([label_map[int(k)] for k in keys.tolist()], device=labels.device)
    return lut[labels - lo]
