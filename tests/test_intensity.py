import pytest
import torch

from synthaug.errors import ValidationError
from synthaug.intensity import IntensityConvention


def test_ct_window_round_trip_inside_window():
    conv = IntensityConvention.ct_window(-200, 300)
    x = torch.linspace(-200, 300, 11)
    y = conv.normalise(x)
    assert y.min() == -1 and y.max() == 1
    torch.testing.assert_close(conv.denormalise(y), x)


def test_ct_window_clips_outside():
    conv = IntensityConvention.ct_window(-100, 100)
    assert conv.normalise(torch.tensor([-1000.0, 1000.0])).tolist() == [-1.0, 1.0]


def test_percentile_batch_fit_is_per_sample():
    conv = IntensityConvention.percentile(1, 99)
    x = torch.stack([torch.linspace(0, 1, 1000), torch.linspace(0, 100, 1000)])[:, None]
    low, high = conv.fit_batch(x)
    assert high[1] > 50 * high[0]
    y = conv.normalise(x, (low, high))
    assert y.min() >= -1 and y.max() <= 1
    # Inside the percentile range the inverse is exact, per sample.
    z = conv.denormalise(y, (low, high))
    inside = (x >= low[:, None, None]) & (x <= high[:, None, None])
    torch.testing.assert_close(z[inside], x[inside], rtol=1e-5, atol=1e-4)


def test_percentile_needs_fit():
    with pytest.raises(ValidationError, match="needs a fit"):
        IntensityConvention.percentile().normalise(torch.zeros(3))


def test_bad_conventions():
    with pytest.raises(ValidationError, match="kind"):
        IntensityConvention("window", 0, 1)
    with pytest.raises(ValidationError, match="low < high"):
        IntensityConvention.ct_window(100, -100)
    with pytest.raises(ValidationError, match=r"\[0.0, 100.0\]"):
        IntensityConvention.percentile(1, 120)


def test_dict_round_trip():
    conv = IntensityConvention.percentile(0.5, 99.5)
    assert IntensityConvention.from_dict(conv.to_dict()) == conv
