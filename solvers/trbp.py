"""`trbp`'s estimator — truncated back-propagation (Shaban, Cheng, Hatch & Boots 2019, K-step RMD).

At θ: the lower level is solved (warm-started) to a fixed certified accuracy ε, then K more prox-gradient
steps x_{T+1..T+K} are run with the autograd graph kept, and the gradient of g(x_{T+K}(θ), θ) + r(θ) is
back-propagated through those K steps only (the first T are treated as constant in θ). Near x̂ the K-step
gradient equals the Neumann series of the implicit one truncated after K terms, so its bias shrinks like
(1 − λμ)^K (Shaban et al., Prop. 3.1), plus the O(ε) error of the starting point. Unlike `lista`'s, the
unrolled steps start from a solved lower level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from problems.base import PROX_GRADIENT, BilevelProblem
from solvers.base import check_range
from solvers.fixed_step import Estimator, FixedStepState


@dataclass(frozen=True)
class TruncatedBackprop(Estimator):
    """K = 10 back-propagated steps: our choice (the paper leaves K a hyperparameter)."""

    #: its K steps are plain prox-gradient steps on h (the truncated Neumann series of ∇²h)
    requires: ClassVar[frozenset[str]] = frozenset({PROX_GRADIENT})

    n_unroll: int = 10  # K
    eps: float = 1e-4  # accuracy of the solve before the K differentiated steps (as `ift`)
    ll_max_iters: int = 500
    ll_step: float | None = None  # None: 1/L(θ)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "eps", 0)
        check_range(self, "ll_step", 0, optional=True)
        for f in ("n_unroll", "ll_max_iters"):
            check_range(self, f, 1, lo_open=False)

    def truncated_gradient(
        self, problem: BilevelProblem, theta: Tensor, x: Tensor
    ) -> tuple[Tensor, Tensor, float]:
        """(∇θ of g(x_K) + r through K steps from the solved x, x_K, value) with x the warm start."""
        x = problem.ll_solve(theta, x, self.eps, self.ll_max_iters, self.ll_step).x
        leaf = theta.detach().requires_grad_(True)
        with torch.enable_grad():
            # plain prox-gradient steps: their K-step gradient is the truncated Neumann series
            x_k = problem.ll_unrolled(leaf, x.detach(), self.n_unroll, self.ll_step, momentum="none")
            objective = problem.upper_value_graph(leaf, x_k)  # counted: an upper-level evaluation
            (grad,) = torch.autograd.grad(objective, leaf)
        return grad, x_k.detach(), float(objective.detach())

    def estimate(self, problem: BilevelProblem, theta: Tensor, last: FixedStepState | None) -> dict[str, Any]:
        grad, x_k, value = self.truncated_gradient(problem, theta, problem.x0 if last is None else last.x)
        return dict(theta=theta.detach(), x=x_k, z=grad, upper_value=value, eps=self.eps)
