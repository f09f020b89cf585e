"""Input guards read from the card: the channel's stated modality (nnU-Net ``channel_names``)."""

from types import SimpleNamespace

import pytest
import torch

from synthaug.errors import ValidationError
from synthaug.transforms.guards import channel_modality, check_channel_modality

CT_GEN = SimpleNamespace(name="ct_gen", modality="CT", source_modality=None)
MR_GEN = SimpleNamespace(name="mr_gen", modality="MR", source_modality=None)
CT_TO_MR = SimpleNamespace(name="ct2mr", modality="MR", source_modality="CT")


@pytest.mark.parametrize("name, stated", [
    ("CT", "CT"), ("ct", "CT"), ("T2w", "MR"), ("T1", "MR"), ("t1ce", "MR"), ("FLAIR", "MR"), ("MRI", "MR"),
    ("PD", "MR"), ("ADC", "MR"),
    ("zscore", None), ("noNorm", None), ("rescale_to_0_1", None), ("rgb_to_0_1", None), ("image", None), ("", None),
])
def test_a_channel_name_states_a_modality_or_only_a_normalisation(name, stated):
    assert channel_modality(name) == stated


def test_a_generator_is_refused_only_for_a_channel_stated_as_the_other_modality():
    check_channel_modality(CT_GEN, "CT")
    check_channel_modality(MR_GEN, "T2w")
    check_channel_modality(CT_TO_MR, "CT")  # a translator reads its source modality
    # a CT -> MR benchmark dataset keeps CT in HU under nnU-Net's z-score normalisation: not refused by name
    check_channel_modality(CT_GEN, "zscore")
    check_channel_modality(MR_GEN, "zscore")
    with pytest.raises(ValidationError, match=r"reads CT, but the dataset's channel is 'T2w' \(MR\)"):
        check_channel_modality(CT_GEN, "T2w")
    with pytest.raises(ValidationError, match=r"reads MR, but the dataset's channel is 'CT' \(CT\)"):
        check_channel_modality(MR_GEN, "CT")
    with pytest.raises(ValidationError, match="reads CT"):
        check_channel_modality(CT_TO_MR, "FLAIR")


def test_a_ct_crop_around_the_spine_passes_and_mr_or_normalised_ct_does_not():
    """CT in HU is recognised by fat (about -100 HU) as well as air: a crop around the spine holds no air."""
    from types import SimpleNamespace

    from synthaug.transforms.guards import check_modality

    card = SimpleNamespace(name="ct", modality="CT", source_modality="")
    crop = torch.full((1, 1, 8, 8), 40.0)
    crop[0, 0, :2] = -110.0  # paraspinal fat, no air
    check_modality(card, crop, enabled=True)
    for bad in (crop + 1000.0, (crop - crop.mean()) / crop.std()):  # MR-like positive units; a z-scored CT
        with pytest.raises(ValidationError, match="no fat-like"):
            check_modality(card, bad, enabled=True)
