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
        """From an nnU-Net raw dataset: its held-out cases' ids and voxel hashes, by the one rule of
        :func:`synthaug.data.held_out.held_out_split` (the benchmark harness scores and guards the same cases):
        every ``imagesTs`` case except those a synthaug scenario dataset marks role ``report`` (reported, *not*
        held out: cross-modality's ``mr_c_all`` holds the slices its generators may train on), plus the cases
        dataset.json lists with role ``test``. A dataset without ``imagesTs`` gives those listed ids (no hashes).
        """
        import nibabel as nib

        from synthaug.data.held_out import held_out_split

        root = Path(folder)
        meta = json.loads((root / "dataset.json").read_text()) if (root / "dataset.json").is_file() else {}
        ending = str(meta.get("file_ending", ".nii.gz"))
        files: dict[str, list[Path]] = {}
        for p in sorted((root / "imagesTs").glob(f"*{ending}")) if (root / "imagesTs").is_dir() else []:
            stem = p.name[: -len(ending)]
            case = stem.rsplit("_", 1)[0] if stem[-5:-4] == "_" and stem[-4:].isdigit() else stem
            files.setdefault(case, []).append(p)
        split = held_out_split(meta, files)
        content = {content_hash(nib.load(str(p)).dataobj) for case in split.ids for p in files.get(case, [])}
        return cls(ids=tuple(sorted(split.ids)), content=tuple(sorted(content)))

    @classmethod
    def from_dataset_json(cls, dataset_json: dict[str, Any]) -> TestSplit:
        """Ids only, from a dataset.json without its image folders (e.g. nnU-Net's preprocessed copy): the cases
        it lists with role ``test`` (:func:`synthaug.data.held_out.held_out_split` with no test files)."""
        from synthaug.data.held_out import held_out_split

        return cls(ids=tuple(sorted(held_out_split(dataset_json, ()).ids)))

    def options_for(self, names: tuple[str, ...], given: dict[str, Any]) -> dict[str, Any]:
        """``test_cases`` / ``test_content`` options for a transform that has them (merged with the recipe's)."""
        out: dict[str, Any] = {}
        if "test_cases" in names:
            out["test_cases"] = tuple(sorted(set(given.get("test_cases", ())) | set(self.ids)))
        if "test_content" in names:
            out["test_content"] = tuple(sorted(set(given.get("test_content", ())) | set(self.content)))
        return out
