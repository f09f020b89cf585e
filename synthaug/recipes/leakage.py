"""The test split a recipe must never touch, by case id and by image content.

Every path that runs a recipe (``synthaug expand``, the nnU-Net trainer, the benchmark harness) builds a
:class:`TestSplit` from the dataset and hands it to every transform that reads extra images (style banks):
a bank refuses a case whose id is (or overlaps) a test case, and a case whose voxels are a test image's
(``content_hash``: a renamed or re-saved copy of a test image is still caught).

    >>> import numpy as np
    >>> content_hash(np.zeros((2, 2), np.float32)) == content_hash(np.zeros((1, 2, 2), np.int16))
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthaug.data.cache import content_hash

__all__ = ["TestSplit", "content_hash"]


@dataclass(frozen=True)
class TestSplit:
    """Test case ids (incl. a synthaug scenario's test slabs) and the content hashes of the test images."""

    ids: tuple[str, ...] = ()
    content: tuple[str, ...] = ()

    @classmethod
    def from_raw_dataset(cls, folder: str | Path) -> TestSplit:
        """From an nnU-Net raw dataset: ``imagesTs`` case ids and voxel hashes, plus dataset.json's synthaug test
        cases. A dataset without ``imagesTs`` gives the ids dataset.json lists (and no hashes).

        A synthaug scenario dataset marks some ``imagesTs`` cases with role ``report``: reported separately and
        *not* held out (cross-modality's ``mr_c_all`` holds the slices its generators may train on), so they are
        not part of the split here either, as in the benchmark harness's leakage check
        (:func:`synthaug.benchmark.downstream.open_dataset`'s held-out cases): one definition on every path."""
        import nibabel as nib

        root = Path(folder)
        meta = json.loads((root / "dataset.json").read_text()) if (root / "dataset.json").is_file() else {}
        ending = str(meta.get("file_ending", ".nii.gz"))
        scenario = meta.get("synthaug")
        cases = [c for c in scenario.get("cases", []) if isinstance(c, dict)] if isinstance(scenario, dict) else []
        report_only = {str(c.get("id")) for c in cases if c.get("role") == "report"}
        ids, content = set(), []
        for p in sorted((root / "imagesTs").glob(f"*{ending}")) if (root / "imagesTs").is_dir() else []:
            stem = p.name[: -len(ending)]
            case = stem.rsplit("_", 1)[0] if stem[-5:-4] == "_" and stem[-4:].isdigit() else stem
            if case in report_only:
                continue
            ids.add(case)
            content.append(content_hash(nib.load(str(p)).dataobj))
        ids.update(str(c["id"]) for c in cases if c.get("role") == "test" and "id" in c)
        return cls(ids=tuple(sorted(ids)), content=tuple(sorted(set(content))))

    def options_for(self, names: tuple[str, ...], given: dict[str, Any]) -> dict[str, Any]:
        """``test_cases`` / ``test_content`` options for a transform that has them (merged with the recipe's)."""
        out: dict[str, Any] = {}
        if "test_cases" in names:
            out["test_cases"] = tuple(sorted(set(given.get("test_cases", ())) | set(self.ids)))
        if "test_content" in names:
            out["test_content"] = tuple(sorted(set(given.get("test_content", ())) | set(self.content)))
        return out
