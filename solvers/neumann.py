"""`neumann` and `jfb` — implicit differentiation with the inverse Hessian replaced by a truncated series.

`neumann` (Lorraine, Vicol & Duvenaud 2020, Algorithm 3): IFT (`ift`: fixed lower accuracy ε, fixed upper
step α) with the adjoint H⁻¹b, b = ∇_x g (restricted to the active set), replaced by K terms of the
Neumann series of H⁻¹ = λ Σ_{j≥0} (I − λH)^j,

    q_K = λ Σ_{j<K} (I − λH)^j b,        λ = the lower-level step (default 1/L, so ‖I − λH‖ < 1),

which costs K − 1 Hessian-vector products. Bias: q_K − H⁻¹b = −(I − λH)^K H⁻¹b, so ‖q_K − q‖ ≤
(1 − λμ)^K ‖q‖: it shrinks geometrically with K (slowly when μ/L is small).

`jfb` (Fung et al. 2022, Jacobian-free backpropagation): the fixed-point map T(x) = x − λ∇_x h has
Jacobian I − λH; JFB drops (I − ∂_x T)⁻¹ and back-propagates through one application of T, i.e.
q = λ b — the K = 1 term of the series above, with no Hessian-vector product at all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor

from problems.base import BilevelProblem
from solvers.base import SolverState, check_range


@dataclass
class SeriesState(SolverState):
    z: Tensor | None = None  # hypergradient at theta, used by the next step


def neumann_adjoint(problem: BilevelProblem, theta: Tensor, x: Tensor, n_terms: int, step: float) -> Tensor:
    """q_K = λ Σ_{j<K} (I − λH)^j b with b = ``problem.adjoint_rhs``; K − 1 counted ``hvp`` calls."""
    with torch.no_grad():
        term = problem.adjoint_rhs(theta, x)
        total = term.clone()
        for _ in range(n_terms - 1):
            term = term - step * problem.hvp(theta, x, term)
            total += term
        return step * total


@dataclass(frozen=True)
class _SeriesIFT:
    """Shared loop: θ ← θ − α z, lower solve to ε (warm start), z from the truncated-series adjoint."""

    step0: float | None = None  # fixed upper step α (None: the problem's shared initial step)
    eps: float = 1e-4  # fixed certified lower-level accuracy (as `ift`)
    ll_max_iters: int = 500
    ll_step: float | None = None  # lower-level step, also the series' λ (None: 1/L(θ))

    default_max_iters: ClassVar[int] = 7500

    @property
    def terms(self) -> int:
        raise NotImplementedError

    def __post_init__(self) -> None:
        check_range(self, "eps", 0)
        check_range(self, "step0", 0, optional=True)
        check_range(self, "ll_step", 0, optional=True)
        check_range(self, "ll_max_iters", 1, lo_open=False)

    def series_hypergradient(self, problem: BilevelProblem, theta: Tensor, x: Tensor) -> Tensor:
        """z_K = ∂_θ g − Jᵀ q_K + ∇r at the lower point x (the approximate hypergradient)."""
        lam = 1.0 / problem.ll_lipschitz(theta) if self.ll_step is None else self.ll_step
        q = neumann_adjoint(problem, theta, x, self.terms, lam)
        return problem.hypergradient_from(theta, x, q)

    def _at(self, problem: BilevelProblem, theta: Tensor, x: Tensor) -> dict:
        x = problem.ll_solve(theta, x, self.eps, self.ll_max_iters, self.ll_step).x
        z = self.series_hypergradient(problem, theta, x)
        return dict(theta=theta, x=x, z=z, upper_value=problem.upper_value(theta, x))

    def init(self, problem: BilevelProblem) -> SeriesState:
        step = problem.ul_step0 if self.step0 is None else self.step0
        return SeriesState(**self._at(problem, problem.theta0, problem.x0), eps=self.eps, step_size=step)

    def update(self, problem: BilevelProblem, state: SeriesState) -> SeriesState:
        hypergrad_norm = float(torch.linalg.vector_norm(state.z))
        theta = state.theta - state.step_size * state.z
        return replace(state, **self._at(problem, theta, state.x), hypergrad_norm=hypergrad_norm)


@dataclass(frozen=True)
class Neumann(_SeriesIFT):
    """K = 20 terms: our choice (the paper leaves K a small hyperparameter)."""

    n_terms: int = 20  # K

    name: ClassVar[str] = "neumann"

    @property
    def terms(self) -> int:
        return self.n_terms

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "n_terms", 1, lo_open=False)


@dataclass(frozen=True)
class JFB(_SeriesIFT):
    """Jacobian-free backpropagation: the K = 1 series (no fields beyond IFT's)."""

    name: ClassVar[str] = "jfb"

    @property
    def terms(self) -> int:
        return 1
