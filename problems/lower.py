"""Lower-level solver: (accelerated) proximal gradient with a certified stopping test (SPEC §1).

Certificate (paper Lemma 2): for h = f + R μ-strongly convex, with the prox-gradient map
G_λ(y) = (y − prox_{λR}(y − λ∇f(y)))/λ, λ ≤ 1/L,

    ‖prox-step − x̂‖ ≤ ‖y − x̂‖ ≤ (1 + λL)‖G_λ(y)‖ / μ,        and for smooth h: ‖y − x̂‖ ≤ ‖∇h(y)‖/μ.

We stop as soon as that bound is ≤ eps. One iteration = one counted gradient ``problem.ll_grad``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from problems.base import BilevelProblem

MOMENTA = ("none", "fista", "strongly_convex")
STALL_ITERS = 1000


@dataclass
class LowerResult:
    x: Tensor
    iters: int
    dist_bound: float  # certified bound on ‖x − x̂(θ)‖
    converged: bool  # dist_bound ≤ eps


def prox_gradient_solve(
    problem: BilevelProblem,
    theta: Tensor,
    x: Tensor,
    eps: float,
    max_iters: int,
    step: float | None = None,
    momentum: str = "none",
    stall_iters: int = STALL_ITERS,
) -> LowerResult:
    """ISTA / FISTA from x until the certified distance to x̂(θ) is ≤ eps, at most max_iters steps.

    Also stops (``converged=False``) when the bound has not improved by 0.1 % in ``stall_iters``
    iterations: the requested accuracy is then below what the dtype resolves (float32 with a small μ·ε),
    and the caller gets the bound actually achieved instead of a solve that runs to ``max_iters``."""
    if momentum not in MOMENTA:
        raise ValueError(f"momentum must be one of {MOMENTA}, got {momentum!r}")
    lip = problem.ll_lipschitz(theta)
    mu = problem.ll_mu(theta)
    lam = 1.0 / lip if step is None else float(step)
    if not (math.isfinite(lip) and math.isfinite(lam)):
        # θ has overflowed (a diverging upper iteration): nothing to solve or certify. Return a
        # non-finite point rather than raise inside the prox, so the run is recorded as diverged.
        return LowerResult(torch.full_like(x, math.nan), 0, math.inf, False)
    smooth = problem.ll_smooth
    # The certificate for smooth h is ‖∇h(y)‖/μ; for composite h, (1 + λL)‖G_λ(y)‖/μ.
    factor = (1.0 if smooth else 1.0 + lam * lip) / mu
    beta_sc = (math.sqrt(lip) - math.sqrt(mu)) / (math.sqrt(lip) + math.sqrt(mu))
    y = x
    x_prev = x
    t = 1.0
    bound = best = math.inf
    best_k = 0
    for k in range(1, max_iters + 1):
        grad = problem.ll_grad(theta, y)
        if smooth:
            bound = factor * float(torch.linalg.vector_norm(grad))
            if bound <= eps:
                return LowerResult(y, k, bound, True)
            x_new = torch.add(y, grad, alpha=-lam)
        else:
            x_new = problem.ll_prox(torch.add(y, grad, alpha=-lam), lam)
            bound = factor * float(torch.linalg.vector_norm(y - x_new)) / lam
            if bound <= eps:
                return LowerResult(x_new, k, bound, True)
        if bound < best * (1.0 - 1e-3):
            best, best_k = bound, k
        elif k - best_k >= stall_iters:
            return LowerResult(x_new, k, bound, False)  # x_new: a step from y, no farther from x̂
        if momentum == "none":
            y = x_new
        else:
            if momentum == "fista":
                t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
                beta = (t - 1.0) / t_next
                t = t_next
            else:
                beta = beta_sc
            y = x_new + beta * (x_new - x_prev)
        x_prev = x_new
    # x_prev is the step taken from the last checked point y; a (prox-)gradient step with
    # λ ≤ 1/L does not move away from x̂, so the bound of y holds for it too.
    return LowerResult(x_prev, max_iters, bound, bound <= eps)
