"""Label vocabularies, the shared CT/MR organ set, super-classes and the lookup functions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from synthaug.data import sources
from synthaug.data.subjects import read_class_maps
from synthaug.data.vocabulary import (
    SHARED_ORGANS,
    SUPERCLASSES,
    TOTALSEG_CLASSES,
    LabelVocabulary,
    brain_tissue_vocabulary,
    shared_lookup_table,
    shared_vocabulary,
    superclass_vocabulary,
    to_shared,
    to_superclasses,
    totalsegmentator_vocabulary,
)
from synthaug.errors import LabelError, ValidationError

CT = totalsegmentator_vocabulary("total")
MR = totalsegmentator_vocabulary("total_mr")
SHARED = shared_vocabulary()


def test_vocabulary_basics_and_json_round_trip() -> None:
    vocab = brain_tissue_vocabulary()
    assert vocab.names == ("background", "csf", "gray_matter", "white_matter")
    assert vocab.n_labels == 4 and vocab.index("white_matter") == 3 and "csf" in vocab
    assert vocab.as_dict() == {1: "csf", 2: "gray_matter", 3: "white_matter"}
    restored = LabelVocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored == vocab
    assert LabelVocabulary("x", ["background", "a"]).names == ("background", "a")  # lists become tuples


def test_unknown_class_name_suggests_the_closest() -> None:
    with pytest.raises(LabelError, match="Did you mean 'gray_matter'"):
        brain_tissue_vocabulary().index("grey_matter")
    with pytest.raises(LabelError, match="Did you mean 'kidney_left'"):
        SHARED.index("kidney_lft")


@pytest.mark.parametrize(
    ("names", "rule"),
    [
        ((), "background"),
        (("liver", "background"), "background"),
        (("background", "a", "a"), "unique"),
        (("background", ""), "non-empty"),
    ],
)
def test_invalid_vocabularies_name_the_rule(names: tuple[str, ...], rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        LabelVocabulary("bad", names)


def test_from_dict_names_missing_keys() -> None:
    with pytest.raises(ValidationError, match=r"missing key\(s\) \['names'\]"):
        LabelVocabulary.from_dict({"name": "x"})
    with pytest.raises(ValidationError, match="list of strings"):
        LabelVocabulary.from_dict({"name": "x", "names": "background"})


def _ct_to_mr_name(name: str) -> str:
    if name.startswith("lung_"):
        return "lung_left" if name.endswith("left") else "lung_right"
    if name == "vertebrae_S1":
        return "sacrum"
    if name.startswith("vertebrae_"):
        return "vertebrae"
    if name.startswith("kidney_cyst_"):
        return "kidney_" + name.rsplit("_", 1)[1]
    return name


def test_shared_organs_are_exactly_what_both_maps_have() -> None:
    ct_names = {_ct_to_mr_name(n) for n in TOTALSEG_CLASSES["total"]}
    expected = tuple(n for n in TOTALSEG_CLASSES["total_mr"] if n in ct_names)
    assert SHARED_ORGANS == expected
    assert "intervertebral_discs" not in SHARED_ORGANS and "rib_left_1" not in SHARED_ORGANS
    assert {"liver", "spleen", "vertebrae", "lung_left", "iliopsoas_right", "autochthon_left"} <= set(
        SHARED_ORGANS
    )


def test_shared_lookup_tables() -> None:
    ct_table, mr_table = shared_lookup_table("total"), shared_lookup_table("total_mr")
    assert ct_table.shape == (118,) and mr_table.shape == (51,)
    for name in SHARED_ORGANS:  # MR ids map to the same name
        assert SHARED.names[mr_table[MR.index(name)]] == name
    assert mr_table[MR.index("intervertebral_discs")] == 0
    for ct_name in CT.names[1:]:
        expected = _ct_to_mr_name(ct_name)
        got = SHARED.names[ct_table[CT.index(ct_name)]]
        assert got == (expected if expected in SHARED_ORGANS else "background"), ct_name
    assert set(ct_table[[CT.index(f"vertebrae_{v}") for v in ("C1", "T7", "L5")]]) == {
        SHARED.index("vertebrae")
    }


def test_to_shared_numpy_and_torch_agree_and_keep_dtype() -> None:
    ct = np.array([[0, 5, 10, 14], [30, 26, 117, 52]], dtype=np.int16)
    out = to_shared(ct, "total")
    assert out.dtype == np.int16 and out.shape == ct.shape
    expected = [[0, SHARED.index("liver"), SHARED.index("lung_left"), SHARED.index("lung_right")],
                [SHARED.index("vertebrae"), SHARED.index("sacrum"), 0, SHARED.index("aorta")]]  # fmt: skip
    assert out.tolist() == expected
    tensor = to_shared(torch.from_numpy(ct).long(), "ct")
    assert tensor.dtype == torch.int64 and tensor.tolist() == expected
    assert to_shared(torch.tensor([5, 5], dtype=torch.uint8), "mr").tolist() == [SHARED.index("liver")] * 2


def test_ct_and_mr_liver_map_to_the_same_shared_id() -> None:
    ct_liver = to_shared(np.array([CT.index("liver")]), "total")
    mr_liver = to_shared(np.array([MR.index("liver")]), "total_mr")
    assert ct_liver[0] == mr_liver[0] == SHARED.index("liver")


def test_unmapped_value_for_an_ignore_label() -> None:
    ct = np.array([0, 117, 5], dtype=np.uint8)
    assert to_shared(ct, "total", unmapped=255).tolist() == [0, 255, SHARED.index("liver")]
    assert to_shared(torch.tensor([117, 0]), "total", unmapped=-1).tolist() == [-1, 0]
    with pytest.raises(ValidationError, match="collide"):
        to_shared(ct, "total", unmapped=5)
    with pytest.raises(ValidationError, match="does not fit"):
        to_shared(ct, "total", unmapped=-1)


def test_to_shared_rejects_bad_labels_and_sources() -> None:
    with pytest.raises(LabelError, match="outside"):
        to_shared(np.array([0, 118]), "total")
    with pytest.raises(LabelError, match="outside"):
        to_shared(torch.tensor([-1, 0]), "total_mr")
    with pytest.raises(LabelError, match="integer"):
        to_shared(np.array([1.0, 5.0]), "total")
    with pytest.raises(ValidationError, match="Did you mean 'total_mr'"):
        to_shared(np.array([1]), "total-mr")


def test_superclasses_partition_the_shared_organs() -> None:
    members = [m for group in SUPERCLASSES.values() for m in group]
    assert sorted(members) == sorted(SHARED_ORGANS)  # each organ in exactly one group
    assert 6 <= len(SUPERCLASSES) <= 8
    vocab = superclass_vocabulary()
    assert vocab.names[0] == "background" and vocab.n_labels == len(SUPERCLASSES) + 1
    shared_ids = np.arange(len(SHARED_ORGANS) + 1)
    groups = to_superclasses(shared_ids)
    assert groups[0] == 0
    for shared_id in shared_ids[1:]:
        assert SHARED.names[shared_id] in SUPERCLASSES[vocab.names[groups[shared_id]]]
    assert groups[SHARED.index("gallbladder")] == groups[SHARED.index("liver")] == vocab.index("liver")
    assert (
        groups[SHARED.index("kidney_left")] == groups[SHARED.index("kidney_right")] == vocab.index("kidneys")
    )


def test_to_superclasses_keeps_an_ignore_label_and_the_device_dtype() -> None:
    label = torch.tensor([[0, 255, SHARED.index("femur_left")]], dtype=torch.int32)
    out = to_superclasses(label, ignore_index=255)
    assert out.dtype == torch.int32 and out.tolist() == [[0, 255, superclass_vocabulary().index("bone")]]
    with pytest.raises(LabelError, match="outside"):
        to_superclasses(label)
    with pytest.raises(ValidationError, match="collides"):
        to_superclasses(label, ignore_index=1)


def test_composition_ct_to_superclasses_is_vectorised_over_a_volume() -> None:
    gen = torch.Generator().manual_seed(0)
    ct = torch.randint(0, 118, (4, 16, 16, 8), generator=gen)
    out = to_superclasses(to_shared(ct, "total"))
    table = torch.as_tensor(to_superclasses(shared_lookup_table("total")))
    assert torch.equal(out, table[ct])


@pytest.mark.data
def test_pinned_class_tables_match_the_fetched_release(data_cache: Path) -> None:
    folder = data_cache / sources.TOTALSEGMENTATOR.folder
    maps = read_class_maps(folder / sources.CLASS_MAP_FILE)
    for task in ("total", "total_mr"):
        assert maps[task] == dict(enumerate(TOTALSEG_CLASSES[task], start=1)), task


# ------------------------------------------------------------------------------------------ description

def test_superclass_entries_are_derived_from_the_one_declaration() -> None:
    from synthaug.data.vocabulary import superclass_entries

    entries = superclass_entries()
    assert [e.name for e in entries] == list(superclass_vocabulary().names[1:])
    assert [e.label_id for e in entries] == [superclass_vocabulary().index(e.name) for e in entries]
    assert all(e.organs == SUPERCLASSES[e.name] for e in entries)
    lungs = next(e for e in entries if "lung_left" in e.organs).ct_sources["lung_left"]
    assert set(lungs) == {"lung_upper_lobe_left", "lung_lower_lobe_left"}
    # every CT class in a super-class maps, through to_shared + to_superclasses, to that super-class
    ct = TOTALSEG_CLASSES["total"]
    for e in entries:
        for organ in e.organs:
            for name in e.ct_sources.get(organ, (organ,)):
                ct_id = np.array([ct.index(name) + 1])
                assert to_superclasses(to_shared(ct_id, "total")).tolist() == [e.label_id], name


def test_unmapped_classes_map_to_background() -> None:
    from synthaug.data.vocabulary import unmapped_classes

    unmapped = unmapped_classes()
    assert unmapped["total_mr"] == ("intervertebral_discs",) and "trachea" in unmapped["total"]
    ids = np.array([TOTALSEG_CLASSES["total"].index(n) + 1 for n in unmapped["total"]])
    assert not to_shared(ids, "total").any()


def test_readme_table_is_the_generated_one() -> None:
    from synthaug.data.vocabulary import vocabulary_markdown

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("<!-- vocabulary table:")
    start = readme.index("\n", start) + 1
    stop = readme.index("<!-- end of vocabulary table -->")
    assert readme[start:stop] == vocabulary_markdown(), "regenerate with: synthaug data vocabulary --format markdown"
