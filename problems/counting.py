"""Counting and budgets, in one place: what a problem's oracles cost, and when a run must stop.

Every unit of work a solver can ask for goes through :meth:`Counted._count`, which first *charges* the
armed budget (raises :class:`BudgetExhausted` once the deadline has passed, or when lower-level steps would
take ``ll_iters`` past its cap) and then adds to one counter of :class:`Counters`:

* the counted oracles of ``problems/base.py`` (one lower-level gradient, Hessian-vector product, upper
  value, ∇_x g, hypergradient assembly, back-propagated unrolled step);
* set-up work, where a problem really does it (a per-θ cache miss), through one method,
  :meth:`Counted._count_setup` (``setup_evals``: an operator set-up; ``lipschitz_evals``: a Lipschitz bound
  that costs work). Measured costs of each counter: ``docs/cost_model.md``.

No other code writes a counter (a contract test reads the sources). Evaluation is never charged:
:meth:`Counted.uncounted` disarms the budget and restores the counters and every per-θ cache it finds on
the instance (``problems/caches.py``), so evaluation neither pays for nor pre-pays a solver's set-up work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

from problems.caches import PerThetaCache

#: the counters set-up work is reported in (:meth:`Counted._count_setup`)
SETUP_COUNTERS = ("setup_evals", "lipschitz_evals")


class BudgetExhausted(Exception):
    """Raised by a counted oracle called when the armed budget is spent (see :meth:`Counted.budget`).

    The harness catches it and records the last accepted iterate with status ``budget``; the check sits in
    the oracles so that one long lower solve, CG run or line search cannot overrun a budget by more than
    one oracle call."""


@dataclass(frozen=True)
class Budget:
    """A deadline on ``time.perf_counter()`` and a cap on the cumulative ``ll_iters`` counter."""

    deadline: float = math.inf
    max_ll_iters: float = math.inf


@dataclass
class Counters:
    """Cumulative oracle counts, written only by :meth:`Counted._count` (module docstring)."""

    ll_iters: int = 0  # lower-level gradient / prox-gradient steps (forward, unrolled ones included)
    cg_iters: int = 0  # Hessian-vector products
    ul_evals: int = 0  # upper-level value evaluations
    ul_grad_evals: int = 0  # ∇_x g evaluations (MAID's bounds, the adjoint's right-hand side)
    hypergrad_evals: int = 0  # assemblies of z = ∂_θ g − Jᵀq + ∇r
    ll_backward_iters: int = 0  # unrolled lower-level steps back-propagated (LISTA's backward pass)
    setup_evals: int = 0  # per-θ operator set-ups (deconv1d: BᵀB + a₂I; deblur2d: kernel FFT and K_bᵀy)
    lipschitz_evals: int = 0  # per-θ Lipschitz bounds that cost work (power iterations, a spectral norm)

    def snapshot(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def reset(self) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, 0)


class Counted:
    """The counters, the budget and the uncounted context of a problem (a base of ``BilevelProblem``)."""

    counters: Counters
    _budget: Budget | None

    @contextlib.contextmanager
    def budget(self, deadline: float | None = None, max_ll_iters: int | None = None) -> Iterator[None]:
        """Arm a budget: inside, a counted oracle raises :class:`BudgetExhausted` once
        ``time.perf_counter() ≥ deadline`` or when its lower-level steps would take ``ll_iters`` past
        ``max_ll_iters``. (No device sync: the check reads the host clock only.)"""
        saved = self._budget
        self._budget = Budget(
            math.inf if deadline is None else deadline, math.inf if max_ll_iters is None else max_ll_iters
        )
        try:
            yield
        finally:
            self._budget = saved

    def _charge(self, ll_steps: int = 0) -> None:
        """Check the armed budget before work is done (``ll_steps`` lower-level steps of it)."""
        b = self._budget
        if b is None:
            return
        if time.perf_counter() >= b.deadline:
            raise BudgetExhausted("max_time")
        if ll_steps and self.counters.ll_iters + ll_steps > b.max_ll_iters:
            raise BudgetExhausted("max_ll_iters")

    def _count(self, counter: str, n: int = 1) -> None:
        """Charge the budget for n units of a counter's work (lower-level steps against its cap too), then
        count them: the one way a counter changes."""
        self._charge(n if counter == "ll_iters" else 0)
        setattr(self.counters, counter, getattr(self.counters, counter) + n)

    def _count_setup(self, counter: str = "setup_evals") -> None:
        """Report one unit of set-up work (``setup_evals`` or ``lipschitz_evals``) where it is really done."""
        if counter not in SETUP_COUNTERS:
            raise ValueError(f"set-up work is counted in {' or '.join(SETUP_COUNTERS)}, not {counter!r}")
        self._count(counter)

    @contextlib.contextmanager
    def uncounted(self) -> Iterator[None]:
        """Evaluation is never charged: counters, and every per-θ cache of the instance (each attribute that
        is a ``problems.caches.PerThetaCache``, so that evaluation neither pays for nor pre-pays a solver's
        set-up work), are restored on exit, and no budget is armed inside. Nested, only the outermost
        restores (so an inner one keeps what the outer block computed, e.g. a solve an adjoint then uses)."""
        if getattr(self, "_uncounted_depth", 0):
            yield
            return
        self._uncounted_depth = 1
        saved = self.counters.snapshot()
        self._evaluating = getattr(self, "_evaluating", 0) + 1
        caches = [(c, c.snapshot()) for c in vars(self).values() if isinstance(c, PerThetaCache)]
        saved_budget, self._budget = self._budget, None
        try:
            yield
        finally:
            self._evaluating -= 1
            self._uncounted_depth = 0
            self._budget = saved_budget
            for key, value in saved.items():
                setattr(self.counters, key, value)
            for cache, state in caches:
                cache.restore(state)
