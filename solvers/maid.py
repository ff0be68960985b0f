"""`maid` — Method of Adaptive Inexact Descent (Salehi, Mukherjee, Roberts, Ehrhardt 2024; paper Alg. 1–2).

Inexact hypergradient at accuracies (ε, δ): lower solve to certified ‖x̃ − x̂‖ ≤ ε, CG on
H q = ∇_x g(x̃) to ‖residual‖ ≤ δ, z = ∂_θ g − Jᵀq + ∇r. A trial θ' = θ − αρ^i z is accepted iff

    g(x̃') + ‖∇g(x̃')‖ε + (L_g/2)ε² + r(θ') − [g(x̃) − ‖∇g(x̃)‖ε − (L_g/2)ε²·[g non-convex]] − r(θ)
        ≤ −c α ρ^i ‖z‖²,

whose left side bounds F(θ') − F(θ) from above (paper Lemma 1), so every accepted step certifiably
decreases F. On acceptance α ← ρ̄ρ^iα, ε ← ν̄ε, δ ← ν̄δ; after max_backtracks failures ε ← νε, δ ← νδ
and the hypergradient is recomputed.

Stopping rule: ε < tol. It certifies approximate stationarity only if the run made progress and the last
hypergradient's lower solve delivered the accuracy asked for; then the state is ``converged``. Otherwise
(no step ever accepted, or the lower solve stopped above its ε at a cap or at the dtype's floor, e.g.
float32) the run ends ``stalled``: ε fell below tol because no step could be certified, not because θ is
known to be stationary.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor

from problems.base import BilevelProblem
from problems.lower import LowerResult
from solvers.base import PRECOND_EXAMPLES, SolverState, check_range, check_string


@dataclass
class MAIDState(SolverState):
    q: Tensor | None = None  # last adjoint, the CG warm start
    base_step: float = 0.0  # α of Algorithm 2
    ul_grad: Tensor | None = None  # ∇_x g at (theta, x), when known (not recomputed next update)
    tangent: Tensor | None = None  # last w = −(dx̂/dθ)·z/‖z‖, the tangent CG's warm start
    progressed: bool = False  # a step has been accepted (certified decrease of F) in this run


@dataclass(frozen=True)
class MAID:
    """MAID hyperparameters; defaults are the paper's 1D settings (``docs/solvers.md``).

    ``tangent_share`` (not None): each trial θ' = θ − t z starts its lower solve at x + t w, where
    H w = J z/‖z‖ (J = ∂_θ∇_x h) is solved by CG once per hypergradient (counted CG steps, warm-started
    at the last w): x̂(θ − t z) = x̂(θ) + t‖z‖w + O(t²), so a trial starts near its solution instead of at
    x̂(θ)'s. The CG tolerance ‖H w − J z/‖z‖‖ ≤ tangent_share·μ·ε/(t₀‖z‖) (t₀ the first trial step, α in
    MAID) lets the tangent's error move the first trial's start gradient by at most tangent_share of the
    level μ·ε that certifies ε (later trials, with smaller t, by less). The stopping test is unchanged,
    so every solve is still certified; None starts each trial at x (the paper's rule and counts).
    """

    eps0: float = 1e-3  # ε₀, initial lower-level accuracy
    delta0: float | None = None  # δ₀, initial CG accuracy (None: δ = ε)
    step0: float | None = None  # α₀ (None: the problem's shared initial step)
    rho: float = 0.5  # ρ, backtracking shrink of the step
    rho_bar: float = 10 / 9  # ρ̄, step growth after an accepted step
    nu: float = 0.5  # ν, accuracy shrink after a failed line search
    nu_bar: float = 1.05  # ν̄, accuracy growth after an accepted step
    eta: float = 1e-4  # η
    c: float | None = None  # sufficient-decrease constant (None: η²)
    max_backtracks: int = 5
    max_accuracy_retries: int = 5  # hypergradient recomputations per upper iteration
    ll_max_iters: int = 500  # cap of each lower-level solve
    cg_max_iters: int = 500  # cap of each CG solve
    ll_step: float | None = None  # lower-level step λ (None: 1/L; the paper used 0.1 in 1D)
    tol: float = 1e-6  # stop when ε < tol
    cg_precond: str = "none"  # adjoint preconditioner: "none" (paper) or a problem's kind, e.g. "jacobi"
    tangent_share: float | None = 0.5  # first-order warm start of trials (class docstring); None = off

    name: ClassVar[str] = "maid"
    summary: ClassVar[str] = "line search on certified bounds of F, adaptive accuracy (Salehi et al. 2024)"
    default_max_iters: ClassVar[int] = 300
    #: only the oracles every problem provides (its adjoint is the problem's ``adjoint_solve``)
    requires: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        for f in ("eps0", "eta"):
            check_range(self, f, 0)
        check_range(self, "delta0", 0, optional=True)
        check_range(self, "step0", 0, optional=True)
        check_range(self, "c", 0, optional=True)
        check_range(self, "ll_step", 0, optional=True)
        check_range(self, "rho", 0, 1)
        check_range(self, "nu", 0, 1)
        check_range(self, "rho_bar", 1, hi=None, lo_open=False)
        check_range(self, "nu_bar", 1, hi=None, lo_open=False)
        check_range(self, "tol", 0)
        check_range(self, "tangent_share", 0, optional=True)
        check_string(self, "cg_precond", PRECOND_EXAMPLES)
        for f in ("max_backtracks", "max_accuracy_retries", "ll_max_iters", "cg_max_iters"):
            check_range(self, f, 1, lo_open=False)

    # ------------------------------------------------------------------ hooks (accelerated variants)
    state_type: ClassVar[type[MAIDState]] = MAIDState

    def _start_memory(
        self, problem: BilevelProblem, theta: Tensor, res: LowerResult, value: float
    ) -> dict[str, Any]:
        """Extra state fields at θ₀ (after the first lower solve, whose g + r is ``value``); MAID: none."""
        return {}

    def _first_trial(self, state: MAIDState, theta: Tensor, z: Tensor, alpha: float) -> float:
        """The first trial step t₀ of a line search (later trials t₀ρ^i); MAID: α of Algorithm 2."""
        return alpha

    def _accepts(self, state: MAIDState, here: tuple[float, float], upper_new: float, bound: float) -> bool:
        """Whether a trial is accepted, given the certified interval ``here`` = [L(θ), U(θ)] ∋ F(θ), the
        upper bound U(θ') ≥ F(θ') and ``bound`` = −c t ‖z‖². MAID: U(θ') − L(θ) ≤ −c t ‖z‖² (Lemma 1)."""
        return upper_new - here[0] <= bound

    def _remember(self, state: MAIDState, theta: Tensor, z: Tensor, upper_new: float) -> dict[str, Any]:
        """Extra state fields after accepting θ' = θ − t z with upper bound ``upper_new``; MAID: none."""
        return {}

    # ------------------------------------------------------------------ algorithm
    def init(self, problem: BilevelProblem) -> MAIDState:
        theta = problem.theta0
        eps = self.eps0
        res = problem.ll_solve(theta, problem.x0, eps, self.ll_max_iters, self.ll_step)
        step = problem.ul_step0 if self.step0 is None else self.step0
        value = problem.upper_value(theta, res.x)
        return self.state_type(
            theta=theta,
            x=res.x,
            upper_value=value,
            eps=eps,
            delta=self.eps0 if self.delta0 is None else self.delta0,
            step_size=0.0,
            base_step=step,
            eps_floor=res.eps_floor,
            **self._start_memory(problem, theta, res, value),
        )

    @staticmethod
    def _value_grad_and_slack(
        problem: BilevelProblem, theta: Tensor, x: Tensor, e: float, known: tuple[float, Tensor] | None = None
    ) -> tuple[float, Tensor, float, float]:
        """g(x) + r(θ), ∇_x g(x), and the slack terms ‖∇_x g(x)‖·e and (L_g/2)e² of the bounds on F(θ).
        ``known``: (value, ∇_x g) already computed at this (θ, x)."""
        if known is None:
            known = (problem.upper_value(theta, x), problem.ul_grad_x(theta, x))
        value, grad = known
        grad_norm = float(torch.linalg.vector_norm(grad))
        return value, grad, grad_norm * e, 0.5 * problem.ul_lipschitz_x(theta) * e**2

    def update(self, problem: BilevelProblem, state: MAIDState) -> MAIDState:
        c = self.eta**2 if self.c is None else self.c
        theta, x, q = state.theta, state.x, state.q
        eps, delta, alpha = state.eps, state.delta, state.base_step
        # (value, ∇_x g) at (θ, x) when known: the accepted trial of the last update computed them
        known = None if state.ul_grad is None else (state.upper_value, state.ul_grad)
        rejected = 0
        z_norm = value = float("nan")
        floor, w = state.eps_floor, state.tangent
        reached = True  # the last hypergradient's lower solve delivered the ε asked for
        for _ in range(self.max_accuracy_retries):
            # Inexact hypergradient (Algorithm 1) at the current accuracy.
            res = problem.ll_solve(theta, x, eps, self.ll_max_iters, self.ll_step)
            if res.x is not x:
                known = None
            x, floor = res.x, res.eps_floor
            reached = res.dist_bound <= eps
            e = max(eps, res.dist_bound)  # certified radius actually achieved
            value, grad, slack1, slack2 = self._value_grad_and_slack(problem, theta, x, e, known)
            known = (value, grad)
            q, _ = problem.adjoint_solve(
                theta, x, delta, self.cg_max_iters, q, ul_grad=grad, precondition=self.cg_precond
            )
            z = problem.hypergradient_from(theta, x, q)
            z_sq = float(torch.vdot(z.flatten(), z.flatten()))
            z_norm = z_sq**0.5
            # Lower bound of F(θ); the curvature term is only needed when g(·, θ) is non-convex.
            lower = value - slack1 - (0.0 if problem.ul_convex_in_x else slack2)
            here = (lower, value + slack1 + slack2)  # the certified interval [L(θ), U(θ)] ∋ F(θ)
            first = self._first_trial(state, theta, z, alpha)
            tangent = None  # this hypergradient's w
            if self.tangent_share is not None and z_norm > 0.0:
                tol = self.tangent_share * problem.ll_mu(theta) * eps / (first * z_norm)
                w, _ = problem.tangent_solve(theta, x, z / z_norm, tol, self.cg_max_iters, w)
                tangent = w
            for i in range(self.max_backtracks):
                trial_step = first * self.rho**i
                theta_new = theta - trial_step * z
                bound = -c * trial_step * z_sq
                start = x if tangent is None else x + (trial_step * z_norm) * tangent
                res_new = problem.ll_solve(theta_new, start, eps, self.ll_max_iters, self.ll_step)
                e_new = max(eps, res_new.dist_bound)
                value_new, grad_new, slack1_new, slack2_new = self._value_grad_and_slack(
                    problem, theta_new, res_new.x, e_new
                )
                upper = value_new + slack1_new + slack2_new  # upper bound of F(θ')
                if self._accepts(state, here, upper, bound):
                    reached = reached and res_new.dist_bound <= eps
                    eps, delta = self.nu_bar * eps, self.nu_bar * delta
                    return replace(
                        state,
                        theta=theta_new,
                        x=res_new.x,
                        q=q,
                        ul_grad=grad_new,
                        tangent=w,
                        upper_value=value_new,
                        hypergrad_norm=z_norm,
                        step_size=trial_step,
                        eps=eps,
                        delta=delta,
                        eps_floor=res_new.eps_floor,
                        backtracks=rejected + i,
                        accepted=True,
                        converged=eps < self.tol,
                        stalled=eps < self.tol and not reached,
                        base_step=self.rho_bar * trial_step,
                        progressed=True,
                        **self._remember(state, theta, z, upper),
                    )
            rejected += self.max_backtracks
            eps, delta = self.nu * eps, self.nu * delta  # ask for more accuracy, recompute z
            if eps < self.tol:
                break
        return replace(
            state,
            x=x,
            q=q,
            ul_grad=None if known is None else known[1],
            tangent=w,
            upper_value=value,
            hypergrad_norm=z_norm,
            step_size=0.0,
            eps=eps,
            delta=delta,
            eps_floor=floor,
            backtracks=rejected,
            accepted=False,
            converged=eps < self.tol,
            stalled=eps < self.tol and not (state.progressed and reached),
        )
