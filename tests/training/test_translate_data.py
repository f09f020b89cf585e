"""Splits of the named translation datasets: held-out slabs never enter training (case ids only, no data)."""

from __future__ import annotations

import pytest

from synthaug.data.scenarios import check_no_overlap, get_scenario
from synthaug.errors import LeakageError
from synthaug.training.translate_data import TRANSLATION_DATA


@pytest.mark.parametrize("name", ["abdomen_ct_mr", "abdomen_ct_mr_upper"])
def test_abdomen_training_slabs_are_disjoint_from_held_out(name: str) -> None:
    data = TRANSLATION_DATA[name]()
    training = data.case_ids["train_source"] + data.case_ids["train_target"]
    held_out = data.case_ids["validation"] + data.case_ids["test"] + data.case_ids["test_target"]
    check_no_overlap(training, held_out)
    # the cross-modality benchmark's test set (MR C lower half) is never a training case
    check_no_overlap(training, get_scenario("cross-modality").test_case_ids())


def test_upper_variant_cuts_the_pelvis_only() -> None:
    full, upper = TRANSLATION_DATA["abdomen_ct_mr"](), TRANSLATION_DATA["abdomen_ct_mr_upper"]()
    assert full.case_ids["train_source"] == ("ctA_z000-081",)
    assert upper.case_ids["train_source"] == ("ctA_z064-081",)
    for split in ("train_target", "validation", "test", "test_target", "reference"):
        assert upper.case_ids[split] == full.case_ids[split]
    assert upper.name == "abdomen_ct_mr_upper" and "z 64-82 train" in upper.notes
    with pytest.raises(LeakageError):  # the upper slab is a part of the full one
        check_no_overlap(full.case_ids["train_source"], upper.case_ids["train_source"])
