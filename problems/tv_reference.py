"""Exact TV solutions for tests and references: solve on the identified structure, verify the KKT conditions.

Given a primal–dual point (x, p) close to x̂ (``problems.primal_dual``), with flat set S and support S^c
(``problems.flat_set``):

1. Reduced solve. On V_S (images constant on the components of S) the TV is α Σ_{e∉S} |(Dv)_e| — linear
   (anisotropic, with the signs of the support) or smooth (isotropic, away from 0) — so x_S = argmin over
   V_S of f + that term is found by Newton's method on V_S: v ← v − (PĤ(v)P)⁺ P(∇f(v) + Dᵀt(v)), t = α·sign
   or α·d/|d| on the support, each Newton system by CG to the dtype's resolution (one step is exact for
   anisotropic TV), with a line search on the reduced objective (a full step may cross a kink of |d|).
2. Dual. A subgradient p* = t(x_S) + β with β on the free entries solving D_freeᵀβ = −(∇f(x_S) + Dᵀt):
   β = p_free + D_free w, the primal–dual β corrected by the least-norm solution (D_freeᵀD_free w = residual,
   a graph Laplacian, CG); if that leaves B_α, alternating projections between the ball and the affine set.
3. Verification. x_S is the minimiser iff p* is dual feasible (‖p*‖* ≤ α) and complementary: the support signs
   (normals) are those of Dx_S, and Dx_S = 0 on S. p* is projected onto B_α (it may leave it by the solve's
   dual error) and the certificate of ``problems.primal_dual`` at (x_S, p*) — a gap of the order of rounding
   when the structure is right — bounds ‖x_S − x̂‖, independently of how (x, p) was found.

The margins returned (min dual slack α − ‖p*_e‖ on S, min |(Dx_S)_e| on the support) say how far θ is from a
point where x̂ is not differentiable: both > 0 is strict complementarity with a stable support. (A zero slack
does not prove degeneracy — another optimal dual may be strictly inside — so the tests compare the structures
at θ ± h instead.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from problems.flat_set import FlatStructure, _components
from problems.linalg import conjugate_gradient
from problems.primal_dual import distance_bound
from problems.tv import TotalVariation, difference_mask, forward_differences, forward_differences_adjoint

#: Newton steps of the reduced solve (anisotropic: the first is exact; isotropic: quadratic convergence)
NEWTON_STEPS = 30
#: step halvings of the Newton line search (isotropic: a full step may cross a kink of |d| on the support)
MAX_HALVINGS = 40
#: alternating projections between {β : D_freeᵀβ = b} and B_α when the least-norm correction leaves B_α
DUAL_ROUNDS = 200
#: CG tolerance of each Newton system and of the dual correction, in units of u·‖rhs‖ (u the unit roundoff):
#: both systems are singular off V_S, and CG asked for less than ~10²·u relative drifts along the null space
REDUCED_TOL_ULPS = 1e3


@dataclass
class VerifiedSolution:
    x: Tensor  # x_S
    p: Tensor  # the dual certificate p* ∈ B_α
    structure: FlatStructure
    dist_bound: float  # certified ‖x_S − x̂‖ from the gap at (x_S, p*)
    consistent: bool  # the support signs agree with Dx_S (and Dx_S = 0 on S to rounding)
    dual_slack: float  # min over the free entries of α − |p*| (> 0: this dual is strictly complementary)
    support_margin: float  # min over the support of |Dx_S|

    def verified(self, tol: float) -> bool:
        """x_S lies on the structure it was solved on, and is certified within tol of x̂."""
        return self.consistent and self.support_margin > 0 and self.dist_bound <= tol


def _tol(*terms: Tensor) -> float:
    """REDUCED_TOL_ULPS·u·Σ‖term‖: the resolution of a residual made of these terms (at least the smallest
    normal number)."""
    u = torch.finfo(terms[0].dtype)
    return REDUCED_TOL_ULPS * u.eps * max(sum(float(torch.linalg.vector_norm(t)) for t in terms), u.tiny)


def _support_term(tv: TotalVariation, support: Tensor, d: Tensor, signs: Tensor) -> Tensor:
    """t = α·sign (anisotropic, fixed signs) or α·d/|d| (isotropic) on the support, 0 elsewhere."""
    if not tv.isotropic:
        return torch.where(support, tv.alpha * signs, torch.zeros_like(d))
    mag = tv.magnitude(d)
    safe = torch.where(mag > 0, mag, torch.ones_like(mag))
    return torch.where(support, tv.alpha * d / safe, torch.zeros_like(d))


def _support_curvature(tv: TotalVariation, support: Tensor, d: Tensor, v: Tensor) -> Tensor:
    """α D_{S^c}ᵀ W(d) D_{S^c} v with W = (I − nnᵀ)/|d| (isotropic; zero for anisotropic TV)."""
    if not tv.isotropic:
        return torch.zeros_like(v)
    mag = tv.magnitude(d)
    safe = torch.where(mag > 0, mag, torch.ones_like(mag))
    n = d / safe
    e = forward_differences(v)
    tangent = (e - n * (n * e).sum(0)) / safe
    return forward_differences_adjoint(torch.where(support, tv.alpha * tangent, torch.zeros_like(e)))


def verify_solution(
    grad: Callable[[Tensor], Tensor],
    hvp: Callable[[Tensor], Tensor],
    tv: TotalVariation,
    x: Tensor,
    p: Tensor,
    sigma: float,
    *,
    mu: float,
) -> VerifiedSolution:
    """The exact solution on the structure of (x, p) and its verification (module docstring). ``grad`` = ∇f,
    ``hvp`` = ∇²f; f must be quadratic (the line search uses f(v + s) − f(v) = ⟨∇f(v), s⟩ + ½⟨s, ∇²f s⟩)."""
    structure = FlatStructure.identify(tv, x, p, sigma)
    support = difference_mask(tuple(x.shape), device=x.device) & ~structure.flat  # edges not vanishing on V_S
    signs = torch.sign(structure.arg)
    v = _reduced_solve(grad, hvp, tv, structure, support, signs, x)
    d = forward_differences(v)
    t = _support_term(tv, support, d, signs)
    p_star = tv.project(t + _free_dual(tv, structure.free, grad(v) + forward_differences_adjoint(t), p))

    g = grad(v) + forward_differences_adjoint(p_star)
    r = float(torch.linalg.vector_norm(g))
    c = float(tv.complementarity(d, p_star))
    bound = distance_bound(c, r, mu)

    mag_p, mag_d = tv.magnitude(p_star), tv.magnitude(d)
    supp = structure.support()
    dual_free = structure.free.any(0) if tv.isotropic else structure.free
    slack = float((tv.alpha - mag_p)[dual_free].min()) if dual_free.any() else math.inf
    margin = float(mag_d[supp].min()) if supp.any() else math.inf
    # anisotropic: the support signs are those of Dx_S; isotropic: t = α d/|d| has them by construction
    consistent = tv.isotropic or bool(torch.equal(torch.sign(d)[support], signs[support]))
    return VerifiedSolution(v, p_star, structure, bound, consistent, slack, margin)


def _reduced_solve(
    grad: Callable[[Tensor], Tensor],
    hvp: Callable[[Tensor], Tensor],
    tv: TotalVariation,
    structure: FlatStructure,
    support: Tensor,
    signs: Tensor,
    x: Tensor,
) -> Tensor:
    """argmin over V_S of f + α Σ_support |(Dv)_e| by damped Newton from P x (module docstring, step 1)."""
    proj = structure.project

    def support_tv(v: Tensor) -> Tensor:
        d = forward_differences(v)
        if not tv.isotropic:
            return (tv.alpha * signs * torch.where(support, d, torch.zeros_like(d))).sum()
        return tv.alpha * (tv.magnitude(d) * support.any(0)).sum()

    v = proj(x)
    for _ in range(NEWTON_STEPS):
        d = forward_differences(v)
        grad_v, tv_v = grad(v), forward_differences_adjoint(_support_term(tv, support, d, signs))
        rhs = -proj(grad_v + tv_v)

        def matvec(w: Tensor, d: Tensor = d) -> Tensor:
            w = proj(w)
            return proj(hvp(w) + _support_curvature(tv, support, d, w))

        step, _ = conjugate_gradient(matvec, rhs, None, _tol(grad_v, tv_v), 100 * x.numel())
        step = proj(step)
        slope, curv = float((grad_v * step).sum()), float((step * hvp(step)).sum())
        base, scale = float(support_tv(v)), 1.0
        noise = REDUCED_TOL_ULPS * torch.finfo(x.dtype).eps * abs(base)  # rounding of the TV difference
        for _ in range(MAX_HALVINGS):  # decrease of the reduced objective (exact for a quadratic f)
            change = scale * slope + 0.5 * scale * scale * curv + float(support_tv(v + scale * step)) - base
            if change <= noise:
                break
            scale *= 0.5
        v = v + scale * step
        if scale * float(torch.linalg.vector_norm(step)) <= _tol(v):
            break
    return v


def _free_dual(tv: TotalVariation, free: Tensor, residual: Tensor, p: Tensor) -> Tensor:
    """β on the free entries with D_freeᵀβ = −residual, in B_α if possible (module docstring, step 2).

    The least-norm correction of the primal–dual β: D_freeᵀβ = b is solvable for b ⊥ the images constant on
    the components of the free graph (the part of b outside stays in the final residual). If the result leaves
    B_α, alternating projections onto the ball and back onto the affine set look for a dual inside it."""
    free_labels, free_sizes = _components(free, residual.dtype)
    free_part = FlatStructure(tv, free, free, free_labels, free_sizes, p, free, None, None)
    b = -residual
    b = b - free_part.project(b)

    def laplacian(w: Tensor) -> Tensor:
        e = forward_differences(w)
        return forward_differences_adjoint(torch.where(free, e, torch.zeros_like(e)))

    def onto_affine(beta: Tensor) -> Tensor:
        rhs = b - forward_differences_adjoint(beta)
        rhs = rhs - free_part.project(rhs)
        w, _ = conjugate_gradient(laplacian, rhs, None, _tol(residual), 100 * b.numel())
        dw = forward_differences(w)
        return beta + torch.where(free, dw, torch.zeros_like(dw))

    beta = onto_affine(torch.where(free, p, torch.zeros_like(p)))
    for _ in range(DUAL_ROUNDS):
        clipped = torch.where(free, tv.project(beta), torch.zeros_like(beta))
        if float(torch.linalg.vector_norm(clipped - beta)) <= _tol(residual):
            break
        beta = onto_affine(clipped)
    return beta
