import pytest
import torch

from synthaug.data.vocabulary import superclass_vocabulary
from synthaug.intensity import IntensityConvention
from synthaug.networks.context import ContextGenerator
from synthaug.weights import registry
from synthaug.weights.card import FeatureSpec, FeatureStats, ModelCard
from synthaug.weights.store import save_weights


def _save(root, name, variant, intensity, noise_channels=0, n_labels=4):
    torch.manual_seed(0)
    args = {"n_labels": n_labels, "n_features": 2, "variant": variant, "spatial_dims": 2, "widths": [4, 8],
            "fusion_widths": [4], "z_dim": 4, "spade_hidden": 4, "fusion_kernel": 1, "noise_channels": noise_channels}
    net = ContextGenerator(**args)
    card = ModelCard(
        name=name, family="context", architecture="context_generator", arguments=args, spatial_dims=2,
        in_channels=n_labels, out_channels=1, intensity=intensity.to_dict(),
        labels=("background", "a", "b", "c") if n_labels == 4 else superclass_vocabulary().names,
        features=FeatureSpec(names=("mean", "entropy"), bins=16, stats=FeatureStats(
            min=[[0.2, 0.1]] * n_labels, max=[[0.8, 0.6]] * n_labels, mean=[[0.5, 0.3]] * n_labels,
            std=[[0.1, 0.1]] * n_labels, count=[10] * n_labels)),
        training_cases=("ctA_z000-093",),
    )
    stored = save_weights(net, card, root / "files" / f"{name}.safetensors")
    (root / "cards" / f"{name}.json").write_text(stored.to_json())


@pytest.fixture
def tiny_weights(tmp_path, monkeypatch):
    """A registry folder with tiny untrained context generators (CT window and MR percentile)."""
    (tmp_path / "cards").mkdir()
    _save(tmp_path, "tiny_ct", "p2pf", IntensityConvention.ct_window(-200, 300))
    _save(tmp_path, "tiny_mr_oasis", "oasis", IntensityConvention.percentile(1, 99), noise_channels=1)
    _save(tmp_path, "tiny_ct_noise", "p2p", IntensityConvention.ct_window(-200, 300), noise_channels=2)
    _save(tmp_path, "tiny_ct9", "p2pf", IntensityConvention.ct_window(-200, 300), noise_channels=1, n_labels=9)
    monkeypatch.setenv("SYNTHAUG_WEIGHTS_PATH", str(tmp_path))
    registry.clear_cache()
    yield tmp_path
    registry.clear_cache()


def phantom(shape=(20, 18, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    lab = torch.zeros(shape, dtype=torch.long)
    lab[3:15, 3:14] = 1
    lab[5:10, 5:9] = 2
    lab[11:14, 9:13] = 3
    img = torch.tensor([-150.0, 50.0, 120.0, 250.0])[lab] + 10 * torch.randn(shape, generator=g)
    return img[None], lab[None]


def assert_matches_up_to_rounding(batched: torch.Tensor, single: torch.Tensor) -> None:
    """A sample of a batched call equals its per-sample call up to float32 rounding.

    The draws are the same; only the summation order may differ: on some CPUs the batched matrix product of
    :func:`synthaug.transforms.acquisition.apply_axis_matrices` (low resolution, resampling) takes another vectorised
    path than a batch of one, a few ulps apart (measured: 3e-5 to 6e-5 on values of a few hundred, 1.5e-5 on a
    rendered image in [0, 1] after a resampling of HU-scale values). Another seed, or a sample's draws applied to its
    neighbour, differs by orders of magnitude more.
    """
    scale = float(single.abs().max())
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=max(1e-4, 1e-6 * scale))


def assert_refuses_bad_image_and_label(t, img: torch.Tensor, lab: torch.Tensor, params) -> None:
    """The bad inputs every label-reading transform refuses by name: an unknown label value (``lab`` holds class 3),
    a NaN voxel, an empty label map, mismatched spatial shapes, a missing channel/batch, a non-integer label."""
    from synthaug.errors import LabelError, ShapeError, ValidationError

    with pytest.raises(LabelError, match=r"value\(s\) \[9\].*does not know"):
        t.apply(img, torch.where(lab == 3, 9, lab), params)
    bad = img.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValidationError, match="NaN"):
        t.apply(bad, lab, params)
    with pytest.raises(LabelError, match="empty"):
        t.apply(img, torch.zeros_like(lab), params)
    with pytest.raises(ShapeError, match="spatial"):
        t.apply(img, lab[..., :-1], params)
    with pytest.raises(ShapeError):
        t.apply(img[0, 0, 0], lab[0, 0, 0], params)
    with pytest.raises(LabelError, match="integer"):
        t.apply(img, lab.float() + 0.5, params)
