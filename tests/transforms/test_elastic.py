import pytest
import torch

from synthaug.errors import ShapeError, ValidationError
from synthaug.transforms.elastic import (
    identity_grid,
    sample_displacement,
    sample_displacements,
    warp,
    warp_labels,
)


@pytest.mark.parametrize("shape", [(24, 20), (12, 10, 8)])
def test_zero_displacement_is_identity(shape):
    img = torch.randn(2, 1, *shape)
    lab = torch.randint(0, 4, (2, *shape))
    disp = torch.zeros(2, len(shape), *shape)
    torch.testing.assert_close(warp(img, disp), img, atol=1e-5, rtol=0)
    assert torch.equal(warp_labels(lab, disp), lab)


def test_integer_shift_moves_content():
    img = torch.zeros(1, 1, 16, 16)
    img[0, 0, 5, 7] = 1
    disp = torch.zeros(1, 2, 16, 16)
    disp[:, 0] = 2.0  # sample from row + 2: content moves up by 2 rows
    out = warp(img, disp)
    assert out[0, 0, 3, 7] == pytest.approx(1.0)


def test_same_seed_same_field_and_labels_stay_labels():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    d1 = sample_displacement((32, 32), batch=2, generator=g1)
    d2 = sample_displacement((32, 32), batch=2, generator=g2)
    assert torch.equal(d1, d2)
    assert d1.abs().max() <= 6.0 + 1e-4 and d1.abs().max() > 0.5
    lab = torch.randint(0, 5, (2, 32, 32))
    out = warp_labels(lab, d1)
    assert out.dtype == lab.dtype
    assert set(out.unique().tolist()) <= set(lab.unique().tolist())


def test_field_is_smooth():
    d = sample_displacement((64, 64), batch=1, control_points=4, max_displacement=5.0, generator=torch.Generator().manual_seed(0))
    step = (d[..., 1:] - d[..., :-1]).abs().max()
    assert step < 1.0  # neighbouring voxels move almost together


def test_identity_grid():
    g = identity_grid((2, 3))
    assert g.shape == (2, 2, 3)
    assert g[1, 1, 2] == 2 and g[0, 1, 2] == 1


def test_bad_arguments():
    with pytest.raises(ShapeError):
        sample_displacement((8,), generator=torch.Generator())
    with pytest.raises(ValidationError):
        sample_displacement((8, 8), control_points=1, generator=torch.Generator())
    with pytest.raises(ShapeError):
        warp(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 9))
    with pytest.raises(ValidationError, match="at least one generator"):
        sample_displacements((8, 8), [])
    with pytest.raises(ShapeError):
        sample_displacements((8,), [torch.Generator()])


@pytest.mark.parametrize("shape", [(20, 18), (10, 9, 7)])
def test_per_sample_generators_batched_equal_one_at_a_time(shape):
    """The batched sampler gives each sample exactly the field its own generator gives alone (replay by seed)."""
    seeds = [5, 11, 5]
    batched = sample_displacements(shape, [torch.Generator().manual_seed(s) for s in seeds],
                                   control_points=4, max_displacement=3.0)
    alone = [sample_displacement(shape, batch=1, control_points=4, max_displacement=3.0,
                                 generator=torch.Generator().manual_seed(s)) for s in seeds]
    assert batched.shape == (3, len(shape), *shape)
    assert torch.equal(batched, torch.cat(alone))
    assert torch.equal(batched[0], batched[2]) and not torch.equal(batched[0], batched[1])
    assert batched.abs().max() <= 3.0


def test_batched_fields_land_on_the_requested_device_and_dtype():
    d = sample_displacements((8, 8), [torch.Generator()], device="cpu", dtype=torch.float64)
    assert d.device.type == "cpu" and d.dtype == torch.float64
