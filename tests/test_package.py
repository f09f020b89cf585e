"""Package-level promises: light import, one exception root, missing extras named."""

import subprocess
import sys

import pytest

import synthaug
from synthaug import errors
from synthaug._optional import require


def test_import_synthaug_leaves_frameworks_unimported():
    code = (
        "import sys, synthaug, synthaug.transforms, synthaug.data, synthaug.features, synthaug.networks, "
        "synthaug.losses, synthaug.weights, synthaug.training, synthaug.cli.main\n"
        "synthaug.cli.main.build_parser()\n"
        "bad = [m for m in ('monai', 'torchio', 'nnunetv2') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at package import time: {out.stdout.strip()}"


def test_every_error_derives_from_the_root():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.SynthAugError)
    assert issubclass(errors.ValidationError, ValueError)
    assert issubclass(errors.MissingDependencyError, ImportError)


def test_missing_extra_is_named():
    with pytest.raises(errors.MissingDependencyError, match=r"synthaug\[nnunet\]"):
        require("nnunetv2.this_module_does_not_exist")


def test_version_and_py_typed():
    from importlib.resources import files

    assert synthaug.__version__
    assert files("synthaug").joinpath("py.typed").is_file()
