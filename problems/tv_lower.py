"""The non-smooth TV lower level of a problem: h(x, θ) = f(x, θ) + α‖Dx‖, its oracles and their state.

A problem with this lower level (``deblur2d`` / ``semiblind2d`` with ``regulariser="tv"`` or ``"tv_aniso"``)
provides the smooth part only through its usual closed forms — ∇f = ``_ll_grad``, ∇²f = ``_hvp``, L ≥ ‖∇²f‖,
μ = ζ — and hands the four oracles that see the TV to a :class:`TVLowerLevel`:

* ``solve`` — the certified primal–dual method (``problems.primal_dual``): one counted ``ll_grad`` (one
  ``ll_iters`` unit) per iteration, plus one per projected check; stopped when the duality-gap bound
  ‖x − x̂‖ ≤ (‖g‖ + √(‖g‖² + 4μc))/(2μ) ≤ √(2G/μ) is ≤ ε; warm-started in x (the caller's) and in the dual p
  (the one returned with that x, else the last solve's);
* ``adjoint`` — (PĤP) q = P∇_x g on V_S, the flat structure of the returned point (``problems.flat_set``), by
  piggyback (``problems.piggyback``, warm-started from its last state) or projected CG; one counted ``hvp``
  (``cg_iters``) per ∇²f product; the residual δ = ‖P(Ĥq − ∇_x g)‖ bounds ‖q − q̂‖ ≤ δ/μ;
* ``tangent`` — (PĤP) w = P J v by projected CG (MAID's first-order warm start of its trials);
* ``unrolled`` — n primal–dual steps keeping the autograd graph (LISTA), from the cached dual.

State carried between oracle calls (``docs/nonsmooth_tv.md`` §10): the primal–dual result of each returned x
(its dual, steps and structure), the last dual and the last piggyback state. The whole object is a
``PerThetaCache``, so ``BilevelProblem.uncounted()`` leaves it as it found it: evaluation never warm-starts
a solver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from problems.caches import LastValue, PerThetaCache, RecentSetups
from problems.flat_set import FlatStructure
from problems.lower import LowerResult
from problems.piggyback import AdjointResult, piggyback_adjoint, projected_cg_adjoint
from problems.primal_dual import (
    DUAL_STEP_PER_ALPHA,
    PrimalDualResult,
    condat_vu_steps,
    primal_dual_solve,
)
from problems.tv import TotalVariation, difference_norm_sq, forward_differences, forward_differences_adjoint
from problems.tv_reference import verify_solution

#: returned points whose primal–dual state is kept: the current x and MAID's line-search trials around it
POINTS_KEPT = 8
ADJOINTS = ("piggyback", "projected_cg")
#: the reference solve's first primal–dual tolerance, relative to ‖start‖: near enough to x̂ for the flat
#: structure of anisotropic TV to be identified at the images tested (docs/nonsmooth_tv.md §11)
IDENTIFY_RTOL = 1e-6
#: how much tighter each further primal–dual stage is when the structure did not verify
IDENTIFY_FACTOR = 10.0


@dataclass
class _Point:
    result: PrimalDualResult
    structure: FlatStructure | None = None  # identified once, on the first adjoint or tangent at this point


class TVLowerLevel(PerThetaCache):
    """The TV-dependent oracles of a problem (module docstring). ``problem`` provides ``ll_grad``, ``hvp``,
    ``ul_grad_x``, ``ll_lipschitz``, ``ll_mu``, ``_ll_grad_jvp_theta`` and ``_hook_backward_count``."""

    def __init__(self, problem: Any, tv: TotalVariation, adjoint: str = "piggyback"):
        if adjoint not in ADJOINTS:
            raise ValueError(f"TV adjoint must be one of {', '.join(ADJOINTS)}, got {adjoint!r}")
        self.problem, self.tv, self.adjoint_method = problem, tv, adjoint
        self.points = RecentSetups(POINTS_KEPT)
        self.last_dual = LastValue()
        self.piggyback_state = LastValue()
        self.last_adjoint: AdjointResult | None = None  # diagnostics: the last adjoint's a-posteriori bound

    # ------------------------------------------------------------------ PerThetaCache
    def snapshot(self) -> tuple:
        return self.points.snapshot(), self.last_dual.snapshot(), self.piggyback_state.snapshot()

    def restore(self, state: tuple) -> None:
        self.points.restore(state[0])
        self.last_dual.restore(state[1])
        self.piggyback_state.restore(state[2])

    def clear(self) -> None:
        for cache in (self.points, self.last_dual, self.piggyback_state):
            cache.clear()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _refuse_step(step: float | None) -> None:
        if step is not None:
            raise ValueError(
                "ll_step must be None with a TV lower level: the primal–dual solver sets its steps from L"
            )

    def _dual_for(self, x: Tensor) -> Tensor | None:
        point = self.points.find(x)
        if point is not None:
            return point.result.p
        last = self.last_dual.value
        return last if last is not None and last.shape[1:] == x.shape else None

    def _point(self, x: Tensor) -> _Point:
        point = self.points.find(x)
        if point is None:
            raise RuntimeError(
                "the TV adjoint needs a point returned by this problem's ll_solve (its dual, its structure)"
            )
        if point.structure is None:
            res = point.result
            point.structure = res.structure or FlatStructure.identify(self.tv, res.x, res.p, res.sigma)
        return point

    def structure(self, x: Tensor) -> FlatStructure:
        """The flat structure of a point returned by :meth:`solve`."""
        return self._point(x).structure  # type: ignore[return-value]

    def result(self, x: Tensor) -> PrimalDualResult:
        """The primal–dual result a returned point came with (its dual, gap and steps)."""
        return self._point(x).result

    # ------------------------------------------------------------------ oracles
    def solve(
        self, theta: Tensor, x: Tensor, eps: float, max_iters: int, step: float | None = None
    ) -> LowerResult:
        """The certified primal–dual solve from x and the dual that goes with it (module docstring)."""
        self._refuse_step(step)
        problem = self.problem
        lip, mu = problem.ll_lipschitz(theta), problem.ll_mu(theta)
        with torch.no_grad():
            p0 = self._dual_for(x)
            res = primal_dual_solve(
                lambda v: problem.ll_grad(theta, v), self.tv, x, p0, eps, max_iters, lip=lip, mu=mu
            )
        self.points.add(res.x, _Point(res))
        self.last_dual.value = res.p
        return LowerResult(res.x, res.iters, res.dist_bound, res.converged, res.eps_floor)

    def reference_solve(self, theta: Tensor, x: Tensor, tol: float, max_iters: int) -> LowerResult:
        """x̂(θ) to ‖x − x̂‖ ≤ tol for the reference API (uncounted by the caller).

        Isotropic TV: the certified primal–dual solve. Anisotropic TV: the primal–dual solve in stages, from
        ε = max(tol, IDENTIFY_RTOL·‖x‖) down by IDENTIFY_FACTOR; after each stage the exact solution on the
        flat structure of the point reached is computed and its KKT conditions checked
        (``problems.tv_reference.verify_solution``): a point that verifies within tol is x̂ to that
        certified accuracy, and is returned with its dual and structure (docs/nonsmooth_tv.md §11). The
        stages stop at the first verified point, at ε ≤ tol (the plain certified solve) or at the cap."""
        if self.tv.isotropic:
            return self.solve(theta, x, tol, max_iters)
        problem = self.problem
        mu = problem.ll_mu(theta)
        eps = max(tol, IDENTIFY_RTOL * float(torch.linalg.vector_norm(x)))
        used = 0
        while True:
            res = self.solve(theta, x, eps, max_iters - used)
            used += res.iters
            done = res.dist_bound <= tol or eps <= tol or used >= max_iters
            if done or not math.isfinite(res.dist_bound):
                return replace(res, iters=used)
            point = self.points.find(res.x).result
            with torch.no_grad():
                exact = verify_solution(
                    lambda v: problem._ll_grad(theta, v),
                    lambda v: problem._hvp(theta, None, v),
                    self.tv,
                    point.x,
                    point.p,
                    point.sigma,
                    mu=mu,
                )
            if exact.verified(tol):
                verified = replace(
                    point,
                    x=exact.x,
                    p=exact.p,
                    iters=used,
                    dist_bound=exact.dist_bound,
                    converged=True,
                    structure=exact.structure,
                )
                self.points.add(exact.x, _Point(verified, exact.structure))
                self.last_dual.value = exact.p
                return LowerResult(exact.x, used, exact.dist_bound, True, res.eps_floor)
            eps = max(tol, min(eps, res.dist_bound) / IDENTIFY_FACTOR)
            x = res.x

    def adjoint(
        self,
        theta: Tensor,
        x: Tensor,
        tol: float,
        max_iters: int,
        q0: Tensor | None = None,
        ul_grad: Tensor | None = None,
        precondition: str = "none",
    ) -> tuple[Tensor, float]:
        """(q, ‖P(Ĥq − ∇_x g)‖) on the structure of x, by the configured method (module docstring)."""
        if precondition != "none":
            raise ValueError(f"the TV adjoint has no preconditioner {precondition!r}; use 'none'")
        problem = self.problem
        point = self._point(x)
        with torch.no_grad():
            rhs = problem.ul_grad_x(theta, x) if ul_grad is None else ul_grad
            mu = problem.ll_mu(theta)

            def hvp(v: Tensor) -> Tensor:
                return problem.hvp(theta, x, v)

            if self.adjoint_method == "piggyback":
                state = self.piggyback_state.value
                if state is not None and state[0].shape != rhs.shape:
                    state = None
                res = point.result
                out = piggyback_adjoint(
                    hvp,
                    point.structure,  # type: ignore[arg-type]
                    rhs,
                    tau=res.tau,
                    sigma=res.sigma,
                    mu=mu,
                    tol=tol,
                    max_iters=max_iters,
                    state=state,
                )
                self.piggyback_state.value = out.state
            else:
                out = projected_cg_adjoint(
                    hvp,
                    point.structure,
                    rhs,
                    mu=mu,
                    tol=tol,
                    max_iters=max_iters,
                    q0=q0,  # type: ignore[arg-type]
                )
        self.last_adjoint = out
        return out.q, out.residual

    def tangent(
        self, theta: Tensor, x: Tensor, v: Tensor, tol: float, max_iters: int, w0: Tensor | None = None
    ) -> tuple[Tensor, float]:
        """(w, residual) with (PĤP) w = P J v on the structure of x: w = −(dx̂/dθ)v on that branch."""
        problem = self.problem
        structure = self._point(x).structure
        with torch.no_grad():
            rhs = problem._ll_grad_jvp_theta(theta, x, v)
            out = projected_cg_adjoint(
                lambda u: problem.hvp(theta, x, u),
                structure,  # type: ignore[arg-type]
                rhs,
                mu=problem.ll_mu(theta),
                tol=tol,
                max_iters=max_iters,
                q0=w0,
            )
        return out.q, out.residual

    def unrolled(self, theta: Tensor, x: Tensor, n_steps: int, step: float | None = None) -> Tensor:
        """n_steps primal–dual iterations from (x, the cached dual) with the autograd graph kept (the steps of
        :meth:`solve`; each one counted ``ll_grad``, each back-propagated one an ``ll_backward_iters``).
        The projection onto B_α is differentiable wherever no dual entry sits exactly on the sphere."""
        self._refuse_step(step)
        problem = self.problem
        lip = problem.ll_lipschitz(theta.detach())
        if not math.isfinite(lip):
            return torch.full_like(x, math.nan)
        ratio = DUAL_STEP_PER_ALPHA * self.tv.alpha  # the steps of ``primal_dual_solve``
        tau, sigma = condat_vu_steps(lip, difference_norm_sq(*x.shape[-2:]), ratio)
        p = self._dual_for(x)
        p = torch.zeros_like(forward_differences(x)) if p is None else self.tv.project(p.detach())
        d = forward_differences(x)
        for _ in range(n_steps):
            x_new = x - tau * (problem.ll_grad(theta, x) + forward_differences_adjoint(p))
            problem._hook_backward_count(x_new)
            d_new = forward_differences(x_new)
            p = self.tv.project(p + sigma * (2.0 * d_new - d))
            x, d = x_new, d_new
        self.last_dual.value = p.detach()
        return x
