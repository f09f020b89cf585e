"""``nnUNetTrainerSynthAug``: nnU-Net v2's default trainer plus on-device generative augmentation.

Use::

    export nnUNet_extTrainer=$(synthaug nnunet-path)
    export SYNTHAUG_RECIPE=$(synthaug recipe path context_ct)
    nnUNetv2_train DATASET CONFIG FOLD -tr nnUNetTrainerSynthAug [-device cpu]
    nnUNetv2_predict -i ... -o ... -d DATASET -c CONFIG -f FOLD -tr nnUNetTrainerSynthAug [-device cpu]

What changes against ``nnUNetTrainer`` (the constructor signature is the base one):

- the recipe (``$SYNTHAUG_RECIPE``) is read in ``__init__``; budget overrides from the recipe or
  ``SYNTHAUG_NUM_EPOCHS`` / ``SYNTHAUG_ITERS_PER_EPOCH`` / ``SYNTHAUG_VAL_ITERS`` (one class for every
  budget); ``SYNTHAUG_SAVE_EVERY`` writes nnU-Net's resumable checkpoint every N epochs instead of 50;
  ``SYNTHAUG_TORCH_THREADS`` caps the main process's torch threads on CPU; ``SYNTHAUG_SEED``
  seeds the main process (network initialisation: torch, numpy, random) and replaces the recipe's seed for
  the synthesis stream, so benchmark arms with the same seed start from the same network;
- the forked data-augmentation workers run nnU-Net's pipeline *without* its last three steps
  (``-1 -> 0``, region conversion, deep-supervision downsampling); those run batched on the device in
  :meth:`train_step`, after synthesis, so the synthesiser still sees the ``-1`` padding and regenerates the
  deep-supervision targets of deformed labels. The workers never load a generator or touch CUDA;
- the frozen generators are loaded once onto ``self.device`` in :meth:`on_train_start` (after the
  workers were forked); synthesis runs in :meth:`train_step` after the host-to-device copy, under
  ``torch.no_grad()``;
- every epoch logs the synthetic fraction, the acceptance rate of the gate (1.0 without a gate) and the
  seconds spent in synthesis (``training_log_*.txt`` and ``synthaug_log.jsonl`` in the fold folder).

Validation batches and inference are untouched (prediction only needs the class to be found).
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from synthaug._optional import require
from synthaug.errors import ValidationError
from synthaug.integrations.nnunet.normalization import ChannelNormalization, intensity_for, nnunet_targets
from synthaug.recipes import BatchSynthesizer, derive_seed
from synthaug.recipes.leakage import TestSplit
from synthaug.recipes.recipe import budget_from_env, recipe_from_env

nnUNetTrainer = require("nnunetv2.training.nnUNetTrainer.nnUNetTrainer").nnUNetTrainer
_RemoveLabelTransform = require("batchgeneratorsv2.transforms.utils.remove_label").RemoveLabelTransform
_ComposeTransforms = require("batchgeneratorsv2.transforms.utils.compose").ComposeTransforms

__all__ = ["nnUNetTrainerSynthAug"]

THREADS_ENV = "SYNTHAUG_TORCH_THREADS"
SEED_ENV = "SYNTHAUG_SEED"
SAVE_EVERY_ENV = "SYNTHAUG_SAVE_EVERY"


def _seed_from_env() -> int | None:
    raw = os.environ.get(SEED_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ValidationError(f"{SEED_ENV}={raw!r} must be a non-negative integer, e.g. {SEED_ENV}=0.")
    return int(raw)


class nnUNetTrainerSynthAug(nnUNetTrainer):
    """nnU-Net trainer with synthaug's recipe-driven synthesis on the training batches (see module doc)."""

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008  (the base signature, unchanged)
    ):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.synthaug_recipe = recipe_from_env()
        self.synthaug_seed = _seed_from_env()
        if self.synthaug_seed is not None:
            import random

            import numpy as np

            random.seed(self.synthaug_seed)
            np.random.seed(self.synthaug_seed % 2**32)
            torch.manual_seed(self.synthaug_seed)
        budget = budget_from_env(self.synthaug_recipe.budget)
        if budget.num_epochs is not None:
            self.num_epochs = budget.num_epochs
        if budget.iterations_per_epoch is not None:
            self.num_iterations_per_epoch = budget.iterations_per_epoch
        if budget.val_iterations_per_epoch is not None:
            self.num_val_iterations_per_epoch = budget.val_iterations_per_epoch
        save_every = os.environ.get(SAVE_EVERY_ENV, "").strip()
        if save_every:
            if not save_every.isdigit() or int(save_every) < 1:
                raise ValidationError(f"{SAVE_EVERY_ENV}={save_every!r} must be a positive integer, e.g. {SAVE_EVERY_ENV}=5.")
            self.save_every = int(save_every)  # checkpoint_latest every N epochs (nnU-Net: 50): short runs resume
        threads = os.environ.get(THREADS_ENV, "").strip()
        if threads:
            if not threads.isdigit() or int(threads) < 1:
                raise ValidationError(f"{THREADS_ENV}={threads!r} must be a positive integer, e.g. {THREADS_ENV}=2.")
            torch.set_num_threads(int(threads))
        self.synthaug: BatchSynthesizer | None = None
        r = self.synthaug_recipe
        names = ", ".join(f"{t.name} p={t.probability:g}" for t in r.transforms)
        self.print_to_log_file(
            f"synthaug: recipe {r.source} (sha256 {r.sha256()[:12]}): {names}; schedule {r.schedule.to_dict()}; "
            f"gate {r.gate.to_dict() if r.gate else None}; seed {r.seed if self.synthaug_seed is None else self.synthaug_seed} ({'recipe' if self.synthaug_seed is None else 'SYNTHAUG_SEED'}); budget {self.num_epochs} epochs x "
            f"{self.num_iterations_per_epoch} iterations ({self.num_val_iterations_per_epoch} validation)",
            also_print_to_console=True,
        )

    # ------------------------------------------------------------------ data pipeline
    @staticmethod
    def get_training_transforms(
        patch_size,
        rotation_for_DA,
        deep_supervision_scales,
        mirror_axes,
        do_dummy_2d_data_aug,
        use_mask_for_norm=None,
        is_cascaded: bool = False,
        foreground_labels=None,
        regions=None,
        ignore_label=None,
    ):
        """nnU-Net's training transforms minus ``-1 -> 0``, regions and deep supervision (done on device)."""
        base = nnUNetTrainer.get_training_transforms(
            patch_size, rotation_for_DA, None, mirror_axes, do_dummy_2d_data_aug,
            use_mask_for_norm=use_mask_for_norm, is_cascaded=is_cascaded, foreground_labels=foreground_labels,
            regions=None, ignore_label=ignore_label,
        )
        kept = [
            t for t in base.transforms
            if not (isinstance(t, _RemoveLabelTransform) and t.label_value == -1)
        ]
        return _ComposeTransforms(kept)

    # ------------------------------------------------------------------ set-up
    def _synthaug_slice_axis(self) -> int:
        """Spatial axis of the original acquisition's slices in the preprocessed array (3D configurations)."""
        reader = str(self.plans_manager.plans.get("image_reader_writer", ""))
        z_original = 2 if "Nibabel" in reader else 0  # SimpleITK arrays are (z, y, x), nibabel's (x, y, z)
        transpose = list(self.plans_manager.transpose_forward)
        return transpose.index(z_original) if z_original in transpose else 0

    def _synthaug_setup(self) -> None:
        recipe = self.synthaug_recipe
        ch = recipe.channel
        schemes = self.configuration_manager.normalization_schemes
        if ch >= len(schemes):
            raise ValidationError(f"synthaug recipe channel={ch} but the dataset has {len(schemes)} input channel(s).")
        props = self.plans_manager.foreground_intensity_properties_per_channel.get(str(ch), {})
        norm = ChannelNormalization(
            scheme=schemes[ch], properties=dict(props),
            use_mask_for_norm=bool(self.configuration_manager.use_mask_for_norm[ch]),
        )
        labels = self.dataset_json.get("labels", {})
        dataset_labels = None
        if not self.label_manager.has_regions:
            dataset_labels = {str(k): int(v) for k, v in labels.items() if isinstance(v, int)}
        rank = self.local_rank if self.is_ddp else 0
        spacing = [float(s) for s in self.configuration_manager.spacing]
        patch_dims = len(self.configuration_manager.patch_size)
        self.synthaug = BatchSynthesizer(
            recipe,
            intensity=intensity_for(norm),
            dataset_labels=dataset_labels,
            ignore_label=self.label_manager.ignore_label,
            slice_axis=self._synthaug_slice_axis(),
            seed=derive_seed(recipe.seed if self.synthaug_seed is None else self.synthaug_seed, "fold", self.fold),
            rank=rank,
            channel_modality=str(self.dataset_json.get("channel_names", {}).get(str(ch), "")) or None,
            spacing=spacing[-patch_dims:] if len(spacing) >= patch_dims else None,
            test_split=self._synthaug_test_split(),
        )
        self.synthaug.prepare(self.device)
        self.print_to_log_file(
            f"synthaug: {len(self.synthaug.transforms)} transform(s) loaded on {self.device}; channel {ch} "
            f"normalisation {norm.scheme}; ignore label {self.label_manager.ignore_label}; "
            f"slice axis {self._synthaug_slice_axis()} for 3D patches",
            also_print_to_console=True,
        )

    def _synthaug_test_split(self) -> TestSplit:
        """The dataset's test cases (ids, and image content when the raw dataset is found under nnUNet_raw)."""
        raw = os.environ.get("nnUNet_raw", "")
        folder = os.path.join(raw, self.plans_manager.dataset_name) if raw else ""
        if folder and os.path.isfile(os.path.join(folder, "dataset.json")):
            return TestSplit.from_raw_dataset(folder)
        return TestSplit.from_dataset_json(self.dataset_json)

    def on_train_start(self):
        super().on_train_start()  # forks the augmentation workers first: they never see a generator
        if self.synthaug is None:
            self._synthaug_setup()

    # ------------------------------------------------------------------ training
    def synthaug_targets(self, target: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """nnU-Net's last target transforms (left out of the workers), batched on the device."""
        return nnunet_targets(
            target,
            ds_scales=self._get_deep_supervision_scales(),
            regions=self.label_manager.foreground_regions if self.label_manager.has_regions else None,
            ignore_label=self.label_manager.ignore_label,
        )

    def _synthaug_apply(self, data: torch.Tensor, target: Any) -> tuple[torch.Tensor, Any]:
        if self.synthaug is None:
            self._synthaug_setup()
        result = self.synthaug(data, target, epoch=self.current_epoch)
        target = result.target
        if not isinstance(target, list):
            target = self.synthaug_targets(target)
        return result.data, target

    def train_step(self, batch: dict) -> dict:
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        if isinstance(target, list):
            target = [t.to(self.device, non_blocking=True) for t in target]
        else:
            target = target.to(self.device, non_blocking=True)
        with torch.no_grad():
            data, target = self._synthaug_apply(data, target)
        return super().train_step({**batch, "data": data, "target": target})

    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)
        stats = self.synthaug.pop_epoch_stats() if self.synthaug is not None else {
            "samples": 0, "synthesised": 0, "accepted": 0, "seconds": 0.0, "batches": 0}
        if self.is_ddp:
            import torch.distributed as dist

            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, stats)
            stats = {k: sum(g[k] for g in gathered) for k in ("samples", "synthesised", "accepted", "seconds", "batches")}
        n, syn, acc = stats["samples"], stats["synthesised"], stats["accepted"]
        fraction = acc / n if n else 0.0
        acceptance = acc / syn if syn else 1.0
        factor = self.synthaug_recipe.schedule.factor(self.current_epoch)
        self.print_to_log_file(
            f"synthaug: synthetic fraction {fraction:.3f} ({acc}/{n} samples; schedule factor {factor:.2f}), "
            f"acceptance rate {acceptance:.3f} ({acc}/{syn}), synthesis time {stats['seconds']:.2f} s "
            f"in {stats['batches']} batches"
        )
        if self.local_rank == 0 and self.output_folder is not None:
            record = {"epoch": self.current_epoch, "synthetic_fraction": fraction, "acceptance_rate": acceptance,
                      "synthesis_seconds": stats["seconds"], "samples": n, "synthesised": syn, "accepted": acc,
                      "schedule_factor": factor}
            with open(os.path.join(self.output_folder, "synthaug_log.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
