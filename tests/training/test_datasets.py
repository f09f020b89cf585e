"""Named generator training data: vocabularies, held-out slabs, no benchmark test case."""

import pytest

from synthaug.data.cache import cache_root
from synthaug.data.fetch import ensure_source
from synthaug.data.scenarios import get_scenario, slab_case_id
from synthaug.data.sources import SOURCES
from synthaug.data.spine import spine_vocabulary
from synthaug.training.datasets import TRAINING_DATA, get_training_data


@pytest.fixture(scope="module")
def fetched():
    for name in SOURCES:
        ensure_source(name, cache_dir=cache_root())


@pytest.mark.parametrize("name", sorted(TRAINING_DATA))
def test_held_out_slabs_are_apart_from_training_and_no_benchmark_test_case_is_used(fetched, name):
    data = get_training_data(name)
    assert data.train and data.heldout and data.labels[0] == "background"
    assert not set(data.training_cases) & set(data.heldout_cases)
    for v in data.train + data.heldout:
        assert v.label.max() < len(data.labels) and v.image.shape == v.label.shape
    tests = {slab_case_id(c.subject, c.z_start, c.z_stop)
             for s in ("in-domain", "cross-scanner", "cross-modality", "spine-cross-modality")
             for c in get_scenario(s).cases if c.role == "test"}
    assert not set(data.training_cases) & tests


def test_spine_ct_speaks_the_spine_vocabulary_and_keeps_bone_apart(fetched):
    data = get_training_data("spine_ct")
    assert data.labels == tuple(spine_vocabulary().names) and data.modality == "CT"
    assert {c.split("_z")[0] for c in data.training_cases} == {"spineCt"}
    seen = {int(v) for t in data.train for v in set(t.label.ravel().tolist())}
    assert seen == set(range(len(data.labels)))  # every spine class is in the training slabs
    import numpy as np

    bone = np.concatenate([t.image[t.label > 0] for t in data.train])
    # the intensity window keeps bone apart: most bone voxels lie inside it, many above the abdominal window's 300
    lo, hi = data.intensity.low, data.intensity.high
    assert np.mean((bone > lo) & (bone < hi)) > 0.9 and np.mean(bone > 300) > 0.2
