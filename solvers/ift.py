"""`ift` — fixed-accuracy implicit differentiation (Arndt 2022, Algorithm 1; SPEC §3.2).

Every upper iteration: θ ← θ − α z, then the lower level warm-started and solved to a fixed tight
certified accuracy ε, the adjoint H q = ∇_x g solved by CG to a tight tolerance (warm start), and
z = ∂_θ g − Jᵀq + ∇r. A fixed step α (the problem's shared initial step unless set).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor

from problems.base import BilevelProblem
from solvers.base import SolverState, check_range


@dataclass
class IFTState(SolverState):
    z: Tensor | None = None  # hypergradient at theta, used by the next step
    q: Tensor | None = None


@dataclass(frozen=True)
class IFT:
    """IFT hyperparameters. ``eps`` = 1e-4 is no tighter than the paper's 1D rule
    ‖x_{j+1} − x_j‖₁ < 1e-6 at step 1/L, which certifies ‖x − x̂‖ ≤ 2·L·1e-6/a₂ ≈ 7.6e-5."""

    step0: float | None = None  # fixed upper step α (None: the problem's shared initial step)
    eps: float = 1e-4  # fixed certified lower-level accuracy
    ll_max_iters: int = 500  # paper: ≤ 500 ISTA iterations per solve
    ll_step: float | None = None  # None: 1/L
    cg_tol: float = 1e-10  # ‖H q − ∇_x g‖ ≤ cg_tol: an exact adjoint for practical purposes
    cg_max_iters: int = 1000
    cg_precond: str = "none"  # adjoint preconditioner: "none" (paper) or a problem's kind, e.g. "jacobi"

    name: ClassVar[str] = "ift"
    default_max_iters: ClassVar[int] = 7500

    def __post_init__(self) -> None:
        for f in ("eps", "cg_tol"):
            check_range(self, f, 0)
        check_range(self, "step0", 0, optional=True)
        check_range(self, "ll_step", 0, optional=True)
        if not isinstance(self.cg_precond, str):
            raise ValueError(f"IFT.cg_precond must be a string ('none', 'jacobi'), got {self.cg_precond!r}")
        for f in ("ll_max_iters", "cg_max_iters"):
            check_range(self, f, 1, lo_open=False)

    def _at(self, problem: BilevelProblem, theta: Tensor, x: Tensor, q: Tensor | None) -> dict:
        res = problem.ll_solve(theta, x, self.eps, self.ll_max_iters, self.ll_step)
        q, _ = problem.adjoint_solve(
            theta, res.x, self.cg_tol, self.cg_max_iters, q, precondition=self.cg_precond
        )
        z = problem.hypergradient_from(theta, res.x, q)
        value = problem.upper_value(theta, res.x)
        return dict(theta=theta, x=res.x, q=q, z=z, upper_value=value, eps_floor=res.eps_floor)

    def init(self, problem: BilevelProblem) -> IFTState:
        step = problem.ul_step0 if self.step0 is None else self.step0
        return IFTState(
            **self._at(problem, problem.theta0, problem.x0, None),
            eps=self.eps,
            delta=self.cg_tol,
            step_size=step,
        )

    def update(self, problem: BilevelProblem, state: IFTState) -> IFTState:
        z = state.z
        hypergrad_norm = float(torch.linalg.vector_norm(z))
        theta = state.theta - state.step_size * z
        return replace(state, **self._at(problem, theta, state.x, state.q), hypergrad_norm=hypergrad_norm)
