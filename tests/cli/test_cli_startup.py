"""The ``synthaug`` command starts without importing torch: building the parser imports argparse definitions
only; a command's implementation is imported when it runs."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "numpy", "scipy", "nibabel", "monai", "torchio", "nnunetv2", "synthaug.training.config")


def test_building_the_parser_imports_nothing_heavy():
    code = (
        "import json, sys\n"
        "from synthaug.cli.main import build_parser\n"
        "parser = build_parser()\n"
        "parser.parse_args(['train', 'translate', '--out', 'x', '--set', 'data=simulated:T1w:PDw'])\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_help_lists_every_command_without_torch():
    code = (
        "import sys, contextlib, io\n"
        "from synthaug.cli.main import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules)\n"
        "print(buf.getvalue())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    first, _, helptext = out.partition("\n")
    assert first == "False"
    for command in ("demo", "data", "weights", "train", "eval", "nnunet-path", "expand", "benchmark"):
        assert command in helptext
