import torch

from synthaug.metrics.distribution import RandomFeatureExtractor, frechet_distance, kernel_distance


def test_features_are_deterministic_and_shaped():
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    a, b = RandomFeatureExtractor()(x), RandomFeatureExtractor()(x)
    assert torch.equal(a, b) and a.shape == (3, 2 * (32 + 64 + 128))
    assert RandomFeatureExtractor(spatial_dims=3, widths=(4, 8))(torch.rand(2, 1, 8, 8, 8)).shape == (2, 24)


def test_kid_separates_textures_and_is_near_zero_for_same_distribution():
    g = torch.Generator().manual_seed(0)
    ext = RandomFeatureExtractor()
    smooth = lambda n: torch.nn.functional.avg_pool2d(torch.rand(n, 1, 36, 36, generator=g), 5, 1) * 2 - 1  # noqa: E731
    noisy = lambda n: torch.rand(n, 1, 32, 32, generator=g) * 2 - 1  # noqa: E731
    same = kernel_distance(ext(smooth(60)), ext(smooth(60)), subset_size=50)[0]
    diff = kernel_distance(ext(smooth(60)), ext(noisy(60)), subset_size=50)[0]
    assert abs(same) < 0.05 * diff
    assert diff > 0
    assert frechet_distance(ext(smooth(60)), ext(noisy(60))) > frechet_distance(ext(smooth(60)), ext(smooth(60)))
