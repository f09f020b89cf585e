"""Histogram matching: quantiles land on the reference's, the map is monotone, masks and batches work."""

import pytest
import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.inference import match_histogram


def _quantiles(x, qs):
    return torch.quantile(x.flatten().double(), torch.tensor(qs, dtype=torch.float64))


def test_output_quantiles_match_the_reference():
    g = torch.Generator().manual_seed(0)
    src = torch.randn(1, 64, 64, generator=g) ** 2  # skewed
    ref = torch.rand(1, 50, 40, generator=g) * 10 - 3  # uniform, a different size
    out = match_histogram(src, ref)
    qs = [0.05, 0.25, 0.5, 0.75, 0.95]
    torch.testing.assert_close(_quantiles(out, qs), _quantiles(ref, qs), atol=0.05, rtol=0)
    assert out.min() >= ref.min() and out.max() <= ref.max()


def test_mapping_is_monotone_and_ties_stay_ties():
    g = torch.Generator().manual_seed(1)
    src = torch.randint(0, 20, (1, 500), generator=g).float()  # many ties
    ref = torch.randn(1, 300, generator=g)
    out = match_histogram(src, ref)
    order = src[0].argsort()
    assert torch.all(out[0][order].diff() >= 0)
    for v in src.unique():
        assert out[src == v].unique().numel() == 1
    assert out[src == 3].max() < out[src == 4].min()


def test_matching_an_image_to_itself_is_the_identity():
    x = torch.randn(2, 7, 9, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(match_histogram(x, x), x)


def test_each_sample_is_matched_to_its_own_reference():
    g = torch.Generator().manual_seed(3)
    src = torch.randn(3, 100, generator=g)
    ref = torch.stack([torch.rand(80, generator=g), torch.rand(80, generator=g) + 5, torch.randn(80, generator=g) * 3])
    batched = match_histogram(src, ref)
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], match_histogram(src[i : i + 1], ref[i : i + 1]))


def test_masks_restrict_both_distributions():
    g = torch.Generator().manual_seed(4)
    src = torch.rand(1, 30, 30, generator=g)
    ref = torch.rand(1, 30, 30, generator=g) + 10
    ref_mask = torch.zeros(1, 30, 30, dtype=torch.bool)
    ref_mask[:, 5:25, 5:25] = True
    ref[~ref_mask] = -1000.0  # background that must not be used
    src_mask = torch.zeros(1, 30, 30, dtype=torch.bool)
    src_mask[:, :15] = True
    out = match_histogram(src, ref, source_mask=src_mask, reference_mask=ref_mask)
    inside = out[src_mask]
    assert inside.min() >= 10 and inside.max() <= 11
    torch.testing.assert_close(_quantiles(inside, [0.1, 0.5, 0.9]), _quantiles(ref[ref_mask], [0.1, 0.5, 0.9]), atol=0.05, rtol=0)
    assert torch.all(out >= 10)  # voxels outside the source mask use the same (clamped) map


def test_bad_inputs_give_clear_errors():
    x = torch.rand(2, 10)
    with pytest.raises(ShapeError, match="batch size"):
        match_histogram(x, torch.rand(3, 10))
    with pytest.raises(ShapeError, match="batched"):
        match_histogram(torch.rand(10), torch.rand(10))
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValidationError, match="NaN"):
        match_histogram(bad, x)
    with pytest.raises(ValidationError, match="empty"):
        match_histogram(x, x, source_mask=torch.zeros(2, 10, dtype=torch.bool))
    with pytest.raises(ShapeError, match="shape of its image"):
        match_histogram(x, x, reference_mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValidationError, match="floating"):
        match_histogram(torch.ones(1, 4, dtype=torch.long), x[:1])
