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

from problems.lower import LowerResult, ProxGradStep, diverged, iterate, momentum_coefficients

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


class AuthorsStop:
    """stat(∇h(y_k))/μ < ε after step k, stat the channel mean of per-channel norms ("channel_mean") or
    the norm ("norm"); the step x_{k+1} is returned (module docstring). Read on the host every step."""

    def __init__(self, eps: float, mu: float, channel_mean: bool):
        self.eps, self.mu, self.channel_mean = eps, mu, channel_mean

    def start(self, x: Tensor, max_iters: int) -> None:
        self.stat = math.inf

    def check(self, k: int, y: Tensor, x_new: Tensor, grad: Tensor) -> LowerResult | None:
        norm = (
            torch.linalg.vector_norm(grad, dim=(-2, -1)).mean()
            if self.channel_mean
            else torch.linalg.vector_norm(grad)
        )
        self.stat = float(norm) / self.mu
        return LowerResult(x_new, k, self.stat, True) if self.stat < self.eps else None

    def at_cap(self, x_last: Tensor, max_iters: int) -> LowerResult:
        return LowerResult(x_last, max_iters, self.stat, False)


def authors_fista(
    problem: Deblur2D, theta: Tensor, x: Tensor, eps: float, max_iters: int, step: float | None
) -> LowerResult:
    """FISTA as the authors' ``hg.py`` runs it (``problems.lower.iterate`` with FISTA's momentum): t₁ = 1,
    step 1/L (``ll_step_rule``), and after each step the test of :class:`AuthorsStop` (``ll_stop``).
    ``dist_bound`` is stat/μ — a certified distance only for "norm" with a true μ."""
    if step is None:
        rule = problem.ll_step_rule
        lip = power_lipschitz(problem, theta, x) if rule == "power" else problem.ll_lipschitz(theta)
        step = 1.0 / lip
    if not math.isfinite(step):
        return diverged(x)
    stop = AuthorsStop(eps, problem.mu, problem.ll_stop == "channel_mean")
    betas = momentum_coefficients("fista", 1.0 / step, problem.mu)
    return iterate(ProxGradStep(problem, theta, step), x, betas, stop, max_iters)
