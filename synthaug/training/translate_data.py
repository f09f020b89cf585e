"""Named modality-translation datasets with fixed train / validation / test splits, and their samplers.

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

import numpy as np
import torch
from scipy import ndimage

from synthaug._validate import check_choice, closest
from synthaug.errors import ValidationError
from synthaug.intensity import IntensityConvention

__all__ = [
    "SPLITS",
    "TranslationCase",
    "TranslationData",
    "TRANSLATION_DATA",
    "get_translation_data",
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


_CACHE: dict[str, tuple[Callable[[], TranslationData], TranslationData]] = {}


def get_translation_data(name: str) -> TranslationData:
    """The named dataset (its splits load on first use and stay cached in this process)."""
    if name not in TRANSLATION_DATA:
        raise ValidationError(
            f"unknown translation data {name!r}; known: {sorted(TRANSLATION_DATA)}.{closest(name, TRANSLATION_DATA)}"
        )
    builder = TRANSLATION_DATA[name]
    hit = _CACHE.get(name)
    if hit is None or hit[0] is not builder:
        _CACHE[name] = (builder, builder())
    return _CACHE[name][1]


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
