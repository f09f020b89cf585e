"""The model card schema: typed documentation sections, validation, and migration of the older layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthaug.errors import WeightsError
from synthaug.weights import registry
from synthaug.weights.card import CARD_FORMAT, DataSource, ModelCard, UsageSpec, migrate

DATA = Path(__file__).with_name("data")
FORMAT1 = sorted(DATA.glob("*_format1.json"))  # the shipped cards as they were before format 2 (verbatim copies)


def _source(**changes):
    base = dict(name="ct_a", description="a CT", cases=("ctA_z000-009",), origin="pip download x", licence="unknown",
                modality="CT", spacing=(3.0, 3.0, 3.0), contrast="non-contrast")
    return DataSource(**{**base, **changes})


def test_documentation_sections_round_trip_through_json(tiny_context):
    _, card = tiny_context
    documented = card.replace(
        usage=UsageSpec(intended_use="augmentation", out_of_scope_use=("clinical use",), limitations=("one subject",)),
        training_data=(_source(),), licence="Apache-2.0", spacing=(3.0, 3.0),
    )
    again = ModelCard.from_json(documented.to_json())
    assert again == documented
    assert again.usage.out_of_scope_use == ("clinical use",) and again.training_data[0].spacing == (3.0, 3.0, 3.0)
    assert again.ct_contrast == ("non-contrast",) and again.hu_window == (-160.0, 240.0)  # the fixture's default window
    assert "usage.intended_use" not in again.undocumented() and "training_data" not in again.undocumented()
    assert set(card.undocumented()) >= {"usage.intended_use", "training_data", "licence", "spacing"}


def test_a_card_claiming_clinical_use_is_refused():
    with pytest.raises(WeightsError, match="not for clinical use"):
        UsageSpec(intended_use="diagnosis", clinical_use=True)


def test_usage_lists_must_be_lists_not_one_string():
    with pytest.raises(WeightsError, match="list of sentences"):
        UsageSpec(limitations="one long string")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"contrast": ""}, "contrast phase"),
        ({"spacing": ()}, "spacing"),
        ({"spacing": (3.0, 0.0, 3.0)}, "spacing"),
        ({"licence": ""}, "licence is empty"),
    ],
)
def test_data_source_validation(changes, match):
    with pytest.raises(WeightsError, match=match):
        _source(**changes)
    _source(modality="MR", contrast="")  # MR needs no contrast phase


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"spacing": [3.0]}, "spacing must hold 2"),
        ({"spacing": [3.0, -1.0]}, "spacing"),
        ({"sha256": "xyz"}, "64 lower-case hex"),
        ({"tensor_sha256": "A" * 64}, "64 lower-case hex"),
        ({"usage": {"intended_use": "x", "colour": "blue"}}, "unknown key"),
        ({"training_data": [{"name": "x"}]}, "training_data\\[0\\]"),
        ({"training_data": "ct_a"}, "list of data sources"),
        ({"intensity": {"kind": "magic"}}, "intensity"),
        ({"format": 9}, "format 9"),
    ],
)
def test_card_validation_names_the_field(tiny_context, changes, match):
    _, card = tiny_context
    with pytest.raises(WeightsError, match=match):
        ModelCard.from_dict({**card.to_dict(), **changes})


def test_read_names_the_file_in_every_error(tmp_path):
    path = tmp_path / "card.json"
    path.write_text("{")
    with pytest.raises(WeightsError, match=str(path)):
        ModelCard.read(path)
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(WeightsError, match=str(path)):
        ModelCard.read(path)


@pytest.mark.parametrize("path", FORMAT1, ids=lambda p: p.stem)
def test_format1_cards_migrate_to_what_the_re_export_stored(path):
    """The shipped cards as they were before the typed sections (no "format" key) still load, and their migrated
    features / inference sections equal the ones the re-exported files carry (the divisor, unknown to format 1,
    is filled from the network at load)."""
    old = json.loads(path.read_text())
    assert "format" not in old and "feature_options" in old
    card = ModelCard.from_dict(old)
    assert card.format == CARD_FORMAT and card.usage == UsageSpec() and card.training_data == ()
    assert card.tensor_sha256 == "" and card.inference.divisor == 0
    shipped = registry.get_card(card.name)
    assert card.features == shipped.features
    assert card.inference == shipped.inference.__class__(**{**shipped.inference.__dict__, "divisor": 0})
    assert card.arguments == shipped.arguments and card.training_cases == shipped.training_cases
    assert card.metrics == shipped.metrics and card.intensity == shipped.intensity


def test_format1_migration_details():
    ct = ModelCard.from_dict(json.loads((DATA / "context_ct_a_format1.json").read_text()))
    assert ct.features.names == ("mean", "entropy") and len(ct.features.stats.min) == 9
    assert ct.inference.canvas == (128, 128) and ct.inference.noise.z_dim == 0  # P2PF takes no latent
    pd = ModelCard.from_dict(json.loads((DATA / "translate_brain_pd_t2_resgan_format1.json").read_text()))
    assert pd.inference.patch == (32, 32, 32) and pd.inference.canvas == () and pd.features.names == ()


def test_format2_cards_migrate_with_empty_documentation(tiny_context):
    _, card = tiny_context
    d = card.to_dict()
    for key in ("usage", "training_data", "licence", "tensor_sha256"):
        d.pop(key)
    d["format"] = 2
    migrated = ModelCard.from_dict(d)
    assert migrated == card.replace(format=CARD_FORMAT)
    assert migrate(d)["format"] == CARD_FORMAT and d["format"] == 2  # the input is not modified
