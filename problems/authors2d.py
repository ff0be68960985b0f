"""The authors' 2D lower solver as their code runs it: protocol artefacts of the ``authors`` parameter sets.

Two of the authors' deviations (``problems/parameter_sets.py``) are properties of their lower solve, not of
the problem's maths:

* step rule "power" — the step is 1/L with L the Rayleigh quotient after POWER_ITERS normalised power
  iterations on the Hessian of the *objective* (TV weight α, not the descended α·scale) at the solve's
  start point. Their start vector is unseeded (±0.05 dB from run to run); ours is drawn from a generator
  seeded with the problem's seed, so a run is deterministic. Not counted, as in their code.
* stop rule "channel_mean" — FISTA stops when stat(∇h(y_k)) < μ ε on the gradient just used, stat the mean
  over the colour channels of the per-channel norms ‖∇_c h‖ (or the plain norm for "norm"), and returns the
  step x_{k+1} taken from y_k. With μ = 1 (their effective choice) "accuracy ε" is a gradient norm, not a
  certified distance.

Their iteration is otherwise FISTA with t₁ = 1.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from problems.lower import LowerResult

if TYPE_CHECKING:
    from problems.deblur2d import Deblur2D

#: iterations of the authors' power method for L (``ll_step_rule="power"``)
POWER_ITERS = 10


def power_lipschitz(problem: Deblur2D, theta: Tensor, x: Tensor) -> float:
    """The authors' L at x: the Rayleigh quotient after POWER_ITERS normalised power iterations on the
    objective's Hessian (module docstring), from a start drawn with the problem's seed."""
    gen = torch.Generator(device=problem.device).manual_seed(int(problem.params["seed"]))
    v = torch.randn(x.shape, generator=gen, dtype=problem.dtype, device=problem.device)
    for _ in range(POWER_ITERS):
        v = problem._hessian_vp(theta, x, v, problem.alpha)
        v = v / torch.linalg.vector_norm(v)
    return float(torch.vdot(problem._hessian_vp(theta, x, v, problem.alpha).flatten(), v.flatten()))


def authors_fista(
    problem: Deblur2D, theta: Tensor, x: Tensor, eps: float, max_iters: int, step: float | None
) -> LowerResult:
    """FISTA as the authors' ``hg.py`` runs it: t₁ = 1, step 1/L (``ll_step_rule``), and after each step
    the test stat(∇h(y)) < μ ε on the gradient just used (``ll_stop``); returns the step x_{k+1}.
    ``dist_bound`` is stat/μ — a certified distance only for "norm" with a true μ."""
    if step is None:
        rule = problem.ll_step_rule
        lip = power_lipschitz(problem, theta, x) if rule == "power" else problem.ll_lipschitz(theta)
        step = 1.0 / lip
    if not math.isfinite(step):
        return LowerResult(torch.full_like(x, math.nan), 0, math.inf, False)
    x_prev, y, t, stat = x, x, 1.0, math.inf
    for k in range(1, max_iters + 1):
        grad = problem.ll_grad(theta, y)
        x_new = torch.add(y, grad, alpha=-step)
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        y = x_new + ((t - 1.0) / t_next) * (x_new - x_prev)
        x_prev, t = x_new, t_next
        if problem.ll_stop == "channel_mean":
            stat = float(torch.linalg.vector_norm(grad, dim=(-2, -1)).mean()) / problem.mu
        else:
            stat = float(torch.linalg.vector_norm(grad)) / problem.mu
        if stat < eps:
            return LowerResult(x_new, k, stat, True)
    return LowerResult(x_prev, max_iters, stat, False)
