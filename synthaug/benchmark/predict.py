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
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.errors import DataError, ValidationError

__all__ = ["PredictionCheck", "find_run", "predict"]

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
    """Predict ``inputs`` (NIfTI files, one channel) with the model of run (arm, seed); see the module docstring."""
    import nibabel as nib

    from synthaug.benchmark.downstream import _bin, _Env, open_dataset, run_logged
    from synthaug.benchmark.profiles import Profile
    from synthaug.transforms.guards import AIR_HU, FAT_HU

    result, folder = find_run(work, arm, seed)
    meta = json.loads((Path(work) / "benchmark.json").read_text())
    profile = Profile.from_dict(meta["profile"])
    ds = open_dataset(Path(work) / "raw" / meta["dataset"])
    raw_train = Path(work) / "raw" / ds.folder.name
    plans = json.loads((Path(work) / "preprocessed" / ds.folder.name / f"{profile.plans}.json").read_text())
    cfg = plans["configurations"][profile.configuration]
    train_spacing = tuple(float(s) for s in plans.get("original_median_spacing_after_transp", cfg["spacing"]))
    channel = str(ds.dataset_json.get("channel_names", {}).get("0", ""))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = _training_stats(raw_train, ds.labels)
    env = _Env(Path(work), profile)
    checks = []
    with tempfile.TemporaryDirectory(prefix="synthaug_predict_") as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        orig = {}
        warnings: dict[str, list[str]] = {}
        for i, path in enumerate(inputs):
            img = nib.load(str(path))
            axcodes = "".join(nib.aff2axcodes(img.affine))
            canon = nib.as_closest_canonical(img)
            data = np.asarray(canon.dataobj, np.float32)
            if data.ndim != 3:
                raise ValidationError(f"{path}: expected a 3D single-channel image, got shape {data.shape}.")
            if not np.isfinite(data).all():
                raise ValidationError(f"{path}: the image holds NaN or infinite values.")
            w = []
            if axcodes != "RAS":
                w.append(f"orientation {axcodes}: reoriented to RAS (the training orientation) and back")
            spacing = tuple(float(z) for z in canon.header.get_zooms()[:3])
            far = [a for a, (s, t) in enumerate(zip(sorted(spacing), sorted(train_spacing)))
                   if max(s / t, t / s) > spacing_factor]
            if far:
                w.append(f"spacing {spacing} mm is more than {spacing_factor}x from the training spacing "
                         f"{train_spacing} mm: nnU-Net resamples, but this resolution was never seen in training")
            if channel.upper() == "CT" and float(data.min()) > FAT_HU:
                raise ValidationError(
                    f"{path}: the model was trained on CT in Hounsfield units, but the image has no fat- or air-like "
                    f"value (minimum {float(data.min()):.1f} > {FAT_HU:g}); give CT in HU (or use a model trained on "
                    "your modality)."
                )
            if channel.upper() != "CT" and float(data.min()) < AIR_HU:
                warnings.setdefault(str(path), []).append(
                    "intensities reach CT air (< -400): the model was trained on MR (z-scored per image)")
            case = f"case_{i:04d}"
            nib.save(nib.Nifti1Image(data, canon.affine, canon.header), str(tmp / "in" / f"{case}_0000.nii.gz"))
            orig[case] = (Path(path), img)
            warnings.setdefault(str(path), []).extend(w)
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
        for case, (path, img) in orig.items():
            pred_img = nib.load(str(tmp / "out" / f"{case}.nii.gz"))
            pred = np.asarray(pred_img.dataobj).astype(np.int16)
            canon = nib.as_closest_canonical(img)
            data = np.asarray(canon.dataobj, np.float32)
            intensity = {}
            for v in np.unique(pred):
                if int(v) == 0 or names.get(int(v)) not in stats:
                    continue
                n = names[int(v)]
                mean = float(data[pred == v].mean())
                t_mean, t_std = stats[n]
                intensity[n] = {"mean": mean, "training_mean": t_mean, "training_std": t_std}
                if abs(mean - t_mean) > 3 * max(t_std, 1e-6) and abs(mean - t_mean) > 50:
                    warnings[str(path)].append(
                        f"predicted {n} has mean intensity {mean:.0f}, {abs(mean - t_mean) / max(t_std, 1e-6):.1f} training "
                        f"standard deviations from training ({t_mean:.0f} +- {t_std:.0f}): either out of the training domain "
                        "(e.g. contrast-enhanced vessels for a model trained on non-contrast CT) or mis-segmented; "
                        "check this class")
            # back to the input's own orientation and grid
            ornt = nib.orientations.ornt_transform(nib.io_orientation(canon.affine), nib.io_orientation(img.affine))
            back = nib.orientations.apply_orientation(pred, ornt)
            target = out_dir / path.name
            tmp_out = target.with_name(f".tmp-{os.getpid()}-{target.name}")
            nib.save(nib.Nifti1Image(back.astype(np.int16), img.affine), str(tmp_out))
            shutil.move(str(tmp_out), str(target))
            spacing = tuple(float(z) for z in canon.header.get_zooms()[:3])
            check = PredictionCheck(input=str(path), output=str(target), orientation="".join(nib.aff2axcodes(img.affine)),
                                    spacing=spacing, training_spacing=train_spacing,
                                    warnings=tuple(warnings[str(path)]), class_intensity=intensity)
            (out_dir / f"{path.name.split('.')[0]}_synthaug_check.json").write_text(json.dumps(asdict(check), indent=2))
            for msg in check.warnings:
                log(f"[predict] warning: {path.name}: {msg}")
            checks.append(check)
    return checks
