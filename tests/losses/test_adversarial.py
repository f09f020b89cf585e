import math

import pytest
import torch
import torch.nn.functional as F

from synthaug.errors import LabelError, ShapeError, ValidationError
from synthaug.losses.adversarial import (
    class_balance_weights,
    gan_loss,
    oasis_discriminator_loss,
    oasis_generator_loss,
)


def test_lsgan_known_values():
    z = torch.zeros(2, 1, 4, 4)
    assert float(gan_loss(z, target_real=True, mode="lsgan")) == 1.0
    assert float(gan_loss(z, target_real=False, mode="lsgan")) == 0.0
    x = torch.tensor([[0.5, 2.0]])
    assert math.isclose(float(gan_loss(x, target_real=True)), (0.25 + 1.0) / 2)
    assert math.isclose(float(gan_loss(x, target_real=False)), (0.25 + 4.0) / 2)


def test_bce_known_values():
    z = torch.zeros(3, 1, 2, 2)
    assert math.isclose(float(gan_loss(z, target_real=True, mode="bce")), math.log(2), rel_tol=1e-6)
    x = torch.tensor([[2.0, -1.0]])
    expected_real = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0))) / 2
    expected_fake = (math.log1p(math.exp(2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert math.isclose(float(gan_loss(x, target_real=True, mode="bce")), expected_real, rel_tol=1e-6)
    assert math.isclose(float(gan_loss(x, target_real=False, mode="bce")), expected_fake, rel_tol=1e-6)


def test_hinge_known_values():
    x = torch.tensor([[-2.0, 0.0, 0.5, 3.0]])
    # D real: relu(1 - x) = 3, 1, 0.5, 0
    assert math.isclose(float(gan_loss(x, target_real=True, mode="hinge")), 4.5 / 4)
    # D fake: relu(1 + x) = 0, 1, 1.5, 4
    assert math.isclose(float(gan_loss(x, target_real=False, mode="hinge")), 6.5 / 4)
    # G: -mean(x)
    g = gan_loss(x, target_real=True, mode="hinge", for_discriminator=False)
    assert math.isclose(float(g), -1.5 / 4)
    with pytest.raises(ValidationError, match="target_real=True"):
        gan_loss(x, target_real=False, mode="hinge", for_discriminator=False)


def test_list_is_averaged_and_mode_checked():
    a, b = torch.zeros(1, 1, 8, 8), torch.full((1, 1, 4, 4), 3.0)
    got = gan_loss([a, b], target_real=True)
    assert math.isclose(float(got), (1.0 + 4.0) / 2)
    with pytest.raises(ValidationError, match="lsgan"):
        gan_loss(a, target_real=True, mode="lsgann")
    with pytest.raises(ValidationError, match="non-empty"):
        gan_loss([], target_real=True)


def test_gradient_flows():
    x = torch.randn(2, 1, 4, 4, requires_grad=True)
    for mode in ("lsgan", "bce", "hinge"):
        x.grad = None
        gan_loss([x, x[:, :, ::2, ::2]], target_real=True, mode=mode, for_discriminator=False).backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_class_balance_weights_manual():
    labels = torch.tensor([[[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 3]]])  # 12 voxels; class 2 absent
    w = class_balance_weights(labels, 5)
    counts = {0: 8, 1: 3, 2: 0, 3: 1, 4: 0}
    n_present = 3
    expected = torch.tensor([12 / (n_present * counts[c]) if counts[c] else 0.0 for c in range(5)])
    assert torch.allclose(w, expected)
    assert torch.isclose(w[labels].mean(), torch.tensor(1.0))  # voxel-weighted mean is 1
    assert torch.equal(class_balance_weights(labels[:, None], 5), w)  # (B, 1, *S) accepted
    assert class_balance_weights(labels, 5, dtype=torch.float64).dtype == torch.float64


def test_class_balance_weights_batch_and_3d():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (2, 4, 5, 6), generator=g)
    w = class_balance_weights(labels, 6)
    n = labels.numel()
    present = [c for c in range(6) if (labels == c).any()]
    for c in range(6):
        cnt = int((labels == c).sum())
        ref = n / (len(present) * cnt) if cnt else 0.0
        assert math.isclose(float(w[c]), ref, rel_tol=1e-6)


def test_class_balance_weights_validation():
    with pytest.raises(LabelError, match=r"\[0, 2\]"):
        class_balance_weights(torch.tensor([[0, 3]]), 3)
    with pytest.raises(LabelError):
        class_balance_weights(torch.tensor([[0, -1]]), 3)
    with pytest.raises(ValidationError, match="integer"):
        class_balance_weights(torch.tensor([[0.0, 1.0]]), 3)


def _onehot_logits(labels: torch.Tensor, n_classes: int, scale: float = 8.0) -> torch.Tensor:
    return scale * F.one_hot(labels, n_classes).movedim(-1, 1).float()


@pytest.mark.parametrize("dims", [2, 3])
def test_oasis_losses_lower_for_correct_segmentations(dims):
    g = torch.Generator().manual_seed(0)
    n_labels = 3
    labels = torch.randint(0, n_labels, (2, *(8,) * dims), generator=g)
    wrong = (labels + 1) % n_labels
    fake_class = torch.full_like(labels, n_labels)
    good_real, bad_real = _onehot_logits(labels, n_labels + 1), _onehot_logits(wrong, n_labels + 1)
    good_fake, bad_fake = _onehot_logits(fake_class, n_labels + 1), _onehot_logits(labels, n_labels + 1)
    d_good = oasis_discriminator_loss(good_real, good_fake, labels, n_labels=n_labels)
    d_bad_real = oasis_discriminator_loss(bad_real, good_fake, labels, n_labels=n_labels)
    d_bad_fake = oasis_discriminator_loss(good_real, bad_fake, labels, n_labels=n_labels)
    assert d_good < 0.01 and d_bad_real > 1.0 and d_bad_fake > 1.0
    # generator wants fakes segmented as their true label, not as "fake"
    assert oasis_generator_loss(bad_fake, labels, n_labels=n_labels) < 0.01
    assert oasis_generator_loss(good_fake, labels, n_labels=n_labels) > 1.0


def test_oasis_generator_loss_matches_manual_weighted_ce():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 3, (2, 6, 6), generator=g)
    labels[0, 0, 0] = 2
    logits = torch.randn(2, 4, 6, 6, generator=g, requires_grad=True)
    got = oasis_generator_loss(logits, labels, n_labels=3)
    w = class_balance_weights(labels, 3)
    logp = torch.log_softmax(logits.detach(), dim=1)
    manual = 0.0
    for b in range(2):
        for i in range(6):
            for j in range(6):
                c = int(labels[b, i, j])
                manual += -float(logp[b, c, i, j]) * float(w[c])
    assert math.isclose(float(got.detach()), manual / 72, rel_tol=1e-5)
    got.backward()
    assert torch.isfinite(logits.grad).all()
    fake_manual = -(logp[:, 3] * w[labels]).mean()
    d = oasis_discriminator_loss(logits, logits, labels, n_labels=3)
    assert torch.isclose(d, got + fake_manual)


def test_oasis_validation():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(ShapeError, match="n_labels \\+ 1 = 3"):
        oasis_generator_loss(torch.zeros(1, 2, 4, 4), labels, n_labels=2)
    with pytest.raises(ShapeError, match="labels"):
        oasis_generator_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 5, 4, dtype=torch.long), n_labels=2)
    with pytest.raises(LabelError):
        oasis_generator_loss(torch.zeros(1, 3, 4, 4), labels + 2, n_labels=2)
    with pytest.raises(ShapeError, match="seg_logits_fake"):
        oasis_discriminator_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 2, 2), labels, n_labels=2)
