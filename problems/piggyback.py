"""Adjoints of the TV lower level: piggyback differentiation of the primal–dual iteration, and projected CG.

Both compute q̂ with (PĤP) q̂ = P∇_x g, q̂ ∈ V_S, for the flat structure S of ``problems.flat_set`` (P the
projector onto V_S, Ĥ = ∇²f + the TV curvature), so that the hypergradient is the smooth problems' formula
z = ∂_θ g − Jᵀq + ∇r (J = ∂_θ∇_x f; the TV term does not depend on θ).

Piggyback (Griewank & Faure 2003, "Piggyback differentiation and optimization"; for bilevel learning with
primal–dual solvers, Bogensperger, Ehrhardt, Pock, Salehi & Wong 2024, arXiv 2412.06436). The primal–dual step
z⁺ = T(z, θ), z = (x, p), of ``problems.primal_dual`` has at its fixed point z* = (x̂, p̂)

    dz*/dθ = (I − ∂_zT)⁻¹ ∂_θT,     ∇F = ∂_θ g + ∂_θTᵀ w,     w = ∂_zTᵀ w + (∇_x g, 0),

and reverse-mode piggyback is the fixed-point iteration w_{k+1} = ∂_zTᵀ w_k + (∇_x g, 0). Writing M for the
derivative of the dual projection at its argument v (``TotalVariation.project_jacobian``), w = (a, b), β = Mb:

    q_k = τ a_k + 2στ Dᵀβ_k,
    a_{k+1} = a_k + σDᵀβ_k − ∇²f q_k + ∇_x g,
    b_{k+1} = β_k − D q_k,

one ∇²f-vector product per iteration (one FFT pair for the deblurring f), and ∂_θTᵀw = −Jᵀq: the hypergradient
needs only q. At a fixed point the second line gives b − Mb = −Dq, so Dq = 0 where M = I (q ∈ V_S), and the
first gives ∇²f q − ∇_x g = σDᵀβ; on clipped isotropic pixels β = −(W/σ)Dq (M = c(I − nnᵀ), c = α/|v|), so
(∇²f + α D_{S^c}ᵀ W D_{S^c}) q − ∇_x g ∈ range(D_Sᵀ) = V_S^⊥: exactly (PĤP)q = P∇_x g. Here the iteration is
linearised at the certified point the primal–dual solve returns (``FlatStructure.arg``) and run after it, so
it is a stationary linear iteration — the linearised primal–dual method of the reduced quadratic problem,
which converges at that method's linear rate — warm-started from the last (a, b).

A-posteriori bound. For u ∈ V_S, PĤP(u − q̂) = P(Ĥu − ∇_x g) and PĤP ⪰ μI on V_S (∇²f ⪰ μI, W ⪰ 0), so

    ‖u − q̂‖ ≤ ‖P(Ĥu − ∇_x g)‖ / μ.

The piggyback iterate q_k is not in V_S until convergence; every ``check_every`` iterations u = P q_k is
formed and its residual computed (one more counted ∇²f product), and the iteration stops when it is ≤ tol:
the same residual test, with the same meaning δ/μ, as CG's ‖Hq − ∇_x g‖ ≤ δ in MAID. Projected CG (CG on PĤP
on V_S, one product per step) solves the same system; it is the IFT solvers' adjoint, and usually needs far
fewer products.

Error of the hypergradient (``hypergradient_error_bound``). Let ‖x − x̂‖ ≤ ε (the primal–dual certificate),
u the adjoint with residual δ, z = ∂_θ g(x) − J(x)ᵀu (+∇r), and suppose the structure identified at x is
that of x̂. For anisotropic TV Ĥ = ∇²f does not depend on x (f quadratic), so q̂(x) := (PĤP)⁺P∇_x g(x) moves
by at most L_g ε/μ, and

    ‖z − ∇F(θ)‖ ≤ L_gθ ε + ‖J(x)‖ (δ + L_g ε)/μ + L_J ε (‖u‖ + (δ + L_g ε)/μ),

L_g, L_J, L_gθ the Lipschitz constants of x ↦ ∇_x g, J, ∂_θ g, ‖J(x)‖ the norm of J at x — MAID's bound with
L_{H⁻¹} = 0 and ‖u‖ in place of ‖∇g‖/μ. For isotropic TV the weights W of the linearisation depend on the dual
point as well as on x, so no such bound in ε alone is given here; and no bound holds if the structure is
wrong. MAID's line search never uses this bound: it certifies each accepted step from the ε-bounds on F
alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from problems.flat_set import FlatStructure
from problems.linalg import conjugate_gradient
from problems.tv import forward_differences, forward_differences_adjoint

#: piggyback iterations between two residual checks (each check costs one extra ∇²f product)
PIGGYBACK_CHECK_EVERY = 10


@dataclass
class AdjointResult:
    q: Tensor  # the adjoint, in V_S
    residual: float  # ‖P(Ĥq − ∇_x g)‖
    error_bound: float  # residual/μ ≥ ‖q − q̂‖
    products: int  # ∇²f-vector products (``hvp`` calls), checks included
    converged: bool  # residual ≤ tol
    state: tuple[Tensor, Tensor] | None = None  # piggyback (a, b): the warm start of the next call


def projected_residual(
    hvp: Callable[[Tensor], Tensor], structure: FlatStructure, rhs: Tensor, u: Tensor
) -> tuple[Tensor, float]:
    """(P(Ĥu − rhs), its norm) for u ∈ V_S; one ``hvp`` call."""
    e = structure.project(hvp(u) + structure.curvature(u) - rhs)
    return e, float(torch.linalg.vector_norm(e))


def piggyback_adjoint(
    hvp: Callable[[Tensor], Tensor],
    structure: FlatStructure,
    rhs: Tensor,
    *,
    tau: float,
    sigma: float,
    mu: float,
    tol: float,
    max_iters: int,
    state: tuple[Tensor, Tensor] | None = None,
    check_every: int = PIGGYBACK_CHECK_EVERY,
) -> AdjointResult:
    """Reverse-mode piggyback (module docstring) at the linearisation point of ``structure`` with the solve's
    steps (τ, σ), from ``state`` (a, b) (None: 0), until ‖P(Ĥu − rhs)‖ ≤ tol at u = P q_k, or ``max_iters``
    iterations. ``hvp`` is v ↦ ∇²f v (the caller's counted oracle)."""
    if max_iters < 1 or check_every < 1:
        raise ValueError(f"max_iters and check_every must be ≥ 1, got {max_iters}, {check_every}")
    tv = structure.tv
    if state is None:
        a = torch.zeros_like(rhs)
        b = torch.zeros((2, *rhs.shape), dtype=rhs.dtype, device=rhs.device)
    else:
        a, b = state
    products = 0
    u, res = torch.zeros_like(rhs), math.inf
    for k in range(1, max_iters + 1):
        beta = tv.project_jacobian(structure.arg, b)
        dt_beta = forward_differences_adjoint(beta)
        q = tau * a + (2.0 * sigma * tau) * dt_beta
        hq = hvp(q)
        products += 1
        a = a + sigma * dt_beta - hq + rhs
        b = beta - forward_differences(q)
        if k % check_every == 0 or k == max_iters:
            u = structure.project(q)
            _, res = projected_residual(hvp, structure, rhs, u)
            products += 1
            if res <= tol:
                return AdjointResult(u, res, res / mu, products, True, (a, b))
    return AdjointResult(u, res, res / mu, products, False, (a, b))


def projected_cg_adjoint(
    hvp: Callable[[Tensor], Tensor],
    structure: FlatStructure,
    rhs: Tensor,
    *,
    mu: float,
    tol: float,
    max_iters: int,
    q0: Tensor | None = None,
) -> AdjointResult:
    """CG on PĤP u = P rhs over V_S (``problems.linalg.conjugate_gradient``: the same residual test, one
    ``hvp`` per step, one more for a warm start q0, which is projected first)."""
    calls = 0

    def matvec(v: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        v = structure.project(v)
        return structure.project(hvp(v) + structure.curvature(v))

    start = None if q0 is None else structure.project(q0)
    u, res = conjugate_gradient(matvec, structure.project(rhs), start, tol, max_iters)
    u = structure.project(u)  # CG's iterates stay in V_S up to rounding; make it exact
    return AdjointResult(u, res, res / mu, calls, res <= tol)


def hypergradient_error_bound(
    eps: float,
    delta: float,
    *,
    mu: float,
    q_norm: float,
    jac_norm: float,
    lip_g: float,
    lip_jac: float,
    lip_g_theta: float = 0.0,
) -> float:
    """ω ≥ ‖z − ∇F(θ)‖ for anisotropic TV with the structure of x̂ (module docstring): lower level certified to
    ε, adjoint residual δ, ‖u‖ = q_norm, ‖J(x)‖ ≤ jac_norm, and the Lipschitz constants L_g, L_J, L_gθ."""
    q_err = (delta + lip_g * eps) / mu  # ‖u − q̂(x̂)‖
    return lip_g_theta * eps + jac_norm * q_err + lip_jac * eps * (q_norm + q_err)
