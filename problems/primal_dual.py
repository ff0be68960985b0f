"""Certified primal–dual lower solver for h(x) = f(x) + α‖Dx‖ (f smooth and μ-strongly convex, TV non-smooth).

Problem: f(x) = ½‖K_θx − y‖² + (ζ/2)‖x‖² in the deblurring problems, so ∇f is L-Lipschitz with L ≤ ‖K_θ‖² + ζ
and μ = ζ; α‖Dx‖ is the TV of ``problems.tv`` (D forward differences, ‖D‖² ≤ 8). Nothing below uses more of f
than its gradient, L and μ.

Iteration (Condat 2013, "A primal–dual splitting method for convex optimization involving Lipschitzian,
proximable and linear composite terms", JOTA 158, Alg. 3.1 with ρ = 1; Vũ 2013 for the general form): ∇f is
used explicitly, D only through the dual variable p ∈ B_α = {‖p‖* ≤ α},

    x_{k+1} = x_k − τ(∇f(x_k) + Dᵀp_k),
    p_{k+1} = Π_{B_α}(p_k + σD(2x_{k+1} − x_k)),

which converges for any start when 1/τ − σ‖D‖² > L/2 (Condat, Thm 3.1). The steps: σ = r·τ with the dual-to-
primal ratio r (default ``DUAL_STEP_PER_ALPHA``·α: the dual lives on the scale α, the primal on the scale of
the image), and τ the largest step with 1/τ − rτ‖D‖² = STEP_MARGIN·L/2. ‖D‖² is exact
(``tv.difference_norm_sq``); L must be a rigorous bound (``Conv2D.norm_bound``). Warm starts in both x and
p.

Certificate (a duality gap that needs no inner solve). For any x and any p ∈ B_α put

    g = ∇f(x) + Dᵀp,   c = α‖Dx‖ − ⟨p, Dx⟩ ≥ 0,   G(x, p) = c + ‖g‖²/(2μ).

For every u, strong convexity gives f(u) ≥ f(x) + ⟨∇f(x), u − x⟩ + (μ/2)‖u − x‖², and α‖Du‖ ≥ ⟨p, Du⟩ =
α‖Dx‖ − c + ⟨Dᵀp, u − x⟩ (α‖·‖ is the support function of B_α). Adding,

    h(u) ≥ h(x) − c + ⟨g, u − x⟩ + (μ/2)‖u − x‖²                                              (∗)

and minimising the right side over u: h(x̂) ≥ h(x) − G, i.e. h(x) − G(x, p) is a dual (lower) bound on the
optimal value — it is the Fenchel dual value of the problem with the data term dualised too, at the dual
point (∇f(x) − μx, p), so no solve (K_θᵀK_θ + ζI)x_p = K_θᵀy − Dᵀp is needed. With h(x) − h(x̂) ≥ (μ/2)‖x −
x̂‖²:

    ‖x − x̂‖ ≤ √(2G/μ).

Taking u = x̂ in (∗) and adding h(x) ≥ h(x̂) + (μ/2)d², d = ‖x − x̂‖, gives μd² ≤ ‖g‖d + c, the sharper

    ‖x − x̂‖ ≤ (‖g‖ + √(‖g‖² + 4μc)) / (2μ)   ≤ √(2G/μ)                         (``distance_bound``)

which is what the solver uses: the smooth problems' ‖∇h‖/μ test when c = 0, and √(c/μ) when g = 0.

The flat set and the projected candidate. On the flat set (where x̂ has zero differences) the terms of c are
(α ∓ p_e)·|(Dx)_e|, *linear* in the iterate's error there, so √(c/μ) converges like the square root of the
error, and its rounding (|(Dx)_e| ~ u‖x‖) floors the bound near √u instead of u. So once the iterate's
residual part ‖g‖/μ passes the target, the solver also certifies the candidate P x — x averaged over the
components of the flat set identified from (x, p) (``problems.flat_set``), whose differences vanish there
exactly — with the same theorem (any point is allowed): c = 0 for a correctly identified structure, and the
bound is (essentially) ‖∇f(Px) + Dᵀp‖/μ. A wrongly identified structure only gives a worse bound, never a
wrong one. The returned point is whichever candidate is certified (``PrimalDualResult.structure`` says).

Cost. Both pieces of G at the iterate come from the iteration itself: g_k = ∇f(x_k) + Dᵀp_k is the step
direction, and Dx_k was computed for the previous dual step, so the check adds two reductions and no
operator application; the default checks at every iteration on the CPU (every ``CHECK_EVERY_ACCELERATOR`` on
an accelerator: the only host read of the loop). One iteration = one ∇f (one counted lower-level step: for
the deblurring f one rfft2/irfft2 pair through ``Conv2D.normal``, plus its band correction for a padded
boundary) + D, Dᵀ and the projection, O(n). A projected check (at most every PROJECT_EVERY iterations, and
only once the residual part passes) costs one more counted ∇f and, when the flat set changed, a connected-
components search on the CPU (O(n), SciPy). The exact dual value −f*(−Dᵀp) would tighten the residual term
from ‖g‖²/(2μ) to ½gᵀ(∇²f)⁻¹g at the price of a solve per check; measured on the 32×32 periodic astronaut
(anisotropic, α = 2e-3, ζ = 1e-3) at the solver's stopping points for 1e-3, 1e-4, 1e-5·‖y‖, that tightens the
distance bound by only 3.2×, 2.9×, 2.4×, so the closed form is used.

Floor and stall rule as in ``problems.lower``: g is computed with a rounding error of order u·L‖x‖, so a
tolerance below ε_floor = FLOOR_FACTOR·u·(L‖x₀‖ + ‖g₀‖)/μ is clipped to it; a solve within STALL_MARGIN of
the floor that has not improved for STALL_ITERS iterations stops.

Acceleration. The O(1/N²) variant of Chambolle & Pock 2011 (Alg. 2: τ_{n+1} = θ_nτ_n, σ_{n+1} = σ_n/θ_n,
θ_n = 1/√(1 + 2γτ_n) for a γ-strongly convex G) applies soundly here with the data term dualised as well
(G = (ζ/2)‖x‖², γ = ζ, linear map [K_θ; D]). Measured in development on the 32×32 astronaut (replicate,
anisotropic, α = 2e-3, ζ = 1e-3, iterations to a certified 1e-4·‖y‖, both with the iterate-only
certificate), it needed 4599 iterations with a restart whenever the gap halved (none converged in 20 000
without restarts) against 2390 for the iteration above, and costs two FFT pairs per iteration (K and Kᵀ
separately) against one; so it is not offered. At the accuracies MAID asks for, the fixed-step method's
linear rate (the anisotropic problem is polyhedral) wins over the accelerated method's O(1/N) in distance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from problems.flat_set import FlatStructure
from problems.lower import STALL_ITERS, STALL_MARGIN, accuracy_floor, default_check_every
from problems.tv import TotalVariation, difference_norm_sq, forward_differences, forward_differences_adjoint

#: default dual-to-primal step ratio σ/τ per unit of α: the dual lives on the scale α. Measured (iterations
#: to a certified 1e-4·‖y‖ / 1e-6·‖y‖, 32×32 replicate astronaut, anisotropic, α = 2e-3, ζ = 1e-3): σ/τ = 2α:
#: 2212 / 5540, 5α: 2363 / 6040, 20α: 3083 / 7750; with the iterate-only certificate at α = 2e-2: 0.03 → 2516,
#: 0.1 → 1003, 0.3 → 1304. A flat optimum near 2α–5α that scales with α.
DUAL_STEP_PER_ALPHA = 5.0
#: 1/τ − σ‖D‖² = STEP_MARGIN·L/2: Condat's condition is strict, 1 % keeps it so under rounding
STEP_MARGIN = 1.01
#: iterations between two projected checks (each costs one ∇f and the flat set's components)
PROJECT_EVERY = 10


@dataclass
class PrimalDualResult:
    """A certified point of the primal–dual solve (module docstring)."""

    x: Tensor
    p: Tensor  # dual variable in B_α, shape (2, *x.shape): the dual warm start of the next solve
    iters: int  # ∇f evaluations: primal–dual iterations plus projected checks (each one counted step)
    dist_bound: float  # certified bound on ‖x − x̂‖ (``distance_bound``)
    converged: bool  # dist_bound ≤ max(eps, eps_floor)
    eps_floor: float  # the dtype's accuracy floor for this solve
    gap: float  # G(x, p) = c + ‖g‖²/(2μ)
    complementarity: float  # c = α‖Dx‖ − ⟨p, Dx⟩
    residual: float  # ‖g‖ = ‖∇f(x) + Dᵀp‖
    tau: float
    sigma: float
    structure: FlatStructure | None = None  # the flat set x was projected with (None: x is an iterate)
    projections: int = 0  # projected checks done


def condat_vu_steps(lip: float, diff_norm_sq: float, ratio: float) -> tuple[float, float]:
    """(τ, σ) with σ = ratio·τ and 1/τ − σ‖D‖² = STEP_MARGIN·L/2, i.e. the positive root of
    ratio·‖D‖²τ² + (STEP_MARGIN·L/2)τ − 1 = 0, written without cancellation."""
    if not (lip > 0 and ratio > 0 and diff_norm_sq >= 0):
        raise ValueError(f"need L > 0, ratio > 0, ‖D‖² ≥ 0; got {lip}, {ratio}, {diff_norm_sq}")
    half = 0.5 * STEP_MARGIN * lip
    tau = 2.0 / (half + math.sqrt(half * half + 4.0 * ratio * diff_norm_sq))
    return tau, ratio * tau


def distance_bound(complementarity: float, residual: float, mu: float) -> float:
    """(‖g‖ + √(‖g‖² + 4μc))/(2μ) ≥ ‖x − x̂‖ (module docstring; c clipped at 0 against rounding)."""
    c = max(complementarity, 0.0)
    return (residual + math.sqrt(residual * residual + 4.0 * mu * c)) / (2.0 * mu)


def gap_bound(gap: float, mu: float) -> float:
    """√(2G/μ) ≥ ‖x − x̂‖, the plain duality-gap bound (weaker than ``distance_bound``)."""
    return math.sqrt(2.0 * max(gap, 0.0) / mu)


def certificate(
    grad: Callable[[Tensor], Tensor], tv: TotalVariation, x: Tensor, p: Tensor, mu: float
) -> tuple[float, float, float]:
    """(‖x − x̂‖ bound, c, ‖g‖) at any x and p ∈ B_α; one ``grad`` call."""
    g = grad(x) + forward_differences_adjoint(p)
    r, c = torch.stack((torch.linalg.vector_norm(g), tv.complementarity(forward_differences(x), p))).tolist()
    return distance_bound(c, r, mu), c, r


def primal_dual_solve(
    grad: Callable[[Tensor], Tensor],
    tv: TotalVariation,
    x: Tensor,
    p: Tensor | None,
    eps: float,
    max_iters: int,
    *,
    lip: float,
    mu: float,
    dual_step_ratio: float | None = None,
    check_every: int | None = None,
    project: bool = True,
) -> PrimalDualResult:
    """Condat–Vũ from (x, p) (p None: 0) until the certified ‖x − x̂‖ ≤ max(eps, ε_floor), at most max_iters
    ∇f calls. ``grad`` is x ↦ ∇f(x) (the caller's counted oracle); ``lip`` ≥ the Lipschitz constant of ∇f,
    ``mu`` ≤ the strong-convexity modulus of f; ``dual_step_ratio`` σ/τ (default DUAL_STEP_PER_ALPHA·α);
    ``project``: try the projected candidate P x (module docstring) once the iterate's residual passes."""
    if max_iters < 1:
        raise ValueError(f"max_iters must be ≥ 1, got {max_iters}")
    check_every = default_check_every(x.device) if check_every is None else int(check_every)
    if check_every < 1:
        raise ValueError(f"check_every must be ≥ 1, got {check_every}")
    ratio = DUAL_STEP_PER_ALPHA * tv.alpha if dual_step_ratio is None else float(dual_step_ratio)
    if not (math.isfinite(lip) and mu > 0):
        # θ has overflowed (a diverging upper iteration): nothing to certify; the run is recorded as diverged
        nan, inf = torch.full_like(x, math.nan), math.inf
        return PrimalDualResult(
            nan, torch.zeros_like(forward_differences(x)), 0, inf, False, 0.0, inf, inf, inf, 0, 0
        )
    tau, sigma = condat_vu_steps(lip, difference_norm_sq(*x.shape[-2:]), ratio)
    # a warm-start dual outside B_α (or with structural entries) is projected: the certificate needs p ∈ B_α
    p = torch.zeros_like(forward_differences(x)) if p is None else tv.project(p)
    d = forward_differences(x)
    x_norm = torch.linalg.vector_norm(x)
    floor = target = math.inf
    best, best_k = math.inf, 0
    calls = projections = last_projection = 0
    structure = None
    for k in range(1, max_iters + 1):
        g = grad(x) + forward_differences_adjoint(p)
        calls += 1
        if k % check_every == 0 or k == 1 or calls >= max_iters:
            stats = torch.stack((torch.linalg.vector_norm(g), tv.complementarity(d, p), x_norm))
            r, c, x0_norm = stats.tolist()
            if k == 1:
                floor = accuracy_floor(x.dtype, 1.0 / mu, lip, x0_norm, r)
                target = max(eps, floor)
            # the certified candidate of this check: the iterate, or its projection onto V_S if that is better
            current = (x, distance_bound(c, r, mu), c, r, None)
            if project and r / mu <= target and k - last_projection >= PROJECT_EVERY and calls < max_iters:
                structure = FlatStructure.identify(tv, x, p, sigma, structure)
                x_proj = structure.project(x)
                b_proj, c_proj, r_proj = certificate(grad, tv, x_proj, p, mu)
                calls, projections, last_projection = calls + 1, projections + 1, k
                if b_proj < current[1]:
                    current = (x_proj, b_proj, c_proj, r_proj, structure)
            point, bound, cc, rr, struct = current
            if bound <= target:
                return _result(
                    point, p, calls, bound, True, floor, cc, rr, mu, tau, sigma, struct, projections
                )
            if bound < best * (1.0 - 1e-3):
                best, best_k = bound, k
            stalled = bound <= STALL_MARGIN * floor and k - best_k >= STALL_ITERS  # at the dtype's resolution
            if stalled or calls >= max_iters:
                return _result(
                    point, p, calls, bound, False, floor, cc, rr, mu, tau, sigma, struct, projections
                )
        x_new = torch.add(x, g, alpha=-tau)
        d_new = forward_differences(x_new)
        p = tv.project(p + sigma * (2.0 * d_new - d))
        x, d = x_new, d_new
    raise AssertionError("unreachable: the check at calls ≥ max_iters returns")  # pragma: no cover


def _result(
    x: Tensor,
    p: Tensor,
    calls: int,
    bound: float,
    converged: bool,
    floor: float,
    c: float,
    r: float,
    mu: float,
    tau: float,
    sigma: float,
    structure: FlatStructure | None,
    projections: int,
) -> PrimalDualResult:
    gap = max(c, 0.0) + r * r / (2.0 * mu)
    return PrimalDualResult(
        x, p, calls, bound, converged, floor, gap, c, r, tau, sigma, structure, projections
    )
