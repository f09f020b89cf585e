"""Config files and ``--set`` overrides: a value of the wrong kind is refused with the form to write."""

from __future__ import annotations

import pytest

from synthaug.errors import ValidationError
from synthaug.training.config import apply_overrides, config_from_dict, config_to_dict
from synthaug.training.train_context import ContextConfig


def test_list_option_given_as_comma_text_is_refused_with_the_json_form():
    # "widths=16,32,64,128" is not JSON, so it arrives as text; taken as a sequence its 12 characters would
    # silently become 12 "widths"
    values = apply_overrides(ContextConfig, {}, ["widths=16,32,64,128"])
    with pytest.raises(ValidationError, match=r"must be a list.*widths=\[32,64,128,256\]"):
        config_from_dict(ContextConfig, values)


def test_number_option_given_as_text_is_refused():
    with pytest.raises(ValidationError, match="must be a number.*iterations=3000"):
        config_from_dict(ContextConfig, apply_overrides(ContextConfig, {}, ["iterations=many"]))


def test_json_values_round_trip():
    values = apply_overrides(ContextConfig, {}, ["widths=[8,16,32,64]", "iterations=12", "lr_g=1", "name=x"])
    cfg = config_from_dict(ContextConfig, values)
    assert cfg.widths == (8, 16, 32, 64) and cfg.iterations == 12 and cfg.lr_g == 1 and cfg.name == "x"
    assert config_from_dict(ContextConfig, config_to_dict(cfg)) == cfg
