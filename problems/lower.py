"""Lower-level solver: (accelerated) proximal gradient with a certified stopping test (SPEC §1).

Certificate (paper Lemma 2): for h = f + R μ-strongly convex, with the prox-gradient map
G_λ(y) = (y − prox_{λR}(y − λ∇f(y)))/λ, λ ≤ 1/L,

    ‖prox-step − x̂‖ ≤ ‖y − x̂‖ ≤ (1 + λL)‖G_λ(y)‖ / μ,        and for smooth h: ‖y − x̂‖ ≤ ‖∇h(y)‖/μ.

We stop as soon as that bound is ≤ eps. One iteration = one counted gradient ``problem.ll_grad``.

**Accuracy floor.** ∇h is computed with a rounding error of order eps_machine·L·‖x‖ (‖∇²h x‖ ≤ L‖x‖),
so the certificate cannot resolve distances below

    ε_floor = FLOOR_FACTOR · eps_machine · c_cert · (L·‖x‖ + ‖G(x)‖),   c_cert = 1/μ (smooth), (1 + λL)/μ,

with x the solve's start point and G(x) its (prox-)gradient map (the scale of ∇f's terms when
x = 0). Measured on deblur2d (certified, 32×32 and 128×128, float32 and float64): the smallest ‖∇h‖
reached in 9 000 iterations is 0.39–0.47·eps_machine·L·‖x‖, so with FLOOR_FACTOR = 1 the floor sits about
2× above what rounding allows (deconv1d in float64 reaches 1e-13 against a floor of 5.6e-14 from x = 0).
A request eps < ε_floor is clipped to
ε_floor (``LowerResult.eps_floor`` records it; ``converged`` then means "reached the floor") instead of
iterating on rounding noise. A stall rule remains only as a safeguard *at* the floor: it stops a solve
whose bound is within STALL_MARGIN·ε_floor and has not improved for STALL_ITERS iterations, so it cannot
fire on a solve that is still converging above the dtype's resolution (FISTA's bound is not monotone).

**Host reads.** The bound is computed on the device and read back once every ``check_every`` iterations
(the only host synchronisation of the loop; one more for ‖x‖ at the start, fused with the first check).
On the CPU a read costs nothing, so the default is 1 there and counts are those of a test at every
iteration; on an accelerator the default is CHECK_EVERY_ACCELERATOR, and a solve then runs at most
check_every − 1 iterations past the first one that would have passed the test (counted: ``ll_iters`` is
the gradients really computed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from problems.base import BilevelProblem

MOMENTA = ("none", "fista", "strongly_convex")
FLOOR_FACTOR = 1.0
STALL_ITERS = 1000
STALL_MARGIN = 100.0
CHECK_EVERY_ACCELERATOR = 16


@dataclass
class LowerResult:
    x: Tensor
    iters: int
    dist_bound: float  # certified bound on ‖x − x̂(θ)‖
    converged: bool  # dist_bound ≤ max(eps, eps_floor)
    eps_floor: float = 0.0  # the dtype's accuracy floor for this solve (module docstring)


def default_check_every(device: torch.device) -> int:
    """Iterations between two host reads of the stopping test: 1 on the CPU, more on an accelerator."""
    return 1 if device.type == "cpu" else CHECK_EVERY_ACCELERATOR


def accuracy_floor(
    dtype: torch.dtype, cert_factor: float, lip: float, x_norm: float, res_norm: float = 0.0
) -> float:
    """ε_floor = FLOOR_FACTOR · eps_machine · c_cert · (L·‖x‖ + ‖G(x)‖) (module docstring)."""
    return FLOOR_FACTOR * torch.finfo(dtype).eps * cert_factor * (lip * x_norm + res_norm)


def prox_gradient_solve(
    problem: BilevelProblem,
    theta: Tensor,
    x: Tensor,
    eps: float,
    max_iters: int,
    step: float | None = None,
    momentum: str = "none",
    check_every: int | None = None,
) -> LowerResult:
    """ISTA / FISTA from x until the certified distance to x̂(θ) is ≤ max(eps, ε_floor), at most
    max_iters steps; the test is read on the host every ``check_every`` iterations (module docstring)."""
    if momentum not in MOMENTA:
        raise ValueError(f"momentum must be one of {MOMENTA}, got {momentum!r}")
    check_every = default_check_every(x.device) if check_every is None else int(check_every)
    if check_every < 1:
        raise ValueError(f"check_every must be ≥ 1, got {check_every}")
    lip = problem.ll_lipschitz(theta)
    mu = problem.ll_mu(theta)
    lam = 1.0 / lip if step is None else float(step)
    if not (math.isfinite(lip) and math.isfinite(lam)):
        # θ has overflowed (a diverging upper iteration): nothing to solve or certify. Return a
        # non-finite point rather than raise inside the prox, so the run is recorded as diverged.
        return LowerResult(torch.full_like(x, math.nan), 0, math.inf, False)
    smooth = problem.ll_smooth
    # The certificate for smooth h is ‖∇h(y)‖/μ; for composite h, (1 + λL)‖G_λ(y)‖/μ.
    factor = (1.0 if smooth else 1.0 + lam * lip) / mu
    beta_sc = (math.sqrt(lip) - math.sqrt(mu)) / (math.sqrt(lip) + math.sqrt(mu))
    x_norm = torch.linalg.vector_norm(x)  # read with the first check: the floor's scale
    floor = target = math.inf
    y = x
    x_prev = x
    t = 1.0
    bound = best = math.inf
    best_k = 0
    x_new = x
    for k in range(1, max_iters + 1):
        grad = problem.ll_grad(theta, y)
        if smooth:
            x_new = torch.add(y, grad, alpha=-lam)
        else:
            x_new = problem.ll_prox(torch.add(y, grad, alpha=-lam), lam)
        if k % check_every == 0 or k == 1 or k == max_iters:
            # one host read: the bound of y (smooth) or of the prox step x_new (composite)
            res_norm = torch.linalg.vector_norm(grad) if smooth else torch.linalg.vector_norm(y - x_new) / lam
            if k == 1:
                res_norm, x0_norm = torch.stack((res_norm, x_norm)).tolist()
                floor = accuracy_floor(x.dtype, factor, lip, x0_norm, res_norm)
                target = max(eps, floor)
            else:
                res_norm = res_norm.item()
            bound = factor * res_norm
            if bound <= target:
                return LowerResult(y if smooth else x_new, k, bound, True, floor)
            if bound < best * (1.0 - 1e-3):
                best, best_k = bound, k
            elif bound <= STALL_MARGIN * floor and k - best_k >= STALL_ITERS:
                return LowerResult(x_new, k, bound, False, floor)  # x_new: a step from y, no farther
        if momentum == "none":
            y = x_new
        else:
            if momentum == "fista":
                t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
                beta = (t - 1.0) / t_next
                t = t_next
            else:
                beta = beta_sc
            y = torch.lerp(x_new, x_prev, -beta)  # x_new + β(x_new − x_prev) in one pass
        x_prev = x_new
    # x_prev is the step taken from the last checked point y; a (prox-)gradient step with
    # λ ≤ 1/L does not move away from x̂, so the bound of y holds for it too.
    return LowerResult(x_prev, max_iters, bound, bound <= target, floor)
