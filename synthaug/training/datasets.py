"""Named training datasets for the generators, built from the open sample data.

Each entry returns the training volumes, the held-out volumes (never used for training; they are
what evaluation scores), the label vocabulary and the intensity convention. Held-out slabs are
whole contiguous slabs with a gap of a few slices to the training slabs, so no held-out slice has
a training neighbour. Case ids are those of :func:`synthaug.data.scenarios.slab_case_id`
(``ctA_z000-093``): model cards list them and leakage checks compare them with scenario test cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthaug._validate import closest
from synthaug.errors import ValidationError
from synthaug.intensity import IntensityConvention
from synthaug.training.slices import Volume

__all__ = [
    "TrainingData",
    "TRAINING_DATA",
    "get_training_data",
    "case_id",
    "nnunet_raw_data",
    "is_nnunet_raw",
    "ImageData",
    "image_data",
]


class _CaseSplit:
    """Case ids of a dataset's ``train`` and ``heldout`` volumes (the ids cards and leakage checks read)."""

    train: tuple[Volume, ...]
    heldout: tuple[Volume, ...]

    @property
    def training_cases(self) -> tuple[str, ...]:
        return tuple(v.case_id for v in self.train)

    @property
    def heldout_cases(self) -> tuple[str, ...]:
        return tuple(v.case_id for v in self.heldout)


@dataclass(frozen=True)
class TrainingData(_CaseSplit):
    name: str
    train: tuple[Volume, ...]
    heldout: tuple[Volume, ...]
    labels: tuple[str, ...]
    intensity: IntensityConvention
    modality: str
    spacing: float | None
    label_source: str


def case_id(subject: str, start: int, stop: int) -> str:
    """Case id of a slab (``stop`` exclusive) in the format scenarios and leakage checks use."""
    from synthaug.data.scenarios import slab_case_id

    return slab_case_id(subject, start, stop)


def _slab(subject, start: int, stop: int, label: np.ndarray) -> Volume:
    return Volume(
        case_id(subject.name, start, stop),
        subject.image[:, :, start:stop],
        label[:, :, start:stop],
        subject.spacing,
    )


def _split(subject, label: np.ndarray, heldout: tuple[int, int], gap: int) -> tuple[list[Volume], list[Volume]]:
    n = subject.image.shape[2]
    a, b = heldout
    train = []
    if a - gap > 0:
        train.append(_slab(subject, 0, a - gap, label))
    if b + gap < n:
        train.append(_slab(subject, b + gap, n, label))
    return train, [_slab(subject, a, b, label)]


def _ct_a() -> TrainingData:
    from synthaug.data.scenarios import get_scenario
    from synthaug.data.subjects import load_subject
    from synthaug.data.vocabulary import superclass_vocabulary, to_shared, to_superclasses

    subject = load_subject("ct_a")
    label = to_superclasses(to_shared(subject.label, "total")).astype(np.int16)
    # Hold out exactly the in-domain benchmark's test slab, so the shipped CT model can serve that
    # benchmark without leakage.
    scenario = get_scenario("in-domain")
    test = [c for c in scenario.cases if c.role == "test" and c.subject == "ct_a"]
    start, stop = min(c.z_start for c in test), max(c.z_stop for c in test)
    train, held = _split(subject, label, (start, stop), gap=2)
    return TrainingData(
        "ct_a", tuple(train), tuple(held), tuple(superclass_vocabulary().names),
        IntensityConvention.ct_window(-200.0, 300.0), "CT", None, subject.label_source,
    )


def _mni() -> TrainingData:
    from synthaug.data.subjects import load_subject

    subject = load_subject("mni")
    label = subject.label.astype(np.int16)
    z = np.nonzero(label.any(axis=(0, 1)))[0]
    lo, hi = int(z.min()), int(z.max()) + 1
    centre = (lo + hi) // 2
    half = max(4, (hi - lo) // 12)  # ~1/6 of the brain's extent, through the ventricles
    train, held = _split(subject, label, (centre - half, centre + half), gap=3)
    names = ("background",) + tuple(subject.class_names[i] for i in sorted(subject.class_names))
    return TrainingData(
        "mni", tuple(train), tuple(held), names, IntensityConvention.percentile(0.5, 99.5), "MR", 2.0,
        subject.label_source,
    )


def _spine_ct() -> TrainingData:
    """The TPTBox spine CT with its subregion mask in the spine vocabulary (:mod:`synthaug.data.spine`).

    The spine-cross-modality benchmark tests on the spine *MR* only, so no CT slice is a benchmark test case;
    a central slab (1/6 of the labelled extent, gap 2) is held out for the generator's own evaluation. The
    intensity window (-200, 1000) HU keeps cortical and cancellous bone apart (the abdominal window saturates
    both at 300 HU).
    """
    from synthaug.data.spine import spine_vocabulary, to_spine
    from synthaug.data.subjects import load_subject

    subject = load_subject("spine_ct")
    label = to_spine(subject.label, "CT").astype(np.int16)
    z = np.nonzero(label.any(axis=(0, 1)))[0]
    lo, hi = int(z.min()), int(z.max()) + 1
    centre = (lo + hi) // 2
    half = max(3, (hi - lo) // 12)
    train, held = _split(subject, label, (centre - half, centre + half), gap=2)
    return TrainingData(
        "spine_ct", tuple(train), tuple(held), tuple(spine_vocabulary().names),
        IntensityConvention.ct_window(-200.0, 1000.0), "CT", None, subject.label_source,
    )


def nnunet_raw_data(folder: str | Path, *, heldout_fraction: float = 0.2) -> TrainingData:
    """Any nnU-Net raw dataset as generator training data (your own label vocabulary).

    Training volumes: ``imagesTr``/``labelsTr`` (channel 0); held-out: ``imagesTs``/``labelsTs`` when
    labels exist there, else the last ``heldout_fraction`` of the training cases (sorted by id).
    Label names come from ``dataset.json`` (ids must be 0..N-1); the intensity convention is a CT window
    (-200, 300) HU when channel 0 is named "CT", else the 1-99 percentile convention.
    """
    import json

    import nibabel as nib

    from synthaug.data.nnunet_export import check_nnunet_raw

    folder = Path(folder)
    check_nnunet_raw(folder)
    meta = json.loads((folder / "dataset.json").read_text())
    ending = meta.get("file_ending", ".nii.gz")
    labels = sorted(((int(v), k) for k, v in meta["labels"].items() if isinstance(v, int)), key=lambda t: t[0])
    names = tuple(k for _, k in labels)
    if [i for i, _ in labels] != list(range(len(labels))):
        raise ValidationError(f"{folder}/dataset.json labels must be 0..N-1 to train a generator, got {meta['labels']}.")
    modality = str(meta["channel_names"].get("0", ""))
    intensity = IntensityConvention.ct_window(-200.0, 300.0) if modality.upper() == "CT" else IntensityConvention.percentile(1, 99)

    def read(images: str, labels_dir: str) -> list[Volume]:
        out = []
        for lab_path in sorted((folder / labels_dir).glob(f"*{ending}")):
            case = lab_path.name[: -len(ending)]
            img = nib.as_closest_canonical(nib.load(folder / images / f"{case}_0000{ending}"))
            lab = nib.as_closest_canonical(nib.load(lab_path))
            out.append(Volume(f"{folder.name}:{case}", np.asarray(img.dataobj, dtype=np.float32),
                              np.asarray(lab.dataobj).astype(np.int16), tuple(float(z) for z in img.header.get_zooms()[:3])))
        return out

    train = read("imagesTr", "labelsTr")
    held = read("imagesTs", "labelsTs") if (folder / "labelsTs").is_dir() else []
    if not held:
        k = max(1, int(round(len(train) * heldout_fraction)))
        if len(train) <= k:
            raise ValidationError(f"{folder} has {len(train)} training case(s): too few to hold {k} out for evaluation.")
        train, held = train[:-k], train[-k:]
    return TrainingData(folder.name, tuple(train), tuple(held), names, intensity, "CT" if modality.upper() == "CT" else "MR",
                        None, f"labels of {folder.name}/dataset.json")


def is_nnunet_raw(name: str | Path) -> bool:
    """Whether ``name`` is a folder holding a ``dataset.json`` (an nnU-Net raw dataset)."""
    return Path(name).is_dir() and (Path(name) / "dataset.json").is_file()


@dataclass(frozen=True)
class ImageData(_CaseSplit):
    """Unlabelled images of one domain (e.g. the target modality of an unpaired style model).

    ``train`` / ``heldout`` volumes carry all-zero labels: nothing downstream may read them.
    """

    name: str
    train: tuple[Volume, ...]
    heldout: tuple[Volume, ...]
    intensity: IntensityConvention
    modality: str


def image_data(folder: str | Path, *, heldout_fraction: float = 0.2) -> ImageData:
    """Images only (labels are never read) from an nnU-Net raw dataset (``imagesTr``, channel 0) or a folder
    in any layout a style bank reads (e.g. an exported scenario's ``imagesGen/``: ``<id>_0000.nii.gz``).

    The last ``heldout_fraction`` of the cases (sorted by id, at least one) are held out for evaluation; a
    single volume (e.g. ``imagesGen/`` of an exported cross-modality scenario) is cut along z instead: its last
    ``heldout_fraction`` of the slices are held out (ids ``<name>:<case>_zAAA-BBB``).
    The modality and intensity convention follow channel 0 of the ``dataset.json`` in the folder or its
    parent: ``CT`` -> the (-200, 300) HU window, anything else -> MR with the 1-99 percentile convention.
    """
    import json

    import nibabel as nib

    from synthaug.transforms.style_swap import bank_files

    root = Path(folder)
    cases = bank_files(root)  # (case id, image file, label file or None); raises DataError naming the layouts
    meta_path = next((p / "dataset.json" for p in (root, root.parent) if (p / "dataset.json").is_file()), None)
    channel = ""
    if meta_path is not None:
        channel = str(json.loads(meta_path.read_text()).get("channel_names", {}).get("0", ""))
    ct = channel.upper() == "CT"
    intensity = IntensityConvention.ct_window(-200.0, 300.0) if ct else IntensityConvention.percentile(1, 99)
    name = root.parent.name if root.name.startswith("images") else root.name
    volumes = []
    for cid, image, _ in cases:
        img = nib.as_closest_canonical(nib.load(str(image)))
        arr = np.asarray(img.dataobj, dtype=np.float32)
        volumes.append(Volume(f"{name}:{cid}", arr, np.zeros(arr.shape, np.int16),
                              tuple(float(z) for z in img.header.get_zooms()[:3])))
    if len(volumes) == 1:
        (vol,) = volumes
        depth = vol.image.shape[2]
        if depth < 2:
            raise ValidationError(f"{root} holds one image of {depth} slice(s); give at least 2 images or 2 slices.")
        cut = depth - max(1, int(round(depth * heldout_fraction)))

        def slab(a: int, b: int) -> Volume:
            return Volume(f"{vol.case_id}_z{a:03d}-{b - 1:03d}", vol.image[:, :, a:b], vol.label[:, :, a:b], vol.spacing)

        return ImageData(name, (slab(0, cut),), (slab(cut, depth),), intensity, "CT" if ct else "MR")
    k = max(1, int(round(len(volumes) * heldout_fraction)))
    return ImageData(name, tuple(volumes[:-k]), tuple(volumes[-k:]), intensity, "CT" if ct else "MR")


TRAINING_DATA: dict[str, Callable[[], TrainingData]] = {"ct_a": _ct_a, "mni": _mni, "spine_ct": _spine_ct}


def get_training_data(name: str) -> TrainingData:
    """A named dataset (``ct_a``, ``mni``, ``spine_ct``) or a path to an nnU-Net raw dataset folder."""
    if name not in TRAINING_DATA:
        if is_nnunet_raw(name):
            return nnunet_raw_data(name)
        raise ValidationError(
            f"unknown training data {name!r}; known: {sorted(TRAINING_DATA)} or a path to an nnU-Net raw dataset "
            f"folder (with dataset.json).{closest(name, TRAINING_DATA)}"
        )
    return TRAINING_DATA[name]()
