import pytest
import torch
import torch.nn.functional as F

from synthaug.errors import ShapeError, ValidationError
from synthaug.networks.context import ContextGenerator


@pytest.mark.parametrize("variant", ["p2p", "p2pf", "oasis"])
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_variants_run_in_2d_and_3d(variant, spatial_dims):
    torch.manual_seed(0)
    g = ContextGenerator(3, 2, variant=variant, spatial_dims=spatial_dims, widths=(4, 8), fusion_widths=(4,),
                         z_dim=2, spade_hidden=4)
    shape = (16,) * spatial_dims
    labels = torch.randint(0, 3, (2, *shape))
    out = g(labels, torch.rand(2, 2, 3), generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, *shape) and torch.isfinite(out).all()
    out.mean().backward()
    assert all(p.grad is not None for p in g.parameters() if p.requires_grad)


def test_region_table_shortcut_equals_full_fusion():
    torch.manual_seed(0)
    g = ContextGenerator(5, 3, variant="p2pf", widths=(4, 8), fusion_widths=(6, 6), fusion_kernel=1)
    labels = torch.randint(0, 5, (2, 16, 16))
    feats = torch.rand(2, 3, 5)
    fast = g.condition(labels, feats)
    onehot = F.one_hot(labels, 5).movedim(-1, 1).float()
    maps = onehot.unsqueeze(1) * feats.reshape(2, 3, 5, 1, 1)
    slow = torch.cat([onehot, g.fusion(maps)], dim=1)
    torch.testing.assert_close(fast, slow)
    assert g.fusion.attention_weights.shape == (3,)


def test_features_change_the_output():
    torch.manual_seed(0)
    g = ContextGenerator(3, 2, variant="p2p", widths=(4, 8))
    labels = torch.randint(0, 3, (1, 16, 16))
    a = g(labels, torch.zeros(1, 2, 3))
    b = g(labels, torch.ones(1, 2, 3))
    assert not torch.allclose(a, b)


def test_bad_arguments():
    with pytest.raises(ValidationError, match="variant"):
        ContextGenerator(3, 2, variant="pix2pix")
    with pytest.raises(ValidationError, match="n_labels"):
        ContextGenerator(1, 2)
    g = ContextGenerator(3, 2, widths=(4, 8))
    with pytest.raises(ShapeError, match="features"):
        g(torch.zeros(1, 16, 16, dtype=torch.long), torch.zeros(1, 3, 3))
    with pytest.raises(ShapeError, match="labels"):
        g(torch.zeros(16, 16, dtype=torch.long), torch.zeros(1, 2, 3))


def test_texture_head_starts_quiet_and_uses_the_noise():
    torch.manual_seed(0)
    g = ContextGenerator(3, 2, variant="p2pf", widths=(4, 8), fusion_widths=(4,), noise_channels=1)
    labels = torch.randint(0, 3, (1, 16, 16))
    feats = torch.rand(1, 2, 3)
    a = g(labels, feats, pixel_noise=torch.randn(1, 1, 16, 16))
    b = g(labels, feats, pixel_noise=torch.randn(1, 1, 16, 16))
    assert 0 < (a - b).abs().max() < 0.2  # noise passes, softly at initialisation
    with torch.no_grad():
        g.noise_amplitude.bias.fill_(2.0)
    c = g(labels, feats, pixel_noise=torch.randn(1, 1, 16, 16))
    assert (c - a).abs().mean() > 5 * (a - b).abs().mean()
    with pytest.raises(ShapeError, match="pixel_noise"):
        g(labels, feats, pixel_noise=torch.randn(1, 2, 16, 16))
