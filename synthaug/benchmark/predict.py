"""Use a model the benchmark trained on new images: ``synthaug predict --work W --arm A --seed S -i in -o out``.

:func:`predict` finds the (arm, seed) run in a downstream work folder (its nnU-Net results folder, dataset id,
plans, configuration and trainer are read from the run's own record, so nothing has to be reassembled by
hand), and for each input NIfTI:

1. brings it to the training orientation (RAS+, as every synthaug scenario is exported) and notes how to go
   back; nnU-Net itself resamples to the plan's spacing and back;
2. checks the input against the training domain: a spacing more than ``spacing_factor`` away from the
   plan's (warning: nnU-Net resamples, but far-away resolutions are out of domain), intensities unlike the
   training channel (CT in HU without air, or MR given to a CT model: error), and after prediction the mean
   intensity of every predicted class against the training images' (a class far brighter than in training,
   e.g. a contrast-filled aorta for a model trained on non-contrast CT, is reported as out of domain);
3. runs ``nnUNetv2_predict`` with the run's settings and writes the label map back in the input's own
   orientation and affine, with a JSON sidecar of the checks.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.errors import DataError, ValidationError

__all__ = ["PredictionCheck", "check_inputs", "find_run", "predict"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class PredictionCheck:
    """What :func:`predict` found about one input (written beside the output as JSON)."""

    input: str
    output: str
    orientation: str
    spacing: tuple[float, ...]
    training_spacing: tuple[float, ...]
    warnings: tuple[str, ...] = ()
    class_intensity: dict[str, dict[str, float]] = field(default_factory=dict)


def find_run(work: str | Path, arm: str, seed: int) -> tuple[dict[str, Any], Path]:
    """(the run's result.json, its folder) of ``arm`` x ``seed`` in a downstream work folder; a clear error naming
    what exists otherwise."""
    work = Path(work)
    folder = work / "runs" / arm / f"seed{seed}"
    result = folder / "result.json"
    if not result.is_file():
        arms = sorted(p.name for p in (work / "runs").iterdir()) if (work / "runs").is_dir() else []
        seeds = sorted(p.name for p in (work / "runs" / arm).iterdir()) if (work / "runs" / arm).is_dir() else []
        raise DataError(
            f"{work} has no finished run of arm {arm!r} seed {seed} (no {result}). Arms there: {arms}; seeds of "
            f"{arm!r}: {seeds}. Run synthaug benchmark downstream first."
        )
    return json.loads(result.read_text()), folder


def _training_stats(raw: Path, labels: dict[str, int]) -> dict[str, tuple[float, float]]:
    """Per class (mean, std) of the training images' intensities inside the class (channel 0)."""
    import nibabel as nib

    meta = json.loads((raw / "dataset.json").read_text())
    ending = meta["file_ending"]
    sums: dict[str, list[np.ndarray]] = {n: [] for n in labels if labels[n] != 0}
    for lab_path in sorted((raw / "labelsTr").glob(f"*{ending}")):
        case = lab_path.name[: -len(ending)]
        img = np.asarray(nib.load(str(raw / "imagesTr" / f"{case}_0000{ending}")).dataobj, np.float32)
        lab = np.asarray(nib.load(str(lab_path)).dataobj)
        for n in sums:
            v = img[lab == labels[n]]
            if v.size:
                sums[n].append(v[:: max(1, v.size // 20000)])
    return {n: (float(np.concatenate(v).mean()), float(np.concatenate(v).std())) for n, v in sums.items() if v}


@dataclass(frozen=True)
class _Input:
    """One checked input: its file, its image as loaded and in RAS+, where its outputs go, what was noticed."""

    path: Path
    case: str
    image: Any  # nibabel image as given
    canonical: Any  # the same in RAS+ (nnU-Net's training orientation)
    data: np.ndarray  # float32 voxels of ``canonical``
    output: Path
    check: Path
    warnings: tuple[str, ...]


def _stem(path: Path) -> str:
    return path.name.split(".")[0]


def check_inputs(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    channel: str,
    training_spacing: Sequence[float],
    spacing_factor: float = 2.0,
) -> list[_Input]:
    """Read and check every input before anything runs or is written; the errors name the file and the fix.

    Refused: a missing or unreadable file, anything but a 3D single-channel image, NaN or infinite voxels, CT
    without fat- or air-like values for a CT model (not in HU), two inputs with one output name, and an output
    (or its check file) that already exists (a prediction is never overwritten). Noticed as warnings: another
    orientation than RAS+ (reoriented and back), a spacing more than ``spacing_factor`` from the training one, MR
    intensities reaching CT air.
    """
    import nibabel as nib

    from synthaug.transforms.guards import AIR_HU, FAT_HU

    out_dir = Path(out_dir)
    if not inputs:
        raise ValidationError("no input image: give one or more NIfTI files with -i.")
    seen: dict[str, Path] = {}
    checked = []
    for i, path in enumerate(Path(p) for p in inputs):
        if not path.is_file():
            raise DataError(f"{path}: no such file.")
        if _stem(path) in seen:
            raise ValidationError(
                f"{seen[_stem(path)]} and {path} would both be written as {out_dir / path.name}: give inputs with "
                "distinct file names (or predict them into separate -o folders).")
        seen[_stem(path)] = path
        output, check = out_dir / path.name, out_dir / f"{_stem(path)}_synthaug_check.json"
        for target in (output, check):
            if target.exists():
                raise DataError(f"{target} already exists; synthaug never overwrites a prediction. Choose another -o "
                                "folder or move the earlier prediction away.")
        try:
            img = nib.load(str(path))
            canon = nib.as_closest_canonical(img)
            data = np.asarray(canon.dataobj, np.float32)
        except Exception as exc:  # nibabel raises several types for unreadable or truncated files
            raise DataError(f"{path}: not a NIfTI image nibabel can read ({type(exc).__name__}: {exc}).") from None
        if data.ndim != 3:
            raise ValidationError(f"{path}: expected a 3D single-channel image, got shape {data.shape}.")
        if not np.isfinite(data).all():
            raise ValidationError(f"{path}: the image holds NaN or infinite values.")
        if channel.upper() == "CT" and float(data.min()) > FAT_HU:
            raise ValidationError(
                f"{path}: the model was trained on CT in Hounsfield units, but the image has no fat- or air-like "
                f"value (minimum {float(data.min()):.1f} > {FAT_HU:g}); give CT in HU (or use a model trained on "
                "your modality)."
            )
        warnings = []
        axcodes = "".join(nib.aff2axcodes(img.affine))
        if axcodes != "RAS":
            warnings.append(f"orientation {axcodes}: reoriented to RAS (the training orientation) and back")
        spacing = tuple(float(z) for z in canon.header.get_zooms()[:3])
        far = [a for a, (sp, t) in enumerate(zip(sorted(spacing), sorted(training_spacing)))
               if max(sp / t, t / sp) > spacing_factor]
        if far:
            warnings.append(f"spacing {spacing} mm is more than {spacing_factor}x from the training spacing "
                            f"{tuple(training_spacing)} mm: nnU-Net resamples, but this resolution was never seen in "
                            "training")
        if channel.upper() != "CT" and float(data.min()) < AIR_HU:
            warnings.append("intensities reach CT air (< -400): the model was trained on MR (z-scored per image)")
        checked.append(_Input(path, f"case_{i:04d}", img, canon, data, output, check, tuple(warnings)))
    return checked


def _tmp(target: Path) -> Path:
    """A temporary name beside ``target`` with its extension (written first, then renamed: never half a file)."""
    return target.with_name(f".tmp-{os.getpid()}-{target.name}")


def predict(
    work: str | Path,
    arm: str,
    seed: int,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    device: str = "cpu",
    spacing_factor: float = 2.0,
    log: Log = print,
) -> list[PredictionCheck]:
    """Predict ``inputs`` (NIfTI files, one channel) with the model of run (arm, seed); see the module docstring.

    Every input is checked (:func:`check_inputs`) before nnU-Net runs; each output is written whole (temporary
    file, then renamed) and never over an existing file.
    """
    import nibabel as nib

    from synthaug.benchmark.downstream import _bin, _Env, open_dataset, run_logged
    from synthaug.benchmark.profiles import Profile

    result, folder = find_run(work, arm, seed)
    meta = json.loads((Path(work) / "benchmark.json").read_text())
    profile = Profile.from_dict(meta["profile"])
    ds = open_dataset(Path(work) / "raw" / meta["dataset"])
    raw_train = Path(work) / "raw" / ds.folder.name
    plans = json.loads((Path(work) / "preprocessed" / ds.folder.name / f"{profile.plans}.json").read_text())
    cfg = plans["configurations"][profile.configuration]
    train_spacing = tuple(float(s) for s in plans.get("original_median_spacing_after_transp", cfg["spacing"]))
    channel = str(ds.dataset_json.get("channel_names", {}).get("0", ""))
    checked = check_inputs(inputs, out_dir, channel=channel, training_spacing=train_spacing,
                           spacing_factor=spacing_factor)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = _training_stats(raw_train, ds.labels)
    env = _Env(Path(work), profile)
    checks = []
    with tempfile.TemporaryDirectory(prefix="synthaug_predict_") as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        for item in checked:
            nib.save(nib.Nifti1Image(item.data, item.canonical.affine, item.canonical.header),
                     str(tmp / "in" / f"{item.case}_0000.nii.gz"))
        cmd = [_bin("nnUNetv2_predict"), "-i", str(tmp / "in"), "-o", str(tmp / "out"), "-d",
               str(result["train_dataset_id"]), "-c", profile.configuration, "-f", "all", "-tr",
               "nnUNetTrainerSynthAug", "-p", profile.plans, "-device", device, "-npp", "1", "-nps", "1",
               "--disable_progress_bar"]
        if not profile.tta:
            cmd.append("--disable_tta")
        renv = env(nnUNet_results=str(folder / "nnunet_results"))
        log(f"[predict] {' '.join(cmd)}")
        run_logged(cmd, renv, tmp / "predict.log")
        names = {v: k for k, v in ds.labels.items()}
        for item in checked:
            pred = np.asarray(nib.load(str(tmp / "out" / f"{item.case}.nii.gz")).dataobj).astype(np.int16)
            warnings = list(item.warnings)
            intensity = {}
            for v in np.unique(pred):
                if int(v) == 0 or names.get(int(v)) not in stats:
                    continue
                n = names[int(v)]
                mean = float(item.data[pred == v].mean())
                t_mean, t_std = stats[n]
                intensity[n] = {"mean": mean, "training_mean": t_mean, "training_std": t_std}
                if abs(mean - t_mean) > 3 * max(t_std, 1e-6) and abs(mean - t_mean) > 50:
                    warnings.append(
                        f"predicted {n} has mean intensity {mean:.0f}, {abs(mean - t_mean) / max(t_std, 1e-6):.1f} training "
                        f"standard deviations from training ({t_mean:.0f} +- {t_std:.0f}): either out of the training domain "
                        "(e.g. contrast-enhanced vessels for a model trained on non-contrast CT) or mis-segmented; "
                        "check this class")
            # back to the input's own orientation and grid
            img = item.image
            ornt = nib.orientations.ornt_transform(nib.io_orientation(item.canonical.affine),
                                                   nib.io_orientation(img.affine))
            back = nib.orientations.apply_orientation(pred, ornt)
            tmp_out = _tmp(item.output)
            nib.save(nib.Nifti1Image(back.astype(np.int16), img.affine), str(tmp_out))
            os.replace(tmp_out, item.output)
            spacing = tuple(float(z) for z in item.canonical.header.get_zooms()[:3])
            check = PredictionCheck(input=str(item.path), output=str(item.output),
                                    orientation="".join(nib.aff2axcodes(img.affine)), spacing=spacing,
                                    training_spacing=train_spacing, warnings=tuple(warnings),
                                    class_intensity=intensity)
            tmp_check = _tmp(item.check)
            tmp_check.write_text(json.dumps(asdict(check), indent=2))
            os.replace(tmp_check, item.check)
            for msg in check.warnings:
                log(f"[predict] warning: {item.path.name}: {msg}")
            checks.append(check)
    return checks
