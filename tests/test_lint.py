"""The package and its tests pass the project's own lint rules (``[tool.ruff]`` in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff comes with the dev extra (scripts/quickstart test installs it)")
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "synthaug", "tests", "benchmarks"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
