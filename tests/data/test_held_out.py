"""The one held-out rule the harness, the trainer and expansion read (synthaug.data.held_out)."""

from synthaug.data.held_out import held_out_split

CROSS_MODALITY = {"synthaug": {
    "test_groups": {"mr_c_lower": ["mrC_z000-009"], "mr_c_all": ["mrC_z000-019"]},
    "cases": [{"id": "ctA_z000-015", "role": "train"}, {"id": "mrC_z000-009", "role": "test"},
              {"id": "mrC_z000-019", "role": "report"}, {"id": "mrC_z010-019", "role": "generator"}],
}}


def test_report_only_cases_are_scored_but_not_held_out():
    split = held_out_split(CROSS_MODALITY, ["mrC_z000-009", "mrC_z000-019"])
    assert split.ids == ("mrC_z000-009",) and split.report_only == ("mrC_z000-019",)
    assert split.groups == {"mr_c_lower": ("mrC_z000-009",), "mr_c_all": ("mrC_z000-019",)}
    assert split.groups_held_out == ("mr_c_lower",) and split.ungrouped == ()


def test_a_declared_test_case_is_held_out_without_its_files():
    """A trainer that only has the preprocessed dataset.json still protects the test cases it lists."""
    split = held_out_split(CROSS_MODALITY, ())
    assert split.ids == ("mrC_z000-009",) and split.report_only == ()


def test_a_plain_nnunet_dataset_holds_out_every_test_case_in_one_group():
    split = held_out_split({"labels": {"background": 0}}, ["case_6", "case_7"])
    assert split.ids == ("case_6", "case_7") and split.groups == {"test": ("case_6", "case_7")}
    assert split.groups_held_out == ("test",)


def test_without_groups_report_cases_get_their_own_group():
    meta = {"synthaug": {"cases": [{"id": "a", "role": "test"}, {"id": "b", "role": "report"}]}}
    split = held_out_split(meta, ["a", "b"])
    assert split.groups == {"test": ("a",), "report": ("b",)} and split.groups_held_out == ("test",)


def test_a_test_folder_case_in_no_group_is_named_as_ungrouped():
    """Protected (never in a style bank) and named, so the harness can refuse to leave it unscored."""
    split = held_out_split(CROSS_MODALITY, ["mrC_z000-009", "mrC_z000-019", "stray_case"])
    assert "stray_case" in split.ids and split.ungrouped == ("stray_case",)
    meta = {"synthaug": {**CROSS_MODALITY["synthaug"], "test_groups": {"mr_c_lower": ["mrC_z000-009"]}}}
    assert held_out_split(meta, ["mrC_z000-009", "mrC_z000-019"]).ungrouped == ("mrC_z000-019",)  # nor a report case
