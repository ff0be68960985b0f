"""`hoag` — Hyperparameter Optimization with Approximate Gradient (Pedregosa 2016, Algorithm 1).

Iteration k at tolerance ε_k from a summable schedule (``schedule``):

    geometric  ε_k = ε₀ ρ_ε^k,    quadratic  ε_k = ε₀ / (k + 1)²,    cubic  ε_k = ε₀ / (k + 1)³

(the three the MAID paper compares). The lower level is solved warm-started to certified accuracy ε_k,
the adjoint H q = ∇_x g by CG to ‖residual‖ ≤ ε_k (warm start), z_k = ∂_θ g − Jᵀq + ∇r, and the step is
θ_{k+1} = θ_k − z_k / L. The constant L (1/L: the shared initial step) adapts as in the reference code
(github.com/fabianp/hoag): with g̃ the upper value at the inexact lower point, Δ = ‖θ_{k+1} − θ_k‖,

    g̃_{k+1} ≤ g̃_k + C ε_{k+1} + ε_k (C + 1) Δ − L Δ²   ⇒  accept, L ← ρ_L L  (a longer next step);
    g̃_{k+1} > g̃_k + C ε_{k+1} + ε_k (C + 1) Δ          ⇒  reject the step (θ stays), L ← L / ρ_L_up;
    otherwise                                         ⇒  accept, L unchanged.

The second test ("the inexact objective rose by more than the tolerance allows") is the reference code's
safeguard, stated here against the same tolerance term instead of its scale-dependent 1.2·g̃_k. Nothing is
certified: g̃ is not a bound on F. With the shared small initial step the sufficient-decrease test rarely
holds (it needs the tolerance terms to exceed the curvature term), so HOAG's step stays near 1/L₀ as in the
reference code. ε_k is floored at ``eps_min`` (the schedules reach MAID's stopping accuracy 1e-6 after 66
geometric iterations, long before the upper problem is solved); HOAG has no stopping rule of its own
(the reference code runs a fixed number of iterations): it runs to the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor

from problems.base import BilevelProblem
from solvers.base import SolverState, check_range

SCHEDULES = ("geometric", "quadratic", "cubic")


@dataclass
class HOAGState(SolverState):
    q: Tensor | None = None  # adjoint at theta (CG warm start)
    z: Tensor | None = None  # hypergradient at theta
    lip: float = 0.0  # L, the inverse upper step
    k: int = 0  # iterations so far (the schedule's index)


@dataclass(frozen=True)
class HOAG:
    """HOAG hyperparameters; reference-code defaults (geometric decrease 0.9, C = 0.25, L ← 0.95 L /
    L ← 2 L), ε₀ = MAID's 1D ε₀ so both start at the same accuracy."""

    schedule: str = "geometric"  # geometric | quadratic | cubic
    eps0: float = 1e-3  # ε₀
    eps_decrease: float = 0.9  # ρ_ε of the geometric schedule
    step0: float | None = None  # 1/L₀ (None: the problem's shared initial step)
    tol_c: float = 0.25  # C of the decrease test
    lip_decrease: float = 0.95  # ρ_L: L ← ρ_L L after a sufficient decrease
    lip_increase: float = 2.0  # L ← 2 L after a rejected step
    ll_max_iters: int = 500
    cg_max_iters: int = 500
    ll_step: float | None = None  # None: 1/L of the lower level
    eps_min: float = 1e-6  # floor of ε_k (MAID's stopping accuracy)

    name: ClassVar[str] = "hoag"
    summary: ClassVar[str] = "summable tolerance schedule, adaptive step 1/L (Pedregosa 2016)"
    default_max_iters: ClassVar[int] = 7500
    #: only the oracles every problem provides (its adjoint is the problem's ``adjoint_solve``)
    requires: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"HOAG.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for f in ("eps0", "eps_min", "tol_c"):
            check_range(self, f, 0)
        check_range(self, "eps_decrease", 0, 1)
        check_range(self, "lip_decrease", 0, 1, hi_open=False)
        check_range(self, "lip_increase", 1, hi=None)
        check_range(self, "step0", 0, optional=True)
        check_range(self, "ll_step", 0, optional=True)
        for f in ("ll_max_iters", "cg_max_iters"):
            check_range(self, f, 1, lo_open=False)

    def eps_at(self, k: int) -> float:
        """ε_k of the schedule."""
        if self.schedule == "geometric":
            eps = self.eps0 * self.eps_decrease**k
        else:
            eps = self.eps0 / (k + 1) ** (2 if self.schedule == "quadratic" else 3)
        return max(eps, self.eps_min)

    def _gradient(self, problem: BilevelProblem, theta: Tensor, x: Tensor, q: Tensor | None, eps: float):
        q, _ = problem.adjoint_solve(theta, x, eps, self.cg_max_iters, q)
        return q, problem.hypergradient_from(theta, x, q)

    def init(self, problem: BilevelProblem) -> HOAGState:
        theta, eps = problem.theta0, self.eps_at(0)
        x = problem.ll_solve(theta, problem.x0, eps, self.ll_max_iters, self.ll_step).x
        q, z = self._gradient(problem, theta, x, None, eps)
        step = problem.ul_step0 if self.step0 is None else self.step0
        return HOAGState(
            theta=theta,
            x=x,
            q=q,
            z=z,
            upper_value=problem.upper_value(theta, x),
            eps=eps,
            delta=eps,
            step_size=0.0,
            lip=1.0 / step,
        )

    def update(self, problem: BilevelProblem, state: HOAGState) -> HOAGState:
        k, lip, z = state.k + 1, state.lip, state.z
        eps, eps_prev = self.eps_at(k), state.eps
        step = 1.0 / lip
        theta_new = state.theta - step * z
        x_new = problem.ll_solve(theta_new, state.x, eps, self.ll_max_iters, self.ll_step).x
        value_new = problem.upper_value(theta_new, x_new)
        incr = step * float(torch.linalg.vector_norm(z))
        allowed = state.upper_value + self.tol_c * eps + eps_prev * (self.tol_c + 1.0) * incr
        common = dict(hypergrad_norm=incr / step, eps=eps, delta=eps, k=k)
        if value_new > allowed:  # rose beyond the inexactness allowance: shorter step, same θ
            return replace(state, **common, lip=lip * self.lip_increase, step_size=0.0, accepted=False)
        if value_new <= allowed - lip * incr**2:
            lip *= self.lip_decrease
        q, z_new = self._gradient(problem, theta_new, x_new, state.q, eps)
        return replace(
            state,
            **common,
            theta=theta_new,
            x=x_new,
            q=q,
            z=z_new,
            upper_value=value_new,
            lip=lip,
            step_size=step,
            accepted=True,
        )
