"""Mixing-policy search: how much synthesis an on-the-fly arm uses, chosen on the training data alone.

Issue 15 asks that the fraction of synthetic samples (and a curriculum) be chosen by a small, documented
search on the training data's own validation fold, never on a test case. :func:`tune_mixing` does that:

- each candidate :class:`MixingPolicy` rescales the arm's transform probabilities so that they sum to the
  candidate's ``probability`` (their ratios kept) and optionally ramps synthesis in over the first half of
  the epochs (a :class:`~synthaug.recipes.recipe.Schedule`);
- each candidate trains nnU-Net on fold ``fold`` of nnU-Net's own 5-fold split of the *training* cases
  (``imagesTr``; the test split lives in ``imagesTs`` and is never read) at the benchmark profile and seed,
  the profile's ``parallel`` candidates at a time;
- nnU-Net's own validation of that fold scores it: the foreground mean Dice over the fold's validation
  cases (``fold_N/validation/summary.json``);
- the best candidate is chosen (ties: less synthesis first); every candidate's Dice, the validation cases
  and the commands are recorded in ``work/tuning/<arm>.json`` (:class:`MixingSearchResult`), which
  :func:`apply_tuning` reads to give the benchmark arm its chosen policy.

What the search can see: the validation fold is in the training domain (CT for CT -> MR scenarios), so it
selects the policy that keeps the most in-domain skill among the candidates; it cannot see the unseen
domain. The report says so beside the chosen policy.

CLI: ``synthaug benchmark tune --scenario S --arm context_dr --work W [--profile cpu-long]``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthaug._validate import check_folder
from synthaug.benchmark.arms import Arm
from synthaug.benchmark.profiles import Profile
from synthaug.errors import DataError, LeakageError, ValidationError

__all__ = ["MixingPolicy", "CandidateScore", "MixingSearchResult", "DEFAULT_POLICIES", "apply_policy",
           "tune_mixing", "apply_tuning", "tuning_file", "tuning_markdown", "TUNED_SUFFIX", "SearchRecord",
           "read_search", "tuned_arm"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class MixingPolicy:
    """One candidate: the summed transform probability and whether synthesis ramps in.

    Attributes:
        probability: the arm's transform probabilities rescaled to sum to this (0 < p <= 1).
        ramp: synthesis off at the start, ramping linearly to full strength over the first half of the epochs.
    """

    probability: float
    ramp: bool = False

    def __post_init__(self) -> None:
        p = self.probability
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < float(p) <= 1.0:
            raise ValidationError(f"a mixing policy's probability must lie in (0, 1], got {p!r}.")
        object.__setattr__(self, "probability", float(p))
        object.__setattr__(self, "ramp", bool(self.ramp))

    @property
    def name(self) -> str:
        """Folder-safe id, e.g. ``p0.50`` or ``p1.00-ramp``."""
        return f"p{self.probability:.2f}" + ("-ramp" if self.ramp else "")

    @classmethod
    def parse(cls, text: str) -> MixingPolicy:
        """``"0.5"`` or ``"1.0:ramp"`` (the CLI's form)."""
        value, _, mode = str(text).partition(":")
        if mode not in ("", "ramp"):
            raise ValidationError(f"mixing policy {text!r}: write P or P:ramp (e.g. 0.5 or 1.0:ramp).")
        try:
            p = float(value)
        except ValueError as exc:
            raise ValidationError(f"mixing policy {text!r}: {value!r} is not a probability.") from exc
        return cls(p, ramp=mode == "ramp")


#: The documented default search: three fractions and one curriculum (4 trainings per arm).
DEFAULT_POLICIES: tuple[MixingPolicy, ...] = (
    MixingPolicy(0.25), MixingPolicy(0.5), MixingPolicy(1.0), MixingPolicy(1.0, ramp=True),
)


def apply_policy(arm: Arm, policy: MixingPolicy, *, num_epochs: int | None) -> Arm:
    """``arm`` with its transform probabilities rescaled to sum to ``policy.probability`` (ratios kept).

    Only on-the-fly arms have a mixing policy: an expansion arm or ``default`` is refused.
    """
    transforms = list(arm.recipe.get("transforms", []))
    if arm.is_expansion or not transforms:
        raise ValidationError(f"arm {arm.name!r} synthesises nothing on the fly: it has no mixing policy to tune "
                              "(tune an on-the-fly arm such as context_dr or synthseg).")
    total = sum(float(t.get("probability", 1.0)) for t in transforms)
    if not total > 0:
        raise ValidationError(f"arm {arm.name!r}: its transform probabilities sum to {total}; nothing to rescale.")
    scaled = [{**t, "probability": round(float(t.get("probability", 1.0)) * policy.probability / total, 6)}
              for t in transforms]
    recipe: dict[str, Any] = {**dict(arm.recipe), "transforms": scaled}
    if policy.ramp:
        if not num_epochs or num_epochs < 2:
            raise ValidationError(f"a ramped mixing policy needs a profile with >= 2 epochs, got {num_epochs!r}.")
        recipe["schedule"] = {"warmup_epochs": 0, "ramp_epochs": int(num_epochs) // 2, "start": 0.0}
    else:
        recipe.pop("schedule", None)
    return dataclasses.replace(arm, recipe=recipe,
                               description=f"{arm.description}; mixing {policy.name}")


@dataclass(frozen=True)
class CandidateScore:
    """A candidate policy and its validation Dice (foreground mean over the fold's validation cases)."""

    policy: MixingPolicy
    dice: float
    per_class: Mapping[str, float]
    train_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"probability": self.policy.probability, "ramp": self.policy.ramp, "dice": self.dice,
                "per_class": dict(self.per_class), "train_seconds": self.train_seconds}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CandidateScore:
        return cls(MixingPolicy(float(d["probability"]), bool(d.get("ramp", False))), float(d["dice"]),
                   {str(k): float(v) for k, v in dict(d.get("per_class", {})).items()}, float(d["train_seconds"]))


@dataclass(frozen=True)
class MixingSearchResult:
    """What a search measured and chose (written to ``work/tuning/<arm>.json``)."""

    arm: str
    profile: str
    seed: int
    fold: int
    validation_cases: tuple[str, ...]
    candidates: tuple[CandidateScore, ...]
    commit: str | None
    machine: str

    @property
    def chosen(self) -> MixingPolicy:
        """Highest validation Dice; ties go to less synthesis (lower probability, no ramp before ramp)."""
        best = max(self.candidates, key=lambda c: (c.dice, -c.policy.probability, not c.policy.ramp))
        return best.policy

    def to_dict(self) -> dict[str, Any]:
        return {"arm": self.arm, "profile": self.profile, "seed": self.seed, "fold": self.fold,
                "validation_cases": list(self.validation_cases),
                "candidates": [c.to_dict() for c in self.candidates],
                "chosen": {"probability": self.chosen.probability, "ramp": self.chosen.ramp},
                "commit": self.commit, "machine": self.machine,
                "scope": "validation fold of the training cases (training domain only); no test case is read"}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MixingSearchResult:
        return cls(str(d["arm"]), str(d["profile"]), int(d["seed"]), int(d["fold"]),
                   tuple(str(c) for c in d["validation_cases"]),
                   tuple(CandidateScore.from_dict(c) for c in d["candidates"]), d.get("commit"), str(d["machine"]))


def tuning_markdown(result: MixingSearchResult, *, scenario: str, command: str, date: str) -> str:
    """The Markdown of a search (Dice in points): every candidate, the choice and what the search can see."""
    classes = sorted({k for c in result.candidates for k in c.per_class})
    chosen = result.chosen
    lines = [f"# Mixing-policy search: arm `{result.arm}` ({scenario}, {result.profile})", "",
             f"Date: {date}. Machine: {result.machine}. Commit: {result.commit or 'unknown'}.", "",
             f"Command: `{command}`", "",
             f"Each candidate trains nnU-Net on fold {result.fold} of nnU-Net's 5-fold split of the *training* cases "
             f"(seed {result.seed}, profile `{result.profile}`) and is scored by nnU-Net's own validation of that fold: "
             f"the foreground mean Dice over its validation cases ({', '.join(result.validation_cases)}). No test case "
             "is read. The fold is in the training domain: the search keeps the most in-domain skill among the "
             "candidates and cannot see an unseen domain. One seed on one fold: a choice, not a claim.", "",
             "| policy | validation Dice | " + " | ".join(classes) + " | train s | |",
             "|---|---|" + "---|" * len(classes) + "---|---|"]
    for c in result.candidates:
        per = " | ".join(f"{100 * c.per_class[k]:.1f}" if k in c.per_class else "—" for k in classes)
        lines.append(f"| {c.policy.name} | {100 * c.dice:.1f} | {per} | {c.train_seconds:.0f} | "
                     f"{'chosen' if c.policy == chosen else ''} |")
    lines += ["", "Policies: `pP` rescales the arm's transform probabilities to sum to P (their ratios kept); "
              "`-ramp` switches synthesis on gradually over the first half of the epochs. Ties go to less synthesis."]
    return "\n".join(lines) + "\n"


def tuning_file(work: str | Path, arm: str) -> Path:
    """Where the search for ``arm`` records its result."""
    return Path(work) / "tuning" / f"{arm}.json"


def _validation(results: Path, fold: int) -> tuple[float, dict[str, float]]:
    """nnU-Net's validation of ``fold``: (foreground mean Dice, per-class Dice by label id)."""
    found = sorted(results.rglob(f"fold_{fold}/validation/summary.json"))
    if not found:
        raise DataError(f"no fold_{fold}/validation/summary.json under {results}: nnU-Net's final validation did "
                        "not run (see the training log beside it).")
    summary = json.loads(found[0].read_text())
    dice = summary.get("foreground_mean", {}).get("Dice")
    if dice is None or not math.isfinite(float(dice)):
        raise DataError(f"{found[0]} has no finite foreground mean Dice.")
    per_class = {str(k): float(v["Dice"]) for k, v in summary.get("mean", {}).items()
                 if isinstance(v, Mapping) and v.get("Dice") is not None and math.isfinite(float(v["Dice"]))}
    return float(dice), per_class


def _write_split(preprocessed: Path, train_ids: Sequence[str]) -> None:
    """nnU-Net's own 5-fold split of the training cases, written before any training when missing.

    The file is what nnU-Net's trainer would write on its first fold training (its ``generate_crossval_split``
    over the sorted case identifiers, seed 12345); written up front so that candidates can train in parallel
    without racing to create it. An existing file (nnU-Net's or the user's) is kept.
    """
    splits = preprocessed / "splits_final.json"
    if splits.exists():
        return
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    from synthaug.benchmark.downstream import _atomic_json

    _atomic_json(splits, generate_crossval_split(sorted(train_ids), seed=12345, n_splits=5))


def _validation_cases(preprocessed: Path, fold: int, test_ids: Sequence[str]) -> tuple[str, ...]:
    splits = preprocessed / "splits_final.json"
    if not splits.exists():
        raise DataError(f"{splits} is missing: the split of the training cases is written before the trainings.")
    folds = json.loads(splits.read_text())
    if not 0 <= fold < len(folds):
        raise ValidationError(f"fold {fold} does not exist in {splits} ({len(folds)} folds).")
    val = tuple(str(c) for c in folds[fold]["val"])
    seen = sorted(set(val) | set(folds[fold]["train"]))
    leaked = sorted(set(seen) & set(test_ids))
    if leaked:
        raise LeakageError(f"{splits} puts test case(s) {leaked} into fold {fold}: the mixing search must never see a "
                           "test case. Delete the splits file and rerun.")
    return val


def tune_mixing(
    dataset: str | Path,
    work: str | Path,
    profile: Profile,
    arm: Arm,
    *,
    policies: Sequence[MixingPolicy] = DEFAULT_POLICIES,
    seed: int = 0,
    fold: int = 0,
    log: Log = print,
) -> MixingSearchResult:
    """Train ``arm`` under each policy on fold ``fold`` of the training cases and record the best (module doc).

    Resumable: a finished candidate (its validation summary exists for the same definition) is not retrained.
    """
    from synthaug.benchmark.downstream import (
        _NOT_PER_RUN,
        _atomic_json,
        _bin,
        _plan,
        check_leakage,
        run_logged,
        work_environment,
    )
    from synthaug.benchmark.provenance import current_commit
    from synthaug.training.provenance import machine_line

    if not policies:
        raise ValidationError("give at least one mixing policy to try.")
    if len({p.name for p in policies}) != len(policies):
        raise ValidationError(f"mixing policies must differ, got {[p.name for p in policies]}.")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < 5:
        raise ValidationError(f"fold must be one of nnU-Net's folds 0-4, got {fold!r}.")
    candidates = [apply_policy(arm, policy, num_epochs=profile.num_epochs) for policy in policies]  # before any work
    work = check_folder("work", work).resolve()
    src = Path(dataset).resolve()
    env, ds = work_environment(src, work, profile)
    check_leakage(ds, [arm])
    _plan(ds.dataset_id, ds.folder, env, profile, work / "logs", log)
    _write_split(env.preprocessed / ds.folder.name, ds.train_ids)  # before the trainings, which may run in parallel
    val_cases = _validation_cases(env.preprocessed / ds.folder.name, fold, ds.test_ids)  # leakage: before any training
    per_run = {k: v for k, v in profile.to_dict().items() if k not in _NOT_PER_RUN}  # parallel runs: not a change

    def train(policy: MixingPolicy, candidate: Arm) -> Path:
        folder = work / "tuning" / arm.name / policy.name / f"seed{seed}"
        definition = {"arm": candidate.fingerprint(), "seed": seed, "fold": fold, "profile": per_run}
        started = folder / "definition.json"
        if folder.exists() and (not started.exists() or json.loads(started.read_text()) != definition):
            shutil.rmtree(folder)  # another definition: start over
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_json(started, definition)
        recipe = folder / "recipe.json"
        _atomic_json(recipe, {"seed": seed, **dict(candidate.recipe), "description": candidate.description})
        results = folder / "nnunet_results"
        renv = env.training(results=results, recipe=recipe, seed=seed, profile=profile)
        if not list(results.rglob(f"fold_{fold}/validation/summary.json")):
            cmd = [_bin("nnUNetv2_train"), str(ds.dataset_id), profile.configuration, str(fold), "-tr",
                   "nnUNetTrainerSynthAug", "-p", profile.plans, "-device", profile.device]
            if any(results.rglob("checkpoint_latest.pth")) and not any(results.rglob("checkpoint_final.pth")):
                cmd.append("--c")
            log(f"[tune] {arm.name} {policy.name} seed {seed}: nnUNetv2_train {ds.dataset_id} "
                f"{profile.configuration} {fold}")
            seconds, _ = run_logged(cmd, renv, folder / "train.log")
            _atomic_json(folder / "train_timing.json", {"seconds": seconds, "command": " ".join(map(str, cmd))})
        else:
            log(f"[tune] {arm.name} {policy.name} seed {seed}: finished before, skipped")
        return folder

    jobs = list(zip(policies, candidates))
    if profile.parallel > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(max_workers=profile.parallel) as pool:
            folders = list(pool.map(lambda job: train(*job), jobs))
    else:
        folders = [train(*job) for job in jobs]
    names = {str(v): k for k, v in ds.labels.items()}
    scores = []
    for policy, folder in zip(policies, folders):
        dice, per_class = _validation(folder / "nnunet_results", fold)
        timing = folder / "train_timing.json"
        seconds = float(json.loads(timing.read_text())["seconds"]) if timing.exists() else float("nan")
        scores.append(CandidateScore(policy, dice, {names.get(k, k): v for k, v in per_class.items()}, seconds))
        log(f"[tune] {arm.name} {policy.name}: validation Dice {dice:.4f}")
    commit = current_commit()
    result = MixingSearchResult(arm.name, profile.name, seed, fold, val_cases, tuple(scores),
                                commit.sha if commit else None, machine_line())
    out = tuning_file(work, arm.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_json(out, result.to_dict())
    log(f"[tune] {arm.name}: chosen {result.chosen.name} -> {out}")
    return result


def apply_tuning(arms: Sequence[Arm], work: str | Path, *, num_epochs: int | None, log: Log = print) -> list[Arm]:
    """``arms`` with each arm that has a search record under ``work/tuning`` given its chosen policy."""
    out = []
    for arm in arms:
        record = tuning_file(work, arm.name)
        if record.exists() and not arm.is_expansion and arm.recipe.get("transforms"):
            result = MixingSearchResult.from_dict(json.loads(record.read_text()))
            log(f"[benchmark] {arm.name}: mixing policy {result.chosen.name} from {record} (fold {result.fold} of the "
                "training cases)")
            arm = apply_policy(arm, result.chosen, num_epochs=num_epochs)
        out.append(arm)
    return out


#: Suffix of the arm a search's chosen policy makes (``context_phase`` -> ``context_phase_tuned``): a report holds
#: the arm at its built-in policy and at the searched one side by side.
TUNED_SUFFIX = "_tuned"


@dataclass(frozen=True)
class SearchRecord:
    """A search results file (``benchmark tune --out``): the search and the scenario it ran on."""

    scenario: str
    result: MixingSearchResult
    path: Path


def read_search(path: str | Path) -> SearchRecord:
    """Read a search results file written by ``synthaug benchmark tune --out`` (the ``.json`` beside the ``.md``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mixing-search file {path} does not exist: write one with 'synthaug benchmark tune "
                        "--scenario S --arm A --work W --out benchmarks/results/tuning_S_A'.")
    try:
        payload = json.loads(path.read_text())
        result = MixingSearchResult.from_dict(payload)
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a mixing-search results file ({exc!r}); it is the .json that "
                        "'synthaug benchmark tune ... --out' writes.") from exc
    if not isinstance(payload.get("scenario"), str) or not result.candidates:
        raise DataError(f"{path} names no scenario or holds no candidate: it is not a 'benchmark tune --out' file "
                        "(WORK/tuning/ARM.json records apply to their own work folder instead).")
    return SearchRecord(payload["scenario"], result, path)


def tuned_arm(arm: Arm, record: SearchRecord, *, scenario: str, test_cases: Sequence[str], profile: Profile) -> Arm:
    """``arm`` at the policy ``record`` chose, named ``<arm>_tuned`` so that it runs beside the built-in arm.

    The search must have run on this scenario's own training cases (a search on another scenario's data may
    have trained on this one's test cases), at this profile (a policy chosen at one budget is not a choice at
    another), and must not have validated on any of its test cases.
    """
    result = record.result
    if result.arm != arm.name:
        raise ValidationError(f"{record.path} searched arm {result.arm!r}, not {arm.name!r}.")
    if result.profile != profile.name:
        raise ValidationError(f"{record.path} searched at profile {result.profile!r}, this run is {profile.name!r}: "
                              f"rerun 'synthaug benchmark tune ... --profile {profile.name}' or run at "
                              f"--profile {result.profile}.")
    if record.scenario != scenario:
        raise LeakageError(f"{record.path} searched on scenario {record.scenario!r}, not {scenario!r}: its training "
                           f"cases may include this scenario's test cases. Run 'synthaug benchmark tune --scenario "
                           f"{scenario} --arm {arm.name} ... --out ...' on this scenario.")
    leaked = sorted(set(result.validation_cases) & {str(c) for c in test_cases})
    if leaked:
        raise LeakageError(f"{record.path} validated on test case(s) {leaked}: a mixing policy must be chosen without "
                           "any test case. Rerun the search (its split holds training cases only).")
    tuned = apply_policy(arm, result.chosen, num_epochs=profile.num_epochs)
    return dataclasses.replace(tuned, name=arm.name + TUNED_SUFFIX)
