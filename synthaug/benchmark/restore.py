"""Restore a downstream work folder from a committed report, so that more seeds or arms can be added to it.

A report's JSON (``synthaug benchmark downstream`` / ``report`` write it beside the Markdown) holds the
work folder's ``benchmark.json`` (its ``benchmark`` block) and every run's full ``result.json`` (its
``results``). :func:`restore_work` writes them back into a work folder, so that a later
``synthaug benchmark downstream --work WORK --seeds ... --arms ...`` on a fresh machine skips the stored
runs (same definition: arm, profile, dataset, split) and adds only new ones; the rebuilt report then holds
old and new runs, each with the commit it was made from.

Nothing is overwritten: a run already in the work folder is kept when it is the stored one and refused
when it differs; a work folder of another dataset or split is refused. When the work folder is not the one
a built-in scenario's report was made in (its dataset exported to ``WORK/source``), dataset paths in the
arm definitions (a style bank under the exported dataset) move with it, and the stored runs' arm
fingerprints are recomputed for the moved definitions; a run whose fingerprint matches no arm of the report
is refused.

:func:`stored_settings` reads what rebuilding the report needs besides its runs (title, command, notes and
report options), so that ``synthaug benchmark report --work WORK --like REPORT.json`` rewrites the committed
report with the added runs and nothing else changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthaug._validate import check_folder
from synthaug.errors import DataError, ValidationError

__all__ = ["Restored", "StoredSettings", "restore_work", "stored_settings"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class Restored:
    """What :func:`restore_work` did.

    Attributes:
        work: the work folder; written: ``(arm, seed)`` runs written; kept: runs that were there already.
        moved: whether dataset paths moved (report made in another work folder).
    """

    work: Path
    written: tuple[tuple[str, int], ...]
    kept: tuple[tuple[str, int], ...]
    moved: bool


@dataclass(frozen=True)
class StoredSettings:
    """The settings a report was built with (its JSON's ``title``, ``command``, ``notes`` and ``options``).

    Attributes:
        title, command: as printed at the top of the report; notes: its Notes lines.
        no_harm_margin: Dice fraction (``ClaimRule.no_harm_margin``); headline_classes: the classes with
            their own headline; learned_classes: whether the learned-classes view was given.
        ceiling_file, in_domain_file: the ``--ceiling`` / ``--in-domain`` files (None: not given).
        predates: ``COMMIT:TEXT`` behaviour changes the runs were checked against.
    """

    title: str
    command: str
    notes: tuple[str, ...]
    no_harm_margin: float
    headline_classes: tuple[str, ...]
    learned_classes: bool
    ceiling_file: str | None
    in_domain_file: str | None
    predates: tuple[str, ...]


def stored_settings(report: str | os.PathLike[str]) -> StoredSettings:
    """The :class:`StoredSettings` of ``report``'s JSON; :class:`DataError` for a report written before its
    JSON recorded them (rebuild it once with ``--title``/``--note``/options given by hand)."""
    from synthaug.benchmark.report import read_report

    payload = read_report(report)
    options = payload.get("options")
    if not isinstance(options, Mapping) or "title" not in payload or "notes" not in payload:
        raise DataError(f"{report} predates reports that record their title, notes and options; rebuild it once "
                        "with 'synthaug benchmark report --work WORK --out OUT --title ... --note ...' and the "
                        "report options given by hand.")
    rule = options.get("rule") or {}
    return StoredSettings(
        title=str(payload["title"]), command=str(payload.get("command") or ""),
        notes=tuple(str(n) for n in payload["notes"]),
        no_harm_margin=float(rule.get("no_harm_margin", 0.01)),
        headline_classes=tuple(str(c) for c in options.get("headline_classes") or ()),
        learned_classes=bool(options.get("learned_classes")),
        ceiling_file=options.get("ceiling_file"), in_domain_file=options.get("in_domain_file"),
        predates=tuple(str(p) for p in options.get("predates") or ()))


def _old_work(meta: Mapping[str, Any]) -> str:
    """The work folder a report was made in (its dataset was exported to ``WORK/source/<name>``)."""
    source = Path(str(meta.get("source", "")))
    return str(source.parent.parent) if source.parent.name == "source" else ""


def restore_work(report: str | os.PathLike[str], work: str | os.PathLike[str], *, log: Log = print) -> Restored:
    """Write ``report``'s ``benchmark.json`` and runs into ``work`` (see the module docstring)."""
    from synthaug.benchmark.downstream import RESULT_FILE, _atomic_json, _read_json, _same_run, arm_from_dict
    from synthaug.benchmark.report import read_report
    from synthaug.benchmark.reproduce import _remap

    payload = read_report(report)
    meta = {k: v for k, v in payload["benchmark"].items() if k != "ignored_runs"}
    work_dir = check_folder("work", work).resolve()
    old = _old_work(meta)  # "" for a user dataset outside the work folder: its paths stay
    moved = bool(old) and old != str(work_dir)
    stored_arms = list(meta["arms"])
    if moved:
        meta = _remap(meta, old, str(work_dir))
    arms = {a["name"]: a for a in meta["arms"]}
    # stored fingerprint -> the fingerprint of the same arm with its paths moved (equal when nothing moved)
    fingerprints = {arm_from_dict(a).fingerprint(): arm_from_dict(arms[a["name"]]).fingerprint() for a in stored_arms}
    existing = _read_json(work_dir / "benchmark.json")
    if existing is not None and (existing.get("dataset"), existing.get("train_cases"), existing.get("test_cases")) != (
            meta["dataset"], meta["train_cases"], meta["test_cases"]):
        raise ValidationError(f"{work_dir} holds a benchmark of {existing.get('dataset')} with another split; "
                              "restore into a new work folder.")
    runs = []
    for r in payload["results"]:
        name, seed = str(r["arm"]), int(r["seed"])
        if name not in arms:
            raise DataError(f"{report}: run {name} seed {seed} belongs to no arm of the report; the file is damaged.")
        definition = dict(r["definition"])
        if definition.get("arm") not in fingerprints:
            raise DataError(f"{report}: run {name} seed {seed} was made with another definition of arm {name!r} "
                            "than the report lists; rebuild the report from its work folder first.")
        definition["arm"] = fingerprints[definition["arm"]]
        runs.append((name, seed, {**r, "definition": definition}))
    written, kept = [], []
    for name, seed, r in runs:
        folder = work_dir / "runs" / name / f"seed{seed}"
        previous = _read_json(folder / RESULT_FILE)
        if previous is not None:
            if not _same_run(previous.get("definition"), r["definition"]) or previous.get("cases") != r["cases"]:
                raise ValidationError(f"{folder / RESULT_FILE} holds another run of {name} seed {seed} than the "
                                      "report; nothing was written. Restore into a new work folder.")
            kept.append((name, seed))
        elif folder.exists() and any(folder.iterdir()):
            raise ValidationError(f"{folder} holds an unfinished run; remove it or restore into a new work folder.")
    for name, seed, r in runs:
        if (name, seed) in kept:
            continue
        folder = work_dir / "runs" / name / f"seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_json(folder / "definition.json", r["definition"])
        _atomic_json(folder / "commit.json", r.get("commit"))
        _atomic_json(folder / RESULT_FILE, r)
        written.append((name, seed))
    if existing is not None:  # arms recorded only in the work folder stay
        mine = set(arms)
        meta["arms"] = list(meta["arms"]) + [a for a in existing.get("arms", []) if a.get("name") not in mine]
    work_dir.mkdir(parents=True, exist_ok=True)
    _atomic_json(work_dir / "benchmark.json", meta)
    log(f"[restore] {work_dir}: {len(written)} run(s) written, {len(kept)} already there"
        + (f" (dataset paths moved from {old})" if moved else ""))
    return Restored(work_dir, tuple(written), tuple(kept), moved)
