"""`lista` — unrolled differentiation (Arndt 2022, Algorithm 2; Gregor & LeCun; SPEC §3.3).

Every upper iteration backpropagates g(x_K(θ), θ) + r(θ) through K lower-level iterations that start
from the previous output ("recursive" network), takes a gradient step on θ, and runs the K steps
again at the new θ (graph kept) to give the next value. The K steps are the problem's own lower
iteration, the one MAID and IFT solve with (``problem.ll_unrolled``): ISTA on deconv1d (hand-written
backward), FISTA or the strongly-convex momentum on the 2D problems, restarted at each forward pass.
The gradient is the truncated Neumann series of the implicit one, hence biased; the bias shrinks with K.
Cost: K counted steps forward (``ll_iters``) and K backward (``ll_backward_iters``) per upper iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor

from problems.base import BilevelProblem
from solvers.base import SolverState, check_range


@dataclass
class LISTAState(SolverState):
    objective: Tensor | None = None  # g(x_K(θ), θ) + r(θ) with its autograd graph
    theta_leaf: Tensor | None = None


@dataclass(frozen=True)
class LISTA:
    step0: float | None = None  # gradient step on θ (None: the problem's shared initial step)
    n_unroll: int = 50  # K unrolled lower-level iterations per upper iteration
    ll_step: float | None = None  # None: 1/L(θ) (the 1D paper used 1)

    name: ClassVar[str] = "lista"
    default_max_iters: ClassVar[int] = 4000

    def __post_init__(self) -> None:
        check_range(self, "step0", 0, optional=True)
        check_range(self, "ll_step", 0, optional=True)
        check_range(self, "n_unroll", 1, lo_open=False)

    def _forward(self, problem: BilevelProblem, theta: Tensor, x_start: Tensor) -> dict:
        leaf = theta.detach().requires_grad_(True)
        with torch.enable_grad():
            x = problem.ll_unrolled(leaf, x_start.detach(), self.n_unroll, self.ll_step)
            objective = problem.upper_value_graph(leaf, x)  # counted: an upper-level evaluation
        return dict(
            theta=theta.detach(),
            theta_leaf=leaf,
            x=x.detach(),
            objective=objective,
            upper_value=float(objective.detach()),
        )

    def unrolled_gradient(self, problem: BilevelProblem, theta: Tensor, x_start: Tensor) -> Tensor:
        """∇θ of g(x_K(θ)) + r(θ) through K unrolled steps from x_start (the LISTA hypergradient)."""
        fwd = self._forward(problem, theta, x_start)
        (grad,) = torch.autograd.grad(fwd["objective"], fwd["theta_leaf"])
        return grad

    def init(self, problem: BilevelProblem) -> LISTAState:
        step = problem.ul_step0 if self.step0 is None else self.step0
        return LISTAState(**self._forward(problem, problem.theta0, problem.x0), step_size=step)

    def update(self, problem: BilevelProblem, state: LISTAState) -> LISTAState:
        (grad,) = torch.autograd.grad(state.objective, state.theta_leaf)
        theta = state.theta - state.step_size * grad
        return replace(
            state,
            **self._forward(problem, theta, state.x),
            hypergrad_norm=float(torch.linalg.vector_norm(grad)),
        )
