import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from synthaug.errors import ShapeError, ValidationError
from synthaug.losses.style import (
    TextureFeatures,
    binary_opening,
    connected_components,
    content_loss,
    extract_mask,
    gram_distance,
    largest_component,
    mask_consistency_loss,
    region_gram,
    region_style_loss,
    segmentation_consistency_loss,
)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _labels(b=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    lab = torch.zeros(b, size, size, dtype=torch.long)
    for i in range(b):  # test data only
        y, x = torch.randint(0, size // 2, (2,), generator=g).tolist()
        lab[i, y : y + 6, x : x + 7] = 1
        lab[i, -5:, :5] = 2
    return lab


def _reference_gram(f, lab, n_labels):
    """Slow reference: loops over samples, classes and pixels; weights = class area per feature cell."""
    b, c, h, w = f.shape
    H, W = lab.shape[1:]
    sy, sx = H // h, W // w
    out = torch.zeros(b, n_labels, c, c, dtype=torch.float64)
    for i in range(b):
        for k in range(n_labels):
            total = 0.0
            acc = torch.zeros(c, c, dtype=torch.float64)
            for y in range(h):
                for x in range(w):
                    cell = lab[i, y * sy : (y + 1) * sy, x * sx : (x + 1) * sx]
                    wk = float((cell == k).double().mean())
                    if wk == 0:
                        continue
                    v = f[i, :, y, x].double()
                    acc += wk * torch.outer(v, v)
                    total += wk
            if total > 0:
                out[i, k] = acc / (c * total)
    return out


def test_region_gram_matches_slow_reference():
    torch.manual_seed(0)
    lab = _labels()
    feats = [torch.rand(2, 3, 16, 16), torch.rand(2, 4, 8, 8)]  # full and half resolution
    grams = region_gram(feats, lab, n_labels=4)
    for (g, mass), f in zip(grams, feats):
        ref = _reference_gram(f, lab, 4)
        torch.testing.assert_close(g.double(), ref, rtol=1e-5, atol=1e-6)
        assert mass[:, 3].abs().max() == 0  # class 3 is absent: zero mass, zero Gram
    assert grams[0][1][0, 2] == 25  # class 2 has 25 full-resolution pixels


def test_style_loss_counts_only_shared_classes():
    tf = TextureFeatures()
    lab = _labels()
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    feats = tf(x)
    assert float(region_style_loss(feats, lab, feats, lab, n_labels=3)) == 0.0
    y = x.clone()
    y[(lab == 1).unsqueeze(1)] = 0.5  # change class 1 only
    fy = tf(y)
    assert float(region_style_loss(fy, lab, feats, lab, n_labels=3)) > 0
    # if the style image lacks class 1 (relabelled as 3), only classes 0 and 2 are compared; their pixels differ
    # from the original only near class 1's boundary, so the loss drops
    lab_no1 = torch.where(lab == 1, 3, lab)
    full = region_style_loss(fy, lab, feats, lab, n_labels=4)
    shared = region_style_loss(fy, lab, feats, lab_no1, n_labels=4)
    assert float(shared) < float(full)


def _texture(sigma: float, seed: int, size: int = 48) -> torch.Tensor:
    x = torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(seed))
    if sigma > 0:
        r = torch.arange(-6, 7, dtype=torch.float32)
        k = torch.exp(-(r**2) / (2 * sigma**2))
        k = k / k.sum()
        x = F.conv2d(F.pad(x, (6, 6, 6, 6), mode="reflect"), (k[:, None] * k[None]).view(1, 1, 13, 13))
    return (x - x.mean()) / x.std() * 0.2  # equal mean and standard deviation: only the texture differs


@pytest.mark.parametrize("sigmas", [(0.0, 2.0), (1.0, 3.0)])
def test_feature_extractor_separates_textures(sigmas):
    tf = TextureFeatures()
    lab = torch.zeros(1, 48, 48, dtype=torch.long)

    def grams(x):
        return region_gram(tf(x), lab, n_labels=1)

    a1, a2, b1 = _texture(sigmas[0], 1), _texture(sigmas[0], 2), _texture(sigmas[1], 3)
    same, _ = gram_distance(grams(a1), grams(a2))
    different, _ = gram_distance(grams(a1), grams(b1))
    assert float(different) > 5 * float(same)


def test_content_loss():
    tf = TextureFeatures()
    x = torch.rand(1, 1, 16, 16)
    assert float(content_loss(tf(x), tf(x))) == 0.0
    assert float(content_loss(tf(x), tf(x.flip(-1)))) > 0
    with pytest.raises(ShapeError):
        content_loss(tf(x), tf(torch.rand(1, 1, 32, 32)))


def _blobs(seed=0, shape=(2, 1, 24, 24)):
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(shape)
    m[..., 3:15, 4:16] = 1  # the big component
    m[..., 18:22, 17:22] = 1  # a small one
    m[..., 1, 1] = 1  # a speck removed by opening
    return (m + 0.05 * torch.rand(shape, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("dims", [2, 3])
def test_opening_matches_scipy(dims):
    g = torch.Generator().manual_seed(dims)
    shape = (2, 1) + (12,) * dims
    m = (torch.rand(shape, generator=g) > 0.4).float()
    got = binary_opening(m, 3)
    for i in range(2):
        ref = ndimage.binary_opening(m[i, 0].numpy().astype(bool), structure=np.ones((3,) * dims), border_value=0)
        assert np.array_equal(got[i, 0].numpy().astype(bool), ref)


@pytest.mark.parametrize("dims", [2, 3])
def test_connected_components_match_scipy(dims):
    g = torch.Generator().manual_seed(10 + dims)
    shape = (2, 1) + (10,) * dims
    m = torch.rand(shape, generator=g) > 0.6
    ids = connected_components(m.float())
    for i in range(2):
        ref, n = ndimage.label(m[i, 0].numpy(), structure=np.ones((3,) * dims))
        mine = ids[i, 0].numpy()
        assert ((mine > 0) == (ref > 0)).all()
        assert len(np.unique(mine[mine > 0])) == n
        # the same partition: every scipy component maps to exactly one id of ours
        for lab in range(1, n + 1):  # test-only loop
            assert len(np.unique(mine[ref == lab])) == 1


def test_largest_component_matches_scipy():
    m = torch.zeros(2, 1, 16, 16)
    m[0, 0, 1:4, 1:4] = 1
    m[0, 0, 8:15, 6:12] = 1
    m[1, 0, 0:2, :] = 1
    m[1, 0, 5:7, 5:7] = 1
    keep = largest_component(m)
    for i in range(2):
        ref, _ = ndimage.label(m[i, 0].numpy(), structure=np.ones((3, 3)))
        sizes = np.bincount(ref.ravel())
        sizes[0] = 0
        assert np.array_equal(keep[i, 0].numpy(), ref == sizes.argmax())


def _reference_mask(image: np.ndarray, threshold: float) -> np.ndarray:
    norm = (image - image.min()) / (image.max() - image.min())
    opened = ndimage.binary_opening(norm > threshold, structure=np.ones((3, 3)), border_value=0)
    lab, _ = ndimage.label(opened, structure=np.ones((3, 3)))
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == sizes.argmax()


def test_mask_pipeline_and_loss_match_a_scipy_reference():
    img = _blobs() * 2 - 1
    hard = extract_mask(img, threshold=0.5, hard=True)
    target = torch.zeros(2, 1, 24, 24)
    target[..., 2:16, 2:18] = 1
    ref_loss = 0.0
    for i in range(2):
        ref = _reference_mask(img[i, 0].numpy(), 0.5)
        assert np.array_equal(hard[i, 0].numpy().astype(bool), ref)
        ref_loss += float(((target[i, 0].numpy() - ref) ** 2).mean()) / 2
    soft_loss = mask_consistency_loss(img, target, threshold=0.5, temperature=1e-3)
    assert float(soft_loss) == pytest.approx(ref_loss, abs=1e-4)


def test_mask_loss_has_gradients_and_falls_when_matching():
    img = (_blobs() * 2 - 1).requires_grad_(True)
    target = extract_mask(img.detach(), threshold=0.5, hard=True)
    wrong = torch.zeros_like(target)
    wrong[..., 5:20, 5:20] = 1
    loss = mask_consistency_loss(img, wrong, threshold=0.5, temperature=0.1)
    loss.backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    assert float(mask_consistency_loss(img.detach(), target, threshold=0.5, temperature=0.02)) < float(loss.detach())
    fixed = extract_mask(img.detach(), threshold=0.5, hard=True, value_range=(-1.0, 1.0))
    assert fixed.shape == img.shape
    with pytest.raises(ValidationError, match="threshold"):
        extract_mask(img, threshold=2.0)
    with pytest.raises(ShapeError):
        mask_consistency_loss(img, wrong[..., :10])


def test_segmentation_consistency_is_class_balanced_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=g)
    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    labels[:, :2] = 1
    labels[0, 7, 7] = 2
    got = segmentation_consistency_loss(logits, labels)
    counts = torch.bincount(labels.flatten(), minlength=3).double()
    alpha = labels.numel() / (3 * counts)  # N / (n_present * count_c), all three classes present
    ce = F.cross_entropy(logits.double(), labels, reduction="none")
    ref = (ce * alpha[labels]).mean()
    assert float(got) == pytest.approx(float(ref), rel=1e-5)
    with pytest.raises(ShapeError):
        segmentation_consistency_loss(logits, labels[:, :4])
