"""End to end on the user's own data (tiny budgets): train translate on a paired NIfTI folder, an nnU-Net
dataset and a simulator pair other than the built-ins, then evaluate the weights on the held-out cases."""

from __future__ import annotations

import pytest

from synthaug.errors import LeakageError, ValidationError
from synthaug.training.eval_translate import check_card_for_data, evaluate_translation
from synthaug.training.train_translate import train_translate
from synthaug.training.translate_data import get_translation_data
from synthaug.training.translate_spec import parse_translation_spec
from tests.training.test_train_translate import tiny
from tests.training.test_translate_spec import nnunet_dataset, paired_folders

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _subjects(ids) -> set[str]:
    return {i.partition(":")[0] for i in ids}


def _check_run(run, data, spec_text: str) -> None:
    card = run.card
    assert card.training["data"] == parse_translation_spec(spec_text).text == data.name
    assert (card.source_modality, card.target_modality) == (data.source_modality, data.target_modality)
    assert list(card.training["test_cases"]) == list(data.case_ids["test"])
    assert not _subjects(card.training_cases) & _subjects(card.training["test_cases"])
    check_card_for_data(card, data)  # the evaluation's own leakage check passes


def test_train_and_eval_pix2pix_on_a_paired_nifti_folder(tmp_path):
    src, tgt = paired_folders(tmp_path / "data", 5)
    spec = f"folder:{src}:{tgt}"
    run = train_translate(tiny(mode="pix2pix", name="p2p_folder", data=spec), tmp_path / "run", progress=False)
    data = get_translation_data(spec)
    _check_run(run, data, spec)
    assert _subjects(run.card.training_cases) == _subjects(data.case_ids["train_paired"]) and len(data.case_ids["train_paired"]) == 6
    result = evaluate_translation([run.weights])  # the data is read back from the card
    assert result["data"] == data.name and result["test_subjects"] == sorted(_subjects(data.case_ids["test"]))
    rows = {r["method"]: r for r in result["methods"]}
    assert set(rows) == {"histogram matching", "p2p_folder"}
    assert rows["p2p_folder"]["psnr"][0] == rows["p2p_folder"]["psnr"][0]  # a number, not NaN


def test_unpaired_method_on_paired_folder_data_sees_disjoint_cases(tmp_path):
    src, tgt = paired_folders(tmp_path / "data", 5)
    spec = f"folder:{src}:{tgt}:T1w:PDw"
    run = train_translate(tiny(mode="nec", name="nec_folder", data=spec, select_by="last"), tmp_path / "run", progress=False)
    ids = run.card.training_cases
    source_subjects = {i.partition(":")[0] for i in ids if i.endswith(":T1w")}
    target_subjects = {i.partition(":")[0] for i in ids if i.endswith(":PDw")}
    assert source_subjects and target_subjects and not source_subjects & target_subjects


def test_train_and_eval_on_an_nnunet_dataset_with_its_test_set(tmp_path):
    ds = nnunet_dataset(tmp_path, 4, n_test=1)
    spec = f"nnunet:{ds}:T1:T2"
    run = train_translate(tiny(mode="pix2pix", name="p2p_nnunet", data=spec, iterations=3), tmp_path / "run", progress=False)
    assert _subjects(run.card.training["test_cases"]) == {f"{ds.name}/case_004"}
    result = evaluate_translation([run.weights], data=spec)
    assert result["source_modality"] == "T1" and len(result["methods"]) == 2


def test_train_and_eval_a_simulator_pair_other_than_the_builtins(tmp_path, phantom_simulator):
    spec = "simulated:T1w:PDw"
    cfg = tiny(mode="pix2pix", name="p2p_t1_pd", data=spec, size=128, iterations=4, validate_every=2)
    run = train_translate(cfg, tmp_path / "run", progress=False)
    data = get_translation_data(spec)
    _check_run(run, data, spec)
    assert run.card.training["simulated"] is True
    result = evaluate_translation([run.weights], data=spec, histogram_matching=True, min_foreground=0.4)
    assert result["simulated"] and result["target_modality"] == "PDw" and result["protocol"]["histogram_matching"]
    # a model trained on held-out subjects of the same simulator is refused
    with pytest.raises(ValidationError, match="translate T1w -> PDw, but data"):
        evaluate_translation([run.weights], data="simulated:PDw:T1w")


def test_weights_trained_on_a_test_case_are_refused(tmp_path):
    src, tgt = paired_folders(tmp_path / "a", 5)
    run = train_translate(tiny(mode="pix2pix", name="p2p", data=f"folder:{src}:{tgt}", iterations=2), tmp_path / "run",
                          progress=False)
    trained = sorted(_subjects(run.card.training_cases))
    other = tmp_path / "b"
    for folder in ("T1w", "PDw"):  # another data set made of the training cases only: its test case was trained on
        (other / folder).mkdir(parents=True)
        for case in trained:
            (other / folder / f"{case}.nii.gz").write_bytes((tmp_path / "a" / folder / f"{case}.nii.gz").read_bytes())
    with pytest.raises(LeakageError, match="test case"):
        evaluate_translation([run.weights], data=f"folder:{other / 'T1w'}:{other / 'PDw'}")


def test_a_canvas_smaller_than_the_slices_is_refused_with_the_size_to_use(tmp_path):
    src, tgt = paired_folders(tmp_path / "data", 5, shape=(40, 36, 8))
    with pytest.raises(ValidationError, match="size=48"):
        train_translate(tiny(mode="pix2pix", data=f"folder:{src}:{tgt}"), tmp_path / "run", progress=False)
