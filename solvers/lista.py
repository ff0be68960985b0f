"""`lista`'s estimator — unrolled differentiation (Arndt 2022, Algorithm 2; Gregor & LeCun).

At θ: K lower-level iterations from the previous output ("recursive" network) with the autograd graph kept,
and g(x_K(θ), θ) + r(θ) as the value; the hypergradient is ∇_θ of that value, back-propagated *lazily*,
when the next step needs it (so the backward pass is charged to the next update, as Arndt's loop runs it).
The K steps are the problem's own lower iteration, the one MAID and IFT solve with
(``problem.ll_unrolled``): ISTA on deconv1d (hand-written backward), FISTA or the strongly-convex momentum
on the 2D problems, restarted at each forward pass. The gradient is the truncated Neumann series of the
implicit one, hence biased; the bias shrinks with K. Cost: K counted steps forward (``ll_iters``) and K
backward (``ll_backward_iters``) per upper iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from problems.base import BilevelProblem
from solvers.base import check_range
from solvers.fixed_step import Estimator, FixedStepState


@dataclass
class LISTAState(FixedStepState):
    objective: Tensor | None = None  # g(x_K(θ), θ) + r(θ) with its autograd graph
    theta_leaf: Tensor | None = None


@dataclass(frozen=True)
class Unrolled(Estimator):
    n_unroll: int = 50  # K unrolled lower-level iterations per upper iteration
    ll_step: float | None = None  # None: 1/L(θ) (the 1D paper used 1)

    state_type: ClassVar[type[FixedStepState]] = LISTAState

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "ll_step", 0, optional=True)
        check_range(self, "n_unroll", 1, lo_open=False)

    def _forward(self, problem: BilevelProblem, theta: Tensor, x_start: Tensor) -> dict[str, Any]:
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

    def estimate(self, problem: BilevelProblem, theta: Tensor, last: LISTAState | None) -> dict[str, Any]:
        return self._forward(problem, theta, problem.x0 if last is None else last.x)

    def hypergradient(self, state: LISTAState) -> Tensor:
        """The backward pass through the K steps of the last forward (counted ``ll_backward_iters``)."""
        (grad,) = torch.autograd.grad(state.objective, state.theta_leaf)
        return grad

    def unrolled_gradient(self, problem: BilevelProblem, theta: Tensor, x_start: Tensor) -> Tensor:
        """∇θ of g(x_K(θ)) + r(θ) through K unrolled steps from x_start (the LISTA hypergradient)."""
        return self.hypergradient(LISTAState(**self._forward(problem, theta, x_start)))
