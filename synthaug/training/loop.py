"""The shared GAN training loop: seeding, resume, progress bar, loss log, sample grids, checkpoints.

Generator families plug in a *step* object (see :class:`TrainStep`) that owns their networks,
optimisers and losses; this loop owns everything around them, so every trainer gets the same
checkpoint format, resume behaviour, logging and previews.

Checkpoints hold only tensors and plain Python values and are read back with
``torch.load(weights_only=True)``. They are written to a temporary name and renamed.

Under ``torchrun`` the loop is data-parallel (:mod:`synthaug.training.distributed`): same weights on every
rank, gradients averaged before each optimiser step, one batch stream per rank, and only rank 0 writes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn as nn

from synthaug.errors import ValidationError

__all__ = ["LoopConfig", "TrainStep", "TrainResult", "run_training", "load_checkpoint", "save_checkpoint"]

CHECKPOINT = "checkpoint.pt"


@dataclass
class LoopConfig:
    """Options of the loop itself (the family's own options live in its config)."""

    iterations: int = 3000
    batch_size: int = 8
    seed: int = 0
    log_every: int = 25
    sample_every: int = 500
    checkpoint_every: int = 250
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "log_every", "sample_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValidationError(f"{name} must be >= 1, got {getattr(self, name)}.")


class TrainStep(Protocol):
    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]

    def step(self, batch: Any, *, generator: torch.Generator) -> dict[str, torch.Tensor]: ...

    def preview(self, batch: Any, *, generator: torch.Generator) -> list[torch.Tensor]: ...


@dataclass
class TrainResult:
    out_dir: Path
    iterations: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    def mean_loss(self, key: str, first: bool) -> float:
        """Mean of ``key`` over the first (or last) fifth of the logged history."""
        values = [h[key] for h in self.history if key in h]
        if not values:
            raise ValidationError(f"no logged values for loss {key!r}; logged: {sorted(self.history[0]) if self.history else []}")
        n = max(1, len(values) // 5)
        part = values[:n] if first else values[-n:]
        return sum(part) / len(part)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        from synthaug.errors import DataError

        raise DataError(
            f"checkpoint {str(path)!r} could not be read ({exc}); it may be truncated. Delete it to start over."
        ) from exc


def _rank_seed(seed: int, rank: int, start: int) -> int:
    """Rank 0 of a fresh run keeps ``seed`` (one process trains exactly as before)."""
    if rank == 0 and start == 0:
        return seed
    return (seed * 1_000_003 + rank * 7_919 + start) % 2**63


def run_training(
    step: TrainStep,
    sample_batch: Callable[[torch.Generator], Any],
    *,
    loop: LoopConfig,
    out_dir: Path,
    config: dict[str, Any],
    resume: bool = True,
    write_grid: Callable[[list[torch.Tensor], Path], None] | None = None,
) -> TrainResult:
    """Train ``step`` for ``loop.iterations`` iterations, resuming from ``out_dir/checkpoint.pt``.

    ``sample_batch(generator)`` draws one batch with the loop's generator, so a resumed run draws the
    same batches as an uninterrupted one. ``config`` (plain values) is stored in the checkpoint; a
    resume with a different config is refused.
    """
    from synthaug.training.distributed import all_mean, barrier, distribute_step, init_from_env

    dist = init_from_env(next((p.device for m in step.modules.values() for p in m.parameters()), None))
    main = dist.is_main
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / CHECKPOINT
    generator = torch.Generator().manual_seed(_rank_seed(loop.seed, dist.rank, 0))
    start, history, elapsed = 0, [], 0.0
    if resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        if state.get("config") != config:
            raise ValidationError(
                f"{str(ckpt_path)!r} was written with a different configuration; use a new output folder, or "
                "delete the checkpoint to start over."
            )
        for name, module in step.modules.items():
            module.load_state_dict(state["modules"][name])
        for name, opt in step.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        start, history, elapsed = int(state["step"]), list(state["history"]), float(state["seconds"])
        if main:
            generator.set_state(state["rng"])
        else:  # other ranks' streams are not stored; a resumed rank continues from a stream of its own
            generator.manual_seed(_rank_seed(loop.seed, dist.rank, start))
    distribute_step(step)
    log_path = out_dir / "losses.jsonl"
    bar = None
    if loop.progress and main:
        from tqdm.auto import tqdm

        bar = tqdm(total=loop.iterations, initial=start, desc=out_dir.name, unit="it", dynamic_ncols=True)
    sums: dict[str, torch.Tensor] = {}
    count = 0
    t0 = time.perf_counter()

    def checkpoint(at: int) -> None:
        if not main:
            return
        save_checkpoint(
            ckpt_path,
            {
                "step": at,
                "modules": {k: m.state_dict() for k, m in step.modules.items()},
                "optimizers": {k: o.state_dict() for k, o in step.optimizers.items()},
                "rng": generator.get_state(),
                "config": config,
                "history": history,
                "seconds": elapsed + time.perf_counter() - t0,
            },
        )

    for it in range(start, loop.iterations):
        batch = sample_batch(generator)
        losses = step.step(batch, generator=generator)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0) + v.detach()
        count += 1
        done = it + 1
        if done % loop.log_every == 0 or done == loop.iterations:
            row = {"step": done, **{k: float(v) / count for k, v in all_mean(sums).items()}}
            history.append(row)
            if main:
                with open(log_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
            if bar is not None:
                bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k != "step"}, refresh=False)
            sums, count = {}, 0
        if main and write_grid is not None and (done % loop.sample_every == 0 or done == loop.iterations):
            with torch.no_grad():
                panels = step.preview(batch, generator=torch.Generator().manual_seed(done))
            (out_dir / "samples").mkdir(exist_ok=True)
            write_grid(panels, out_dir / "samples" / f"step_{done:06d}.png")
        if done % loop.checkpoint_every == 0 or done == loop.iterations:
            checkpoint(done)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    barrier()  # rank 0's last checkpoint is on disk before anyone goes on to export
    seconds = elapsed + time.perf_counter() - t0
    if start >= loop.iterations and ckpt_path.is_file():
        seconds = float(load_checkpoint(ckpt_path)["seconds"])
    return TrainResult(out_dir, loop.iterations, seconds, history)
