"""Recipe loading and validation: every bad input gives an error naming the key, the rule and the fix."""

import dataclasses
import json
from pathlib import Path

import pytest

from synthaug.data.vocabulary import superclass_vocabulary
from synthaug.errors import DataError, SynthAugError, ValidationError
from synthaug.recipes import (
    TransformDecl,
    get_transform,
    register_transform,
    transform_names,
    unregister_transform,
)
from synthaug.recipes import recipe as R
from synthaug.transforms.options import Options, OptionsTransform

SHIPPED = Path(__file__).resolve().parents[2] / "synthaug" / "recipes" / "library" / "context_ct.json"


def _write(tmp_path, d, name="r.json"):
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return p


def _minimal(**over):
    t = {"name": "context_texture", "probability": 0.5, "options": {"weights": "context_ct_a"}}
    t.update(over)
    return {"transforms": [t]}


def test_missing_recipe_env_names_the_variable_and_an_example(tmp_path):
    with pytest.raises(DataError, match="SYNTHAUG_RECIPE is not set") as e:
        R.recipe_from_env({})
    assert "Example" in str(e.value) and "context_texture" in str(e.value)
    with pytest.raises(DataError, match=r"SYNTHAUG_RECIPE='.*nope.json' does not name an existing file"):
        R.recipe_from_env({"SYNTHAUG_RECIPE": str(tmp_path / "nope.json")})
    with pytest.raises(DataError, match="does not exist"):
        R.load_recipe(tmp_path / "nope.json")


def test_env_recipe_loads(tmp_path):
    p = _write(tmp_path, _minimal())
    r = R.recipe_from_env({"SYNTHAUG_RECIPE": str(p)})
    assert r.transforms[0].name == "context_texture" and r.source == str(p)


def test_unknown_transform_name_suggests_the_closest(tmp_path):
    p = _write(tmp_path, _minimal(name="context_textures"))
    with pytest.raises(ValidationError, match=r"transforms\[0\]\.name.*unknown transform 'context_textures'.*"
                                              r"Did you mean 'context_texture'\?"):
        R.load_recipe(p)


@pytest.mark.parametrize("bad", [1.5, -0.1, "high", None, True])
def test_bad_probability(tmp_path, bad):
    p = _write(tmp_path, _minimal(probability=bad))
    with pytest.raises(ValidationError, match=r"transforms\[0\]\.probability"):
        R.load_recipe(p)


def test_probabilities_must_sum_to_at_most_one(tmp_path):
    d = _minimal(probability=0.7)
    d["transforms"].append(dict(d["transforms"][0]))
    with pytest.raises(ValidationError, match="sum to 1.4 > 1"):
        R.load_recipe(_write(tmp_path, d))


def test_unknown_option_and_reserved_options(tmp_path):
    d = _minimal(options={"weights": "context_ct_a", "perturbaton": 0.2})
    with pytest.raises(ValidationError, match="no option 'perturbaton'.*Did you mean 'perturbation'"):
        R.load_recipe(_write(tmp_path, d))
    d = _minimal(options={"weights": "context_ct_a", "deform": True})
    with pytest.raises(ValidationError, match="'deform' is set by the recipe itself"):
        R.load_recipe(_write(tmp_path, d))


def test_unknown_keys_and_bad_blocks(tmp_path):
    d = _minimal()
    d["schedul"] = {}
    with pytest.raises(ValidationError, match="unknown key 'schedul'.*Did you mean 'schedule'"):
        R.load_recipe(_write(tmp_path, d))
    d = _minimal()
    d["schedule"] = {"warmup_epochs": -1}
    with pytest.raises(ValidationError, match="schedule.warmup_epochs"):
        R.load_recipe(_write(tmp_path, d))
    d = _minimal()
    d["gate"] = {"threshold": 0.5}
    with pytest.raises(ValidationError, match="gate.checker"):
        R.load_recipe(_write(tmp_path, d))
    d = _minimal()
    d["budget"] = {"num_epochs": 0}
    with pytest.raises(ValidationError, match="budget.num_epochs"):
        R.load_recipe(_write(tmp_path, d))
    with pytest.raises(ValidationError, match=r"must be a list of transforms \(\[\] for none\)"):
        R.load_recipe(_write(tmp_path, {"transforms": {"name": "context_texture"}}))
    with pytest.raises(ValidationError, match="must be a list"):
        R.load_recipe(_write(tmp_path, {"schedule": {}}))  # the key is required
    off = R.load_recipe(_write(tmp_path, {"transforms": []}))  # explicit synthesis off (benchmark default arm)
    assert off.transforms == ()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValidationError, match="not valid JSON"):
        R.load_recipe(tmp_path / "bad.json")


def test_schedule_factor():
    s = R.Schedule(warmup_epochs=2, ramp_epochs=4, start=0.2)
    assert [s.factor(e) for e in (0, 1)] == [0.0, 0.0]
    assert s.factor(2) == pytest.approx(0.2)
    assert s.factor(4) == pytest.approx(0.6)
    assert s.factor(6) == 1.0 and s.factor(100) == 1.0
    assert R.Schedule().factor(0) == 1.0


def test_round_trip_checksum_and_yaml(tmp_path):
    d = _minimal()
    d.update(schedule={"warmup_epochs": 1, "ramp_epochs": 2}, targeting={"class_weights": {"b": 3}},
             gate={"checker": "seg", "threshold": 0.6}, budget={"num_epochs": 2}, seed=5)
    r = R.load_recipe(_write(tmp_path, d))
    again = R.Recipe.from_dict(r.to_dict())
    assert again.to_dict() == r.to_dict() and again.sha256() == r.sha256()
    # formatting and key order do not change the checksum
    (tmp_path / "pretty.json").write_text(json.dumps(d, indent=4, sort_keys=True))
    assert R.load_recipe(tmp_path / "pretty.json").sha256() == r.sha256()
    yaml = pytest.importorskip("yaml")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(d))
    assert R.load_recipe(tmp_path / "r.yaml").sha256() == r.sha256()


def test_budget_env_overrides_recipe_and_rejects_bad_values():
    b = R.budget_from_env(R.Budget(num_epochs=10, iterations_per_epoch=5),
                          {"SYNTHAUG_ITERS_PER_EPOCH": "3", "SYNTHAUG_VAL_ITERS": "2"})
    assert (b.num_epochs, b.iterations_per_epoch, b.val_iterations_per_epoch) == (10, 3, 2)
    with pytest.raises(ValidationError, match="SYNTHAUG_NUM_EPOCHS='zero' must be a positive integer"):
        R.budget_from_env(R.Budget(), {"SYNTHAUG_NUM_EPOCHS": "zero"})


def test_targeting_resolves_names_and_ids():
    t = R.Targeting(class_weights={"b": 3.0, "3": 2.0})
    assert t.resolve({"background": 0, "a": 1, "b": 2, "c": 3}) == {2: 3.0, 3: 2.0}
    with pytest.raises(ValidationError, match="class 'bb'.*Did you mean 'b'"):
        R.Targeting(class_weights={"bb": 1.0}).resolve({"background": 0, "a": 1, "b": 2})


@dataclasses.dataclass(frozen=True)
class _StrengthOptions(Options):
    strength: float = 1.0

    def validate(self) -> None:
        if self.strength < 0:
            raise ValidationError(f"strength must be >= 0, got {self.strength}.")


class _Strength(OptionsTransform):
    Options = _StrengthOptions


def test_registry_plugs_in_a_new_transform_with_one_entry(tmp_path):
    register_transform(TransformDecl("strength_test", _Strength))
    try:
        assert "strength_test" in transform_names()
        r = R.load_recipe(_write(tmp_path, {"transforms": [
            {"name": "strength_test", "probability": 0.3, "options": {"strength": 2.0}}]}))
        assert r.transforms[0].options == {"strength": 2.0}
        with pytest.raises(ValidationError, match="already registered"):
            register_transform(TransformDecl("strength_test", _Strength))
        with pytest.raises(ValidationError, match="no option 'strenght'.*Did you mean 'strength'"):
            R.load_recipe(_write(tmp_path, {"transforms": [
                {"name": "strength_test", "options": {"strenght": 2.0}}]}))
        with pytest.raises(ValidationError, match="strength must be >= 0"):  # the record validates recipe values too
            R.load_recipe(_write(tmp_path, {"transforms": [{"name": "strength_test", "options": {"strength": -1}}]}))
    finally:
        unregister_transform("strength_test")
    with pytest.raises(ValidationError, match="unknown transform"):
        get_transform("strength_test")
    with pytest.raises(ValidationError, match="built-in"):
        unregister_transform("context_texture")


def test_shipped_recipe_uses_context_ct_a_and_the_superclass_vocabulary():
    r = R.load_recipe(SHIPPED)
    (t,) = r.transforms
    assert t.name == "context_texture" and t.options["weights"] == "context_ct_a"
    assert list(t.options["label_map"]) == list(superclass_vocabulary().names)
    assert 0 < r.total_probability <= 1


def test_derive_seed_is_stable_and_separates_parts():
    assert R.derive_seed(0, "a", 1) == R.derive_seed(0, "a", 1)
    assert len({R.derive_seed(0, "a", 1), R.derive_seed(0, "a", 2), R.derive_seed(1, "a", 1),
                R.derive_seed(0, "a1", "")}) == 4
    assert 0 <= R.derive_seed("x") < 2**62


def test_errors_share_the_root():
    assert issubclass(ValidationError, SynthAugError) and issubclass(DataError, SynthAugError)
