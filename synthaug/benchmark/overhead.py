"""What synthesis adds to one nnU-Net training iteration, side by side with the plain iteration.

For each configuration (``2d``, ``3d_fullres``, ...) of a preprocessed nnU-Net dataset, one
:class:`~synthaug.integrations.nnunet.trainer.nnUNetTrainerSynthAug` is built exactly as
``nnUNetv2_train -tr nnUNetTrainerSynthAug`` builds it (plans, network, loss, optimiser, dataloader with
nnU-Net's default augmentation). One training batch is drawn, moved to the device, and then, interleaved
``repeats`` times on that same batch:

- ``plain``: nnU-Net's own ``train_step`` (forward, loss, backward, clip, optimiser step);
- ``synthesis (recipe)``: the trainer's synthesis hook at the recipe's probabilities (what training pays
  on average per iteration);
- ``synthesis (all samples)``: the hook with every sample synthesised (the worst case per iteration).

Medians are reported with the ratio ``synthesis / plain``; interleaving keeps the comparison fair on a
shared, noisy machine. Data loading and nnU-Net's CPU augmentation are excluded from both (they run in
worker processes in real training and are identical for both trainers).

Python::

    from synthaug.benchmark.overhead import measure_overhead
    row = measure_overhead("nnUNet_preprocessed/Dataset501_X", "2d", "recipe.json", repeats=10)

Command line: ``synthaug benchmark overhead --preprocessed ... --configurations 2d 3d_fullres --recipe ...``.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from synthaug._optional import require
from synthaug.errors import DataError, MissingDependencyError, ValidationError

__all__ = ["measure_overhead", "recipe_all_samples", "overhead_markdown"]


def _trainer_class() -> type:
    """``nnUNetTrainerSynthAug`` found by its name the way nnUNetv2_train finds it (``nnUNet_extTrainer``)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from synthaug.integrations.nnunet import TRAINER_NAME, trainer_folder

    with _env(nnUNet_extTrainer=str(trainer_folder())):
        try:
            return recursive_find_trainer_class_by_name(TRAINER_NAME)
        except RuntimeError as exc:
            raise MissingDependencyError(f"nnU-Net could not find the trainer {TRAINER_NAME!r}: {exc}") from exc


def recipe_all_samples(recipe: Any) -> Any:
    """The same recipe with its probabilities scaled to sum to 1, no warm-up: every sample synthesised."""
    total = sum(t.probability for t in recipe.transforms)
    if total <= 0:
        raise ValidationError("the recipe's transform probabilities are all 0: nothing would be synthesised.")
    transforms = tuple(replace(t, probability=t.probability / total) for t in recipe.transforms)
    schedule = replace(recipe.schedule, warmup_epochs=0, ramp_epochs=0, start=1.0)
    return replace(recipe, transforms=transforms, schedule=schedule, gate=recipe.gate)


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Any, device: torch.device) -> tuple[float, Any]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def _load_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DataError(
            f"{path} does not exist: {path.parent} is not an nnU-Net preprocessed dataset folder. Run "
            f"nnUNetv2_plan_and_preprocess -d <id> first and pass $nnUNet_preprocessed/DatasetXXX_Name."
        ) from exc


def measure_overhead(
    preprocessed: str | Path,
    configuration: str,
    recipe: str | Path,
    *,
    repeats: int = 10,
    warmup: int = 2,
    device: str | torch.device = "cpu",
    fold: int = 0,
    plans: str = "nnUNetPlans",
) -> dict[str, Any]:
    """Median seconds of a plain nnU-Net training step and of the synthesis hook on the same batch.

    Returns a row with the configuration, batch and patch size, the medians, their ratios and the
    number of samples synthesised per call at the recipe's probabilities.
    """
    require("nnunetv2")
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from synthaug.recipes import BatchSynthesizer, load_recipe

    trainer_class = _trainer_class()

    if repeats < 1 or warmup < 0:
        raise ValidationError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}.")
    folder = Path(preprocessed)
    plans_dict = _load_json(folder / f"{plans}.json")
    dataset_json = _load_json(folder / "dataset.json")
    if configuration not in plans_dict.get("configurations", {}):
        raise ValidationError(
            f"configuration {configuration!r} is not in {folder / (plans + '.json')}; it has "
            f"{sorted(plans_dict.get('configurations', {}))}."
        )
    device = torch.device(device)
    results = folder.parent.parent / "synthaug_overhead_results"
    with _env(SYNTHAUG_RECIPE=str(recipe), nnUNet_n_proc_DA="0",
              nnUNet_preprocessed=str(folder.parent), nnUNet_results=str(results)):
        trainer = trainer_class({**plans_dict, "continue_training": False}, configuration, fold,
                                        dataset_json, device=device)
        trainer.initialize()
        dl_train, _ = trainer.get_dataloaders()
        batch = next(dl_train)
        trainer._synthaug_setup()
    data = batch["data"].to(device)
    target = batch["target"]
    target = [t.to(device) for t in target] if isinstance(target, list) else target.to(device)
    # The trainer leaves deep-supervision downsampling to its hook; plain nnU-Net gets the same list here.
    plain_target = target if isinstance(target, list) else trainer.synthaug_targets(target)
    on_device = {**batch, "data": data, "target": plain_target}

    recipe_obj = load_recipe(recipe)
    default = trainer.synthaug
    every = BatchSynthesizer(
        recipe_all_samples(recipe_obj), intensity=default.intensity,
        dataset_labels=default.dataset_labels, ignore_label=default.ignore_label,
        slice_axis=default.slice_axis, seed=0,
    )
    every.prepare(device)

    def plain() -> Any:
        return nnUNetTrainer.train_step(trainer, on_device)

    trainer.current_epoch = 10**6  # past any warm-up: the schedule's full rate

    def synth(s: BatchSynthesizer) -> Any:
        # The trainer's own hook (synthesis + deep-supervision targets), with synthesiser ``s``.
        trainer.synthaug = s
        return trainer._synthaug_apply(data, target)

    times: dict[str, list[float]] = {"plain": [], "recipe": [], "all": []}
    for i in range(warmup + repeats):
        if i == warmup:  # count only the measured calls
            default.pop_epoch_stats()
            every.pop_epoch_stats()
        t_plain, _ = _timed(plain, device)
        t_recipe, _ = _timed(lambda: synth(default), device)
        t_all, _ = _timed(lambda: synth(every), device)
        if i >= warmup:
            times["plain"].append(t_plain)
            times["recipe"].append(t_recipe)
            times["all"].append(t_all)
    trainer.synthaug = default
    stats_recipe, stats_all = default.pop_epoch_stats(), every.pop_epoch_stats()
    if stats_all["synthesised"] != stats_all["samples"]:
        raise DataError("the all-samples synthesiser skipped samples (patches without foreground?); "
                        "the worst case would be understated. Use a dataset whose patches hold foreground.")
    med = {k: statistics.median(v) for k, v in times.items()}
    b = int(data.shape[0])
    return {
        "configuration": configuration,
        "batch_size": b,
        "patch_size": [int(s) for s in data.shape[2:]],
        "device": str(device),
        "repeats": repeats,
        "plain_seconds": med["plain"],
        "synthesis_recipe_seconds": med["recipe"],
        "synthesis_all_seconds": med["all"],
        "ratio_recipe": med["recipe"] / med["plain"],
        "ratio_all": med["all"] / med["plain"],
        "synthesised_per_call_recipe": stats_recipe["synthesised"] / max(1, stats_recipe["batches"]),
        "seconds_per_synthetic_sample": med["all"] / b,
        "plain_iqr": _iqr(times["plain"]),
        "synthesis_all_iqr": _iqr(times["all"]),
        "transforms": [t.name for t in recipe_obj.transforms],
        "weights": [str(t.options.get("weights")) for t in recipe_obj.transforms],
    }


def _iqr(v: Sequence[float]) -> list[float]:
    if len(v) < 2:
        return [v[0], v[0]]
    q = statistics.quantiles(v, n=4)
    return [q[0], q[2]]


def overhead_markdown(rows: Sequence[dict[str, Any]], *, command: str, machine: str, date: str, recipe: str,
                      dataset: str, setup: Sequence[str] = ()) -> str:
    """The committed report: one table, medians and ratios, with the command and machine line."""
    lines = [
        "# Synthesis overhead per nnU-Net training iteration",
        "",
        f"Date: {date}. Machine: {machine}.",
        "",
        *(["Dataset preparation:", "", *(f"    {c}" for c in setup), ""] if setup else []),
        f"Command: `{command}`",
        "",
        f"Dataset: {dataset} (nnU-Net default plans). Recipe: `{recipe}` "
        f"(transforms {', '.join(rows[0]['transforms']) if rows else '-'}, weights {', '.join(rows[0]['weights']) if rows else '-'}).",
        "",
        "Same batch, same device, interleaved repeats; medians. *plain* = nnU-Net's own `train_step` "
        "(forward, loss, backward, optimiser step); *recipe* = the synthesis hook of `nnUNetTrainerSynthAug` at "
        "the recipe's probability (what an iteration pays on average); *all* = every sample of the batch "
        "synthesised (worst case). Data loading and nnU-Net's CPU augmentation are excluded from both.",
        "",
        "| configuration | batch x patch | plain step (s) | synthesis, recipe (s) | ratio | synthesis, all samples (s) | ratio | s per synthetic sample |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        patch = "x".join(str(s) for s in r["patch_size"])
        lines.append(
            f"| {r['configuration']} | {r['batch_size']} x {patch} | {r['plain_seconds']:.3f} | "
            f"{r['synthesis_recipe_seconds']:.3f} ({r['synthesised_per_call_recipe']:.1f} samples/call) | "
            f"{100 * r['ratio_recipe']:.1f}% | {r['synthesis_all_seconds']:.3f} | {100 * r['ratio_all']:.1f}% | "
            f"{r['seconds_per_synthetic_sample']:.3f} |"
        )
    return "\n".join(lines) + "\n"
