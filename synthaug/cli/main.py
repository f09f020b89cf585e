"""Entry point of the ``synthaug`` command.

Each sub-command lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func=<callable(args) -> int>``.
The library raises :class:`synthaug.errors.SynthAugError` for expected failures; here they become a
one-line message on stderr and exit status 2 (never a traceback, never exit 0 on error).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from synthaug import __version__
from synthaug.errors import SynthAugError

# Modules under synthaug.cli that register sub-commands, in help order.
_COMMAND_MODULES = ("demo", "data", "weights", "recipe", "train", "evaluate", "nnunet", "benchmark", "predict")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synthaug",
        description="Generative data augmentation for medical image segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"synthaug {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"synthaug.cli.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name == f"synthaug.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except SynthAugError as exc:
        print(f"synthaug {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused (a file where a folder is due, no permission, disk full)
        what = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        print(f"synthaug {args.command}: error: {what}. Check that every path given exists where it must, is a folder "
              "where one is expected, and is writable.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"synthaug {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
