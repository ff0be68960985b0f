"""`my_solver` — a fixed upper step on the implicit-differentiation hypergradient (a minimal plug-in).

One upper iteration: θ ← θ − α z, then x ≈ x̂(θ) to ‖x − x̂‖ ≤ tol (warm-started), q from the adjoint system
H q = ∇ₓg to residual tol, and z = ∂_θ g − Jᵀq + ∇r. Every piece of work is one of the problem's counted
oracles (``ll_solve``, ``adjoint_solve``, ``hypergradient_from``, ``upper_value``): the problem counts and
enforces the budget, the harness owns the loop, the clock and the records.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from torch import Tensor

from solvers import SolverState, register_solver


@dataclass
class MyState(SolverState):
    z: Tensor | None = None  # the hypergradient at theta, for the next step


@register_solver
@dataclass(frozen=True)
class MySolver:
    """Fixed upper step on the implicit-differentiation hypergradient."""

    name: ClassVar[str] = "my_solver"
    default_max_iters: ClassVar[int] = 100

    step0: float | None = None  # fixed upper step α (None: the problem's shared initial step)
    tol: float = 1e-8  # accuracy of the lower solve and of the adjoint solve

    def _estimate(self, problem, theta, x):
        x = problem.ll_solve(theta, x, self.tol, 10_000).x
        q, _ = problem.adjoint_solve(theta, x, self.tol, 1_000)
        z = problem.hypergradient_from(theta, x, q)
        return dict(x=x, z=z, upper_value=problem.upper_value(theta, x))

    def init(self, problem):
        step = problem.ul_step0 if self.step0 is None else self.step0
        estimate = self._estimate(problem, problem.theta0, problem.x0)
        return MyState(theta=problem.theta0, step_size=step, **estimate)

    def update(self, problem, state):
        theta = state.theta - state.step_size * state.z
        estimate = self._estimate(problem, theta, state.x)
        return replace(state, theta=theta, hypergrad_norm=float(state.z.norm()), **estimate)
