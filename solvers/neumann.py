"""`neumann`'s and `jfb`'s estimator — implicit differentiation with H⁻¹ replaced by a truncated series.

`neumann` (Lorraine, Vicol & Duvenaud 2020, Algorithm 3): the lower level solved to a fixed accuracy ε (as
`ift`), and the adjoint H⁻¹b, b = ∇_x g (restricted to the active set), replaced by K terms of the Neumann
series of H⁻¹ = λ Σ_{j≥0} (I − λH)^j,

    q_K = λ Σ_{j<K} (I − λH)^j b,        λ = the lower-level step (default 1/L, so ‖I − λH‖ < 1),

which costs K − 1 Hessian-vector products. Bias: q_K − H⁻¹b = −(I − λH)^K H⁻¹b, so ‖q_K − q‖ ≤
(1 − λμ)^K ‖q‖: it shrinks geometrically with K (slowly when μ/L is small).

`jfb` (Fung et al. 2022, Jacobian-free backpropagation): the fixed-point map T(x) = x − λ∇_x h has
Jacobian I − λH; JFB drops (I − ∂_x T)⁻¹ and back-propagates through one application of T, i.e.
q = λ b — the K = 1 term of the series above, with no Hessian-vector product at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from problems.base import PROX_GRADIENT, BilevelProblem
from solvers.base import check_range
from solvers.fixed_step import Estimator, FixedStepState


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
class SeriesEstimator(Estimator):
    """Lower solve to ε (warm start), z from the ``terms``-term series adjoint."""

    #: the series needs ``hvp`` and ``adjoint_rhs`` to be the Hessian of h and ∇_x g on its active set
    requires: ClassVar[frozenset[str]] = frozenset({PROX_GRADIENT})

    eps: float = 1e-4  # fixed certified lower-level accuracy (as `ift`)
    ll_max_iters: int = 500
    ll_step: float | None = None  # lower-level step, also the series' λ (None: 1/L(θ))

    @property
    def terms(self) -> int:
        """K, the number of series terms."""
        raise NotImplementedError

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "eps", 0)
        check_range(self, "ll_step", 0, optional=True)
        check_range(self, "ll_max_iters", 1, lo_open=False)

    def series_hypergradient(self, problem: BilevelProblem, theta: Tensor, x: Tensor) -> Tensor:
        """z_K = ∂_θ g − Jᵀ q_K + ∇r at the lower point x (the approximate hypergradient)."""
        lam = 1.0 / problem.ll_lipschitz(theta) if self.ll_step is None else self.ll_step
        q = neumann_adjoint(problem, theta, x, self.terms, lam)
        return problem.hypergradient_from(theta, x, q)

    def estimate(self, problem: BilevelProblem, theta: Tensor, last: FixedStepState | None) -> dict[str, Any]:
        x = problem.x0 if last is None else last.x
        x = problem.ll_solve(theta, x, self.eps, self.ll_max_iters, self.ll_step).x
        z = self.series_hypergradient(problem, theta, x)
        return dict(theta=theta, x=x, z=z, upper_value=problem.upper_value(theta, x), eps=self.eps)


@dataclass(frozen=True)
class NeumannSeries(SeriesEstimator):
    """K = 20 terms: our choice (the paper leaves K a small hyperparameter)."""

    n_terms: int = 20  # K

    @property
    def terms(self) -> int:
        return self.n_terms

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "n_terms", 1, lo_open=False)


@dataclass(frozen=True)
class JacobianFree(SeriesEstimator):
    """Jacobian-free backpropagation: the K = 1 series (no fields beyond the lower solve's)."""

    @property
    def terms(self) -> int:
        return 1
