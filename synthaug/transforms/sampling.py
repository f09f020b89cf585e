"""The random part every synthaug array transform shares: draw ``(seed, apply)``, then a pure apply.

A transform mixes in :class:`SeededSampling` and defines ``prob``, ``params_from_seed(seed, apply)``
(everything random follows from the seed) and ``apply(image, label, params)``.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["SeededSampling"]


class SeededSampling:
    prob: float

    def params_from_seed(self, seed: int, apply: bool = True) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def apply(self, image: Any, label: Any, params: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def sample_params(self, *, generator: torch.Generator) -> Any:
        """``apply`` with probability ``prob``, and a seed; both drawn from ``generator`` (no global RNG)."""
        apply = bool(torch.rand((), generator=generator) < self.prob)
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        return self.params_from_seed(seed, apply)

    def __call__(self, image: Any, label: Any = None, *, generator: torch.Generator | None = None) -> Any:
        gen = generator if generator is not None else torch.Generator().manual_seed(int(torch.seed() % 2**62))
        return self.apply(image, label, self.sample_params(generator=gen))
