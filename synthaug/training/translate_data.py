"""Modality-translation datasets with fixed train / validation / test splits, and their samplers.

:func:`get_translation_data` takes a built-in name (table below) or the user's own data as a spec text
(:mod:`synthaug.training.translate_spec`: ``simulated:T1w:PDw``, ``folder:SRC_DIR:TGT_DIR``,
``unpaired-folder:...``, ``subjects:DIR:T1w:PDw``, ``nnunet:DATASET:0000:0001``); both give one
:class:`TranslationData` record with the same splits.

=======================  =============  ========  ========================================================
name                     translation    paired    content
=======================  =============  ========  ========================================================
``brain_t1_t2``          T1w -> T2w     yes       simulated spin-echo brain MR (``synthaug.data.mr_simulator``)
``brain_pd_t2``          PDw -> T2w     yes       simulated spin-echo brain MR
``abdomen_ct_mr``        CT -> MR       no        CT subject ``ct_a`` -> MR subject ``mr_c`` (upper half only)
``abdomen_ct_mr_upper``  CT -> MR       no        the same, CT training slab cut to z 64-82 (no pelvis)
=======================  =============  ========  ========================================================

Simulated brain splits (subjects ``simmr_<seed>_<i>``, deformed MNI anatomy, 2 mm): subjects
``0..n_train-1`` train; unpaired methods see the *source* contrast of the first half and the *target*
contrast of the second half only (as in the NEC paper: disjoint T1 and T2 training sets); paired methods
(pix2pix, ResGAN) see the first half paired, so every method trains on the same number of images.
The next ``n_validation`` subjects select weights (SSIM); the last ``n_test`` subjects are the held-out
test set and never enter training. The target contrast of the validation subjects is the
target-domain reference of the histogram-matching baseline. Everything here is *simulated* MR.

Abdominal CT -> MR (unpaired, no ground truth): CT ``ct_a`` slices z 0-82 train, z 84-94 validate,
z 96-112 test (the in-domain benchmark's held-out slab, never seen by the generator); MR ``mr_c``
upper half (``slab_indices(mr, "upper")``) is the only MR a generator sees (and the histogram
reference); the lower half is kept unseen for the distribution distance. Labels are TotalSegmentator
model predictions (not manual ground truth). ``abdomen_ct_mr_upper`` trains on CT z 64-82 only, the
part of the training slab nearest the MR field of view (kidneys, bowel, the liver tip; MR C's upper
half shows liver, spleen and bowel): with the pelvis in the CT set an unpaired discriminator rewards
painting upper-abdominal MR anatomy over pelvic CT. Validation and test slabs are unchanged.

Intensities follow the NEC recipe: each volume is clipped to its own 1-99 percentile range and scaled to
[-1, 1] (``IntensityConvention.percentile(1, 99)``). 2D models train on axial slices (axis 2) padded to
``size``; 3D models on random patches centred on foreground voxels.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from synthaug._validate import check_choice, closest
from synthaug.errors import DataError, ValidationError
from synthaug.intensity import IntensityConvention
from synthaug.training.translate_spec import (
    BuiltinData,
    FolderData,
    NnunetChannels,
    SimulatedPair,
    SubjectFolders,
    TranslationSpec,
    parse_translation_spec,
)

__all__ = [
    "SPLITS",
    "TranslationCase",
    "TranslationData",
    "TRANSLATION_DATA",
    "get_translation_data",
    "builtin_translation_data",
    "simulated_translation_data",
    "folder_translation_data",
    "subject_folders_translation_data",
    "nnunet_translation_data",
    "foreground_mask",
    "normalise_case",
    "SliceSet2D",
    "cut_translation_slices",
    "PatchSampler",
    "subject_of",
    "slab_id",
]

SPLITS: tuple[str, ...] = (
    "train_source",
    "train_target",
    "train_paired",
    "validation",
    "test",
    "reference",
    "test_target",
)
PROTOCOL_INTENSITY = IntensityConvention.percentile(1.0, 99.0)


@dataclass(frozen=True, eq=False)
class TranslationCase:
    """One volume (pair): raw ``source`` / ``target`` ``(X, Y, Z)`` arrays (either may be None), the
    foreground ``mask`` (from the source when present), an optional source ``label`` map and spacing."""

    case_id: str
    source: np.ndarray | None
    target: np.ndarray | None
    mask: np.ndarray
    spacing: tuple[float, float, float]
    label: np.ndarray | None = field(default=None, repr=False)

    @property
    def paired(self) -> bool:
        return self.source is not None and self.target is not None


@dataclass(frozen=True, eq=False)
class TranslationData:
    """A named translation dataset; splits are built lazily (:meth:`split`) and cached per process."""

    name: str
    source_modality: str
    target_modality: str
    paired: bool
    intensity: IntensityConvention
    spacing: float
    size: int
    case_ids: dict[str, tuple[str, ...]]
    loaders: dict[str, Callable[[], tuple[TranslationCase, ...]]] = field(repr=False)
    simulated: bool
    label_names: tuple[str, ...]
    label_source: str
    notes: str

    def split(self, name: str) -> tuple[TranslationCase, ...]:
        check_choice("split", name, SPLITS)
        return self.loaders[name]()

    def training_cases(self, paired: bool) -> tuple[str, ...]:
        """Case ids that a method of this kind (paired or not) trains on."""
        if paired:
            return self.case_ids["train_paired"]
        return self.case_ids["train_source"] + self.case_ids["train_target"]


def subject_of(case_id: str) -> str:
    """``"simmr_7_003:T1w"`` -> ``"simmr_7_003"`` (one simulated subject, any contrast); slab ids such as
    ``"ctA_z000-081"`` are returned unchanged (leakage checks compare their slice ranges)."""
    return case_id.partition(":")[0]


def slab_id(subject: str, start: int, stop: int) -> str:
    """Slab case id in the project's one format (:func:`synthaug.data.scenarios.slab_case_id`)."""
    from synthaug.data.scenarios import slab_case_id

    return slab_case_id(subject, start, stop)


def foreground_mask(image: np.ndarray, modality: str) -> np.ndarray:
    """Body (CT: > -500 HU) or head/brain (MR: > 10 % of the 99th percentile) mask of a raw volume.

    Thresholded, opened once, reduced to its largest connected component, holes filled in 3D and
    slice by slice (axis 2). Bool ``(X, Y, Z)``.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 3:
        raise ValidationError(f"foreground_mask needs an (X, Y, Z) volume, got shape {img.shape}.")
    thr = -500.0 if modality.upper() == "CT" else 0.1 * float(np.percentile(img, 99))
    m = img > thr
    m = ndimage.binary_opening(m, iterations=1)
    lab, n = ndimage.label(m)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        m = lab == int(sizes.argmax())
    m = ndimage.binary_fill_holes(m)
    for z in range(m.shape[2]):  # per-slice filling closes cavities open in 3D (sulci, bowel)
        m[:, :, z] = ndimage.binary_fill_holes(m[:, :, z])
    if not m.any():
        raise ValidationError(f"the {modality} volume has no foreground above {thr:g}; is it empty?")
    return m


def normalise_case(image: np.ndarray, intensity: IntensityConvention = PROTOCOL_INTENSITY) -> torch.Tensor:
    """Raw ``(X, Y, Z)`` -> float32 tensor in [-1, 1] with the volume's own fit of ``intensity``."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    return intensity.normalise(t, intensity.fit(t))


# ------------------------------------------------------------------------------------------ brain


_BRAIN_SEED = 2024


@functools.lru_cache(maxsize=64)
def _tissue_maps():
    from synthaug.data.subjects import load_mni_tissue_maps

    return load_mni_tissue_maps()


@functools.lru_cache(maxsize=48)
def _simulated(seed: int, index: int, n_total: int, contrasts: tuple[str, ...], spacing: float):
    """Subject ``index`` of ``simulate_subjects(maps, n=n_total, seed=seed)`` (same seeds and names), alone."""
    from synthaug.data.mr_simulator import simulate_brain_mr

    seeds = np.random.SeedSequence(seed).generate_state(n_total)
    return simulate_brain_mr(
        _tissue_maps(), seed=int(seeds[index]), contrasts=contrasts, spacing=spacing, name=f"simmr_{seed}_{index:03d}"
    )


def _brain(name: str, source: str, target: str, *, n_train: int = 10, n_validation: int = 2, n_test: int = 4) -> TranslationData:
    from synthaug.data.mr_simulator import SIMULATED_NOTE

    seed, spacing = _BRAIN_SEED, 2.0
    n_total = n_train + n_validation + n_test
    contrasts = (source, target)
    half = n_train // 2
    subjects = {
        "train_source": range(0, half),
        "train_target": range(half, n_train),
        "train_paired": range(0, half),
        "validation": range(n_train, n_train + n_validation),
        "test": range(n_train + n_validation, n_total),
        "reference": range(n_train, n_train + n_validation),
        "test_target": range(0),
    }
    keep = {  # which contrast(s) each split exposes
        "train_source": (True, False),
        "train_target": (False, True),
        "train_paired": (True, True),
        "validation": (True, True),
        "test": (True, True),
        "reference": (False, True),
        "test_target": (False, True),
    }

    def sid(i: int) -> str:
        return f"simmr_{seed}_{i:03d}"

    def ids(split: str) -> tuple[str, ...]:
        s, t = keep[split]
        out = []
        for i in subjects[split]:
            if s:
                out.append(f"{sid(i)}:{source}")
            if t:
                out.append(f"{sid(i)}:{target}")
        return tuple(out)

    def loader(split: str) -> Callable[[], tuple[TranslationCase, ...]]:
        @functools.lru_cache(maxsize=1)
        def load() -> tuple[TranslationCase, ...]:
            s, t = keep[split]
            cases = []
            for i in subjects[split]:
                sim = _simulated(seed, i, n_total, contrasts, spacing)
                src, tgt = sim.images[source], sim.images[target]
                mask = foreground_mask(src if s else tgt, source if s else target)
                cases.append(
                    TranslationCase(
                        sid(i), src if s else None, tgt if t else None, mask, sim.spacing, sim.label if s else None
                    )
                )
            return tuple(cases)

        return load

    return TranslationData(
        name=name,
        source_modality=source,
        target_modality=target,
        paired=True,
        intensity=PROTOCOL_INTENSITY,
        spacing=spacing,
        size=128,
        case_ids={k: ids(k) for k in SPLITS},
        loaders={k: loader(k) for k in SPLITS},
        simulated=True,
        label_names=("background", "csf", "gray_matter", "white_matter"),
        label_source=SIMULATED_NOTE,
        notes=f"{SIMULATED_NOTE}; {n_total} subjects (seed {seed}, {spacing:g} mm): {n_train} train "
        f"(unpaired methods: {source} of the first {half}, {target} of the other {n_train - half}; paired methods: "
        f"the first {half} paired), {n_validation} validation, {n_test} test.",
    )


# ------------------------------------------------------------------------------------------ abdomen

_CT_TRAIN, _CT_VALIDATION, _CT_TEST = (0, 82), (84, 94), (96, 112)


def _abdomen(name: str = "abdomen_ct_mr", ct_train: tuple[int, int] = _CT_TRAIN) -> TranslationData:
    from synthaug.data.subjects import TOTALSEG_LABEL_SOURCE, load_subject, slab_indices
    from synthaug.data.vocabulary import superclass_vocabulary

    case_id = slab_id

    @functools.lru_cache(maxsize=1)
    def subjects():
        return load_subject("ct_a"), load_subject("mr_c")

    def mr_range(part: str) -> tuple[int, int]:
        sl = slab_indices(subjects()[1], part)
        return int(sl.start), int(sl.stop)

    def ct_case(z: tuple[int, int], with_label: bool) -> TranslationCase:
        from synthaug.data.vocabulary import to_shared, to_superclasses

        ct = subjects()[0]
        img = ct.image[:, :, z[0] : z[1]]
        lab = to_superclasses(to_shared(ct.label[:, :, z[0] : z[1]], "total")).astype(np.int16) if with_label else None
        return TranslationCase(case_id("ct_a", *z), img, None, foreground_mask(img, "CT"), ct.spacing, lab)

    def mr_case(part: str) -> TranslationCase:
        mr = subjects()[1]
        a, b = mr_range(part)
        img = mr.image[:, :, a:b]
        return TranslationCase(case_id("mr_c", a, b), None, img, foreground_mask(img, "MR"), mr.spacing)

    # mr_c has 20 axial slices: its halves are z 0-10 (lower) and 10-20 (upper); the ids are checked
    # against slab_indices when the split is loaded.
    mr_ids = {"upper": case_id("mr_c", 10, 20), "lower": case_id("mr_c", 0, 10)}

    def mr_loader(part: str) -> Callable[[], tuple[TranslationCase, ...]]:
        @functools.lru_cache(maxsize=1)
        def load() -> tuple[TranslationCase, ...]:
            case = mr_case(part)
            if case.case_id != mr_ids[part]:
                raise ValidationError(f"mr_c {part} half is {case.case_id}, expected {mr_ids[part]}; the sample data changed.")
            return (case,)

        return load

    def ct_loader(z: tuple[int, int], with_label: bool) -> Callable[[], tuple[TranslationCase, ...]]:
        return functools.lru_cache(maxsize=1)(lambda: (ct_case(z, with_label),))

    empty: Callable[[], tuple[TranslationCase, ...]] = lambda: ()  # noqa: E731
    loaders = {
        "train_source": ct_loader(ct_train, False),
        "train_target": mr_loader("upper"),
        "train_paired": empty,
        "validation": ct_loader(_CT_VALIDATION, False),
        "test": ct_loader(_CT_TEST, True),
        "reference": mr_loader("upper"),
        "test_target": mr_loader("lower"),
    }
    ids = {
        "train_source": (case_id("ct_a", *ct_train),),
        "train_target": (mr_ids["upper"],),
        "train_paired": (),
        "validation": (case_id("ct_a", *_CT_VALIDATION),),
        "test": (case_id("ct_a", *_CT_TEST),),
        "reference": (mr_ids["upper"],),
        "test_target": (mr_ids["lower"],),
    }
    return TranslationData(
        name=name,
        source_modality="CT",
        target_modality="MR",
        paired=False,
        intensity=PROTOCOL_INTENSITY,
        spacing=3.0,
        size=128,
        case_ids=ids,
        loaders=loaders,
        simulated=False,
        label_names=tuple(superclass_vocabulary().names),
        label_source=TOTALSEG_LABEL_SOURCE,
        notes=f"Unpaired CT (ct_a z {ct_train[0]}-{ct_train[1]} train, 84-94 validation, 96-112 test) -> MR (mr_c upper half for training; "
        "lower half unseen, for the distribution distance). Labels: TotalSegmentator model predictions.",
    )


TRANSLATION_DATA: dict[str, Callable[[], TranslationData]] = {
    "brain_t1_t2": lambda: _brain("brain_t1_t2", "T1w", "T2w"),
    "brain_pd_t2": lambda: _brain("brain_pd_t2", "PDw", "T2w"),
    "abdomen_ct_mr": _abdomen,
    "abdomen_ct_mr_upper": lambda: _abdomen("abdomen_ct_mr_upper", ct_train=(64, 82)),
}


def builtin_translation_data(name: str) -> TranslationData:
    """A built-in dataset of :data:`TRANSLATION_DATA` (built afresh; :func:`get_translation_data` caches)."""
    if name not in TRANSLATION_DATA:
        from synthaug.training.translate_spec import spec_syntax

        raise ValidationError(
            f"unknown translation data {name!r}; built-in: {sorted(TRANSLATION_DATA)}.{closest(name, TRANSLATION_DATA)} "
            f"Your own data: {spec_syntax()}."
        )
    return TRANSLATION_DATA[name]()


def simulated_translation_data(source: str, target: str, *, name: str | None = None) -> TranslationData:
    """Simulated brain MR, ``source`` -> ``target`` contrast (any two of ``SEQUENCE_PRESETS``), with the
    subjects and splits of the built-in brain datasets."""
    return _brain(name or f"simulated:{source}:{target}", source, target)


_CACHE: dict[str, tuple[object, TranslationData]] = {}


def get_translation_data(spec: str | TranslationSpec) -> TranslationData:
    """The dataset of a ``data=`` text or record (:mod:`synthaug.training.translate_spec`): a built-in name
    (``brain_t1_t2``), ``simulated:T1w:PDw``, ``folder:SRC_DIR:TGT_DIR``, ``unpaired-folder:...``,
    ``subjects:DIR:T1w:PDw`` or ``nnunet:DATASET:0000:0001``. Its splits load on first use and stay cached
    in this process."""
    parsed = parse_translation_spec(spec)
    key = parsed.text
    # a built-in entry replaced at run time (tests) is rebuilt; user data is keyed by its canonical text
    identity: object = TRANSLATION_DATA.get(key) if isinstance(parsed, BuiltinData) else key
    hit = _CACHE.get(key)
    if hit is None or hit[0] is not identity:
        _CACHE[key] = (identity, _build(parsed))
    return _CACHE[key][1]


# ------------------------------------------------------------------------------------------ user data


_NIFTI_ENDINGS = (".nii.gz", ".nii")


def _nifti_stem(name: str) -> str | None:
    for ending in _NIFTI_ENDINGS:
        if name.endswith(ending) and len(name) > len(ending):
            return name[: -len(ending)]
    return None


@dataclass(frozen=True)
class _Header:
    """Shape, spacing and affine of a NIfTI file in the RAS-closest orientation the volumes are read in."""

    path: Path
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: np.ndarray = field(repr=False)


def _header(path: Path) -> _Header:
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise DataError(f"{path} is not a readable NIfTI file ({exc}).") from exc
    shape = tuple(int(n) for n in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise DataError(f"{path} has shape {tuple(img.shape)}; translation data must be 3D volumes (X, Y, Z).")
    ornt = nib.orientations.io_orientation(img.affine)
    canon_shape, canon_zoom = [0, 0, 0], [0.0, 0.0, 0.0]
    zooms = img.header.get_zooms()[:3]
    for axis in range(3):
        canon_shape[int(ornt[axis, 0])] = shape[axis]
        canon_zoom[int(ornt[axis, 0])] = float(zooms[axis])
    affine = img.affine @ nib.orientations.inv_ornt_aff(ornt, shape)
    return _Header(path, tuple(canon_shape), tuple(canon_zoom), affine)  # type: ignore[arg-type]


def _read(header: _Header) -> np.ndarray:
    import nibabel as nib

    img = nib.as_closest_canonical(nib.squeeze_image(nib.load(str(header.path))))
    return np.asarray(img.dataobj, dtype=np.float32)


def _mask_of(image: np.ndarray, modality: str, path: Path) -> np.ndarray:
    try:
        return foreground_mask(image, modality)
    except ValidationError as exc:
        raise DataError(f"{path}: {exc} Remove the file or fix its intensities.") from exc


def _check_pair(case: str, src: _Header, tgt: _Header) -> None:
    if src.shape != tgt.shape:
        raise DataError(
            f"paired case {case!r}: the source {src.path.name} has shape {src.shape} but the target {tgt.path.name} has "
            f"{tgt.shape}; paired images must share one grid. Resample the target onto the source grid (e.g. with "
            "nibabel.processing.resample_from_to), or use unpaired data (unpaired-folder:, a method nec/cyclegan)."
        )
    if not np.allclose(src.affine, tgt.affine, atol=0.05):
        raise DataError(
            f"paired case {case!r}: {src.path.name} and {tgt.path.name} have the same shape but different affines "
            f"(voxel-to-world matrices); paired images must share one grid. Resample the target onto the source grid."
        )


def _files_translation_data(
    name: str,
    *,
    source_modality: str,
    target_modality: str,
    sources: dict[str, Path],
    targets: dict[str, Path],
    paired: bool,
    fixed_test: tuple[str, ...] = (),
    fixed_target_test: tuple[str, ...] = (),
    labels: dict[str, Path] | None = None,
    label_names: tuple[str, ...] = (),
    label_source: str = "no labels",
    simulated: bool = False,
    what: str,
) -> TranslationData:
    """Translation data from one file per case and modality (case names are the keys).

    Paired: the cases present in both ``sources`` and ``targets`` (checked to share one grid), split by
    :func:`~synthaug.training.translate_spec.split_cases`. Unpaired: each side split on its own; a case name
    held out on the source side is held out on the target side too. Headers are read now (shapes,
    grids: errors come before training); volumes load when a split is first used.
    """
    from synthaug.training.translate_spec import SPLIT_SEED, TEST_FRACTION, VALIDATION_FRACTION, split_cases

    labels = labels or {}
    heads = {("s", c): _header(p) for c, p in sources.items()}
    heads.update({("t", c): _header(p) for c, p in targets.items()})
    if paired:
        names = sorted(set(sources) & set(targets))
        for c in names:
            _check_pair(c, heads["s", c], heads["t", c])
        split = split_cases(names, paired=True, fixed_test=fixed_test, what=what)
        train = split["train"]
        half = len(train) // 2
        members = {  # split -> (case names, source shown, target shown)
            "train_source": (train[:half], True, False),
            "train_target": (train[half:], False, True),
            "train_paired": (train, True, True),
            "validation": (split["validation"], True, True),
            "test": (split["test"], True, True),
            "reference": (split["validation"], False, True),
            "test_target": ((), False, True),
        }
        how = (
            f"{len(names)} paired cases: {len(train)} train (paired methods: all; unpaired methods: {source_modality} "
            f"of {half}, {target_modality} of the other {len(train) - half}), {len(split['validation'])} validation "
            f"(weight selection, histogram reference), {len(split['test'])} test"
        )
    else:
        s = split_cases(sorted(sources), paired=False, fixed_test=fixed_test, what=f"{what} (source side)")
        forced = tuple(sorted(set(targets) & set(s["test"]))) + tuple(fixed_target_test)
        t = split_cases(sorted(targets), paired=False, fixed_test=tuple(sorted(set(forced))), what=f"{what} (target side)")
        members = {
            "train_source": (s["train"], True, False),
            "train_target": (t["train"], False, True),
            "train_paired": ((), True, True),
            "validation": ((), True, False),
            "test": (s["test"], True, False),
            "reference": (t["train"], False, True),
            "test_target": (t["test"], False, True),
        }
        how = (
            f"unpaired: {len(sources)} {source_modality} cases ({len(s['train'])} train, {len(s['test'])} test), "
            f"{len(targets)} {target_modality} cases ({len(t['train'])} train and histogram reference, "
            f"{len(t['test'])} held out for the distribution distance)"
        )
    shown = {h for k, (cases, src, tgt) in members.items() for h in
             ([("s", c) for c in cases] if src else []) + ([("t", c) for c in cases] if tgt else [])}
    extents = [max(heads[h].shape[:2]) for h in shown]
    size = max(16, -(-max(extents) // 16) * 16)
    spacing = float(np.median([heads[h].spacing[a] for h in shown for a in (0, 1)]))

    def ids(split: str) -> tuple[str, ...]:
        cases, src, tgt = members[split]
        return tuple(i for c in cases for i in ([f"{c}:{source_modality}"] if src else []) + ([f"{c}:{target_modality}"] if tgt else []))

    def loader(split: str) -> Callable[[], tuple[TranslationCase, ...]]:
        @functools.lru_cache(maxsize=1)
        def load() -> tuple[TranslationCase, ...]:
            cases, src, tgt = members[split]
            out = []
            for c in cases:
                s_head, t_head = heads.get(("s", c)), heads.get(("t", c))
                s_img = _read(s_head) if src and s_head is not None else None
                t_img = _read(t_head) if tgt and t_head is not None else None
                first, modality, head = (s_img, source_modality, s_head) if s_img is not None else (t_img, target_modality, t_head)
                lab = None
                if s_img is not None and c in labels:
                    lab = _read(_header(labels[c])).astype(np.int16)
                out.append(TranslationCase(c, s_img, t_img, _mask_of(first, modality, head.path), head.spacing, lab))
            return tuple(out)

        return load

    rule = (f"{name}: {how}. Held-out cases: " + ("the dataset's own test set" if fixed_test else
            f"sorted case names permuted with seed {SPLIT_SEED}, {TEST_FRACTION:.0%} test"
            + (f", {VALIDATION_FRACTION:.0%} validation" if paired else "")) + ".")
    return TranslationData(
        name=name,
        source_modality=source_modality,
        target_modality=target_modality,
        paired=paired,
        intensity=PROTOCOL_INTENSITY,
        spacing=spacing,
        size=size,
        case_ids={k: ids(k) for k in SPLITS},
        loaders={k: loader(k) for k in SPLITS},
        simulated=simulated,
        label_names=label_names,
        label_source=label_source,
        notes=rule,
    )


def _nifti_files(folder: Path) -> dict[str, Path]:
    out = {}
    for f in sorted(folder.iterdir()):
        stem = _nifti_stem(f.name)
        if stem is not None and f.is_file():
            out[stem] = f
    if not out:
        raise DataError(f"{folder} holds no NIfTI files (.nii or .nii.gz); give a folder with one volume per case.")
    return out


def folder_translation_data(spec: FolderData) -> TranslationData:
    """NIfTI folders (``folder:`` paired by file name, ``unpaired-folder:`` any files)."""
    import warnings

    sources, targets = _nifti_files(spec.source_dir), _nifti_files(spec.target_dir)
    if spec.paired:
        common = set(sources) & set(targets)
        if not common:
            raise DataError(
                f"no NIfTI pairs: {spec.source_dir} holds {sorted(sources)[:3]}... and {spec.target_dir} holds "
                f"{sorted(targets)[:3]}...; paired data needs the same file name in both folders (case_001.nii.gz in "
                "each). For images of different cases use data=unpaired-folder:SRC_DIR:TGT_DIR."
            )
        alone = sorted(set(sources) ^ set(targets))
        if alone:
            warnings.warn(f"data=folder: {len(alone)} file(s) without a partner are not used: {alone[:5]}", stacklevel=2)
    return _files_translation_data(
        spec.text, source_modality=spec.source_name, target_modality=spec.target_name, sources=sources,
        targets=targets, paired=spec.paired, what=f"data={spec.text}",
    )


def subject_folders_translation_data(spec: SubjectFolders) -> TranslationData:
    """``DIR/<case>/<SOURCE>.nii.gz`` + ``<TARGET>.nii.gz`` (e.g. ``synthaug data simulate-mr`` output)."""
    from synthaug.data.mr_simulator import BRAIN_TISSUE_CLASSES, SIMULATED_NOTE

    sources, targets, labels, seen = {}, {}, {}, set()
    for folder in sorted(p for p in spec.root.iterdir() if p.is_dir()):
        files = {_nifti_stem(f.name): f for f in folder.iterdir() if _nifti_stem(f.name)}
        seen.update(files)
        if spec.source in files and spec.target in files:
            sources[folder.name], targets[folder.name] = files[spec.source], files[spec.target]
            if "label" in files:
                labels[folder.name] = files["label"]
    if not sources:
        raise DataError(
            f"no case folder in {spec.root} holds both {spec.source}.nii.gz and {spec.target}.nii.gz (files seen: "
            f"{sorted(seen)[:8]}); name contrasts as the files are named, e.g. subjects:{spec.root}:T1w:PDw."
        )
    simulated = (spec.root / "simulation.json").is_file()
    return _files_translation_data(
        spec.text, source_modality=spec.source, target_modality=spec.target, sources=sources, targets=targets,
        paired=True, labels=labels if simulated else {},
        label_names=tuple(BRAIN_TISSUE_CLASSES.values()) if simulated else (),
        label_source=SIMULATED_NOTE if simulated else "no labels", simulated=simulated, what=f"data={spec.text}",
    )


@dataclass(frozen=True)
class _NnunetDataset:
    root: Path
    ending: str
    channels: dict[int, str]
    label_names: tuple[str, ...]

    def channel(self, text: str) -> int:
        """Index of a channel given as ``0001``, ``1`` or its ``dataset.json`` name."""
        if text.isdigit() and int(text) in self.channels:
            return int(text)
        by_name = {v.lower(): k for k, v in self.channels.items()}
        if text.lower() in by_name:
            return by_name[text.lower()]
        valid = ", ".join(f"{k:04d} ({v})" for k, v in sorted(self.channels.items()))
        raise DataError(f"{self.root}: no channel {text!r}; dataset.json channel_names declares {valid}. "
                        "Give a channel by index or name.")

    def cases(self, split: str, channel: int) -> dict[str, Path]:
        folder = self.root / f"images{split}"
        if not folder.is_dir():
            return {}
        tail = f"_{channel:04d}{self.ending}"
        return {f"{self.root.name}/{f.name[: -len(tail)]}": f for f in sorted(folder.iterdir()) if f.name.endswith(tail)}

    def labels(self) -> dict[str, Path]:
        out = {}
        for split in ("Tr", "Ts"):
            folder = self.root / f"labels{split}"
            if folder.is_dir():
                out.update({f"{self.root.name}/{f.name[: -len(self.ending)]}": f for f in sorted(folder.iterdir())
                            if f.name.endswith(self.ending)})
        return out


def _nnunet_dataset(root: Path) -> _NnunetDataset:
    import json

    hint = ("expected an nnU-Net raw dataset folder DatasetXXX_Name/ with dataset.json and imagesTr/; "
            "for plain NIfTI folders use data=folder:SRC_DIR:TGT_DIR.")
    if not root.is_dir():
        raise DataError(f"{root} does not exist; {hint}")
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise DataError(f"{root} is not an nnU-Net raw dataset: it has no dataset.json; {hint}")
    try:
        meta = json.loads(meta_path.read_text())
        channels = {int(k): str(v) for k, v in meta["channel_names"].items()}
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise DataError(f"{meta_path} is not a dataset.json with channel_names ({exc!r}); {hint}") from exc
    ending = str(meta.get("file_ending", ".nii.gz"))
    if ending not in _NIFTI_ENDINGS:
        raise DataError(f"{meta_path}: file_ending {ending!r}; synthaug reads NIfTI (.nii.gz, .nii) only. Convert the images.")
    if not (root / "imagesTr").is_dir():
        raise DataError(f"{root} has no imagesTr/ folder; {hint}")
    labels = meta.get("labels", {})
    ids = sorted((v, k) for k, v in labels.items() if isinstance(v, int)) if isinstance(labels, dict) else []
    names = tuple(k for _, k in ids) if [i for i, _ in ids] == list(range(len(ids))) else ()
    return _NnunetDataset(root, ending, channels, names)


def nnunet_translation_data(spec: NnunetChannels) -> TranslationData:
    """Two channels of one nnU-Net raw dataset (paired) or a channel of each of two datasets (unpaired).

    ``imagesTs`` cases (with the channel(s)) are the test set when present; labels (``labelsTr``/``labelsTs``)
    are read for the source cases when present (label fidelity with a segmenter)."""
    src_ds = _nnunet_dataset(spec.source_dataset)
    tgt_ds = src_ds if spec.paired else _nnunet_dataset(spec.target_dataset)
    a, b = src_ds.channel(spec.source_channel), tgt_ds.channel(spec.target_channel)
    if spec.paired and a == b:
        raise ValidationError(f"data={spec.text}: source and target are the same channel {a:04d}; give two channels.")
    s_name, t_name = src_ds.channels[a], tgt_ds.channels[b]
    if s_name == t_name:  # e.g. two channels both called "MRI": tell them apart by index
        s_name, t_name = f"{s_name}_{a:04d}", f"{t_name}_{b:04d}"
    sources, targets = src_ds.cases("Tr", a), tgt_ds.cases("Tr", b)
    if not sources or not targets:
        which = spec.source_dataset if not sources else spec.target_dataset
        raise DataError(f"{which}/imagesTr holds no <case>_XXXX{src_ds.ending} file of the requested channel; check the "
                        "channel (dataset.json channel_names) and the file names.")
    test_s, test_t = src_ds.cases("Ts", a), tgt_ds.cases("Ts", b)
    if spec.paired:
        test_s = {c: p for c, p in test_s.items() if c in test_t}
        test_t = {c: test_t[c] for c in test_s}
    labels = src_ds.labels()
    return _files_translation_data(
        spec.text, source_modality=s_name, target_modality=t_name, sources={**sources, **test_s},
        targets={**targets, **test_t}, paired=spec.paired, fixed_test=tuple(test_s),
        fixed_target_test=tuple(test_t) if not spec.paired else (), labels=labels,
        label_names=src_ds.label_names if labels else (),
        label_source=f"labels of {src_ds.root.name} (dataset.json)" if labels else "no labels",
        what=f"data={spec.text}",
    )


# ------------------------------------------------------------------------------------------ samplers


def _pad_xy(vol: torch.Tensor, size: int, fill: float) -> torch.Tensor:
    """Centre-pad / centre-crop the first two axes of ``(X, Y, Z)`` to ``size``."""
    out = vol
    for axis in (0, 1):
        n = out.shape[axis]
        if n > size:
            start = (n - size) // 2
            out = out.narrow(axis, start, size)
        elif n < size:
            lo = (size - n) // 2
            shape_lo = list(out.shape)
            shape_lo[axis] = lo
            shape_hi = list(out.shape)
            shape_hi[axis] = size - n - lo
            out = torch.cat([out.new_full(shape_lo, fill), out, out.new_full(shape_hi, fill)], dim=axis)
    return out


@dataclass
class SliceSet2D:
    """Axial slices ``(N, 1, size, size)`` in [-1, 1] (``None`` when the split lacks that image) + masks."""

    source: torch.Tensor | None
    target: torch.Tensor | None
    mask: torch.Tensor
    case_ids: list[str]
    slice_index: list[int]

    def __len__(self) -> int:
        return int(self.mask.shape[0])


def cut_translation_slices(
    cases: Sequence[TranslationCase],
    *,
    size: int,
    intensity: IntensityConvention = PROTOCOL_INTENSITY,
    min_foreground: float = 0.05,
) -> SliceSet2D:
    """Normalise each volume (its own percentile fit), pad axial slices to ``size``, keep slices whose
    foreground fraction (of the unpadded slice) is at least ``min_foreground``."""
    if not cases:
        raise ValidationError("cut_translation_slices needs at least one case.")
    srcs, tgts, masks, ids, index = [], [], [], [], []
    for case in cases:
        mask = torch.from_numpy(np.ascontiguousarray(case.mask))
        frac = mask.float().mean(dim=(0, 1))
        keep = (frac >= min_foreground).nonzero().flatten()
        if keep.numel() == 0:
            continue
        for arr, out in ((case.source, srcs), (case.target, tgts)):
            if arr is not None:
                vol = _pad_xy(normalise_case(arr, intensity), size, -1.0)
                out.append(vol[:, :, keep].permute(2, 0, 1)[:, None])
        masks.append(_pad_xy(mask, size, False)[:, :, keep].permute(2, 0, 1))
        ids += [case.case_id] * keep.numel()
        index += keep.tolist()
    if not masks:
        raise ValidationError(f"no slice has a foreground fraction >= min_foreground={min_foreground}.")
    return SliceSet2D(
        torch.cat(srcs) if srcs else None, torch.cat(tgts) if tgts else None, torch.cat(masks), ids, index
    )


class PatchSampler:
    """Random 3D patches ``(B, C, p, p, p)`` centred on foreground voxels of normalised volumes.

    ``volumes`` is a list of ``(C, X, Y, Z)`` tensors (C = 1 for unpaired, 2 for paired
    [source, target]) and ``masks`` their bool ``(X, Y, Z)`` foreground. Volumes are padded with -1 to
    one common shape (at least the patch). Gathering is one indexing operation per batch.
    """

    def __init__(self, volumes: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], *, patch: int) -> None:
        if not volumes or len(volumes) != len(masks):
            raise ValidationError("PatchSampler needs one mask per volume and at least one volume.")
        self.patch = int(patch)
        shape = [max(max(int(v.shape[1 + a]) for v in volumes), self.patch) for a in range(3)]
        padded, fg = [], []
        for v, m in zip(volumes, masks):
            pads: list[int] = []
            for a in (2, 1, 0):
                pads += [0, shape[a] - int(v.shape[1 + a])]
            padded.append(torch.nn.functional.pad(v, pads, value=-1.0))
            fg.append(torch.nn.functional.pad(m.to(torch.bool), pads, value=False))
        self.volumes = torch.stack(padded)  # (V, C, X, Y, Z)
        self.shape = tuple(shape)
        flat = torch.stack(fg).reshape(-1)
        self.foreground = flat.nonzero().flatten()
        if self.foreground.numel() == 0:
            raise ValidationError("PatchSampler: the masks hold no foreground voxel.")

    def sample(self, batch_size: int, *, generator: torch.Generator) -> torch.Tensor:
        pick = self.foreground[torch.randint(self.foreground.numel(), (batch_size,), generator=generator)]
        x_, y_, z_ = self.shape
        v = pick // (x_ * y_ * z_)
        rest = pick % (x_ * y_ * z_)
        centre = torch.stack([rest // (y_ * z_), (rest // z_) % y_, rest % z_], dim=1)
        limit = torch.tensor(self.shape) - self.patch
        corner = (centre - self.patch // 2).clamp(min=0)
        corner = torch.minimum(corner, limit)
        r = torch.arange(self.patch)
        ix = (corner[:, 0, None] + r)[:, :, None, None]
        iy = (corner[:, 1, None] + r)[:, None, :, None]
        iz = (corner[:, 2, None] + r)[:, None, None, :]
        out = self.volumes[v[:, None, None, None], :, ix, iy, iz]  # (B, p, p, p, C)
        return out.movedim(-1, 1).contiguous()


def _build(spec: TranslationSpec) -> TranslationData:
    """The data a parsed ``data=`` spec names (one builder per spec kind)."""
    if isinstance(spec, BuiltinData):
        return builtin_translation_data(spec.name)
    if isinstance(spec, SimulatedPair):
        return simulated_translation_data(spec.source, spec.target, name=spec.text)
    if isinstance(spec, FolderData):
        return folder_translation_data(spec)
    if isinstance(spec, SubjectFolders):
        return subject_folders_translation_data(spec)
    return nnunet_translation_data(spec)
