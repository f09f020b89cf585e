"""Data-parallel training under torch.distributed (gloo, 2 CPU processes).

- the gradient averaging of :func:`distribute_step` gives every rank the weights one process gets from
  the full batch (halves of equal size), even when the ranks start from different initialisations;
- ``torchrun --nproc_per_node 2 -m synthaug.cli.main train context`` trains, logs and exports once.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn as nn

from synthaug.training.distributed import all_mean, context, distribute_step
from tests.training.test_train_context import raw_dataset  # noqa: F401  (fixture)


class _Step:
    def __init__(self, seed: int) -> None:
        torch.manual_seed(seed)  # different on every rank: the broadcast must make them equal
        self.net = nn.Linear(3, 1)
        self.modules = {"net": self.net}
        self.optimizers = {"net": torch.optim.SGD(self.net.parameters(), lr=0.1)}


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, generator=g), torch.randn(8, 1, generator=g)


def _worker(rank: int, world: int, out: str) -> None:
    import torch.distributed as dist

    # a file store: no rank hosts the rendezvous, so the order in which the ranks exit cannot abort the other
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=world)
    try:
        step = distribute_step(_Step(seed=100 + rank))
        x, y = _data()
        part = slice(rank * 4, rank * 4 + 4)
        for _ in range(3):
            loss = ((step.net(x[part]) - y[part]) ** 2).mean()
            step.optimizers["net"].zero_grad()
            loss.backward()
            step.optimizers["net"].step()
        mean = all_mean({"r": torch.tensor(float(rank))})["r"]
        torch.save({"w": step.net.weight.detach(), "b": step.net.bias.detach(), "mean": mean,
                    "ctx": (context().rank, context().world_size)}, f"{out}/rank{rank}.pt")
        dist.barrier()  # both ranks done with every collective before either tears the group down
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gradient_averaging_matches_one_process_on_the_full_batch(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert torch.equal(r0["w"], r1["w"]) and torch.equal(r0["b"], r1["b"])
    assert r0["ctx"] == (0, 2) and r1["ctx"] == (1, 2) and float(r0["mean"]) == 0.5
    single = _Step(seed=100)  # rank 0's initialisation, broadcast to every rank
    x, y = _data()
    for _ in range(3):
        loss = ((single.net(x) - y) ** 2).mean()
        single.optimizers["net"].zero_grad()
        loss.backward()
        single.optimizers["net"].step()
    assert torch.allclose(r0["w"], single.net.weight, atol=1e-6) and torch.allclose(r0["b"], single.net.bias, atol=1e-6)


def test_one_process_is_untouched():
    step = _Step(seed=0)
    assert distribute_step(step) is step and context().world_size == 1
    assert all_mean({"a": torch.tensor(2.0)})["a"] == 2.0


@pytest.mark.slow
def test_torchrun_trains_a_context_generator_on_two_processes(raw_dataset, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "synthaug.cli.main", "train", "context",
           "--quiet", "--out", str(out), "--set", f"data={raw_dataset}", "iterations=30", "seed=0", "batch_size=2", "size=32",
           "widths=[4,8]", "fusion_widths=[4]", "d_width=4", "name=toy", "sample_every=30"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:]
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [25, 30]  # written once (rank 0), not twice
    key = "l1" if "l1" in rows[0] else next(k for k in rows[0] if k != "step")
    assert rows[-1][key] < rows[0][key], rows
    assert (out / "toy.safetensors").is_file() and (out / "checkpoint.pt").is_file()
