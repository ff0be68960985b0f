"""The harness's exact evaluation: what every published figure is computed from (``docs/evaluation.md``).

At the rows it evaluates, the harness computes, off the solver's clock and counters,

    F(θ_k) = g(x̂(θ_k), θ_k) + r(θ_k)      x̂ by the problem's reference lower solve (certified ‖x − x̂‖ ≤ tol)
    suboptimality = F(θ_k) − F*,   rel_gap = (F(θ_k) − F*) / (F(θ₀) − F*)
    exact_grad_norm = ‖∇F(θ_k)‖ by the reference hypergradient (problems with ``cheap_evaluation`` only)

with the reference API's default tolerance and each solve warm-started at the previous evaluation's x̂
(the certificate does not depend on the start). F* is ``problem.reference_optimum()``: a closed form, or
the committed best-known value (``problems/optima.json``); without one, suboptimality and rel_gap are NaN.

Which rows: all of them on a problem with ``cheap_evaluation`` unless ``eval_every`` is given; otherwise
row 0, the log-spaced rows
0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, … (powers of two and three times powers of two), every
``eval_every``-th row when one is given (``--eval-every``), and the last row. Rows not evaluated hold
NaN in every column of ``COLUMNS``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor

from problems.base import BilevelProblem

#: the trace columns written here (NaN on rows not evaluated)
COLUMNS = ("exact_upper_value", "suboptimality", "rel_gap", "exact_grad_norm", "eval_time", "eval_ll_iters")
#: rows 0..SMALL_ROWS are all on the log-spaced schedule (below 4 the doubling rule leaves no gaps anyway)
SMALL_ROWS = 4


def _power_of_two(k: int) -> bool:
    return k > 0 and k & (k - 1) == 0


def on_log_schedule(k: int) -> bool:
    """Row k is on the log-spaced schedule 0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, …: k ≤ SMALL_ROWS, a
    power of two, or three times one (two rows per doubling of the iteration count)."""
    return k <= SMALL_ROWS or _power_of_two(k) or (k % 3 == 0 and _power_of_two(k // 3))


def scheduled(k: int, eval_every: int | None, cheap: bool) -> bool:
    """Whether row k is evaluated (the last row is evaluated besides, whatever its number): the log-spaced
    rows, and every ``eval_every``-th; without one, every row of a cheap problem and no other."""
    if on_log_schedule(k):
        return True
    return cheap if eval_every is None else k % eval_every == 0


def nan_row() -> dict[str, float]:
    return dict.fromkeys(COLUMNS, math.nan)


class Evaluator:
    """Exact evaluation along one run: remembers F(θ₀) and the last x̂ (the next solve's warm start).

    A problem whose μ is not a strong-convexity bound (``mu_is_bound`` False) cannot certify x̂; its rows
    hold NaN (``enabled`` is False), as do those of a problem that says its evaluation is unaffordable
    (``evaluation_unavailable``). A θ at which the reference solve fails (non-finite, a diverging run)
    gets NaN and ``failures`` counts it; the run goes on. ``enabled=False`` switches evaluation off."""

    def __init__(self, problem: BilevelProblem, eval_every: int | None = None, enabled: bool = True):
        self.problem = problem
        self.eval_every = eval_every
        self.cheap = bool(problem.cheap_evaluation)
        self.enabled = enabled and bool(problem.mu_is_bound) and problem.evaluation_unavailable is None
        self.f_star = problem.reference_optimum() if self.enabled else None
        self.f0: float | None = None
        self.x_hat: Tensor | None = None
        self.failures = 0
        self.cuda = problem.device.type == "cuda"

    def due(self, k: int) -> bool:
        return scheduled(k, self.eval_every, self.cheap)

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def evaluate(self, theta: Tensor) -> dict[str, float]:
        """The COLUMNS at θ (NaN where not available); never touches the solver's counters or budget."""
        row = nan_row()
        if not self.enabled:
            return row
        p = self.problem
        start = self._now()
        try:
            with torch.no_grad(), p.uncounted():
                if not bool(torch.isfinite(theta).all()):
                    raise ValueError("θ is not finite")
                res = self._solve(theta)
                value = float(p.ul_g(theta, res.x) + p.ul_reg(theta))
                grad_norm = math.nan
                if self.cheap:
                    grad = p.hypergradient(theta, start=res.x)  # the solve from x̂ stops at once
                    grad_norm = float(torch.linalg.vector_norm(grad))
        except (RuntimeError, ValueError, ArithmeticError):
            self.failures += 1
            if self.f0 is None:
                self.f0 = math.nan  # F(θ₀) unknown: no relative gap in this run
            row["eval_time"] = self._now() - start
            return row
        self.x_hat = res.x
        if self.f0 is None:  # the first evaluation is row 0's: F(θ₀)
            self.f0 = value
        row.update(
            exact_upper_value=value,
            exact_grad_norm=grad_norm,
            eval_ll_iters=float(res.iters),
            eval_time=self._now() - start,
        )
        row.update(gaps(value, self.f0, self.f_star))
        return row

    def _solve(self, theta: Tensor) -> Any:
        """The reference solve warm-started at the last x̂; from x0 when the warm start cannot certify the
        default tolerance (its accuracy floor scales with ‖start‖, so a large x̂ can sit above it)."""
        p = self.problem
        if self.x_hat is not None:
            try:
                return p.solve_lower_result(theta, start=self.x_hat)
            except RuntimeError:
                pass
        return p.solve_lower_result(theta)


def gaps(value: float, f0: float, f_star: float | None) -> dict[str, float]:
    """suboptimality F − F* and rel_gap (F − F*)/(F₀ − F*) (NaN without F*, or when F₀ ≤ F*: a start
    that is already optimal leaves nothing to close, or F₀ unknown)."""
    if f_star is None or not math.isfinite(value):
        return {"suboptimality": math.nan, "rel_gap": math.nan}
    sub = value - f_star
    span = f0 - f_star
    return {"suboptimality": sub, "rel_gap": sub / span if span > 0 else math.nan}
