"""Benchmark profiles: the nnU-Net configuration, network size and training budget of every arm.

A profile is one typed record; the harness applies it identically to every arm (same plans, same budget,
same seeds), so arms differ only in their augmentation.

- ``cpu-quick``: nnU-Net's 2D configuration with a narrower network (``features_per_stage`` halved and
  capped at 128, e.g. 32..512 -> 16, 32, 64, 128, 128: 0.46 s instead of 1.67 s per step on one core,
  written as a separate plans file that reuses the default preprocessed data), 10 epochs of 100
  iterations, 2 seeds, no test-time mirroring. Sized for all arms of one scenario in about 2 hours
  on 2 CPU cores.
- ``cpu-long``: the profile of the v2 reports. The 2D configuration with a quarter-width network capped at
  64 features (8, 16, 32, 64, 64, ...), 40 epochs of 100 iterations (4x cpu-quick's iterations at about the
  same cost: ~13 s per epoch on one quiet core), 5 seeds, one run at a time per process. Chosen so that the
  default arm predicts every class of its own in-domain test (a 4000-iteration probe of default on the
  in-domain scenario, seed 0: every class Dice > 0, spleen 0.02 the weakest; cpu-quick's 1000 iterations
  never predicted liver, spleen, kidneys or cardiovascular there).
- ``full``: nnU-Net's defaults (``3d_fullres``, 1000 epochs x 250 iterations, mirroring), 3 seeds, GPU.
- ``smoke``: a few iterations of a tiny network, for tests and for checking a set-up end to end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synthaug._validate import closest
from synthaug.errors import ValidationError

__all__ = ["Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """How every arm is trained and predicted.

    Attributes:
        name: profile name (recorded in every result).
        configuration: nnU-Net configuration (``2d``, ``3d_fullres``, ...).
        plans: name of the plans file the arms train with. ``nnUNetPlans`` is nnU-Net's own; any other
            name is written by the harness as a copy of ``nnUNetPlans`` with the changes below (same
            preprocessed data).
        features_cap: cap on ``features_per_stage`` (None: nnU-Net's widths).
        width_factor: multiplies ``features_per_stage`` before the cap (None: 1).
        batch_size: batch size override (None: the plan's).
        num_epochs, iterations_per_epoch, val_iterations: training budget (None: nnU-Net's default).
        seeds: one training run per seed and arm (network initialisation and synthesis stream).
        tta: test-time mirroring at prediction.
        device: ``cpu`` or ``cuda``.
        threads: torch threads per training process on CPU (None: torch's default).
        workers: nnU-Net data-augmentation worker processes (``nnUNet_n_proc_DA``).
        parallel: arms trained at the same time (CPU: one per pair of cores is sensible).
    """

    name: str
    configuration: str = "2d"
    plans: str = "nnUNetPlans"
    features_cap: int | None = None
    width_factor: float | None = None
    batch_size: int | None = None
    num_epochs: int | None = None
    iterations_per_epoch: int | None = None
    val_iterations: int | None = None
    seeds: tuple[int, ...] = (0,)
    tta: bool = True
    device: str = "cuda"
    threads: int | None = None
    workers: int | None = None
    parallel: int = 1

    def __post_init__(self) -> None:
        for f in ("features_cap", "batch_size", "num_epochs", "iterations_per_epoch", "val_iterations", "threads"):
            v = getattr(self, f)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValidationError(f"profile {self.name!r}: {f} must be a positive integer or None, got {v!r}.")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValidationError(f"profile {self.name!r}: seeds must be non-negative integers, got {self.seeds!r}.")
        if self.width_factor is not None and not 0 < self.width_factor <= 4:
            raise ValidationError(f"profile {self.name!r}: width_factor must be in (0, 4], got {self.width_factor!r}.")
        if self.parallel < 1:
            raise ValidationError(f"profile {self.name!r}: parallel must be >= 1, got {self.parallel!r}.")
        if self.plans == "nnUNetPlans" and (self.features_cap or self.batch_size or self.width_factor):
            raise ValidationError(
                f"profile {self.name!r} changes the network or batch size, so it needs its own plans name "
                "(e.g. plans='nnUNetPlansSynthAugQuick'); nnU-Net's nnUNetPlans stays untouched."
            )

    def with_(self, **changes: Any) -> Profile:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "seeds": list(self.seeds)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Profile:
        """The profile a ``benchmark.json`` or report JSON recorded (:meth:`to_dict`), validated again.

        >>> p = PROFILES["smoke"]
        >>> Profile.from_dict(p.to_dict()) == p
        True
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValidationError(
                f"profile record has unknown field(s) {unknown} (written by a newer synthaug?); known: {sorted(known)}."
            )
        if "name" not in d:
            raise ValidationError("profile record has no 'name'.")
        values = dict(d)
        if "seeds" in values:
            values["seeds"] = tuple(values["seeds"])
        return cls(**values)

    def patch_plans(self, plans: dict[str, Any]) -> dict[str, Any]:
        """``plans`` (nnU-Net's ``nnUNetPlans.json``) changed by this profile; the data identifier is kept."""
        if self.configuration not in plans.get("configurations", {}):
            raise ValidationError(
                f"profile {self.name!r} trains configuration {self.configuration!r}, which the plans do not have "
                f"({sorted(plans.get('configurations', {}))}). Run nnUNetv2_plan_and_preprocess -c {self.configuration}."
            )
        out = {**plans, "plans_name": self.plans,
               "configurations": {k: dict(v) for k, v in plans["configurations"].items()}}
        cfg = out["configurations"][self.configuration]
        if "inherits_from" in cfg:
            raise ValidationError(f"configuration {self.configuration!r} inherits from another; pick a base one.")
        if self.features_cap is not None or self.width_factor is not None:
            arch = {**cfg["architecture"], "arch_kwargs": dict(cfg["architecture"]["arch_kwargs"])}
            factor, cap = self.width_factor or 1.0, self.features_cap or 10**9
            arch["arch_kwargs"]["features_per_stage"] = [
                max(1, min(round(int(f) * factor), cap)) for f in arch["arch_kwargs"]["features_per_stage"]
            ]
            cfg["architecture"] = arch
        if self.batch_size is not None:
            cfg["batch_size"] = self.batch_size
        return out


PROFILES: dict[str, Profile] = {
    "cpu-quick": Profile(
        name="cpu-quick", configuration="2d", plans="nnUNetPlansSynthAugQuick", features_cap=128, width_factor=0.5,
        num_epochs=10, iterations_per_epoch=100, val_iterations=5, seeds=(0, 1), tta=False, device="cpu",
        threads=1, workers=1, parallel=2,
    ),
    "cpu-long": Profile(
        name="cpu-long", configuration="2d", plans="nnUNetPlansSynthAugLong", features_cap=64, width_factor=0.25,
        num_epochs=40, iterations_per_epoch=100, val_iterations=5, seeds=(0, 1, 2, 3, 4), tta=False, device="cpu",
        threads=1, workers=1, parallel=1,
    ),
    "full": Profile(name="full", configuration="3d_fullres", seeds=(0, 1, 2), device="cuda"),
    "smoke": Profile(
        name="smoke", configuration="2d", plans="nnUNetPlansSynthAugSmoke", features_cap=8, width_factor=0.25, num_epochs=1,
        iterations_per_epoch=3, val_iterations=1, seeds=(0,), tta=False, device="cpu", threads=1, workers=0,
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValidationError(f"unknown profile {name!r}; known: {sorted(PROFILES)}.{closest(str(name), PROFILES)}")
    return PROFILES[name]
