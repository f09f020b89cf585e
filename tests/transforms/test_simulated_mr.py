"""SimulatedMRSynth: the physics prior as a generator-free transform (issue 15); the transform checklist."""

import pytest
import torch

from synthaug.data.vocabulary import superclass_vocabulary
from synthaug.errors import LabelError, ValidationError
from synthaug.transforms import SimulatedMRParams, SimulatedMRSynth
from tests.test_pins import _ct_phantom

NAMES = {n: i for i, n in enumerate(superclass_vocabulary().names)}


def test_renders_simulated_mr_with_the_literature_contrast_order():
    img, lab = _ct_phantom(shape=(48, 44, 3))
    t1 = SimulatedMRSynth(label_names=NAMES, contrasts=("T1w",), fields_t=(1.5,), noise=0.0, bias=0.0, blur=0.0, variability=0.0,
                          output_range="unit")
    t2 = SimulatedMRSynth(label_names=NAMES, contrasts=("T2w",), fields_t=(1.5,), noise=0.0, bias=0.0, blur=0.0, variability=0.0,
                          output_range="unit")
    a, same = t1.apply(img, lab, t1.params_from_seed(0))
    b, _ = t2.apply(img, lab, t2.params_from_seed(0))
    assert same is lab and a.shape == img.shape and torch.isfinite(a).all()
    liver, spleen = NAMES["liver"], NAMES["spleen"]
    m = lambda x, c: float(x[lab == c].mean())  # noqa: E731
    assert m(a, liver) > m(a, spleen)  # T1w: liver brighter than spleen
    assert m(b, spleen) > m(b, liver)  # T2w: spleen brighter than liver


def test_checklist_identity_replay_batch_and_range():
    img, lab = _ct_phantom(shape=(40, 36, 2))
    t = SimulatedMRSynth(labels_are_classes=True)
    assert t.apply(img, lab, SimulatedMRParams(0, False)) == (img, lab)  # identity when not applied
    a, _ = t.apply(img, lab, t.params_from_seed(7))
    assert torch.equal(a, t.apply(img, lab, t.params_from_seed(7))[0])  # replay
    batch, _ = t.apply_batch(torch.stack([img, img]), torch.stack([lab, lab]), seeds=[7, 8])
    assert torch.equal(batch[0], a)  # batch == per sample
    assert float(a.min()) >= float(img.min()) - 1e-3 and float(a.max()) <= float(img.max()) + 1e-3  # input range
    d, _ = t.apply(img.double(), lab, t.params_from_seed(7))
    assert d.dtype == torch.float64


def test_refuses_labels_it_cannot_read():
    img, lab = _ct_phantom(shape=(40, 36, 2))
    with pytest.raises(LabelError, match="reads a label map by name"):
        SimulatedMRSynth().apply(img, lab, SimulatedMRParams(0, True))
    with pytest.raises(LabelError, match=r"\['tumour'\]"):
        SimulatedMRSynth(label_names={"background": 0, "tumour": 1})
    with pytest.raises(ValidationError, match="contrasts"):
        SimulatedMRSynth(contrasts=("FLAIR",))
