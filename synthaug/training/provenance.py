"""The machine line and date every model card and results file carries."""

from __future__ import annotations

import os
import platform
import time

import torch

__all__ = ["machine_line", "today"]


def machine_line() -> str:
    """E.g. ``"x86_64, 2 CPU cores, torch threads 1, no GPU, torch 2.14.1, Python 3.11.7"``."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, {gpu}, "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def today() -> str:
    return time.strftime("%Y-%m-%d")
