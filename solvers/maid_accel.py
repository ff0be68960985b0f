"""`maid_accel` — MAID with a nonmonotone line search and Barzilai–Borwein trial steps.

Same inexact hypergradient, certified bounds and accuracy control as `maid` (Salehi et al. 2024): with
U(θ) = g(x̃) + ‖∇g(x̃)‖e + (L_g/2)e² ≥ F(θ) (e the certified lower-level radius), a trial θ' = θ − α_i z is
accepted iff the Zhang–Hager (2004) nonmonotone test holds against a weighted average C_k of past
certified upper bounds,

    U(θ') ≤ C_k − w_k − c α_i ‖z‖²,  C_{k+1} = (η_ZH Q_k C_k + U(θ_{k+1})) / Q_{k+1},  Q_{k+1} = η_ZH Q_k + 1,

with C₀ = U(θ₀), Q₀ = 1 and w_k = U(θ_k) − L(θ_k) the width of the certified interval of F(θ_k) at the
current accuracy (L the lower bound of `maid`). With η_ZH = 0 this is MAID's test U(θ') ≤ L(θ) − cα‖z‖²;
the width w_k keeps MAID's pressure on the accuracy: without it the slacks in U(θ') and C_k cancel, no
trial ever fails for lack of accuracy, ε only grows (by ν̄ per step) and the iterates stall (measured on
deconv1d: F stuck at 0.0176 with ε → 1e-2). The first trial step is the
Barzilai–Borwein step α_BB = ⟨s, s⟩/⟨s, y⟩ (s = θ_k − θ_{k−1}, y = z_k − z_{k−1}, the long BB1 step),
safeguarded to [α/κ, κα] around MAID's own step α (= ρ̄ × the last accepted step) and replaced by α when
⟨s, y⟩ ≤ 0; later trials shrink by ρ. After ``max_backtracks`` failures ε, δ ← ν ε, ν δ as in MAID.

Guaranteed: every accepted iterate satisfies F(θ_{k+1}) ≤ U(θ_{k+1}) ≤ C_k − w_k − c α ‖z‖², and C_k is
non-increasing (Zhang–Hager Lemma 1.1 with certified U), so F(θ_k) ≤ C_k ≤ U(θ₀) for all k: the iterates
stay in the certified sublevel set of the start. Not guaranteed: F(θ_{k+1}) < F(θ_k) — single steps may
increase F when C_k exceeds U(θ_k) (unlike `maid`, whose every accepted step decreases F); nor that the
BB step is a good one (it is only safeguarded).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor

from problems.base import BilevelProblem
from solvers.base import check_range
from solvers.maid import MAID, MAIDState


@dataclass
class MAIDAccelState(MAIDState):
    ref: float = 0.0  # C_k, the Zhang–Hager reference value
    weight: float = 1.0  # Q_k
    theta_prev: Tensor | None = None  # θ and z at the last accepted step (for the BB pair s, y)
    z_prev: Tensor | None = None


@dataclass(frozen=True)
class MAIDAccel(MAID):
    """MAID's fields and defaults, plus the nonmonotone weight η_ZH (Zhang–Hager's 0.85) and the BB
    safeguard factor κ."""

    zh_eta: float = 0.85  # η_ZH ∈ [0, 1]
    bb_safeguard: float = 10.0  # κ: the BB step is clipped to [α/κ, κα]

    name: ClassVar[str] = "maid_accel"
    default_max_iters: ClassVar[int] = 300

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "zh_eta", 0, 1, lo_open=False, hi_open=False)
        check_range(self, "bb_safeguard", 1, hi=None, lo_open=False)

    def init(self, problem: BilevelProblem) -> MAIDAccelState:
        theta, eps = problem.theta0, self.eps0
        res = problem.ll_solve(theta, problem.x0, eps, self.ll_max_iters, self.ll_step)
        value, slack1, slack2 = self._value_and_slack(problem, theta, res.x, max(eps, res.dist_bound))
        return MAIDAccelState(
            theta=theta,
            x=res.x,
            upper_value=value,
            eps=eps,
            delta=eps if self.delta0 is None else self.delta0,
            step_size=0.0,
            base_step=problem.ul_step0 if self.step0 is None else self.step0,
            ref=value + slack1 + slack2,  # C₀ = U(θ₀)
        )

    def _first_trial(self, state: MAIDAccelState, theta: Tensor, z: Tensor, alpha: float) -> float:
        if state.theta_prev is None:
            return alpha
        s, y = (theta - state.theta_prev).flatten(), (z - state.z_prev).flatten()
        sy = float(torch.vdot(s, y))
        if not sy > 0.0:  # no positive curvature along s: BB undefined, keep MAID's step
            return alpha
        bb = float(torch.vdot(s, s)) / sy
        return min(max(bb, alpha / self.bb_safeguard), alpha * self.bb_safeguard)

    def update(self, problem: BilevelProblem, state: MAIDAccelState) -> MAIDAccelState:
        c = self.eta**2 if self.c is None else self.c
        theta, x, q = state.theta, state.x, state.q
        eps, delta = state.eps, state.delta
        rejected = 0
        z_norm = value = float("nan")
        for _ in range(self.max_accuracy_retries):
            res = problem.ll_solve(theta, x, eps, self.ll_max_iters, self.ll_step)
            x = res.x
            q, _ = problem.adjoint_solve(theta, x, delta, self.cg_max_iters, q)
            z = problem.hypergradient_from(theta, x, q)
            z_sq = float(torch.vdot(z.flatten(), z.flatten()))
            z_norm = z_sq**0.5
            value, slack1, slack2 = self._value_and_slack(problem, theta, x, max(eps, res.dist_bound))
            width = 2.0 * slack1 + slack2 * (1.0 if problem.ul_convex_in_x else 2.0)  # U(θ) − L(θ)
            alpha = self._first_trial(state, theta, z, state.base_step)
            for i in range(self.max_backtracks):
                trial_step = alpha * self.rho**i
                theta_new = theta - trial_step * z
                res_new = problem.ll_solve(theta_new, x, eps, self.ll_max_iters, self.ll_step)
                value_new, slack1_new, slack2_new = self._value_and_slack(
                    problem, theta_new, res_new.x, max(eps, res_new.dist_bound)
                )
                upper = value_new + slack1_new + slack2_new  # certified U(θ') ≥ F(θ')
                if upper <= state.ref - width - c * trial_step * z_sq:
                    weight = self.zh_eta * state.weight + 1.0
                    ref = (self.zh_eta * state.weight * state.ref + upper) / weight
                    eps, delta = self.nu_bar * eps, self.nu_bar * delta
                    return replace(
                        state,
                        theta=theta_new,
                        x=res_new.x,
                        q=q,
                        upper_value=value_new,
                        hypergrad_norm=z_norm,
                        step_size=trial_step,
                        eps=eps,
                        delta=delta,
                        backtracks=rejected + i,
                        accepted=True,
                        converged=eps < self.tol,
                        base_step=self.rho_bar * trial_step,
                        ref=ref,
                        weight=weight,
                        theta_prev=theta,
                        z_prev=z,
                    )
            rejected += self.max_backtracks
            eps, delta = self.nu * eps, self.nu * delta
            if eps < self.tol:
                break
        return replace(
            state,
            x=x,
            q=q,
            upper_value=value,
            hypergrad_norm=z_norm,
            step_size=0.0,
            eps=eps,
            delta=delta,
            backtracks=rejected,
            accepted=False,
            converged=eps < self.tol,
        )
