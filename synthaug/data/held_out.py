"""Which cases of an nnU-Net raw dataset are held out: the one rule every path reads.

The benchmark harness (what it scores and what its leakage check protects), the nnU-Net trainer and
``synthaug expand`` (which cases a style bank may never touch) all call :func:`held_out_split`, so they cannot
disagree. The rule:

- every case in ``imagesTs``/``labelsTs`` is held out, except those a synthaug scenario dataset lists with
  role ``report`` (reported separately, *not* held out: cross-modality's ``mr_c_all`` includes the slices
  its generators may train on);
- a case dataset.json lists with role ``test`` is held out even when its files are absent (a trainer that
  only has the preprocessed dataset.json still protects it);
- evaluation groups are ``dataset.json["synthaug"]["test_groups"]`` (else a group ``test`` of the held-out
  cases in the folder, and a group ``report`` of the report-only ones if there are any); a group is held out
  when it holds a held-out case. A test-folder case in no group is listed in ``ungrouped`` (the harness
  refuses such a dataset: the case would be neither trained on nor scored).

    >>> meta = {"synthaug": {"test_groups": {"lower": ["a"], "all": ["b"]},
    ...                      "cases": [{"id": "a", "role": "test"}, {"id": "b", "role": "report"}]}}
    >>> split = held_out_split(meta, ["a", "b"])
    >>> split.ids, split.groups_held_out
    (('a',), ('lower',))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["HeldOut", "held_out_split"]


@dataclass(frozen=True)
class HeldOut:
    """The held-out split of one dataset (case ids in the order given, groups in dataset.json's order).

    ids: held-out cases; report_only: test-folder cases that are reported but not held out;
    groups: evaluation group -> case ids; groups_held_out: the groups holding a held-out case;
    ungrouped: cases present in the test folder but in no evaluation group.
    """

    ids: tuple[str, ...]
    report_only: tuple[str, ...]
    groups: Mapping[str, tuple[str, ...]]
    groups_held_out: tuple[str, ...]
    ungrouped: tuple[str, ...]


def _scenario_block(dataset_json: Mapping[str, Any]) -> Mapping[str, Any]:
    block = dataset_json.get("synthaug") if isinstance(dataset_json, Mapping) else None
    return block if isinstance(block, Mapping) else {}


def held_out_split(dataset_json: Mapping[str, Any], test_ids: Iterable[str]) -> HeldOut:
    """The held-out split of a dataset whose test folder holds ``test_ids`` (see the module docstring)."""
    block = _scenario_block(dataset_json)
    cases = [c for c in block.get("cases", []) if isinstance(c, Mapping) and "id" in c]
    role = {str(c["id"]): str(c.get("role")) for c in cases}
    present = list(dict.fromkeys(str(i) for i in test_ids))
    report_only = tuple(i for i in present if role.get(i) == "report")
    declared = [i for i, r in role.items() if r == "test" and i not in present]
    ids = tuple(i for i in present if i not in report_only) + tuple(declared)
    raw = block.get("test_groups")
    if isinstance(raw, Mapping) and raw:
        groups = {str(g): tuple(str(c) for c in members) for g, members in raw.items()}
    else:
        groups = {"test": tuple(i for i in present if i not in report_only)}
        if report_only:
            groups["report"] = report_only
    held = set(ids)
    grouped = {c for members in groups.values() for c in members}
    return HeldOut(
        ids=ids,
        report_only=report_only,
        groups=groups,
        groups_held_out=tuple(g for g, members in groups.items() if held & set(members)),
        ungrouped=tuple(i for i in present if i not in grouped),
    )
