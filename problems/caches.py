"""Per-θ caches: set-up work a problem keeps between oracle calls at the same (or a nearby) θ.

Every cache is a :class:`PerThetaCache`. Evaluation must neither pay for a solver's set-up work nor pre-pay
it, so ``BilevelProblem.uncounted()`` snapshots every attribute of that type it finds on the instance and
restores it on exit; a problem declares no list of its caches.

* :class:`RecentSetups` — the set-ups of the last few θ *tensors*, keyed by identity and in-place version
  (MAID returns to θ after rejected trials; LISTA's graph-keeping set-ups are told apart by a tag).
* :class:`KernelNormBound` — a rigorous bound β ≥ ‖K_θ‖ of a convolution, cached by kernel *value*, with
  the reuse rule of :meth:`KernelNormBound.bound`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

#: relative loosening of ‖K_θ‖'s bound accepted to reuse a nearby kernel's (``KernelNormBound``)
LIP_REUSE_SLACK = 1e-3
#: power iterations of a fresh ‖K_θ‖ bound: from the all-ones image, and warm-started at the last iterate
LIP_COLD_ITERS = 10
LIP_WARM_ITERS = 3


class PerThetaCache:
    """Base of the per-θ caches; ``snapshot``/``restore`` let evaluation leave a cache as it found it."""

    def snapshot(self) -> Any:
        raise NotImplementedError

    def restore(self, state: Any) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError


class RecentSetups(PerThetaCache):
    """Values computed for the last ``size`` θ tensors (most recent first)."""

    def __init__(self, size: int):
        self.size = size
        self.entries: list[tuple[Tensor, int, Any, Any]] = []  # (θ, its version, tag, value)

    def find(self, theta: Tensor, tag: Any = None) -> Any | None:
        """The value stored for this very tensor, unmodified since, with this tag (None if absent)."""
        for key, version, key_tag, value in self.entries:
            if key is theta and version == theta._version and key_tag == tag:
                return value
        return None

    def add(self, theta: Tensor, value: Any, tag: Any = None) -> Any:
        self.entries = [(theta, theta._version, tag, value), *self.entries[: self.size - 1]]
        return value

    def snapshot(self) -> list:
        return list(self.entries)

    def restore(self, state: list) -> None:
        self.entries = list(state)

    def clear(self) -> None:
        self.entries = []


class KernelNormBound(PerThetaCache):
    """‖K_θ‖ ≤ β for a convolution K_θ, kept for the last kernel computed (with its power iterate).

    Near a kernel b with a computed bound β ≥ ‖K_b‖ (a line-search trial b − t z), the triangle inequality
    gives ‖K_θ‖ ≤ β + ‖K_{θ−b}‖ ≤ β + (r + 1)·max_c ‖θ_c − b_c‖₁ (Young's inequality per channel, and
    ‖P‖ ≤ r + 1 for the padding P, which copies a pixel at most r + 1 times per axis, r = k // 2). That
    bound is used when it adds at most LIP_REUSE_SLACK·β. Otherwise the Collatz–Wielandt bound is
    recomputed, warm-started at the last power iterate (LIP_WARM_ITERS pairs instead of LIP_COLD_ITERS
    from the all-ones image), and the smaller of the two rigorous bounds kept."""

    def __init__(self) -> None:
        self.last: tuple[Tensor, float, Tensor | None] | None = None  # (kernel, β, power iterate)

    def bound(self, theta: Tensor, operator: Callable[[], Any], on_fresh: Callable[[], None]) -> float:
        """β ≥ ‖K_θ‖. ``operator()`` gives K_θ (a ``Conv2D``) when a fresh bound is needed; ``on_fresh`` is
        called first (the problem counts the work)."""
        theta = theta.detach()
        c = self.last
        near = math.inf  # the triangle-inequality bound from the cached kernel
        if c is not None and c[0].shape == theta.shape:
            if torch.equal(c[0], theta):
                return c[1]
            near = c[1] + (theta.shape[-1] // 2 + 1) * float((theta - c[0]).abs().sum((-2, -1)).max())
            if near <= (1.0 + LIP_REUSE_SLACK) * c[1]:
                return near
        on_fresh()
        op = operator()
        if c is not None and c[2] is not None and c[2].shape[-2:] == op.shape:
            value, w = op.norm_bound_from(c[2], LIP_WARM_ITERS)
            value = min(value, near)  # both are rigorous bounds
        else:
            value, w = op.norm_bound_from(None, LIP_COLD_ITERS)
        self.last = (theta.clone(), value, w)
        return value

    def snapshot(self) -> tuple | None:
        return self.last

    def restore(self, state: tuple | None) -> None:
        self.last = state

    def clear(self) -> None:
        self.last = None


class LastValue(PerThetaCache):
    """One value, the most recent (a warm start carried between oracle calls; None when empty)."""

    def __init__(self) -> None:
        self.value: Any = None

    def snapshot(self) -> Any:
        return self.value

    def restore(self, state: Any) -> None:
        self.value = state

    def clear(self) -> None:
        self.value = None
