"""`ift`'s estimator — implicit differentiation with a CG adjoint (Arndt 2022, Algorithm 1).

At θ: the lower level warm-started and solved to a fixed tight certified accuracy ε, the adjoint H q = ∇_x g
solved by CG to a tight tolerance (warm-started at the last q), and z = ∂_θ g − Jᵀq + ∇r
(``docs/maths.md``, §1). With the fixed step rule this is `ift`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from problems.base import BilevelProblem
from solvers.base import PRECOND_EXAMPLES, check_range, check_string
from solvers.fixed_step import Estimator, FixedStepState


@dataclass
class IFTState(FixedStepState):
    q: Tensor | None = None  # adjoint at theta (the next CG's warm start)


@dataclass(frozen=True)
class ImplicitCG(Estimator):
    """``eps`` = 1e-4 is no tighter than the paper's 1D rule ‖x_{j+1} − x_j‖₁ < 1e-6 at step 1/L, which
    certifies ‖x − x̂‖ ≤ 2·L·1e-6/a₂ ≈ 7.6e-5."""

    eps: float = 1e-4  # fixed certified lower-level accuracy
    ll_max_iters: int = 500  # paper: ≤ 500 ISTA iterations per solve
    ll_step: float | None = None  # None: 1/L
    cg_tol: float = 1e-10  # ‖H q − ∇_x g‖ ≤ cg_tol: an exact adjoint for practical purposes
    cg_max_iters: int = 1000
    cg_precond: str = "none"  # adjoint preconditioner: "none" (paper) or a problem's kind, e.g. "jacobi"

    state_type: ClassVar[type[FixedStepState]] = IFTState

    def __post_init__(self) -> None:
        super().__post_init__()
        for f in ("eps", "cg_tol"):
            check_range(self, f, 0)
        check_range(self, "ll_step", 0, optional=True)
        check_string(self, "cg_precond", PRECOND_EXAMPLES)
        for f in ("ll_max_iters", "cg_max_iters"):
            check_range(self, f, 1, lo_open=False)

    def estimate(self, problem: BilevelProblem, theta: Tensor, last: IFTState | None) -> dict[str, Any]:
        x, q = (problem.x0, None) if last is None else (last.x, last.q)
        res = problem.ll_solve(theta, x, self.eps, self.ll_max_iters, self.ll_step)
        q, _ = problem.adjoint_solve(
            theta, res.x, self.cg_tol, self.cg_max_iters, q, precondition=self.cg_precond
        )
        z = problem.hypergradient_from(theta, res.x, q)
        value = problem.upper_value(theta, res.x)
        return dict(
            theta=theta,
            x=res.x,
            q=q,
            z=z,
            upper_value=value,
            eps_floor=res.eps_floor,
            eps=self.eps,
            delta=self.cg_tol,
        )
