"""`f2sa`'s estimator — fully first-order value-function penalty method (Kwon, Kwon, Wright & Nowak
2023, F2SA), deterministic.

Penalty reformulation with multiplier λ: F_λ(θ) = min_x [g(x, θ) + λ h(x, θ)] − λ min_w h(w, θ) + r(θ),
whose gradient needs no second derivatives:

    ∇F_λ(θ) = ∂_θ g(x_λ, θ) + ∇r(θ) + λ [∂_θ h(x_λ, θ) − ∂_θ h(ŵ, θ)],   x_λ = argmin g + λh,  ŵ = x̂(θ),

and ‖∇F_λ − ∇F‖ = O(1/λ) (Kwon et al., Lemma 3.1). At the k-th θ, warm-started from the previous one's:

    w ← lower solve of h(·, θ) to certified ‖w − ŵ‖ ≤ ε_k               (the problem's lower solver)
    x ← the same lower solver on h(·, θ) + g(·, θ)/λ_k to certified ‖x − x_λ‖ ≤ ε_k  (L_λ = L + L_g/λ_k)
    z = ∂_θ g(x) + ∇r + λ_k (∂_θ h(x) − ∂_θ h(w))      (with the fixed step rule: θ ← θ − α z)

Penalty schedule: λ_k = min(λ₀ (1 + k)^p, λ_max), polynomial growth as in the paper's schedules, and
ε_k = ε₀ (λ₀/λ_k)²: the difference quotient λ(∂_θ h(x) − ∂_θ h(w)) turns inner errors δ into gradient errors
λδ, so ε_k ∝ λ_k⁻² keeps both error sources O(1/λ_k). The paper's stochastic version instead takes a
fixed number of inner steps with step sizes tied to λ_k (α_k λ_k ≲ inner step); with exact gradients we
control the inner accuracy directly (with T fixed steps and a fixed α the coupled iteration diverges once
λ·α·‖J‖²/μ outgrows the inner contraction — measured on `quadratic`). λ₀, p, λ_max, ε₀ are our choices.
Work: lower steps of both inner problems counted in ``ll_iters`` (one ∇_x f each), the ∇_x g of each
x-step in ``ul_grad_evals``, ∂_θ h by two counted ∇_x f evaluations (``ll_gap_grad_theta``), ∂_θ g + ∇r as
one ``hypergrad_evals``; no Hessian-vector products.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from problems.base import PROX_GRADIENT, BilevelProblem
from problems.lower import prox_gradient_solve
from solvers.base import check_range
from solvers.fixed_step import Estimator, FixedStepState


class _Penalised:
    """f + g/λ as the smooth part of a lower problem (the view ``prox_gradient_solve`` needs): L_λ = L +
    L_g/λ, μ_λ = μ (μ − L_g/λ when g(·, θ) is not convex), same prox of R."""

    def __init__(self, problem: BilevelProblem, lam: float):
        self.problem, self.lam = problem, lam
        self.ll_smooth = problem.ll_smooth

    def ll_grad(self, theta: Tensor, x: Tensor) -> Tensor:
        return self.problem.ll_grad(theta, x) + self.problem.ul_grad_x(theta, x) / self.lam

    def ll_prox(self, v: Tensor, step: float) -> Tensor:
        return self.problem.ll_prox(v, step)

    def ll_lipschitz(self, theta: Tensor) -> float:
        return self.problem.ll_lipschitz(theta) + self.problem.ul_lipschitz_x(theta) / self.lam

    def ll_mu(self, theta: Tensor) -> float:
        mu = self.problem.ll_mu(theta)
        if not self.problem.ul_convex_in_x:
            mu -= self.problem.ul_lipschitz_x(theta) / self.lam
        if not mu > 0.0:
            raise ValueError(f"f2sa: g + λh is not strongly convex at λ = {self.lam:g}; raise lam0")
        return mu


@dataclass
class F2SAState(FixedStepState):
    x_pen: Tensor | None = None  # x ≈ argmin g + λh (state.x is w ≈ x̂(θ)); z is the penalty gradient
    k: int = 0
    penalty: float = 0.0  # λ_k used for z


@dataclass(frozen=True)
class ValuePenalty(Estimator):
    lam0: float = 10.0  # λ₀
    lam_power: float = 2.0  # p
    lam_max: float = 1e5  # cap of λ_k (ε then bottoms out at ε₀(λ₀/λ_max)² = 1e-10)
    eps0: float = 1e-2  # ε₀, the inner accuracy at k = 0: ε_k = ε₀ (λ₀/λ_k)²
    ll_max_iters: int = 500  # cap of each inner solve
    ll_step: float | None = None  # step of the w-solve (None: 1/L(θ))

    state_type: ClassVar[type[FixedStepState]] = F2SAState
    #: its penalised solve takes prox-gradient steps on h + g/λ
    requires: ClassVar[frozenset[str]] = frozenset({PROX_GRADIENT})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "ll_step", 0, optional=True)
        check_range(self, "lam0", 0)
        check_range(self, "eps0", 0)
        check_range(self, "lam_power", 0, lo_open=False)
        check_range(self, "lam_max", self.lam0, lo_open=False)
        check_range(self, "ll_max_iters", 1, lo_open=False)

    def penalty_at(self, k: int) -> float:
        """λ_k of the schedule."""
        return min(self.lam0 * (1.0 + k) ** self.lam_power, self.lam_max)

    def penalised_solve(
        self, problem: BilevelProblem, theta: Tensor, x: Tensor, lam: float, eps: float
    ) -> Tensor:
        """The problem's lower solver (same momentum, certificate and stall rule) on f + g/λ + R from x,
        to certified ‖x − x_λ‖ ≤ eps; one counted ∇_x f per iteration."""
        penalised = _Penalised(problem, lam)
        with torch.no_grad():
            return prox_gradient_solve(
                penalised, theta, x, eps, self.ll_max_iters, None, problem.ll_momentum
            ).x

    def estimate(self, problem: BilevelProblem, theta: Tensor, last: F2SAState | None) -> dict[str, Any]:
        w, x, k = (problem.x0, problem.x0, 0) if last is None else (last.x, last.x_pen, last.k + 1)
        lam = self.penalty_at(k)
        eps = self.eps0 * (self.lam0 / lam) ** 2
        w = problem.ll_solve(theta, w, eps, self.ll_max_iters, self.ll_step).x
        x = self.penalised_solve(problem, theta, x, lam, eps)
        # hypergradient_from with q = 0 is ∂_θ g + ∇r (the −Jᵀq term vanishes)
        grad = problem.hypergradient_from(theta, x, torch.zeros_like(x))
        grad = grad + lam * problem.ll_gap_grad_theta(theta, x, w)
        value = problem.upper_value(theta, w)
        return dict(theta=theta, x=w, x_pen=x, z=grad, k=k, penalty=lam, eps=eps, upper_value=value)
