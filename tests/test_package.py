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


def _repo():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_metadata_is_complete(tmp_path):
    """Build the wheel (from a copy of the tree, no network) and read its metadata: SPDX licence with the
    LICENSE file, classifiers, extras; no dependency the package never imports."""
    import email
    import shutil
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(_repo() / name, src / name)
    shutil.copytree(_repo() / "synthaug", src / "synthaug", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("synthaug-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = email.message_from_bytes(z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
        licence = z.read(next(n for n in names if n.endswith("licenses/LICENSE"))).decode()
    assert meta["License-Expression"] == "Apache-2.0" and meta["License-File"] == "LICENSE" and meta["License"] is None
    assert "Apache License" in licence and "Version 2.0" in licence
    classifiers = meta.get_all("Classifier")
    for prefix in ("Development Status ::", "Intended Audience ::", "Operating System ::",
                   "Programming Language :: Python :: 3.1"):
        assert any(c.startswith(prefix) for c in classifiers), prefix
    assert not any(c.startswith("License ::") for c in classifiers)  # the SPDX expression replaces them
    requires = meta.get_all("Requires-Dist")
    assert not any(r.startswith("elasticdeform") for r in requires)
    assert 'matplotlib>=3.7; extra == "plots"' in requires
    assert any(n.endswith("weights/cards/context_ct_a.json") for n in names)


def test_every_extra_hint_names_an_extra_that_installs_the_package():
    import re

    from synthaug._optional import _EXTRAS

    tomllib = pytest.importorskip("tomllib", reason="the standard library reads TOML from Python 3.11 on")

    extras = tomllib.loads((_repo() / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for module, (extra, dist) in _EXTRAS.items():
        names = {re.split(r"[<>=!~; \[]", r, maxsplit=1)[0].lower() for r in extras[extra]}
        if module in ("nnunetv2", "batchgeneratorsv2"):
            assert "nnunetv2" in names  # batchgeneratorsv2 comes with nnunetv2
        else:
            assert dist.lower() in names, (module, extra)


def test_readme_links_survive_a_package_index():
    """A package index renders the README without the source tree: every link is absolute or an anchor,
    and every source-tree path the README names exists."""
    import re

    readme = (_repo() / "README.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", readme)
    assert links and all(link.startswith(("https://", "http://", "#")) for link in links), links
    anchors = {"#" + re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", readme, flags=re.M)}
    assert {link for link in links if link.startswith("#")} <= anchors
    for path in re.findall(r"`((?:benchmarks|docs|integrations|scripts|constraints)/[\w./-]+)`", readme):
        assert (_repo() / path).exists(), path
