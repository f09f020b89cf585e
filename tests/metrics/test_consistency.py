import torch

from synthaug.metrics.consistency import interslice_ratio, neighbour_differences


def test_stripes_raise_the_ratio():
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(0, 1, 32)
    smooth = (x[:, None, None] + x[None, :, None] + x[None, None, :16] * 0.5).expand(32, 32, 16).clone()
    striped = smooth + (torch.rand(1, 1, 16, generator=g) - 0.5) * 0.5
    assert interslice_ratio(striped) > 3 * interslice_ratio(smooth)


def test_mask_and_known_values():
    v = torch.zeros(4, 4, 3)
    v[:, :, 1] = 1.0
    through, inplane = neighbour_differences(v)
    assert through == 1.0 and inplane == 0.0
    mask = torch.zeros_like(v, dtype=torch.bool)
    mask[:, :, :1] = True
    assert neighbour_differences(v, mask=mask)[0] != neighbour_differences(v, mask=mask)[0]  # NaN: no pairs
