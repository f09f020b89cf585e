import pytest
import torch

from synthaug.errors import ValidationError
from synthaug.features import normalise_features, region_features
from synthaug.features.calibrate import calibrate_regions


def _image(seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(2, 48, 48, dtype=torch.long)
    labels[:, 8:40, 8:24] = 1
    labels[:, 8:40, 26:44] = 2
    base = torch.tensor([-0.9, 0.1, 0.5])[labels]
    img = base + 0.05 * torch.randn(labels.shape, generator=g)
    return img[:, None], labels


def _features(img, labels):
    rf = region_features(img, labels, n_labels=3, names=("mean", "entropy"), bins=32)
    return normalise_features(rf.values, rf.names, bins=32) / 100


def test_calibration_moves_regions_to_the_request_and_spares_background():
    img, labels = _image()
    req = _features(img, labels).clone()
    req[:, 0, 1] += 0.1   # brighter region 1
    req[:, 1, 2] += 0.15  # more texture in region 2
    out = calibrate_regions(img, labels, req, names=("mean", "entropy"), n_labels=3)
    got = _features(out, labels)
    before = (_features(img, labels) - req).abs()[:, :, 1:]
    after = (got - req).abs()[:, :, 1:]
    assert after.max() < 0.03 and after.mean() < 0.25 * before.mean()
    assert torch.equal(out[:, 0][labels == 0], img[:, 0][labels == 0])


def test_identity_when_request_equals_measurement():
    img, labels = _image(1)
    out = calibrate_regions(img, labels, _features(img, labels), names=("mean", "entropy"), n_labels=3, iterations=1)
    torch.testing.assert_close(out, img, atol=0.02, rtol=0)


def test_shape_errors():
    img, labels = _image()
    with pytest.raises(ValidationError, match="requested"):
        calibrate_regions(img, labels, torch.zeros(2, 1, 3), names=("mean", "entropy"), n_labels=3)


def test_calibrate_with_shared_stats_matches_calibrate_regions():
    """The transforms' path (one region index shared by the feature measurement and every calibration pass)
    gives what the validated public function gives."""
    import torch

    from synthaug.features.calibrate import calibrate_regions, calibrate_with_stats
    from synthaug.features.stats import RegionStats

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (3, 12, 10), generator=g)
    labels[2] = 0
    labels[2, :4] = 3
    image = torch.rand(3, 1, 12, 10, generator=g) * 2 - 1
    measured_on = torch.rand(3, 1, 12, 10, generator=g) * 2 - 1  # another image under the same labels
    requested = torch.rand(3, 2, 4, generator=g)
    names = ("mean", "entropy")
    stats = RegionStats(measured_on, labels, n_labels=4, bins=16, value_range=(-1.0, 1.0), soft=False, bandwidth=None)
    fast = calibrate_with_stats(image, stats, requested, names=names)
    ref = calibrate_regions(image, labels, requested, names=names, n_labels=4, bins=16)
    torch.testing.assert_close(fast, ref, atol=1e-6, rtol=0)
    assert torch.equal(fast[2][labels[2][None] == 0], image[2][labels[2][None] == 0])  # background untouched


def test_regions_too_small_for_a_texture_get_their_mean_only():
    """Issue 15 (bad input): a 3-voxel region's spread is the generator's, not a scaled-up noise estimate."""
    img, labels = _image(2)
    tiny = torch.zeros_like(labels, dtype=torch.bool)
    tiny[:, 20, 30:33] = True  # region 3: 3 voxels inside region 2
    labels = torch.where(tiny, torch.full_like(labels, 3), labels)
    img = img.clone()
    img[:, 0, 20, 30:33] = torch.tensor([0.0, 0.05, -0.05])
    names = ("mean", "entropy")
    req = region_features(img, labels, n_labels=4, names=names, bins=32)
    req = normalise_features(req.values, names, bins=32) / 100
    req[:, 0, 3] = 0.8   # brighter
    req[:, 1, 3] = 0.9   # and a much wider histogram: impossible to measure on 3 voxels
    full = calibrate_regions(img, labels, req, names=names, n_labels=4)
    mean_only = calibrate_regions(img, labels, req, names=names, n_labels=4, min_texture_voxels=8)
    dev = lambda x: x[:, 0][tiny].view(2, 3) - x[:, 0][tiny].view(2, 3).mean(1, keepdim=True)  # noqa: E731
    torch.testing.assert_close(dev(mean_only), dev(img), atol=1e-5, rtol=0)  # spread untouched
    assert (dev(full).abs().amax(1) > dev(img).abs().amax(1) * 1.5).all()  # without the rule it is scaled up
    target = -1.0 + 0.8 * 2.0
    assert (mean_only[:, 0][tiny].view(2, 3).mean(1) - target).abs().max() < 0.02  # the mean is still calibrated
    # the large regions are calibrated exactly as before
    big = labels != 3
    torch.testing.assert_close(mean_only[:, 0][big], full[:, 0][big])
