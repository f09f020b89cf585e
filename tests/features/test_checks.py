"""Input checks of the feature code (shared by region features and feature maps)."""

import pytest
import torch

from synthaug.errors import LabelError, ShapeError, ValidationError
from synthaug.features.checks import (
    check_feature_names,
    check_histogram_options,
    check_image_and_labels,
    check_label_map,
)


def test_feature_names_are_registered_distinct_and_not_a_string():
    assert check_feature_names(["mean", "entropy"]) == ("mean", "entropy")
    with pytest.raises(ValidationError, match=r"use \('mean',\)"):
        check_feature_names("mean")
    with pytest.raises(ValidationError, match="at least one"):
        check_feature_names([])
    with pytest.raises(ValidationError, match="repeat"):
        check_feature_names(["mean", "mean"])
    with pytest.raises(ValidationError, match="entropy"):  # unknown name: the closest registered one is suggested
        check_feature_names(["entropie"])


def test_histogram_options():
    assert check_histogram_options(bins=8, value_range=(-1, 1)) == (-1.0, 1.0)
    with pytest.raises(ValidationError, match="bins"):
        check_histogram_options(bins=1, value_range=(-1, 1))
    with pytest.raises(ValidationError, match="low < high"):
        check_histogram_options(bins=8, value_range=(1, -1))
    with pytest.raises(ValidationError, match="soft"):
        check_histogram_options(bins=8, value_range=(-1, 1), soft=False, bandwidth=0.1)


def test_label_map_shapes_and_range():
    lab = torch.zeros(2, 1, 4, 4, dtype=torch.int16)
    assert check_label_map(lab, n_labels=3).shape == (2, 4, 4)
    assert check_label_map(torch.zeros(2, 4, 4, 4), n_labels=3).dtype == torch.int64
    with pytest.raises(LabelError, match="outside 0..2"):
        check_label_map(lab + 3, n_labels=3)
    with pytest.raises(ShapeError, match=r"\[None\]"):
        check_label_map(torch.zeros(4, 4, dtype=torch.int64), n_labels=3)


def test_image_and_labels_share_batch_spatial_shape_and_device():
    img = torch.zeros(2, 1, 4, 4)
    lab = torch.zeros(2, 4, 4, dtype=torch.int64)
    out_img, out_lab = check_image_and_labels(img, lab, n_labels=2)
    assert out_img is img and out_lab.shape == (2, 4, 4)
    with pytest.raises(ShapeError, match="batch size"):
        check_image_and_labels(img, lab[:1], n_labels=2)
    with pytest.raises(ShapeError, match="nearest-neighbour"):
        check_image_and_labels(img, lab[:, :3], n_labels=2)
