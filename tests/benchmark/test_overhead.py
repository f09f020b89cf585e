"""nnU-Net overhead measurement: the plain step and the synthesis hook timed on the same batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthaug.benchmark.overhead import measure_overhead, overhead_markdown, recipe_all_samples
from synthaug.errors import DataError, ValidationError
from synthaug.recipes.recipe import Recipe
from tests.integrations.nnunet import make_raw_dataset, write_recipe


def test_all_samples_recipe_scales_probabilities_and_drops_the_warm_up():
    r = Recipe.from_dict({"transforms": [
        {"name": "context_texture", "probability": 0.2, "options": {"weights": "x"}},
        {"name": "gaussian_mixture", "probability": 0.2}], "schedule": {"warmup_epochs": 5, "start": 0.0}})
    every = recipe_all_samples(r)
    assert [t.probability for t in every.transforms] == [0.5, 0.5] and every.schedule.factor(0) == 1.0
    with pytest.raises(ValidationError, match="nothing would be synthesised"):
        recipe_all_samples(Recipe.from_dict({"transforms": []}))


def test_markdown_table_from_rows():
    row = {"configuration": "2d", "batch_size": 5, "patch_size": [112, 128], "plain_seconds": 1.0,
           "synthesis_recipe_seconds": 0.05, "synthesised_per_call_recipe": 2.5, "ratio_recipe": 0.05,
           "synthesis_all_seconds": 0.08, "ratio_all": 0.08, "seconds_per_synthetic_sample": 0.016,
           "transforms": ["context_texture"], "weights": ["context_ct_a"]}
    md = overhead_markdown([row], command="cmd", machine="m", date="d", recipe="r.json", dataset="D",
                           setup=["prep"])
    assert "| 2d | 5 x 112x128 | 1.000 | 0.050 (2.5 samples/call) | 5.0% | 0.080 | 8.0% | 0.016 |" in md
    assert "    prep" in md and "Command: `cmd`" in md


@pytest.mark.slow
@pytest.mark.nnunet
def test_overhead_on_a_preprocessed_tiny_dataset(tmp_path, tiny_weights):
    pytest.importorskip("nnunetv2")
    raw = tmp_path / "raw"
    make_raw_dataset(raw, dataset_id=974, name="Overhead", shape=(48, 48, 1))
    env = {**os.environ, "nnUNet_raw": str(raw), "nnUNet_preprocessed": str(tmp_path / "pre"),
           "nnUNet_results": str(tmp_path / "res"), "OMP_NUM_THREADS": "1", "nnUNet_def_n_proc": "1"}
    exe = Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"
    res = subprocess.run([str(exe), "-d", "974", "-c", "2d", "-np", "1", "-npfp", "1"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:]
    folder = tmp_path / "pre" / "Dataset974_Overhead"
    recipe = write_recipe(tmp_path / "recipe.json", weights="tiny_ct", probability=0.5)
    row = measure_overhead(folder, "2d", recipe, repeats=2, warmup=1)
    assert row["configuration"] == "2d" and row["plain_seconds"] > 0 and row["synthesis_all_seconds"] > 0
    assert row["ratio_all"] > 0 and 0 <= row["synthesised_per_call_recipe"] <= row["batch_size"]
    assert row["weights"] == ["tiny_ct"] and json.dumps(row)
    with pytest.raises(ValidationError, match="configuration '3d_lowres' is not in"):
        measure_overhead(folder, "3d_lowres", recipe, repeats=1)
    with pytest.raises(DataError, match="not an nnU-Net preprocessed dataset folder"):
        measure_overhead(tmp_path / "pre" / "Dataset000_None", "2d", recipe, repeats=1)
