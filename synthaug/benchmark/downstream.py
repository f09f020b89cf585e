"""Downstream benchmark: does synthaug improve nnU-Net over its default augmentation, at what cost?

Given an nnU-Net raw dataset with a held-out test split (``imagesTs``/``labelsTs``) — one of the built-in
scenarios (:func:`prepare_scenario`) or any user dataset — :func:`run_benchmark`:

1. checks the dataset (:func:`open_dataset`) and refuses leakage (:func:`check_leakage`): every
   generator an arm uses must have been trained on none of the test cases (its model card's training
   cases), and no training case may overlap a test case;
2. plans and preprocesses once with nnU-Net's own commands, then writes the profile's plans file (a
   narrower network for ``cpu-quick``) that reuses the preprocessed data;
3. for offline-expansion arms, expands the training cases with ``synthaug expand`` and preprocesses the
   expanded dataset with the *same* plans (``nnUNetv2_move_plans_between_datasets``);
4. trains every arm x seed with ``nnUNetv2_train ... all -tr nnUNetTrainerSynthAug`` (identical plans,
   budget and seeds; the arm's recipe in ``SYNTHAUG_RECIPE``), predicts the test images with
   ``nnUNetv2_predict`` and scores them with nnU-Net's evaluation (``compute_metrics_on_folder``);
5. stores one ``result.json`` per arm x seed (per-case, per-class Dice and voxel counts, wall time, peak
   memory, the synthaug per-epoch log, the git commit the run started from and a dirty flag). A finished
   arm x seed with the same definition is never rerun, and an interrupted training resumes from its last
   checkpoint (``--c``).

Every nnU-Net step runs as a subprocess with its own log under ``work/runs/<arm>/seed<k>/``.
The report (:mod:`synthaug.benchmark.report`) is built from the stored results alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthaug._validate import check_folder
from synthaug.benchmark.arms import Arm
from synthaug.benchmark.profiles import Profile
from synthaug.errors import DataError, LeakageError, ValidationError

__all__ = [
    "SCENARIO_IDS",
    "BenchmarkDataset",
    "open_dataset",
    "prepare_scenario",
    "check_leakage",
    "label_classes",
    "run_benchmark",
    "arm_from_dict",
    "load_results",
]

SCENARIO_IDS = {"cross-modality": 511, "cross-scanner": 512, "in-domain": 513, "spine-cross-modality": 514}
RESULT_FILE = "result.json"
Log = Callable[[str], None]


@dataclass(frozen=True)
class BenchmarkDataset:
    """An nnU-Net raw dataset with a labelled test split."""

    folder: Path
    dataset_id: int
    dataset_json: Mapping[str, Any]
    train_ids: tuple[str, ...]
    test_ids: tuple[str, ...]
    groups: Mapping[str, tuple[str, ...]]  # evaluation group -> case ids (every case is in >= 1 group)
    held_out_groups: tuple[str, ...]        # the groups that are held-out tests (others: reported only)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def labels(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.dataset_json["labels"].items() if isinstance(v, int)}

    def groups_cases(self) -> list[str]:
        """Every case of every evaluation group, once, in order."""
        return list(dict.fromkeys(c for ids in self.groups.values() for c in ids))


def _stems(folder: Path, ending: str, channel_suffix: bool) -> list[str]:
    suffix = ("_0000" if channel_suffix else "") + ending
    return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}"))


def open_dataset(folder: str | os.PathLike[str]) -> BenchmarkDataset:
    """Check ``folder`` (nnU-Net raw ``DatasetXXX_Name`` with ``labelsTs``) and read its splits.

    Evaluation groups and the held-out cases follow :func:`synthaug.data.held_out.held_out_split` (the rule the
    trainer and ``synthaug expand`` read too): ``dataset.json["synthaug"]["test_groups"]`` for datasets
    exported by synthaug (held-out ``test`` groups and ``report`` groups), else one group ``test`` holding
    every ``labelsTs`` case.
    """
    from synthaug.data.held_out import held_out_split
    from synthaug.data.nnunet_export import check_nnunet_raw

    root = Path(folder)
    counts = check_nnunet_raw(root)
    name = root.name
    if not (name.startswith("Dataset") and name[7:10].isdigit() and name[10:11] == "_"):
        raise DataError(f"{root} is not named DatasetXXX_Name (three digits): nnU-Net cannot use it. Rename it.")
    meta = json.loads((root / "dataset.json").read_text())
    if not (root / "labelsTs").is_dir() or counts.get("numTest", 0) == 0:
        raise DataError(
            f"{root} has no labelled test split: put held-out cases in imagesTs/ with their labels in labelsTs/ "
            "(the harness trains on imagesTr only and scores imagesTs)."
        )
    ending = str(meta["file_ending"])
    train = tuple(_stems(root / "labelsTr", ending, False))
    test = tuple(_stems(root / "labelsTs", ending, False))
    split = held_out_split(meta, test)
    groups, held = dict(split.groups), split.groups_held_out
    unknown = sorted({c for ids in groups.values() for c in ids} - set(test))
    if unknown:
        raise DataError(f"{root / 'dataset.json'} lists test-group case(s) {unknown} that are not in labelsTs.")
    empty = sorted(g for g, ids in groups.items() if not ids)
    if empty:
        raise DataError(f"{root / 'dataset.json'}: test group(s) {empty} hold 0 volumes; every evaluation group "
                        "needs at least one test case. Remove the empty group(s) or add their cases to labelsTs.")
    if split.ungrouped:
        raise DataError(f"{root}: labelsTs case(s) {list(split.ungrouped)} are in no test group of dataset.json's "
                        "synthaug.test_groups, so they would never be trained on nor scored. Add them to a group or "
                        "move them out of imagesTs/labelsTs.")
    test_held = tuple(c for c in split.ids if c in test)  # not the ids dataset.json lists without files
    if not test_held:
        raise DataError(f"{root / 'dataset.json'}: no held-out test case (the groups {sorted(groups)} are all "
                        "report-only); mark at least one group's cases with role 'test'.")
    overlap = sorted(set(train) & set(test))
    if overlap:
        raise LeakageError(f"{root}: case id(s) {overlap} are both in labelsTr and labelsTs.")
    return BenchmarkDataset(root, int(name[7:10]), meta, train, test_held, groups, held)


def prepare_scenario(scenario: str, raw: str | os.PathLike[str], *, log: Log = print) -> Path:
    """Export built-in ``scenario`` to ``raw/Dataset5xx_...`` once (reused when already there)."""
    from synthaug.data.nnunet_export import export_nnunet

    if scenario not in SCENARIO_IDS:
        raise ValidationError(f"unknown scenario {scenario!r}; built-in: {sorted(SCENARIO_IDS)}.")
    raw = Path(raw)
    dataset_id = SCENARIO_IDS[scenario]
    existing = sorted(raw.glob(f"Dataset{dataset_id:03d}_*")) if raw.is_dir() else []
    if existing:
        return existing[0]
    log(f"[benchmark] exporting scenario {scenario} to {raw}")
    try:
        return export_nnunet(scenario, raw, dataset_id=dataset_id)
    except DataError:
        # another run on the same work folder exported it meanwhile; the export renames a finished folder into
        # place, so one that is there now is complete
        existing = sorted(raw.glob(f"Dataset{dataset_id:03d}_*"))
        if not existing:
            raise
        log(f"[benchmark] scenario {scenario} was exported meanwhile by another run: using {existing[0]}")
        return existing[0]


def check_leakage(ds: BenchmarkDataset, arms: Sequence[Arm]) -> dict[str, list[str]]:
    """Refuse (:class:`LeakageError`) any generator whose model card lists a test case; return the cards'
    training cases per weights name (for the report).

    Test cases are compared by slice range for synthaug scenario datasets (subject + slices) and by case
    id otherwise; the nnU-Net training cases are checked against the test cases the same way.
    """
    from synthaug.data.scenarios import check_no_overlap
    from synthaug.recipes.expand import check_card_leakage
    from synthaug.transforms.style_swap import bank_files
    from synthaug.weights.registry import card_of

    tests = list(ds.test_ids)
    check_no_overlap(ds.train_ids, tests, what="nnU-Net training")
    seen: dict[str, list[str]] = {}
    for arm in arms:
        for w in arm.weights():
            if w in seen:
                continue
            card = card_of(w)
            if not card.training_cases:
                raise LeakageError(
                    f"arm {arm.name!r}: generator {card.name!r} has no training cases in its model card, so the "
                    "harness cannot prove it never saw a test case. Re-export it with training_cases filled in."
                )
            check_card_leakage(card, ds.dataset_json)
            same = sorted(set(card.training_cases) & set(tests))
            if same:
                raise LeakageError(
                    f"arm {arm.name!r}: generator {card.name!r} was trained on test case(s) {same}. Train it on the "
                    "training cases only (synthaug train ... with this dataset's imagesTr) and rerun."
                )
            check_no_overlap(card.training_cases, tests, what=f"generator {card.name!r} training")
            seen[w] = list(card.training_cases)
        bank = _style_bank_folders(arm)
        for folder in bank:
            if Path(folder).resolve() in {(ds.folder / "imagesTs").resolve(), (ds.folder / "labelsTs").resolve()}:
                raise LeakageError(f"arm {arm.name!r}: its style bank {folder} is the test split.")
            ids = [cid for cid, _, _ in bank_files(folder)]
            check_no_overlap(ids, tests, what=f"arm {arm.name!r} style bank")
    return seen


def label_classes(ds: BenchmarkDataset) -> tuple[list[str], list[str]]:
    """(training, test) foreground class names present in the label volumes of ``labelsTr`` / ``labelsTs``.

    Raises :class:`DataError` when the two share no foreground class: no arm could score anything, so the
    benchmark would only measure noise.
    """
    import nibabel as nib
    import numpy as np

    ending = str(ds.dataset_json["file_ending"])
    names = {v: k for k, v in ds.labels.items()}

    def present(folder: str, ids: Sequence[str]) -> set[int]:
        if ending not in (".nii.gz", ".nii"):
            return set(names)  # other file formats are not inspected
        found: set[int] = set()
        for case in ids:
            f = ds.folder / folder / f"{case}{ending}"
            found |= {int(v) for v in np.unique(np.asarray(nib.load(str(f)).dataobj))}
        return found

    train = present("labelsTr", ds.train_ids)
    test = present("labelsTs", ds.groups_cases())
    fg_train = sorted(v for v in train if v > 0 and v in names)
    fg_test = sorted(v for v in test if v > 0 and v in names)
    if not set(fg_train) & set(fg_test):
        raise DataError(
            f"{ds.folder}: the training labels (classes {[names[v] for v in fg_train]}) and the test labels (classes "
            f"{[names[v] for v in fg_test]}) share no foreground class, so no arm can score anything. Map both to one "
            "label vocabulary (e.g. synthaug data export-nnunet's shared vocabularies) before benchmarking."
        )
    return [names[v] for v in fg_train], [names[v] for v in fg_test]


def _style_bank_folders(arm: Arm) -> list[str]:
    out = []
    for recipe in (arm.recipe, arm.expansion_recipe or {}):
        for t in recipe.get("transforms", []):
            b = (t.get("options") or {}).get("bank")
            if isinstance(b, str):
                out.append(b)
    return out


# ------------------------------------------------------------------------------------ processes


def _bin(name: str) -> str:
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else name


def run_logged(cmd: Sequence[str], env: Mapping[str, str], log_file: Path) -> tuple[float, float]:
    """Run ``cmd``; stdout+stderr to ``log_file``. Return (wall seconds, peak RSS in MB of the largest
    process). A failure raises :class:`DataError` with the log's tail."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w") as f:
        f.write("$ " + " ".join(str(c) for c in cmd) + "\n")
        f.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], env=dict(env), stdout=f, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
        raise DataError(f"{Path(str(cmd[0])).name} failed (exit {proc.returncode}); full log {log_file}:\n{tail}")
    return seconds, usage.ru_maxrss / 1024.0


def _read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _atomic_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


class _Env:
    """Environment for nnU-Net subprocesses of one benchmark work folder."""

    def __init__(self, work: Path, profile: Profile) -> None:
        from synthaug.integrations.nnunet import trainer_folder

        self.raw = work / "raw"
        self.preprocessed = work / "preprocessed"
        threads = str(profile.threads) if profile.threads else None
        base = {**os.environ, "nnUNet_raw": str(self.raw), "nnUNet_preprocessed": str(self.preprocessed),
                "nnUNet_results": str(work / "results_unused"), "nnUNet_extTrainer": str(trainer_folder()),
                "nnUNet_compile": "false", "nnUNet_def_n_proc": "1",
                "SYNTHAUG_SAVE_EVERY": "5"}  # a killed run resumes from its last 5-epoch checkpoint
        if threads:
            base.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, SYNTHAUG_TORCH_THREADS=threads)
        base.pop("nnUNet_n_proc_DA", None)
        # workers only for training: nnU-Net's planner sets torch threads from this variable (0 breaks it)
        self.train_extra = {"nnUNet_n_proc_DA": str(profile.workers)} if profile.workers is not None else {}
        self.base = base

    def __call__(self, **extra: str) -> dict[str, str]:
        return {**self.base, **extra}

    def training(self, *, results: Path, recipe: Path, seed: int, profile: Profile) -> dict[str, str]:
        """The environment of one ``nnUNetv2_train`` run: its results folder, recipe, seed and the profile's budget."""
        renv = self(nnUNet_results=str(results), SYNTHAUG_RECIPE=str(recipe), SYNTHAUG_SEED=str(seed),
                    **self.train_extra)
        for key, var in (("num_epochs", "SYNTHAUG_NUM_EPOCHS"), ("iterations_per_epoch", "SYNTHAUG_ITERS_PER_EPOCH"),
                         ("val_iterations", "SYNTHAUG_VAL_ITERS")):
            v = getattr(profile, key)
            if v is not None:
                renv[var] = str(v)
        return renv


# ------------------------------------------------------------------------------------ preparation


def work_environment(src: Path, work: Path, profile: Profile) -> tuple[_Env, BenchmarkDataset]:
    """The nnU-Net environment of a work folder and the dataset ``src`` linked into its ``raw`` folder."""
    env = _Env(work, profile)
    env.raw.mkdir(parents=True, exist_ok=True)
    linked = env.raw / src.name
    if not linked.exists():
        linked.symlink_to(src, target_is_directory=True)
    elif linked.resolve() != src:
        raise DataError(f"{linked} already points to {linked.resolve()}, not {src}; use another work folder.")
    return env, open_dataset(linked)


def _plan(ds_id: int, ds_folder: Path, env: _Env, profile: Profile, logs: Path, log: Log) -> None:
    """nnU-Net plan + preprocess (once) and the profile's plans file."""
    pre = env.preprocessed / ds_folder.name
    marker = pre / f".synthaug_preprocessed_{profile.configuration}"
    if not marker.exists():
        log(f"[benchmark] nnUNetv2_plan_and_preprocess -d {ds_id} -c {profile.configuration}")
        run_logged([_bin("nnUNetv2_plan_and_preprocess"), "-d", str(ds_id), "-c", profile.configuration,
                    "-np", "1", "-npfp", "1", "--verify_dataset_integrity"], env(), logs / f"plan_{ds_id}.log")
        marker.write_text("done\n")
    _write_profile_plans(pre, profile)


def _write_profile_plans(pre: Path, profile: Profile) -> None:
    if profile.plans == "nnUNetPlans":
        return
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    _atomic_json(pre / f"{profile.plans}.json", profile.patch_plans(plans))


def _free_dataset_id(env: _Env, start: int) -> int:
    used = {p.name[7:10] for root in (env.raw, env.preprocessed) if root.is_dir() for p in root.glob("Dataset*")}
    for i in list(range(start, 1000)) + list(range(1, start)):
        if f"{i:03d}" not in used:
            return i
    raise DataError(f"no free nnU-Net dataset id left in {env.raw}.")


def _expand(arm: Arm, ds: BenchmarkDataset, env: _Env, profile: Profile, work: Path, log: Log) -> tuple[int, str]:
    """Expanded dataset for ``arm`` (made once per arm definition): returns (dataset id, folder name)."""
    from synthaug.recipes.expand import expand_dataset

    record = work / "expanded" / f"{arm.name}.json"
    if record.exists():
        info = json.loads(record.read_text())
        if info.get("fingerprint") == arm.fingerprint() and (env.raw / info["folder"]).is_dir():
            _plan_expanded(info["id"], info["folder"], ds, env, profile, work, log)
            return int(info["id"]), str(info["folder"])
    recipe_file = work / "expanded" / f"{arm.name}.recipe.json"
    recipe_file.parent.mkdir(parents=True, exist_ok=True)
    _atomic_json(recipe_file, dict(arm.expansion_recipe or {}))
    new_id = _free_dataset_id(env, ds.dataset_id + 100 if ds.dataset_id < 900 else 100)
    folder = f"Dataset{new_id:03d}_{ds.name[11:]}X{arm.name.replace('_', '').replace('-', '')}"
    log(f"[benchmark] arm {arm.name}: synthaug expand -> {folder} ({arm.per_case} per case)")
    t0 = time.perf_counter()
    expand_dataset(ds.folder, env.raw / folder, recipe=recipe_file, per_case=arm.per_case, seed=0,
                   device=profile.device if profile.device != "cuda" else None, progress=False, preview=True)
    _atomic_json(record, {"fingerprint": arm.fingerprint(), "id": new_id, "folder": folder,
                          "expand_seconds": time.perf_counter() - t0})
    _plan_expanded(new_id, folder, ds, env, profile, work, log)
    return new_id, folder


def _plan_expanded(new_id: int, folder: str, ds: BenchmarkDataset, env: _Env, profile: Profile, work: Path,
                   log: Log) -> None:
    """Preprocess the expanded dataset with the source dataset's plans (same normalisation, patch, network)."""
    pre = env.preprocessed / folder
    marker = pre / f".synthaug_preprocessed_{profile.configuration}"
    if marker.exists():
        _write_profile_plans(pre, profile)
        return
    logs = work / "logs"
    run_logged([_bin("nnUNetv2_extract_fingerprint"), "-d", str(new_id), "-np", "1"], env(),
               logs / f"fingerprint_{new_id}.log")
    run_logged([_bin("nnUNetv2_move_plans_between_datasets"), "-s", str(ds.dataset_id), "-t", str(new_id),
                "-sp", "nnUNetPlans", "-tp", "nnUNetPlans"], env(), logs / f"move_plans_{new_id}.log")
    # the source's intensity properties (CT normalisation) are kept: same plans as every other arm
    src_plans = json.loads((env.preprocessed / ds.name / "nnUNetPlans.json").read_text())
    new_plans = json.loads((pre / "nnUNetPlans.json").read_text())
    new_plans["foreground_intensity_properties_per_channel"] = src_plans["foreground_intensity_properties_per_channel"]
    _atomic_json(pre / "nnUNetPlans.json", new_plans)
    shutil.copy(env.raw / folder / "dataset.json", pre / "dataset.json")  # as nnU-Net's planning step does
    log(f"[benchmark] nnUNetv2_preprocess -d {new_id} -c {profile.configuration}")
    run_logged([_bin("nnUNetv2_preprocess"), "-d", str(new_id), "-c", profile.configuration, "-np", "1"], env(),
               logs / f"preprocess_{new_id}.log")
    marker.write_text("done\n")
    _write_profile_plans(pre, profile)


# ------------------------------------------------------------------------------------ one run


# Profile fields that do not change what one arm x seed run computes (adding a seed or running more
# runs at a time must not invalidate finished runs).
_NOT_PER_RUN = ("seeds", "parallel")


def _definition(arm: Arm, seed: int, profile: Profile, ds: BenchmarkDataset) -> dict[str, Any]:
    prof = {k: v for k, v in profile.to_dict().items() if k not in _NOT_PER_RUN}
    return {"arm": arm.fingerprint(), "seed": seed, "profile": prof, "dataset": ds.name,
            "train": list(ds.train_ids), "test": list(ds.test_ids)}


def _same_run(a: Any, b: Mapping[str, Any]) -> bool:
    """Whether stored definition ``a`` describes the run ``b`` (older files also stored the seed list)."""
    if not isinstance(a, Mapping):
        return False
    a = {**a, "profile": {k: v for k, v in dict(a.get("profile", {})).items() if k not in _NOT_PER_RUN}}
    return a == b


def _evaluate(ds: BenchmarkDataset, pred: Path, out_file: Path) -> tuple[dict[str, dict[str, float | None]],
                                                                          dict[str, dict[str, list[int]]]]:
    """nnU-Net's own evaluation of ``pred`` against ``labelsTs``; returns ``{case: {label name: Dice}}`` and
    ``{case: {label name: [reference voxels, predicted voxels]}}``."""
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

    ending = str(ds.dataset_json["file_ending"])
    example = next((ds.folder / "labelsTs").glob(f"*{ending}"))
    rw = determine_reader_writer_from_dataset_json(dict(ds.dataset_json), str(example), verbose=False)()
    labels = ds.labels
    fg = sorted(v for k, v in labels.items() if v > 0)
    compute_metrics_on_folder(str(ds.folder / "labelsTs"), str(pred), str(out_file), rw, ending, fg,
                              ds.dataset_json.get("ignore_label"), num_processes=1)
    summary = json.loads(out_file.read_text())
    names = {v: k for k, v in labels.items()}
    cases: dict[str, dict[str, float | None]] = {}
    voxels: dict[str, dict[str, list[int]]] = {}
    for entry in summary["metric_per_case"]:
        case = Path(entry["reference_file"]).name[: -len(ending)]
        per = {}
        for key, m in entry["metrics"].items():
            d = m.get("Dice")
            per[names[int(key)]] = None if d is None or d != d else float(d)
            if "n_ref" in m and "n_pred" in m:
                voxels.setdefault(case, {})[names[int(key)]] = [int(m["n_ref"]), int(m["n_pred"])]
        cases[case] = per
    return cases, voxels


def slice_dice(ds: BenchmarkDataset, pred: Path) -> dict[str, list[dict[str, float | None]]]:
    """Per-slice (last array axis), per-class Dice of every prediction in ``pred`` against ``labelsTs``.

    The units of a 2D model (it predicts each slice on its own); adjacent slices are correlated, so
    slice-level intervals are narrower than the truth. ``None`` where a class is in neither slice.
    """
    import nibabel as nib
    import numpy as np

    ending = str(ds.dataset_json["file_ending"])
    out: dict[str, list[dict[str, float | None]]] = {}
    for case in ds.groups_cases():
        p, r = pred / f"{case}{ending}", ds.folder / "labelsTs" / f"{case}{ending}"
        if not p.exists():
            continue
        a = np.asarray(nib.load(str(p)).dataobj).astype(np.int64)
        b = np.asarray(nib.load(str(r)).dataobj).astype(np.int64)
        a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
        rows = []
        for z in range(a.shape[-1]):
            row: dict[str, float | None] = {}
            for name, v in ds.labels.items():
                if v == 0:
                    continue
                pa, pb = a[:, z] == v, b[:, z] == v
                denom = int(pa.sum() + pb.sum())
                row[name] = None if denom == 0 else 2.0 * int((pa & pb).sum()) / denom
            rows.append(row)
        out[case] = rows
    return out


def _read_synthaug_log(results: Path) -> list[dict[str, Any]]:
    files = sorted(results.rglob("synthaug_log.jsonl"))
    if not files:
        return []
    return [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]


def _run_one(arm: Arm, seed: int, ds: BenchmarkDataset, train_id: int, profile: Profile, env: _Env,
             work: Path, log: Log) -> dict[str, Any]:
    folder = work / "runs" / arm.name / f"seed{seed}"
    definition = _definition(arm, seed, profile, ds)
    done = folder / RESULT_FILE
    if done.exists():
        previous = json.loads(done.read_text())
        if _same_run(previous.get("definition"), definition):
            log(f"[benchmark] {arm.name} seed {seed}: finished before, skipped")
            return previous
    started = folder / "definition.json"
    if folder.exists() and (not started.exists() or not _same_run(json.loads(started.read_text()), definition)):
        shutil.rmtree(folder)  # a run of another definition: start over
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_json(started, definition)
    from synthaug.benchmark.provenance import Commit, current_commit

    commit_file = folder / "commit.json"
    if not commit_file.exists():  # the commit the run started from (kept when an interrupted run resumes)
        start = current_commit()
        _atomic_json(commit_file, start.to_dict() if start else None)
    commit = Commit.from_dict(json.loads(commit_file.read_text()))
    recipe = folder / "recipe.json"
    _atomic_json(recipe, {"seed": seed, **dict(arm.recipe),
                          **({"description": arm.description} if "description" not in arm.recipe else {})})
    results = folder / "nnunet_results"
    renv = env.training(results=results, recipe=recipe, seed=seed, profile=profile)
    device = profile.device
    log(f"[benchmark] {arm.name} seed {seed}: nnUNetv2_train {train_id} {profile.configuration} all")
    train_cmd = [_bin("nnUNetv2_train"), str(train_id), profile.configuration, "all", "-tr", "nnUNetTrainerSynthAug",
                 "-p", profile.plans, "-device", device]
    if any(results.rglob("checkpoint_latest.pth")) and not any(results.rglob("checkpoint_final.pth")):
        train_cmd.append("--c")  # resume an interrupted training
    if any(results.rglob("checkpoint_final.pth")):
        train_s, train_mb = _reuse_timing(folder / "train_timing.json")
    else:
        train_s, train_mb = run_logged(train_cmd, renv, folder / "train.log")
        _atomic_json(folder / "train_timing.json", {"seconds": train_s, "peak_rss_mb": train_mb})
    pred = folder / "pred"
    if pred.exists():
        shutil.rmtree(pred)
    pred_cmd = [_bin("nnUNetv2_predict"), "-i", str(ds.folder / "imagesTs"), "-o", str(pred), "-d", str(train_id),
                "-c", profile.configuration, "-f", "all", "-tr", "nnUNetTrainerSynthAug", "-p", profile.plans,
                "-device", device, "-npp", "1", "-nps", "1", "--disable_progress_bar"]
    if not profile.tta:
        pred_cmd.append("--disable_tta")
    log(f"[benchmark] {arm.name} seed {seed}: nnUNetv2_predict")
    pred_s, pred_mb = run_logged(pred_cmd, renv, folder / "predict.log")
    cases, voxels = _evaluate(ds, pred, folder / "summary.json")
    slices = slice_dice(ds, pred)
    from synthaug.training.provenance import machine_line

    finish = current_commit()

    result = {
        "definition": definition,
        "arm": arm.name,
        "description": arm.description,
        "seed": seed,
        "profile": profile.name,
        "dataset": ds.name,
        "train_dataset_id": train_id,
        "weights": arm.weights(),
        "train_seconds": train_s,
        "predict_seconds": pred_s,
        "peak_rss_mb": max(train_mb, pred_mb),
        "cases": cases,
        "voxels": voxels,
        "slices": slices,
        "synthaug_log": _read_synthaug_log(results),
        "machine": machine_line(),
        "commit": commit.to_dict() if commit else None,
        **({"commit_at_finish": finish.to_dict()} if finish is not None and finish != commit else {}),
        "commands": {"train": " ".join(map(str, train_cmd)), "predict": " ".join(map(str, pred_cmd))},
    }
    _atomic_json(done, result)
    log(f"[benchmark] {arm.name} seed {seed}: done in {train_s + pred_s:.0f} s")
    return result


def _reuse_timing(path: Path) -> tuple[float, float]:
    if path.exists():
        t = json.loads(path.read_text())
        return float(t["seconds"]), float(t["peak_rss_mb"])
    return float("nan"), float("nan")


# ------------------------------------------------------------------------------------ driver


def run_benchmark(
    dataset: str | os.PathLike[str],
    work: str | os.PathLike[str],
    profile: Profile,
    arms: Sequence[Arm],
    *,
    log: Log = print,
    require_default: bool = True,
) -> list[dict[str, Any]]:
    """Run every arm x seed of ``profile`` on ``dataset`` under ``work``; return their results.

    ``dataset`` is an nnU-Net raw folder (linked into ``work/raw``). Rerunning with the same arguments
    skips finished runs; a changed arm or profile reruns only what changed, and more seeds only add runs.
    Arms run before in the same work folder (same dataset and split) stay recorded in ``benchmark.json``
    when a later call runs only some arms (e.g. more seeds for two of them), so the report keeps them all.
    Checked before any work: leakage, empty test groups (:func:`open_dataset`), training and test labels
    without a common class (:func:`label_classes`); a seed list shorter than a headline claim needs is
    logged (the report then says "not shown"). ``require_default=False`` (reruns of single arms, as
    ``synthaug benchmark reproduce`` does) drops the rule that the first arm is ``default``.
    """
    from synthaug.benchmark.claims import ClaimRule
    from synthaug.benchmark.provenance import current_commit

    work = check_folder("work", work).resolve()
    src = Path(dataset).resolve()
    ds0 = open_dataset(src)
    if not arms or (require_default and arms[0].name != "default"):
        raise ValidationError("the first arm must be 'default' (the reference every arm is compared with).")
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ValidationError(f"arm names must be unique, got {names}.")
    training = check_leakage(ds0, arms)
    train_classes, test_classes = label_classes(ds0)
    short = ClaimRule().shortfall(len(profile.seeds))
    if short and require_default:
        log(f"[benchmark] note: {short}")
    env, ds = work_environment(src, work, profile)
    sa = ds.dataset_json.get("synthaug")
    commit = current_commit()
    recorded, training = [a.to_dict() for a in arms], dict(training)
    previous = _read_json(work / "benchmark.json")
    if previous and (previous.get("dataset"), previous.get("train_cases"), previous.get("test_cases")) == (
            ds.name, list(ds.train_ids), list(ds.test_ids)):
        # arms run before in this work folder stay in the report when a later call runs only some of them
        names = {a.name for a in arms}
        recorded += [a for a in previous.get("arms", []) if a.get("name") not in names]
        training = {**dict(previous.get("generator_training_cases") or {}), **training}
    logs = work / "logs"
    _plan(ds.dataset_id, ds.folder, env, profile, logs, log)
    train_ids = {}
    for arm in arms:
        train_ids[arm.name] = _expand(arm, ds, env, profile, work, log)[0] if arm.is_expansion else ds.dataset_id
    # recorded once every arm is ready to train: an arm refused while preparing (an expansion its generator
    # refuses) never enters the report as a phantom arm with no run
    _atomic_json(work / "benchmark.json", {
        "dataset": ds.name, "source": str(src),
        "scenario": sa.get("scenario") if isinstance(sa, Mapping) else None,
        "labels": ds.labels, "train_classes": train_classes, "test_classes": test_classes,
        "profile": profile.to_dict(), "arms": recorded,
        "generator_training_cases": training, "train_cases": list(ds.train_ids), "test_cases": list(ds.test_ids),
        "groups": {k: list(v) for k, v in ds.groups.items()}, "held_out_groups": list(ds.held_out_groups),
        "commit": commit.to_dict() if commit else None,
    })
    jobs = [(arm, seed) for seed in profile.seeds for arm in arms]
    if profile.parallel == 1:
        return [_run_one(a, s, ds, train_ids[a.name], profile, env, work, log) for a, s in jobs]
    with ThreadPoolExecutor(max_workers=profile.parallel) as pool:
        futures = [pool.submit(_run_one, a, s, ds, train_ids[a.name], profile, env, work, log) for a, s in jobs]
        return [f.result() for f in futures]


def arm_from_dict(d: Mapping[str, Any]) -> Arm:
    """The :class:`Arm` a ``benchmark.json`` / report JSON stored (``Arm.to_dict()``)."""
    exp = d.get("expansion") if isinstance(d.get("expansion"), Mapping) else None
    return Arm(name=str(d.get("name", "")), description=str(d.get("description", "")),
               recipe=d.get("recipe") or {"transforms": []},
               expansion_recipe=exp.get("recipe") if exp else None,
               per_case=int(exp.get("per_case", 2)) if exp else 2)


def load_results(work: str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(``benchmark.json``, every stored ``result.json``) of a work folder, in arm then seed order.

    Every finished seed of the listed arms counts, not only the seeds of the last invocation, as long as
    its stored definition (arm, profile apart from seeds and parallel runs, dataset, split) is the current
    one; runs of another definition are left out and listed in ``meta["ignored_runs"]``.
    """
    work = Path(work)
    meta_file = work / "benchmark.json"
    if not meta_file.exists():
        raise DataError(f"{work} holds no benchmark (no benchmark.json); run synthaug benchmark downstream first.")
    meta = json.loads(meta_file.read_text())
    prof = {k: v for k, v in meta["profile"].items() if k not in _NOT_PER_RUN}
    results = []
    ignored = []
    ds = None
    for a in meta["arms"]:
        fingerprint = arm_from_dict(a).fingerprint()
        folders = [p for p in (work / "runs" / a["name"]).glob("seed*") if p.name[4:].isdigit()]
        for folder in sorted(folders, key=lambda p: int(p.name[4:])):
            f = folder / RESULT_FILE
            if not f.exists():
                continue
            r = json.loads(f.read_text())
            seed = int(folder.name[4:])
            want = {"arm": fingerprint, "seed": seed, "profile": prof, "dataset": meta["dataset"],
                    "train": list(meta["train_cases"]), "test": list(meta["test_cases"])}
            if not _same_run(r.get("definition"), want):
                ignored.append(f"{a['name']} seed {seed}")
                continue
            if "slices" not in r and (f.parent / "pred").is_dir():  # results of an older harness
                ds = ds or open_dataset(work / "raw" / meta["dataset"])
                r["slices"] = slice_dice(ds, f.parent / "pred")
                _atomic_json(f, r)
            results.append(r)
    meta["ignored_runs"] = ignored
    return meta, results
