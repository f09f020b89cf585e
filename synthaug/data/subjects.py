"""The open sample subjects: real CT and MR volumes with label maps, on one canonical RAS+ grid.

============  ====  =========================================================================
name          mod.  content
============  ====  =========================================================================
``ct_a``      CT    TotalSegmentator example CT (3 mm) + its ``total`` segmentation
``ct_b``      CT    TotalSegmentator example DICOM series (contrast-enhanced) + its segmentation
``mr_c``      MR    TotalSegmentator example MR + its ``total_mr`` segmentation
``mni``       MR    MNI152 2009 T1 template + CSF / gray / white matter labels derived here
``spine_ct``  CT    TPTBox test spine CT (1.5 mm, HU) + its vertebra-subregion mask (ids 41-50)
``spine_mr``  MR    TPTBox test spine T2w MR (1.5 mm) + its subregion mask (41-49, 60-62, 100)
============  ====  =========================================================================

The labels of ``ct_a``, ``ct_b`` and ``mr_c`` are TotalSegmentator 2.18.0 model predictions, not
manual ground truth (see :attr:`Subject.label_source`); ``totalseg_version="2.10.0"`` loads the same
images with the labels of the older release instead. The spine masks ship with TPTBox's tests; how
they were made is not stated. ``spine_ct`` and ``spine_mr`` are different subjects at different
levels (see :func:`load_spine_vertebrae` and :func:`synthaug.data.spine.vertebra_levels`). Every
subject is reoriented to the closest canonical RAS+ orientation, so array axis 2 runs inferior ->
superior; image and label share one shape and one affine, or loading fails with
:class:`~synthaug.errors.DataError`.

Example (fetches the data once)::

    from synthaug.data.subjects import load_subject, slab_indices
    mr = load_subject("mr_c")
    upper = mr.image[..., slab_indices(mr, "upper")]
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from scipy import ndimage

from synthaug._validate import check_choice
from synthaug.data import sources
from synthaug.data.fetch import ensure_source
from synthaug.errors import DataError, ShapeError, ValidationError

__all__ = [
    "Subject",
    "TissueMaps",
    "SUBJECT_NAMES",
    "SUBJECT_MODALITIES",
    "TOTALSEG_SUBJECTS",
    "TOTALSEG_LABEL_SOURCE",
    "TOTALSEG_VERSIONS",
    "TPTBOX_LABEL_SOURCE",
    "MNI_LABEL_SOURCE",
    "totalseg_label_source",
    "load_subject",
    "load_spine_vertebrae",
    "load_mni_tissue_maps",
    "slab_indices",
    "read_class_maps",
    "read_dicom_series",
]

SUBJECT_NAMES: tuple[str, ...] = ("ct_a", "ct_b", "mr_c", "mni", "spine_ct", "spine_mr")
SUBJECT_MODALITIES: dict[str, str] = {  # = load_subject(n).modality
    "ct_a": "CT", "ct_b": "CT", "mr_c": "MR", "mni": "MR", "spine_ct": "CT", "spine_mr": "MR",
}  # fmt: skip
TOTALSEG_SUBJECTS: tuple[str, ...] = ("ct_a", "ct_b", "mr_c")
"""Subjects whose labels are TotalSegmentator predictions (one label version per release)."""
TOTALSEG_VERSIONS: dict[str, str] = {
    s.version: key for key, s in sources.SOURCES.items() if s.project == "totalsegmentator"
}
"""TotalSegmentator release -> key of its source in :data:`synthaug.data.sources.SOURCES`."""
_TOTALSEG_DEFAULT = sources.TOTALSEGMENTATOR.version


def totalseg_label_source(version: str = _TOTALSEG_DEFAULT) -> str:
    """The :attr:`Subject.label_source` of TotalSegmentator labels of ``version``."""
    return f"TotalSegmentator {version} model prediction (not manual ground truth)"


TOTALSEG_LABEL_SOURCE = totalseg_label_source()
TPTBOX_LABEL_SOURCE = (
    f"TPTBox {sources.TPTBOX.version} test-data vertebra-subregion mask (how it was made is not stated; "
    "not known to be manual ground truth)"
)
# name -> (image, vertebra mask, subregion mask) in the tptbox source folder
_SPINE_FILES: dict[str, tuple[str, str, str]] = {
    "spine_ct": (sources.SPINE_CT_IMAGE, sources.SPINE_CT_VERTEBRAE, sources.SPINE_CT_SUBREGIONS),
    "spine_mr": (sources.SPINE_MR_IMAGE, sources.SPINE_MR_VERTEBRAE, sources.SPINE_MR_SUBREGIONS),
}
MNI_LABEL_SOURCE = "MNI152 2009 tissue probability maps (population template), labels derived by synthaug"
MNI_CLASS_NAMES = {1: "csf", 2: "gray_matter", 3: "white_matter"}

_GRID_TOLERANCE_MM = 1e-3
_BRAIN_THRESHOLD = 0.2  # on GM + WM probability; hole filling then adds ventricles and sulci
_PathLike = str | os.PathLike[str]


@dataclass(frozen=True, eq=False)
class Subject:
    """One volume with its label map on the same canonical RAS+ grid.

    ``image`` is float32 ``(X, Y, Z)`` (CT in HU), ``label`` int16 of the same shape, ``affine`` the
    4x4 float64 voxel-to-world (RAS+, mm) matrix of both; ``class_names`` maps label ids (no
    background) to names.
    """

    name: str
    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    modality: str
    class_names: dict[int, str] = field(repr=False)
    label_source: str

    def __post_init__(self) -> None:
        if not isinstance(self.image, np.ndarray) or self.image.ndim != 3 or self.image.dtype != np.float32:
            raise ShapeError(
                f"Subject {self.name!r}: image must be a float32 (X, Y, Z) numpy array, got "
                f"{type(self.image).__name__} {getattr(self.image, 'dtype', '')} {np.shape(self.image)}."
            )
        if not isinstance(self.label, np.ndarray) or self.label.dtype != np.int16:
            raise ValidationError(
                f"Subject {self.name!r}: label must be an int16 numpy array, got {self.label.dtype}."
            )
        if self.label.shape != self.image.shape:
            raise ShapeError(
                f"Subject {self.name!r}: label shape {self.label.shape} differs from image shape {self.image.shape}; "
                "resample the label onto the image grid (nearest-neighbour)."
            )
        if np.shape(self.affine) != (4, 4) or np.asarray(self.affine).dtype != np.float64:
            raise ShapeError(
                f"Subject {self.name!r}: affine must be a 4x4 float64 array, got {np.shape(self.affine)}."
            )
        check_choice("modality", self.modality, ("CT", "MR"))

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the three array axes."""
        x, y, z = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(x), float(y), float(z)

    @property
    def shape(self) -> tuple[int, int, int]:
        x, y, z = self.image.shape
        return x, y, z

    def __repr__(self) -> str:
        spacing = tuple(round(s, 3) for s in self.spacing)
        return (
            f"Subject(name={self.name!r}, modality={self.modality!r}, shape={self.shape}, spacing={spacing}, "
            f"classes={len(self.class_names)}, label_source={self.label_source!r})"
        )


@dataclass(frozen=True, eq=False)
class TissueMaps:
    """MNI152 2009 tissue probabilities (float32, [0, 1]) and T1 template on one RAS+ grid."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain_mask: np.ndarray
    t1: np.ndarray
    affine: np.ndarray

    @property
    def spacing(self) -> tuple[float, float, float]:
        x, y, z = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(x), float(y), float(z)


# --- reading files ---------------------------------------------------------------------------------


def read_class_maps(path: _PathLike) -> dict[str, dict[int, str]]:
    """The ``class_map`` dict of TotalSegmentator's ``map_to_binary.py``, parsed (never executed)."""
    path = Path(path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"Cannot parse {path} as Python source: {exc}.") from exc
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "class_map" for t in node.targets
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError as exc:
                raise DataError(f"class_map in {path} is not a literal dict: {exc}.") from exc
            if isinstance(value, dict):
                return {
                    str(task): {int(k): str(v) for k, v in names.items()} for task, names in value.items()
                }
    raise DataError(
        f"{path} has no top-level `class_map = {{...}}` assignment; is it TotalSegmentator's map_to_binary.py?"
    )


def _canonical(img: nib.spatialimages.SpatialImage, what: str) -> nib.Nifti1Image:
    if len(img.shape) != 3:
        raise DataError(f"{what} must be a 3D volume, got shape {img.shape}.")
    out = nib.as_closest_canonical(img)
    if nib.aff2axcodes(out.affine) != ("R", "A", "S"):
        raise DataError(
            f"{what} could not be brought to RAS+ orientation (got {nib.aff2axcodes(out.affine)})."
        )
    return out


def _label_data(img: nib.spatialimages.SpatialImage, what: str) -> np.ndarray:
    data = np.asarray(img.dataobj)
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise DataError(f"{what} holds non-integer values; it is not a label map.")
    if data.size and (data.min() < 0 or data.max() > np.iinfo(np.int16).max):
        raise DataError(f"{what} holds values outside 0..32767; it is not a label map.")
    return np.ascontiguousarray(data, dtype=np.int16)  # C order, positive strides (torch.from_numpy)


def read_dicom_series(folder: _PathLike) -> nib.Nifti1Image:
    """One DICOM series as a NIfTI image in RAS+ world coordinates (CT values rescaled to HU).

    Slices are sorted by ``ImagePositionPatient`` projected on the slice normal; the affine comes from
    ``ImageOrientationPatient``, ``PixelSpacing`` and the positions (DICOM LPS, converted to RAS).
    """
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    if len(files) < 2:
        raise DataError(
            f"DICOM folder {folder} holds {len(files)} file(s); a volume needs at least 2 slices."
        )
    slices = [pydicom.dcmread(p) for p in files]
    first = slices[0]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=np.float64)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    for ds in slices[1:]:
        if not np.allclose(np.asarray(ds.ImageOrientationPatient, dtype=np.float64), orientation, atol=1e-4):
            raise DataError(f"DICOM folder {folder} mixes slice orientations; it is not one series.")
        if (ds.Rows, ds.Columns) != (first.Rows, first.Columns) or list(ds.PixelSpacing) != list(
            first.PixelSpacing
        ):
            raise DataError(
                f"DICOM folder {folder} mixes slice sizes or pixel spacings; it is not one series."
            )
    positions = np.array([ds.ImagePositionPatient for ds in slices], dtype=np.float64)
    order = np.argsort(positions @ normal)
    gaps = np.diff((positions @ normal)[order])
    if gaps.min() < 1e-3 or np.ptp(gaps) > 1e-2 * gaps.mean():
        raise DataError(
            f"DICOM folder {folder}: slice positions are duplicated or unevenly spaced ({gaps.round(3)})."
        )
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)  # between rows, between columns
    lps = np.eye(4)
    lps[:3, 0] = row_dir * col_spacing  # array axis 0 = column index, runs along the row direction
    lps[:3, 1] = col_dir * row_spacing
    lps[:3, 2] = (positions[order[-1]] - positions[order[0]]) / (len(slices) - 1)
    lps[:3, 3] = positions[order[0]]
    planes = []
    for i in order:
        ds = slices[i]
        try:
            pixels = ds.pixel_array
        except Exception as exc:  # pydicom raises several types when no decoder is available
            raise DataError(
                f"Cannot decode DICOM pixel data of {files[i].name} (transfer syntax "
                f"{ds.file_meta.TransferSyntaxUID}): {exc}. Install a JPEG 2000 decoder: "
                "`pip install pylibjpeg pylibjpeg-openjpeg` (or pillow with OpenJPEG)."
            ) from exc
        slope, intercept = (
            float(getattr(ds, "RescaleSlope", 1.0)),
            float(getattr(ds, "RescaleIntercept", 0.0)),
        )
        planes.append(pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept))
    volume = np.stack(planes, axis=-1).transpose(1, 0, 2)  # (rows, cols, n) -> (cols, rows, n)
    return nib.Nifti1Image(np.ascontiguousarray(volume), np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps)


def _resample_nearest(
    label: np.ndarray, label_affine: np.ndarray, shape: tuple[int, ...], affine: np.ndarray
) -> np.ndarray:
    """``label`` sampled on the grid ``(shape, affine)`` with nearest neighbour (0 outside)."""
    to_label = np.linalg.inv(label_affine) @ affine
    grid = np.indices(shape, dtype=np.float32).reshape(3, -1)
    coords = to_label[:3, :3].astype(np.float32) @ grid + to_label[:3, 3:].astype(np.float32)
    out = ndimage.map_coordinates(label, coords, order=0, mode="constant", cval=0)
    return out.reshape(shape).astype(np.int16)


def _same_grid(a: nib.Nifti1Image, b: nib.Nifti1Image) -> bool:
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=_GRID_TOLERANCE_MM)


def _make_subject(
    name: str,
    image: nib.Nifti1Image,
    label: np.ndarray,
    modality: str,
    class_names: dict[int, str],
    label_source: str,
) -> Subject:
    unknown = sorted(set(np.unique(label).tolist()) - {0} - set(class_names))
    if unknown:
        raise DataError(
            f"Subject {name!r}: label values {unknown[:10]} are not in its class map; the data is not what it claims."
        )
    return Subject(
        name=name,
        image=np.ascontiguousarray(image.get_fdata(dtype=np.float32)),
        label=label,
        affine=np.asarray(image.affine, dtype=np.float64),
        modality=modality,
        class_names=dict(class_names),
        label_source=label_source,
    )


def _load_nifti_pair(
    name: str, folder: Path, image_path: str, label_path: str
) -> tuple[nib.Nifti1Image, np.ndarray]:
    image = _canonical(nib.load(folder / image_path), f"{name} image {image_path}")
    label = _canonical(nib.load(folder / label_path), f"{name} label {label_path}")
    if not _same_grid(image, label):
        raise DataError(
            f"Subject {name!r}: image {image_path} (shape {image.shape}) and label {label_path} (shape {label.shape}) "
            f"are not on one grid (affines differ by more than {_GRID_TOLERANCE_MM} mm); the files are not what they "
            "claim to be. Delete the cache folder and fetch again."
        )
    return image, _label_data(label, f"{name} label {label_path}")


def _load_ct_b(folder: Path, class_names: dict[int, str], label_source: str) -> Subject:
    image = _canonical(read_dicom_series(folder / sources.CT_DICOM_DIR), "ct_b DICOM series")
    label_img = _canonical(nib.load(folder / sources.CT_DICOM_LABEL), "ct_b label")
    label = _label_data(label_img, "ct_b label")
    if not _same_grid(image, label_img):
        kept_before = np.count_nonzero(label) * abs(np.linalg.det(label_img.affine[:3, :3]))
        label = _resample_nearest(label, label_img.affine, image.shape, image.affine)
        kept_after = np.count_nonzero(label) * abs(np.linalg.det(image.affine[:3, :3]))
        if kept_after < 0.5 * kept_before:
            raise DataError(
                "Subject 'ct_b': the label volume barely overlaps the DICOM series "
                f"({kept_after:.0f} of {kept_before:.0f} mm^3 kept after resampling); it is not its segmentation."
            )
    return _make_subject("ct_b", image, label, "CT", class_names, label_source)


# --- TPTBox spine subjects -------------------------------------------------------------------------


def _spine_vertebrae(name: str, folder: Path, image: nib.Nifti1Image) -> np.ndarray:
    path = _SPINE_FILES[name][1]
    vertebrae = _canonical(nib.load(folder / path), f"{name} vertebra mask {path}")
    if not _same_grid(image, vertebrae):
        raise DataError(
            f"Subject {name!r}: vertebra mask {path} (shape {vertebrae.shape}) is not on the image grid "
            f"(shape {image.shape}); the files are not what they claim to be. Delete the cache folder and fetch again."
        )
    return _label_data(vertebrae, f"{name} vertebra mask {path}")


def _load_spine(name: str, folder: Path) -> Subject:
    from synthaug.data.spine import SPINE_BACKGROUND, spine_subregion_names

    image_path, _, label_path = _SPINE_FILES[name]
    modality = SUBJECT_MODALITIES[name]
    image, label = _load_nifti_pair(name, folder, image_path, label_path)
    vertebrae = _spine_vertebrae(name, folder, image)
    names = spine_subregion_names(modality)
    bone_ids = [i for i, n in names.items() if n not in SPINE_BACKGROUND]
    stray = int(np.count_nonzero(np.isin(label, bone_ids) & (vertebrae == 0)))
    if stray:
        raise DataError(
            f"Subject {name!r}: {stray} vertebra-subregion voxel(s) of {label_path} lie outside every vertebra "
            f"of {_SPINE_FILES[name][1]}; the two masks do not belong together. Delete the cache folder and fetch again."
        )
    return _make_subject(name, image, label, modality, names, TPTBOX_LABEL_SOURCE)


def load_spine_vertebrae(name: str, *, cache_dir: _PathLike | None = None) -> np.ndarray:
    """The TPTBox vertebra instance mask (int16) of ``spine_ct`` or ``spine_mr`` on its subject's grid.

    Ids < 100 are vertebrae (:data:`synthaug.data.spine.TPTBOX_VERTEBRAE`), id + 100 the disc below
    and id + 200 the endplates of vertebra id; :func:`synthaug.data.spine.vertebra_levels` names them.
    """
    check_choice("name", name, tuple(_SPINE_FILES))
    folder = ensure_source("tptbox", cache_dir=cache_dir)
    image_path = _SPINE_FILES[name][0]
    image = _canonical(nib.load(folder / image_path), f"{name} image {image_path}")
    return _spine_vertebrae(name, folder, image)


# --- MNI tissue maps -------------------------------------------------------------------------------


def _fill_holes_in_planes(mask: np.ndarray, axis: int) -> np.ndarray:
    """Fill holes of every 2D slice perpendicular to ``axis`` (one vectorised call)."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    plane = [slice(None)] * 3
    plane[axis] = slice(1, 2)
    structure[tuple(plane)] = np.expand_dims(ndimage.generate_binary_structure(2, 1), axis)
    return ndimage.binary_fill_holes(mask, structure=structure)


def _brain_mask(gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    mask = ndimage.binary_fill_holes((gm + wm) > _BRAIN_THRESHOLD)
    for axis in range(3):  # ventricles and deep sulci open to the outside in 3D are closed in 2D
        mask = _fill_holes_in_planes(mask, axis)
    return mask


def _probability(img: nib.spatialimages.SpatialImage, what: str) -> np.ndarray:
    data = np.ascontiguousarray(img.dataobj, dtype=np.float32) / np.float32(255.0)  # stored as 0..255
    if data.min() < 0 or data.max() > 1.0 + 1e-6:
        raise DataError(f"{what} holds values outside 0..255; it is not a probability map stored x255.")
    return data


def load_mni_tissue_maps(*, cache_dir: _PathLike | None = None) -> TissueMaps:
    """MNI152 2009 GM/WM probabilities, derived brain mask and CSF, and the T1 template.

    ``brain_mask`` = (GM + WM > 0.2) with holes filled in 3D and slice by slice (so the ventricles lie
    inside); ``csf`` = clip(brain_mask - GM - WM, 0, 1). All arrays are float32 in [0, 1] except
    ``t1`` (template intensities 0..255), on the RAS+ 1 mm grid given by ``affine``.
    """
    folder = ensure_source("nilearn", cache_dir=cache_dir)
    t1 = _canonical(nib.load(folder / sources.MNI_T1), "MNI T1")
    gm_img = _canonical(nib.load(folder / sources.MNI_GM), "MNI GM")
    wm_img = _canonical(nib.load(folder / sources.MNI_WM), "MNI WM")
    if not (_same_grid(t1, gm_img) and _same_grid(t1, wm_img)):
        raise DataError("MNI T1, GM and WM files are not on one grid; the cache holds unexpected files.")
    gm, wm = _probability(gm_img, "MNI GM"), _probability(wm_img, "MNI WM")
    mask = _brain_mask(gm, wm).astype(np.float32)
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    return TissueMaps(
        gm=gm,
        wm=wm,
        csf=csf,
        brain_mask=mask,
        t1=np.ascontiguousarray(t1.get_fdata(dtype=np.float32)),
        affine=np.asarray(t1.affine, dtype=np.float64),
    )


def _tissue_label(maps: TissueMaps) -> np.ndarray:
    """argmax over (CSF, GM, WM) inside the brain mask -> 1, 2, 3; background 0 outside."""
    label = np.ones(maps.gm.shape, dtype=np.int16)
    best = maps.csf.copy()
    for label_id, prob in ((2, maps.gm), (3, maps.wm)):
        better = prob > best
        label[better] = label_id
        best = np.where(better, prob, best)
    label[maps.brain_mask < 0.5] = 0
    return label


# --- public loaders --------------------------------------------------------------------------------


def load_subject(
    name: str, *, cache_dir: _PathLike | None = None, totalseg_version: str | None = None
) -> Subject:
    """Load one of :data:`SUBJECT_NAMES` (fetching its source once into the cache).

    Args:
        name: subject name.
        cache_dir: cache root (default :func:`synthaug.data.cache.cache_root`).
        totalseg_version: for ``ct_a``, ``ct_b``, ``mr_c`` only: the TotalSegmentator release whose
            labels to load (:data:`TOTALSEG_VERSIONS`; default 2.18.0). The images are identical.

    >>> load_subject("ct-a")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    synthaug.errors.ValidationError: name='ct-a' is not one of [...]. Did you mean 'ct_a'?
    """
    check_choice("name", name, SUBJECT_NAMES)
    if totalseg_version is not None and name not in TOTALSEG_SUBJECTS:
        raise ValidationError(
            f"totalseg_version={totalseg_version!r} applies to the TotalSegmentator subjects {list(TOTALSEG_SUBJECTS)} "
            f"only, not {name!r}; leave it out."
        )
    if name in _SPINE_FILES:
        return _load_spine(name, ensure_source("tptbox", cache_dir=cache_dir))
    if name == "mni":
        maps = load_mni_tissue_maps(cache_dir=cache_dir)
        return Subject(
            name="mni",
            image=maps.t1,
            label=_tissue_label(maps),
            affine=maps.affine,
            modality="MR",
            class_names=dict(MNI_CLASS_NAMES),
            label_source=MNI_LABEL_SOURCE,
        )
    version = _TOTALSEG_DEFAULT if totalseg_version is None else totalseg_version
    check_choice("totalseg_version", version, tuple(TOTALSEG_VERSIONS))
    folder = ensure_source(TOTALSEG_VERSIONS[version], cache_dir=cache_dir)
    class_maps = read_class_maps(folder / sources.CLASS_MAP_FILE)
    label_source = totalseg_label_source(version)
    if name == "ct_b":
        return _load_ct_b(folder, class_maps["total"], label_source)
    if name == "ct_a":
        image, label = _load_nifti_pair(name, folder, sources.CT_IMAGE, sources.CT_LABEL)
        return _make_subject(name, image, label, "CT", class_maps["total"], label_source)
    image, label = _load_nifti_pair(name, folder, sources.MR_IMAGE, sources.MR_LABEL)
    return _make_subject(name, image, label, "MR", class_maps["total_mr"], label_source)


def slab_indices(subject: Subject, part: str, *, axis: int = 2) -> slice:
    """Index range of a slab along ``axis``: ``"all"``, ``"upper"`` (indices >= n // 2) or ``"lower"``.

    On the canonical RAS+ grid of a :class:`Subject`, axis 2 runs inferior -> superior, so
    ``"upper"`` is the superior half. This is the single definition the scenarios rely on.
    """
    check_choice("part", part, ("all", "upper", "lower"))
    if axis not in (0, 1, 2):
        raise ValidationError(
            f"axis must be 0, 1 or 2 (a spatial axis of the (X, Y, Z) volume), got {axis!r}."
        )
    n = subject.image.shape[axis]
    if part == "upper":
        return slice(n // 2, n)
    if part == "lower":
        return slice(0, n // 2)
    return slice(0, n)
