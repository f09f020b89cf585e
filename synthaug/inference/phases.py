"""Named phases of a transform call, timed only when someone listens (the speed benchmark).

The generator transforms mark their steps with ``with phase("calibrate"):``. Outside :func:`record_phases`
a phase costs one context-variable lookup; inside, each phase's *exclusive* wall time (its own time minus
the phases nested in it) is added up, with the device synchronised at both ends so asynchronous GPU work
is charged to the phase that launched it.

>>> import time
>>> with record_phases() as rec:
...     with phase("outer"):
...         with phase("inner"):
...             time.sleep(0.01)
>>> rec.seconds["inner"] >= 0.01 and rec.seconds["outer"] < rec.seconds["inner"]
True
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch

__all__ = ["PhaseRecorder", "phase", "record_phases"]


@dataclass
class PhaseRecorder:
    """Exclusive seconds and entry counts per phase name, in first-entry order."""

    device: torch.device | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    _stack: list[float] = field(default_factory=list)  # child time accumulated per open phase

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


_ACTIVE: ContextVar[PhaseRecorder | None] = ContextVar("synthaug_phase_recorder", default=None)


@contextlib.contextmanager
def record_phases(device: torch.device | str | None = None) -> Iterator[PhaseRecorder]:
    """Collect the phases entered inside the block (this thread / context only)."""
    rec = PhaseRecorder(torch.device(device) if device is not None else None)
    token = _ACTIVE.set(rec)
    try:
        yield rec
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Mark a step of a transform call (no-op unless :func:`record_phases` is active)."""
    rec = _ACTIVE.get()
    if rec is None:
        yield
        return
    rec._sync()
    rec._stack.append(0.0)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        rec._sync()
        elapsed = time.perf_counter() - t0
        children = rec._stack.pop()
        rec.seconds[name] = rec.seconds.get(name, 0.0) + elapsed - children
        rec.calls[name] = rec.calls.get(name, 0) + 1
        if rec._stack:
            rec._stack[-1] += elapsed
