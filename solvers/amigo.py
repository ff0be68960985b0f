"""`amigo`'s estimator — Amortized Implicit Gradient Optimization (Arbel & Mairal 2022, Algorithm 1),
deterministic.

At θ, warm-started from the previous θ's x and q:

    x ← T prox-gradient steps on h(·, θ)                    (the problem's lower solver, step λ = 1/L)
    q ← N gradient steps q ← q − λ_q (H q − b) on ½qᵀHq − bᵀq, b = ∇_x g(x)   (λ_q = 1/L; one HVP each)
    z = ∂_θ g − Jᵀq + ∇r.

No accuracy is ever certified; the warm starts amortise the inner problems across upper iterations (the
paper's point: errors contract from one outer step to the next, so a fixed small T, N suffices). The
stochastic estimators of the paper become exact gradients here. On an ℓ¹ lower level the adjoint
quadratic lives on the active set of the current x (as for `ift`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from problems.base import PROX_GRADIENT, BilevelProblem
from solvers.base import check_range
from solvers.fixed_step import Estimator, FixedStepState


@dataclass
class AmIGOState(FixedStepState):
    q: Tensor | None = None  # adjoint iterate (warm start of the next N steps)


@dataclass(frozen=True)
class Amortised(Estimator):
    """T = N = 10 inner steps: our choice (the paper's analysis needs only a fixed small T, N)."""

    ll_inner: int = 10  # T lower-level steps per upper iteration
    adjoint_inner: int = 10  # N gradient steps on the adjoint quadratic per upper iteration
    ll_step: float | None = None  # λ for both inner problems (None: 1/L(θ))

    state_type: ClassVar[type[FixedStepState]] = AmIGOState
    #: its adjoint steps use ``hvp`` and ``active_mask`` as the Hessian of h
    requires: ClassVar[frozenset[str]] = frozenset({PROX_GRADIENT})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "ll_step", 0, optional=True)
        for f in ("ll_inner", "adjoint_inner"):
            check_range(self, f, 1, lo_open=False)

    def adjoint_steps(self, problem: BilevelProblem, theta: Tensor, x: Tensor, q: Tensor) -> Tensor:
        """N gradient steps on ½qᵀHq − bᵀq from q (on the active set of x); N counted HVPs."""
        lam = 1.0 / problem.ll_lipschitz(theta) if self.ll_step is None else self.ll_step
        with torch.no_grad():
            rhs = problem.adjoint_rhs(theta, x)
            mask = problem.active_mask(theta, x)
            if mask is not None:  # the support may have changed since q was computed
                q = q * mask
            for _ in range(self.adjoint_inner):
                q = q - lam * (problem.hvp(theta, x, q) - rhs)
        return q

    def estimate(self, problem: BilevelProblem, theta: Tensor, last: AmIGOState | None) -> dict[str, Any]:
        x, q = (problem.x0, torch.zeros_like(problem.x0)) if last is None else (last.x, last.q)
        # eps = 0 is never met (the bound is a norm): exactly T steps unless x is exact
        x = problem.ll_solve(theta, x, 0.0, self.ll_inner, self.ll_step).x
        q = self.adjoint_steps(problem, theta, x, q)
        z = problem.hypergradient_from(theta, x, q)
        return dict(theta=theta, x=x, q=q, z=z, upper_value=problem.upper_value(theta, x))
