"""The machine line and date every model card and results file carries, and a card's common training facts."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["machine_line", "today", "training_facts"]


def machine_line() -> str:
    """E.g. ``"x86_64, 2 CPU cores, torch threads 1, no GPU, torch 2.14.1, Python 3.11.7"``."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, {gpu}, "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def today() -> str:
    return time.strftime("%Y-%m-%d")


def training_facts(config: Mapping[str, Any], *, iterations: int, seconds: float) -> dict[str, Any]:
    """What every training script records in its card's ``training`` section: the configuration it ran, its
    length, wall-clock seconds, the machine line and the date. A script adds its own facts beside these
    (held-out cases, label source, ...): ``{**training_facts(config, ...), "heldout_cases": [...]}``."""
    return {"config": dict(config), "iterations": int(iterations), "seconds": round(float(seconds), 1),
            "machine": machine_line(), "date": today()}
