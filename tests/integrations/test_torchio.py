import torch
import torchio as tio

from synthaug.integrations.torchio import RandomContextTextureSynth
from tests.transforms.conftest import phantom


def _subject():
    img, lab = phantom()
    affine = torch.diag(torch.tensor([3.0, 3.0, 3.0, 1.0])).numpy()
    return tio.Subject(image=tio.ScalarImage(tensor=img, affine=affine), label=tio.LabelMap(tensor=lab, affine=affine,
                                                                                    labels={"background": 0, "a": 1, "b": 2, "c": 3}))


def test_random_transform_in_compose_and_history_replays(tiny_weights):
    transform = tio.Compose([tio.RandomFlip(axes=(0,), flip_probability=0.0), RandomContextTextureSynth(weights="tiny_ct")])
    original = _subject()
    out = transform(original)
    assert not torch.equal(out.image.data, original.image.data)
    assert out.label.data.dtype == original.label.data.dtype
    replay = out.get_composed_history()
    again = replay(_subject())
    assert torch.equal(again.image.data, out.image.data)
    assert torch.equal(again.label.data, out.label.data)


def test_probability_zero_keeps_subject(tiny_weights):
    out = RandomContextTextureSynth(weights="tiny_ct", p=0.0)(_subject())
    assert torch.equal(out.image.data, _subject().image.data)


def test_affine_mismatch_is_refused(tiny_weights):
    import pytest

    from synthaug.errors import ValidationError

    s = _subject()
    s.label.affine = torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0])).numpy()
    with pytest.raises(ValidationError, match="different affines"):
        RandomContextTextureSynth(weights="tiny_ct")(s)
