"""Export a scenario as an nnU-Net v2 raw dataset, and check such a folder without nnU-Net.

Layout written (nnU-Net v2 "raw" format)::

    out_dir/DatasetXXX_Name/
        dataset.json                     channel_names, labels, numTraining, file_ending, description ...
        imagesTr/{case}_0000.nii.gz      float32 image of each ``train`` case
        labelsTr/{case}.nii.gz           uint8 (or int16) label on the same grid and affine
        imagesTs/{case}_0000.nii.gz      ``test`` and ``report`` cases (``dataset.json`` lists their groups)
        labelsTs/{case}.nii.gz
        imagesGen/{case}_0000.nii.gz     ``generator`` cases, images only (unlabelled target-domain images an
                                         unpaired generator or its style bank may use; not segmentation
                                         data, and nnU-Net never reads this folder)

The labels are TotalSegmentator model predictions (or, for ``spine-cross-modality``, the TPTBox test masks)
mapped to the synthaug vocabulary, not manual ground truth; ``dataset.json`` says so (the scenario's
``note``). An export is refused when it would hold no test case, or when a test group shares no
foreground class with the training cases. The channel name is ``"CT"`` for CT-only scenarios (nnU-Net's CT
normalisation) and ``"zscore"`` when test images are MR (per-image z-score). The folder is built under a
temporary sibling name and renamed into place; an existing dataset folder or dataset id in ``out_dir`` is
never overwritten.

Example::

    >>> folder = export_nnunet("cross-scanner", Path("nnUNet_raw"), dataset_id=501)   # doctest: +SKIP
    >>> check_nnunet_raw(folder)                                                        # doctest: +SKIP
"""

from __future__ import annotations

import json
import numbers
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.data.scenarios import (
    Case,
    Scenario,
    SubjectLoader,
    build_cases,
    check_shared_classes,
    get_scenario,
    scenario_vocabulary,
)
from synthaug.errors import DataError, LabelError, ValidationError

__all__ = [
    "FILE_ENDING", "GENERATOR_FOLDER", "dataset_folder_name", "export_nnunet", "check_nnunet_raw", "training_spacings",
    "write_nifti",
]

FILE_ENDING = ".nii.gz"
GENERATOR_FOLDER = "imagesGen"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")


def write_nifti(path: str | os.PathLike[str], array: np.ndarray, affine: np.ndarray) -> Path:
    """Save ``array`` with ``affine`` as NIfTI-1 (qform and sform both set, scanner code, mm units)."""
    import nibabel as nib

    affine = np.asarray(affine, dtype=np.float64)
    img = nib.Nifti1Image(np.asarray(array), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))
    return Path(path)


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``DatasetXXX_Name`` after validating ``dataset_id`` (1..999) and ``name`` (letters, digits, _ -)."""
    if (
        isinstance(dataset_id, bool)
        or not isinstance(dataset_id, numbers.Integral)
        or not 1 <= dataset_id <= 999
    ):
        raise ValidationError(
            f"dataset_id must be an int in 1..999 (nnU-Net's three-digit DatasetXXX), got {dataset_id!r}."
        )
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValidationError(
            f"name must be non-empty and use only letters, digits, '_' and '-', got {name!r}. E.g. 'SynthAugCT'."
        )
    return f"Dataset{int(dataset_id):03d}_{name}"


def _default_name(scenario_name: str) -> str:
    return "SynthAug" + "".join(
        part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", scenario_name) if part
    )


def _refuse_existing(out_dir: Path, folder: str, dataset_id: int) -> None:
    if (out_dir / folder).exists():
        raise DataError(
            f"{out_dir / folder} already exists; synthaug never overwrites a dataset. Choose another --dataset-id "
            "or remove that folder first."
        )
    prefix = f"Dataset{dataset_id:03d}_"
    taken = sorted(p.name for p in out_dir.iterdir() if p.name.startswith(prefix)) if out_dir.is_dir() else []
    if taken:
        raise DataError(
            f"Dataset id {dataset_id:03d} is already used in {out_dir} by {taken[0]}; nnU-Net identifies datasets by "
            "id. Choose another --dataset-id or remove that folder first."
        )


def export_nnunet(
    scenario: str | Scenario,
    out_dir: str | os.PathLike[str],
    *,
    dataset_id: int,
    name: str | None = None,
    cases: Iterable[tuple[Case, np.ndarray, np.ndarray, np.ndarray]] | None = None,
    label_names: Sequence[str] | None = None,
    loader: SubjectLoader | None = None,
) -> Path:
    """Write ``out_dir/DatasetXXX_Name`` for ``scenario`` and return that folder.

    Args:
        scenario: a name from ``list_scenarios()`` or a :class:`Scenario`.
        out_dir: the nnU-Net raw folder (created if missing).
        dataset_id: nnU-Net dataset id, 1..999; must not be used in ``out_dir`` yet.
        name: dataset name; default ``SynthAug`` + the scenario name in CamelCase.
        cases: prebuilt ``(case, image, label, affine)`` tuples; default ``build_cases(scenario)``.
        label_names: class names by label id (index 0 background); default the scenario's vocabulary.
        loader: subject loader passed to ``get_scenario`` / ``build_cases`` (default the open data).
    """
    dataset_folder_name(dataset_id, name if name is not None else "SynthAug")  # validate before loading data
    if isinstance(scenario, str):
        scenario = get_scenario(scenario, loader=loader)
    if not isinstance(scenario, Scenario):
        raise ValidationError(
            f"scenario must be a scenario name or a Scenario, got {type(scenario).__name__}."
        )
    folder_name = dataset_folder_name(dataset_id, name if name is not None else _default_name(scenario.name))
    out = Path(out_dir)
    _refuse_existing(out, folder_name, int(dataset_id))
    names = list(label_names) if label_names is not None else list(scenario_vocabulary(scenario).names)
    if len(names) < 2 or len(set(names[1:])) != len(names) - 1 or "background" in names[1:]:
        raise ValidationError(
            f"label_names must hold background plus at least one unique class name, got {names}."
        )
    labels = {"background": 0, **{n: i for i, n in enumerate(names) if i > 0}}
    label_dtype = np.uint8 if len(names) <= 256 else np.int16
    if cases is None:
        cases = build_cases(scenario, roles=("train", "test", "report", "generator"), loader=loader)

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder_name}.tmp-", dir=out))
    try:
        for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
            (tmp / sub).mkdir()
        written: dict[str, Case] = {}
        generator: dict[str, Case] = {}
        present: dict[str, list[int]] = {}
        for case, image, label, affine in cases:
            if case.id in written or case.id in generator:
                raise ValidationError(f"Case id {case.id!r} appears twice in cases; case ids must be unique.")
            if case.role == "generator":
                # Images only: generator cases are not segmentation data, their labels are never written.
                (tmp / GENERATOR_FOLDER).mkdir(exist_ok=True)
                write_nifti(tmp / GENERATOR_FOLDER / f"{case.id}_0000{FILE_ENDING}", np.asarray(image, np.float32),
                            affine)
                generator[case.id] = case
                continue
            label = np.asarray(label)
            if label.shape != np.shape(image):
                raise ValidationError(
                    f"Case {case.id}: image shape {np.shape(image)} and label shape {label.shape} differ."
                )
            bad = np.setdiff1d(np.unique(label), np.arange(len(names)))
            if bad.size:
                raise LabelError(
                    f"Case {case.id} holds label value(s) {bad.tolist()} outside 0..{len(names) - 1} "
                    f"({len(names)} label names). Map the labels to the scenario vocabulary first."
                )
            present[case.id] = np.unique(label).tolist()
            kind = "Tr" if case.role == "train" else "Ts"
            write_nifti(
                tmp / f"images{kind}" / f"{case.id}_0000{FILE_ENDING}", np.asarray(image, np.float32), affine
            )
            write_nifti(tmp / f"labels{kind}" / f"{case.id}{FILE_ENDING}", label.astype(label_dtype), affine)
            written[case.id] = case
        n_train = sum(c.role == "train" for c in written.values())
        if n_train == 0:
            raise ValidationError(
                f"Scenario {scenario.name!r} produced no training case; nnU-Net needs at least one."
            )
        if not any(c.role == "test" for c in written.values()):
            raise ValidationError(
                f"Scenario {scenario.name!r} produced no test case (0 test volumes, imagesTs would hold no held-out "
                "case); a benchmark needs at least one. Pass cases that include the scenario's test cases."
            )
        check_shared_classes(scenario, present, names)
        groups: dict[str, list[str]] = {}
        for c in written.values():
            if c.role != "train":
                groups.setdefault(c.group, []).append(c.id)
        dataset_json = {
            "channel_names": {"0": scenario.normalization},
            "labels": labels,
            "numTraining": n_train,
            "file_ending": FILE_ENDING,
            "name": folder_name,
            "description": (
                f"synthaug scenario '{scenario.name}': {scenario.description}. {scenario.note} Labels use the synthaug "
                f"'{scenario.label_space}' vocabulary. imagesTs holds the test groups {sorted(groups)}."
            ),
            "reference": scenario.reference,
            "synthaug": {
                "scenario": scenario.name,
                "label_space": scenario.label_space,
                "normalization": scenario.normalization,
                "label_note": scenario.note,
                "test_groups": groups,
                "cases": [c.to_dict() for c in (*written.values(), *generator.values())],
            },
        }
        (tmp / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
        check_nnunet_raw(tmp)
        final = out / folder_name
        _refuse_existing(out, folder_name, int(dataset_id))  # someone may have created it meanwhile
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# ------------------------------------------------------------------------------------ checking


def _cases_in(folder: Path, ending: str, *, channels: int | None) -> dict[str, list[Path]]:
    """Case id -> files (per channel for images) of the NIfTI files in ``folder``."""
    out: dict[str, list[Path]] = {}
    if not folder.is_dir():
        return out
    for f in sorted(folder.iterdir()):
        if not f.name.endswith(ending):
            continue
        stem = f.name[: -len(ending)]
        if channels is None:
            out[stem] = [f]
            continue
        m = re.match(r"^(.+)_(\d{4})$", stem)
        if m is None:
            raise DataError(f"{f} is not named <case>_XXXX{ending} (XXXX = 4-digit channel index).")
        out.setdefault(m[1], []).append(f)
    if channels is not None:
        for case, files in out.items():
            want = [f"{case}_{c:04d}{ending}" for c in range(channels)]
            if sorted(p.name for p in files) != want:
                raise DataError(
                    f"Case {case} in {folder} has channel files {[p.name for p in files]}; dataset.json declares "
                    f"{channels} channel(s), so expected {want}."
                )
    return out


def _check_pair(case: str, images: list[Path], label: Path, label_ids: set[int]) -> None:
    import nibabel as nib

    seg = nib.load(str(label))
    for img_path in images:
        img = nib.load(str(img_path))
        if img.shape != seg.shape:
            raise DataError(
                f"Case {case}: image {img_path.name} has shape {img.shape} but label {label.name} has {seg.shape}."
            )
        if not np.allclose(img.affine, seg.affine, atol=1e-4):
            raise DataError(
                f"Case {case}: image {img_path.name} and label {label.name} have different affines; they must share one grid."
            )
    data = np.asarray(seg.dataobj)
    if np.issubdtype(data.dtype, np.floating) and not np.all(np.round(data) == data):
        raise DataError(f"Case {case}: label {label.name} holds non-integer values.")
    found = {int(v) for v in np.unique(data)}
    unknown = sorted(found - label_ids)
    if unknown:
        raise DataError(
            f"Case {case}: label {label.name} holds value(s) {unknown} that dataset.json 'labels' does not declare "
            f"({sorted(label_ids)})."
        )


def check_nnunet_raw(folder: str | os.PathLike[str]) -> dict[str, int]:
    """Check an nnU-Net v2 raw dataset folder; return ``{"numTraining": n, "numTest": m}``.

    Raises :class:`DataError` naming the problem for: a missing or unreadable ``dataset.json`` or required
    key, labels that are not ``background=0`` plus consecutive ids, ``numTraining`` not matching imagesTr,
    an image without a label (or a label without an image), label values not declared in dataset.json, and
    a shape or affine mismatch between an image and its label. Checks imagesTs/labelsTs the same way when
    labelsTs exists.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; expected an nnU-Net raw dataset folder DatasetXXX_Name.")
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise DataError(f"{root} has no dataset.json; it is not an nnU-Net raw dataset. Re-export it.")
    try:
        meta: dict[str, Any] = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{meta_path} is not readable JSON ({exc}).") from exc
    missing = [k for k in ("channel_names", "labels", "numTraining", "file_ending") if k not in meta]
    if missing:
        raise DataError(f"{meta_path} lacks the required key(s) {missing}.")
    labels = meta["labels"]
    ids = sorted(v for v in labels.values() if isinstance(v, int)) if isinstance(labels, dict) else []
    if not isinstance(labels, dict) or labels.get("background") != 0 or ids != list(range(len(labels))):
        raise DataError(
            f"{meta_path} 'labels' must map 'background' to 0 and the classes to consecutive ids 1..K, got {labels}."
        )
    ending, channels = str(meta["file_ending"]), len(meta["channel_names"])
    counts = {}
    for kind in ("Tr", "Ts"):
        images = _cases_in(root / f"images{kind}", ending, channels=channels)
        if kind == "Ts" and not (root / "labelsTs").is_dir():
            counts[kind] = len(images)
            continue
        segs = _cases_in(root / f"labels{kind}", ending, channels=None)
        no_label = sorted(set(images) - set(segs))
        no_image = sorted(set(segs) - set(images))
        if no_label:
            raise DataError(
                f"{root / f'images{kind}'}: image(s) without a label in labels{kind}: {no_label[:5]}."
            )
        if no_image:
            raise DataError(
                f"{root / f'labels{kind}'}: label(s) without an image in images{kind}: {no_image[:5]}."
            )
        for case in images:
            _check_pair(case, images[case], segs[case][0], set(ids))
        counts[kind] = len(images)
    if meta["numTraining"] != counts["Tr"]:
        raise DataError(
            f"{meta_path} says numTraining={meta['numTraining']} but imagesTr holds {counts['Tr']} case(s). "
            "Fix numTraining or the imagesTr/labelsTr contents."
        )
    if counts["Tr"] == 0:
        raise DataError(f"{root / 'imagesTr'} holds no training case.")
    return {"numTraining": counts["Tr"], "numTest": counts["Ts"]}


def training_spacings(folder: str | os.PathLike[str], *, channel: int = 0) -> dict[str, tuple[float, float, float]]:
    """Voxel size (mm, NIfTI axis order) of each training image of channel ``channel``, from the headers only.

    Empty for datasets in another file format than NIfTI. nnU-Net plans at the median of these.
    """
    root = Path(folder)
    ending = str(json.loads((root / "dataset.json").read_text())["file_ending"])
    if ending not in (".nii.gz", ".nii"):
        return {}
    import nibabel as nib

    suffix = f"_{int(channel):04d}{ending}"
    out = {}
    for p in sorted((root / "imagesTr").glob(f"*{suffix}")):
        zooms = tuple(float(z) for z in nib.load(str(p)).header.get_zooms()[:3])
        if len(zooms) == 3:
            out[p.name[: -len(suffix)]] = zooms
    return out
