"""The runnable MONAI and TorchIO examples in integrations/examples/ work (tiny generator)."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "integrations" / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.data
def test_monai_example_runs_and_synthesises(tiny_weights):
    out = _load("monai_pipeline").main(["--weights", "tiny_ct9", "--steps", "4", "--prob", "1.0", "--device", "cpu"])
    assert out["samples"] == 4 and out["synthesised"] == 4


@pytest.mark.data
def test_torchio_example_runs(tiny_weights):
    out = _load("torchio_pipeline").main(["--weights", "tiny_ct9", "--steps", "4", "--patch", "32"])
    assert out["patches"] >= 4
