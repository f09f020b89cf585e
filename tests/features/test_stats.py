"""RegionStats: the shared per-region statistics, their reuse under another image and over a sub-batch."""

import pytest
import torch

from synthaug.errors import ShapeError
from synthaug.features.region import features_of, region_features
from synthaug.features.stats import RegionStats


def test_with_image_shares_the_region_index():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 3, (2, 8, 8), generator=g)
    a, b = torch.rand(2, 1, 8, 8, generator=g), torch.rand(2, 1, 8, 8, generator=g)
    sa = RegionStats(a, labels, n_labels=3, bins=8, value_range=(0.0, 1.0), soft=False, bandwidth=None)
    _ = sa.count
    sb = sa.with_image(b)
    assert sb.index is sa.index and sb.__dict__["count"] is not None
    names = ("mean", "std", "entropy")
    torch.testing.assert_close(features_of(sb, names).values,
                               region_features(b, labels, n_labels=3, names=names, bins=8, value_range=(0.0, 1.0)).values)
    with pytest.raises(ShapeError):
        sa.with_image(torch.rand(1, 1, 8, 8))


def test_rows_are_the_statistics_of_a_sub_batch():
    g = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 4, (5, 6, 7), generator=g)
    image = torch.rand(5, 1, 6, 7, generator=g)
    st = RegionStats(image, labels, n_labels=4, bins=8, value_range=(0.0, 1.0), soft=False, bandwidth=None)
    _ = st.count
    sub = st.rows(1, 4)
    ref = RegionStats(image[1:4], labels[1:4], n_labels=4, bins=8, value_range=(0.0, 1.0), soft=False, bandwidth=None)
    assert torch.equal(sub.index, ref.index) and torch.equal(sub.count, ref.count)
    torch.testing.assert_close(features_of(sub, ("mean", "entropy")).values, features_of(ref, ("mean", "entropy")).values)
