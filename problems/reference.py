"""The reference API of a problem: uncounted, certified evaluation of F, x̂ and ∇F (what the harness and
the tests judge solvers by, never charged to them).

    x̂(θ) to ‖x − x̂(θ)‖ ≤ tol, certified by ‖∇h‖/μ (or the prox-gradient map, or for TV itself the
    duality gap of the primal–dual solve)                                       — ``solve_lower``
    F(θ) = g(x̂(θ), θ) + r(θ)                                                   — ``upper_objective``
    ∇F(θ) = ∂_θ g − Jᵀq + ∇r,  H q = ∇_x g (CG)                                 — ``hypergradient``

The default accuracy is relative: tol = reference_rtol(θ)·s with s = ‖x₀ − ∇f(x₀)/L‖ (the scale of the lower
iterates), and reference_rtol = max(REFERENCE_RTOL[dtype], RESOLUTION_FACTOR·u·L/μ), u the unit roundoff:
the target, unless the dtype cannot resolve it. A problem whose μ is only nominal (no strong-convexity
bound) cannot certify a distance, and the API refuses at once (``require_certificate``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from problems.lower import LowerResult

#: Target relative accuracy of the reference API (``upper_objective``, ``hypergradient``, ``evaluate``) per
#: dtype: ‖x − x̂(θ)‖ ≤ rtol·s (see ``reference_tol``). In float64 1e-11 gives hypergradients that agree with
#: central differences to ≥ 7 digits on the 2D problems (tests) at a few thousand iterations at most.
REFERENCE_RTOL = {torch.float64: 1e-11, torch.float32: 1e-5}
#: A solve stalls at a certified distance ≈ 0.5·u·(L/μ)·‖x‖ (u: unit roundoff; measured on deblur2d 16–128 px
#: in float32 and float64, and on deconv1d), the rounding floor of ‖∇h‖; 10× above it is reached reliably.
RESOLUTION_FACTOR = 10.0
#: safeguard cap of a reference solve (the stall rule stops one that cannot progress long before)
REFERENCE_MAX_ITERS = 1_000_000


class ReferenceAPI:
    """Uncounted certified evaluation (a base of ``BilevelProblem``; module docstring)."""

    def reference_rtol(self, theta: Tensor) -> float:
        """Relative accuracy of the reference API: max(REFERENCE_RTOL[dtype], RESOLUTION_FACTOR·u·L/μ),
        u the dtype's unit roundoff: the target, unless the dtype cannot resolve it (module constants)."""
        kappa = self.ll_lipschitz(theta) / self.ll_mu(theta)
        return max(REFERENCE_RTOL[self.dtype], RESOLUTION_FACTOR * torch.finfo(self.dtype).eps * kappa)

    def reference_tol(self, theta: Tensor) -> float:
        """Default certified accuracy of :meth:`upper_objective`, :meth:`hypergradient`, :meth:`evaluate`:
        ‖x − x̂(θ)‖ ≤ reference_rtol(θ)·s, s = ‖x₀ − ∇f(x₀)/L‖ (the scale of the lower iterates; 1 if 0)."""
        theta = self._as_tensor(theta)
        with torch.no_grad(), self.uncounted():
            lip = self.ll_lipschitz(theta)
            scale = float(torch.linalg.vector_norm(self.x0 - self._ll_grad(theta, self.x0) / lip))
            return self.reference_rtol(theta) * (scale if scale > 0 else 1.0)

    def require_certificate(self, what: str) -> None:
        """Raise at once when ``ll_mu`` is not a true strong-convexity bound: no distance can be certified.
        (A true μ with a stopping test other than ‖∇h‖ ≤ μ·tol runs: deblur2d's "channel_mean" test
        mean_c ‖∇_c h‖ ≤ μ·tol still bounds the distance by C^{3/2}·tol for C channels.)"""
        if not self.mu_is_bound:
            raise ValueError(
                f"{self.name}: {what} needs a certified lower solve, but μ = {self.ll_mu(self.theta0):g} is "
                "nominal, not a strong-convexity bound of h(·, θ), so ‖x − x̂(θ)‖ ≤ tol cannot be certified; "
                "use an instance with a true bound (deblur2d / semiblind2d: zeta > 0 and mu ≤ zeta)"
            )

    def solve_lower(
        self,
        theta: Tensor,
        tol: float | None = None,
        max_iters: int = REFERENCE_MAX_ITERS,
        *,
        start: Tensor | None = None,
    ) -> Tensor:
        """x̂(θ) to certified accuracy tol (default :meth:`reference_tol`) from ``start`` (default x0; a
        warm start, e.g. x̂ of a nearby θ, changes the work, not the certified accuracy). Uncounted."""
        return self.solve_lower_result(theta, tol, max_iters, start=start).x

    def solve_lower_result(
        self,
        theta: Tensor,
        tol: float | None = None,
        max_iters: int = REFERENCE_MAX_ITERS,
        *,
        start: Tensor | None = None,
    ) -> LowerResult:
        """:meth:`solve_lower` with the whole ``LowerResult`` (iterations, certified bound)."""
        self.require_certificate("solve_lower")
        return self._reference_result(self._as_tensor(theta), tol, max_iters, start=start)

    def _reference_solve(
        self,
        theta: Tensor,
        tol: float | None,
        max_iters: int,
        *,
        below_floor: bool = False,
        start: Tensor | None = None,
    ) -> Tensor:
        return self._reference_result(theta, tol, max_iters, below_floor=below_floor, start=start).x

    def _reference_result(
        self,
        theta: Tensor,
        tol: float | None,
        max_iters: int,
        *,
        below_floor: bool = False,
        start: Tensor | None = None,
    ) -> LowerResult:
        """Uncounted lower solve from ``start`` (default x0) until the stopping test ‖∇h‖/μ ≤ tol (no
        certificate check).

        A tol below the dtype's accuracy floor (``LowerResult.eps_floor``) is clipped by the lower solver;
        the reference API then raises, since the result would not have the accuracy asked for, unless
        ``below_floor`` (baselines that accept the floor-accurate point, e.g. the TV baseline in float32)."""
        if tol is None:
            tol = self.reference_tol(theta)
        x_start = self.x0 if start is None else self._as_tensor(start)
        with self.uncounted():
            res = self._reference_lower(theta, x_start, tol, max_iters)
        floor_hit = res.dist_bound > tol and not below_floor
        if not res.converged or floor_hit:
            if res.converged:
                why = f"the accuracy floor {res.eps_floor:.3g} that {self.dtype} resolves here"
            elif res.iters >= max_iters:
                why = "the iteration cap"
            else:
                why = "no progress (the stall rule)"
            raise RuntimeError(
                f"{self.name}: lower solve stopped after {res.iters} iterations ({why}) at bound "
                f"{res.dist_bound:.3g} > tol {tol:.3g} (default tol here, resolvable in {self.dtype}: "
                f"{self.reference_tol(theta):.3g})"
            )
        return res

    def _reference_lower(self, theta: Tensor, x_start: Tensor, tol: float, max_iters: int) -> LowerResult:
        """The lower solve behind the reference API (called uncounted): ``ll_solve`` to tol, with
        ``reference_momentum`` when the problem names one. A hook: a problem with a faster certified route
        to x̂ than its solvers' loop (exact TV solutions on the flat structure) overrides it."""
        if self.reference_momentum is None:
            return self.ll_solve(theta, x_start, tol, max_iters)
        return self.ll_solve(theta, x_start, tol, max_iters, momentum=self.reference_momentum)

    def upper_objective(
        self, theta: Tensor, tol: float | None = None, *, start: Tensor | None = None
    ) -> float:
        """F(θ) with the lower level solved to certified accuracy tol (default :meth:`reference_tol`), from
        ``start`` (default x0)."""
        self.require_certificate("upper_objective")
        theta = self._as_tensor(theta)
        x = self._reference_solve(theta, tol, REFERENCE_MAX_ITERS, start=start)
        with torch.no_grad(), self.uncounted():
            return float(self.ul_g(theta, x) + self.ul_reg(theta))

    def hypergradient(
        self, theta: Tensor, tol: float | None = None, *, start: Tensor | None = None
    ) -> Tensor:
        """∇F(θ) with x̂ to accuracy tol (default :meth:`reference_tol`, lower solve from ``start``, default
        x0) and the adjoint H q = ∇_x g solved by CG to ‖H q − ∇_x g‖ ≤ reference_rtol(θ)·‖∇_x g‖."""
        self.require_certificate("hypergradient")
        theta = self._as_tensor(theta)
        with self.uncounted():  # one block: the adjoint may need what the solve left (a TV dual)
            x = self._reference_solve(theta, tol, REFERENCE_MAX_ITERS, start=start)
            rhs_norm = float(torch.linalg.vector_norm(self.adjoint_rhs(theta, x)))
            cg_tol = self.reference_rtol(theta) * max(rhs_norm, torch.finfo(self.dtype).tiny)
            before = self.counters.cg_iters
            q, residual = self.adjoint_solve(theta, x, cg_tol, 100 * x.numel())
            if residual > cg_tol:
                raise RuntimeError(
                    f"{self.name}: CG on H q = ∇_x g stopped after {self.counters.cg_iters - before} "
                    f"iterations at residual {residual:.3g} > {cg_tol:.3g}"
                )
            return self.hypergradient_from(theta, x, q)

    def evaluate(self, theta: Tensor, tol: float | None = None) -> dict[str, float]:
        """Metrics of x̂(θ) solved to tol (default :meth:`reference_tol`), plus the upper value F(θ)."""
        self.require_certificate("evaluate")
        theta = self._as_tensor(theta)
        x = self._reference_solve(theta, tol, REFERENCE_MAX_ITERS)
        with torch.no_grad(), self.uncounted():
            out = {"upper_value": float(self.ul_g(theta, x) + self.ul_reg(theta))}
            out.update(self.metrics(theta, x))
        return out

    def _as_tensor(self, theta: Tensor) -> Tensor:
        return torch.as_tensor(theta, dtype=self.dtype, device=self.device).detach()
