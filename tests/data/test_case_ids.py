import pytest

from synthaug.data.scenarios import check_no_overlap, parse_case_id, slab_case_id
from synthaug.errors import LeakageError


def test_one_format_round_trips():
    cid = slab_case_id("ct_a", 0, 16)
    assert cid == "ctA_z000-015"
    assert parse_case_id(cid) == ("ctA", 0, 16)


def test_overlap_detection_uses_slices():
    check_no_overlap([slab_case_id("ct_a", 0, 94)], [slab_case_id("ct_a", 96, 112)])
    with pytest.raises(LeakageError, match="overlap"):
        check_no_overlap([slab_case_id("ct_a", 0, 97)], [slab_case_id("ct_a", 96, 112)])
    check_no_overlap([slab_case_id("ct_a", 0, 112)], [slab_case_id("ct_b", 0, 20)])
