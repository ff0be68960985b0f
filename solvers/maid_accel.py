"""`maid_accel` — MAID with a nonmonotone line search and Barzilai–Borwein trial steps.

MAID (``solvers/maid.py``, Salehi et al. 2024) with three of its hooks replaced; everything else — the
inexact hypergradient, the certified bounds, the accuracy control, the carried ∇_x g, the tangent warm start
of trials, the adjoint preconditioner, ``stalled`` and ``eps_floor`` — is MAID's. With
U(θ) = g(x̃) + ‖∇g(x̃)‖e + (L_g/2)e² ≥ F(θ) (e the certified lower-level radius):

* acceptance: the Zhang–Hager (2004) nonmonotone test against a weighted average C_k of past certified
  upper bounds,

      U(θ') ≤ C_k − w_k − c t ‖z‖²,  C_{k+1} = (η_ZH Q_k C_k + U(θ_{k+1})) / Q_{k+1},  Q_{k+1} = η_ZH Q_k + 1,

  with C₀ = U(θ₀), Q₀ = 1 and w_k = U(θ_k) − L(θ_k) the width of the certified interval of F(θ_k) at the
  current accuracy (L the lower bound of `maid`). With η_ZH = 0 this is MAID's test U(θ') ≤ L(θ) − ct‖z‖²
  up to the accuracy at which C_k was recorded; the width w_k keeps MAID's pressure on the accuracy:
  without it the slacks in U(θ') and C_k cancel, no trial ever fails for lack of accuracy, ε only grows
  (by ν̄ per step) and the iterates stall (measured on deconv1d: F stuck at 0.0176 with ε → 1e-2);
* first trial step: the Barzilai–Borwein step α_BB = ⟨s, s⟩/⟨s, y⟩ (s = θ_k − θ_{k−1}, y = z_k − z_{k−1},
  the long BB1 step), safeguarded to [α/κ, κα] around MAID's own step α (= ρ̄ × the last accepted step)
  and replaced by α when ⟨s, y⟩ ≤ 0; later trials shrink by ρ;
* remembered after an acceptance: C, Q and the pair (θ, z) for the next BB step; at θ₀, C₀ = U(θ₀) (its
  ∇_x g is carried into the first update, as MAID carries an accepted trial's).

Guaranteed: every accepted iterate satisfies F(θ_{k+1}) ≤ U(θ_{k+1}) ≤ C_k − w_k − c t ‖z‖², and C_k is
non-increasing (Zhang–Hager Lemma 1.1 with certified U), so F(θ_k) ≤ C_k ≤ U(θ₀) for all k: the iterates
stay in the certified sublevel set of the start. Not guaranteed: F(θ_{k+1}) < F(θ_k) — single steps may
increase F when C_k exceeds U(θ_k) (unlike `maid`, whose every accepted step decreases F); nor that the
BB step is a good one (it is only safeguarded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from problems.base import BilevelProblem
from problems.lower import LowerResult
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
    summary: ClassVar[str] = "MAID with a nonmonotone (Zhang–Hager) test and Barzilai–Borwein first trials"
    state_type: ClassVar[type[MAIDState]] = MAIDAccelState

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "zh_eta", 0, 1, lo_open=False, hi_open=False)
        check_range(self, "bb_safeguard", 1, hi=None, lo_open=False)

    def _start_memory(
        self, problem: BilevelProblem, theta: Tensor, res: LowerResult, value: float
    ) -> dict[str, Any]:
        grad = problem.ul_grad_x(theta, res.x)
        e = max(self.eps0, res.dist_bound)
        _, _, slack1, slack2 = self._value_grad_and_slack(problem, theta, res.x, e, (value, grad))
        return dict(ref=value + slack1 + slack2, ul_grad=grad)  # C₀ = U(θ₀)

    def _first_trial(self, state: MAIDAccelState, theta: Tensor, z: Tensor, alpha: float) -> float:
        if state.theta_prev is None:
            return alpha
        s, y = (theta - state.theta_prev).flatten(), (z - state.z_prev).flatten()
        sy = float(torch.vdot(s, y))
        if not sy > 0.0:  # no positive curvature along s: BB undefined, keep MAID's step
            return alpha
        bb = float(torch.vdot(s, s)) / sy
        return min(max(bb, alpha / self.bb_safeguard), alpha * self.bb_safeguard)

    def _accepts(
        self, state: MAIDAccelState, here: tuple[float, float], upper_new: float, bound: float
    ) -> bool:
        lower, upper = here
        return upper_new <= state.ref - (upper - lower) + bound

    def _remember(self, state: MAIDAccelState, theta: Tensor, z: Tensor, upper_new: float) -> dict[str, Any]:
        weight = self.zh_eta * state.weight + 1.0
        ref = (self.zh_eta * state.weight * state.ref + upper_new) / weight
        return dict(ref=ref, weight=weight, theta_prev=theta, z_prev=z)
