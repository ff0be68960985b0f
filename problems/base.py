"""The bilevel-problem protocol: the maths of one problem family and its counted oracles.

    upper:  F(θ) = g(x̂(θ), θ) + r(θ)
    lower:  x̂(θ) = argmin_x h(x, θ),   h = f + R   (f smooth, R with a cheap prox; R = 0 if smooth)

A subclass states the maths (``_ll_grad`` = ∇_x f, ``ll_prox``, ``ul_g``, ``ul_reg``, constants);
the base class turns it into the oracles solvers call, and *counts every call* in ``counters``.
Closed forms may override ``_hvp``, ``_ul_grad_x`` and ``_hypergradient_from``; the autograd
defaults here are the reference they are tested against.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from problems.caches import PerThetaCache
from problems.linalg import conjugate_gradient
from problems.lower import (
    FixedSteps,
    LowerResult,
    ProxGradStep,
    iterate,
    momentum_coefficients,
    prox_gradient_solve,
)
from problems.params import ProblemParams, signature_of

#: Target relative accuracy of the reference API (``upper_objective``, ``hypergradient``, ``evaluate``) per
#: dtype: ‖x − x̂(θ)‖ ≤ rtol·s (see ``reference_tol``). In float64 1e-11 gives hypergradients that agree with
#: central differences to ≥ 7 digits on the 2D problems (tests) at a few thousand iterations at most.
REFERENCE_RTOL = {torch.float64: 1e-11, torch.float32: 1e-5}
#: A solve stalls at a certified distance ≈ 0.5·u·(L/μ)·‖x‖ (u: unit roundoff; measured on deblur2d 16–128 px
#: in float32 and float64, and on deconv1d), the rounding floor of ‖∇h‖; 10× above it is reached reliably.
RESOLUTION_FACTOR = 10.0
#: safeguard cap of a reference solve (the stall rule stops one that cannot progress long before)
REFERENCE_MAX_ITERS = 1_000_000


class BudgetExhausted(Exception):
    """Raised by a counted oracle called when the armed budget is spent (see :meth:`BilevelProblem.budget`).

    The harness catches it and records the last accepted iterate with status ``budget``; the check sits in
    the oracles so that one long lower solve, CG run or line search cannot overrun a budget by more than
    one oracle call."""


@dataclass(frozen=True)
class Budget:
    """A deadline on ``time.perf_counter()`` and a cap on the cumulative ``ll_iters`` counter."""

    deadline: float = math.inf
    max_ll_iters: float = math.inf


@dataclass
class Counters:
    """Cumulative oracle counts (SPEC §4). Incremented only by the oracles below and, for the per-θ set-up
    work, where a problem really does it (a cache miss). Measured costs: ``docs/cost_model.md``."""

    ll_iters: int = 0  # lower-level gradient / prox-gradient steps (forward, unrolled ones included)
    cg_iters: int = 0  # Hessian-vector products
    ul_evals: int = 0  # upper-level value evaluations
    ul_grad_evals: int = 0  # ∇_x g evaluations (MAID's bounds, the adjoint's right-hand side)
    hypergrad_evals: int = 0  # assemblies of z = ∂_θ g − Jᵀq + ∇r
    ll_backward_iters: int = 0  # unrolled lower-level steps back-propagated (LISTA's backward pass)
    setup_evals: int = 0  # per-θ operator set-ups (deconv1d: BᵀB + a₂I; deblur2d: kernel FFT and K_bᵀy)
    lipschitz_evals: int = 0  # per-θ Lipschitz bounds that cost work (power iterations, a spectral norm)

    def snapshot(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def reset(self) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, 0)


class BilevelProblem:
    """Base class of every problem. See the module docstring for the maths."""

    name: ClassVar[str] = "abstract"
    #: keys of the dict returned by :meth:`metrics`
    metric_names: ClassVar[tuple[str, ...]] = ()
    #: ``g(·, θ)`` convex in x: the MAID lower bound then needs no curvature term
    ul_convex_in_x: ClassVar[bool] = True
    #: momentum of the lower-level solver: "none" (ISTA/GD), "fista", "strongly_convex"
    ll_momentum: ClassVar[str] = "none"
    #: ``ll_mu`` is a true strong-convexity modulus of h(·, θ), so ‖∇h‖/μ bounds ‖x − x̂‖ (False: μ nominal;
    #: the reference API then raises at once). An instance may set its own value.
    certified: bool = True
    #: ``ll_mu`` is a true strong-convexity bound of h(·, θ) (the stopping test may still differ from
    #: ‖∇h‖ ≤ μ·tol, e.g. deblur2d's per-channel mean); the reference API refuses at once when False
    mu_is_bound: bool = True
    #: the problem's parameters (a frozen dataclass, ``problems/params.py``): one declaration drives the
    #: constructor, ``params``, validation, the memory estimate and the listings
    Params: ClassVar[type[ProblemParams]] = ProblemParams

    theta0: Tensor
    x0: Tensor

    def __init__(
        self, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu", **params: object
    ):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.dtype = dtype
        self.device = torch.device(device)
        self.counters = Counters()
        self._budget: Budget | None = None  # armed by the harness around solver calls only
        #: the validated parameters (``Params``), and the plain dict of them the records keep
        self.config = self.Params.from_values(params)
        self.params: dict = self.config.record()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.__signature__ = signature_of(cls.Params)  # what the class accepts, from the one declaration

    # ------------------------------------------------------------------ maths (subclass)
    def _ll_grad(self, theta: Tensor, x: Tensor) -> Tensor:
        """∇_x f(x, θ), differentiable in both arguments. Not counted: use :meth:`ll_grad`."""
        raise NotImplementedError

    def ll_prox(self, v: Tensor, step: float) -> Tensor:
        """prox_{step·R}(v); identity when the lower problem is smooth."""
        return v

    @property
    def ll_smooth(self) -> bool:
        return type(self).ll_prox is BilevelProblem.ll_prox

    def ll_lipschitz(self, theta: Tensor) -> float:
        """An upper bound L of the Lipschitz constant of ∇_x f(·, θ)."""
        raise NotImplementedError

    def ll_mu(self, theta: Tensor) -> float:
        """Strong-convexity modulus μ of h(·, θ) used by the certificate ‖x − x̂‖ ≤ ‖∇h‖/μ."""
        raise NotImplementedError

    def ul_g(self, theta: Tensor, x: Tensor) -> Tensor:
        """g(x, θ), a 0-d tensor, differentiable."""
        raise NotImplementedError

    def ul_reg(self, theta: Tensor) -> Tensor:
        """r(θ), a 0-d tensor, differentiable."""
        return theta.new_zeros(())

    def ul_lipschitz_x(self, theta: Tensor) -> float:
        """L_g: Lipschitz constant of ∇_x g(·, θ)."""
        raise NotImplementedError

    def active_mask(self, theta: Tensor, x: Tensor) -> Tensor | None:
        """Where the implicit function theorem is applied (the support for ℓ¹); None = everywhere."""
        return None

    @property
    def ul_step0(self) -> float:
        """The initial upper-level step shared by every solver on this problem (SPEC §3.4)."""
        raise NotImplementedError

    def metrics(self, theta: Tensor, x: Tensor) -> dict[str, float]:
        """Untimed evaluation metrics of a reconstruction x (never calls a counted oracle)."""
        return {}

    # ------------------------------------------------------------------ budget
    @contextlib.contextmanager
    def budget(self, deadline: float | None = None, max_ll_iters: int | None = None) -> Iterator[None]:
        """Arm a budget: inside, a counted oracle raises :class:`BudgetExhausted` once
        ``time.perf_counter() ≥ deadline`` or when its lower-level steps would take ``ll_iters`` past
        ``max_ll_iters``. (No device sync: the check reads the host clock only.)"""
        saved = self._budget
        self._budget = Budget(
            math.inf if deadline is None else deadline, math.inf if max_ll_iters is None else max_ll_iters
        )
        try:
            yield
        finally:
            self._budget = saved

    def _charge(self, ll_steps: int = 0) -> None:
        """Check the armed budget before an oracle does its work (``ll_steps`` lower-level steps)."""
        b = self._budget
        if b is None:
            return
        if time.perf_counter() >= b.deadline:
            raise BudgetExhausted("max_time")
        if ll_steps and self.counters.ll_iters + ll_steps > b.max_ll_iters:
            raise BudgetExhausted("max_ll_iters")

    def _count_ll_iters(self, n_steps: int) -> None:
        """Charge and count ``n_steps`` lower-level steps (for oracles that take several at once)."""
        self._charge(n_steps)
        self.counters.ll_iters += n_steps

    # ------------------------------------------------------------------ counted oracles
    def ll_grad(self, theta: Tensor, x: Tensor) -> Tensor:
        """One lower-level iteration's gradient ∇_x f(x, θ); counted in ``ll_iters``."""
        self._count_ll_iters(1)
        grad = self._ll_grad(theta, x)
        if self._budget is not None and grad.requires_grad:
            # unrolling (LISTA): the backward pass through this step checks the deadline too, so a long
            # backward cannot overrun the budget by more than one step
            grad.register_hook(self._check_in_backward)
        return grad

    def _check_in_backward(self, grad: Tensor) -> None:
        self._charge()

    def hvp(self, theta: Tensor, x: Tensor, v: Tensor) -> Tensor:
        """H v with H = ∇²_xx h(x, θ) (restricted to the active set); counted in ``cg_iters``."""
        self._charge()
        self.counters.cg_iters += 1
        return self._hvp(theta, x, v)

    def upper_value(self, theta: Tensor, x: Tensor) -> float:
        """g(x, θ) + r(θ) at an approximate lower solution; counted in ``ul_evals``."""
        self._charge()
        self.counters.ul_evals += 1
        with torch.no_grad():
            return float(self.ul_g(theta, x) + self.ul_reg(theta))

    def upper_value_graph(self, theta: Tensor, x: Tensor) -> Tensor:
        """g(x, θ) + r(θ) as a 0-d tensor keeping its autograd graph (unrolling); counted in ``ul_evals``."""
        self._charge()
        self.counters.ul_evals += 1
        return self.ul_g(theta, x) + self.ul_reg(theta)

    def ul_grad_x(self, theta: Tensor, x: Tensor) -> Tensor:
        """∇_x g(x, θ), the full gradient (its norm enters MAID's bounds on g(x̂) for every component
        of x̂ − x, on or off the active set). The adjoint system restricts it: :meth:`adjoint_rhs`.
        Counted in ``ul_grad_evals``."""
        self.counters.ul_grad_evals += 1
        return self._ul_grad_x(theta, x)

    def adjoint_rhs(self, theta: Tensor, x: Tensor) -> Tensor:
        """Right-hand side of H q = ∇_x g: the gradient restricted to the active set (``ul_grad_evals``)."""
        self.counters.ul_grad_evals += 1
        return self._mask(self._ul_grad_x(theta, x), theta, x)

    def hypergradient_from(self, theta: Tensor, x: Tensor, q: Tensor) -> Tensor:
        """z = ∂_θ g(x, θ) − Jᵀq + ∇r(θ), J = ∂_θ ∇_x h(x, θ) (paper Alg. 1, step 3); ``hypergrad_evals``."""
        self.counters.hypergrad_evals += 1
        return self._hypergradient_from(theta, x, q)

    def ll_gap_grad_theta(self, theta: Tensor, x: Tensor, w: Tensor) -> Tensor:
        """∇_θ[h(x, θ) − h(w, θ)] at fixed x, w (first-order value-function methods, e.g. F2SA).

        R does not depend on θ, and h(x) − h(w) = ∫₀¹⟨∇_x f(w + t(x − w), θ), x − w⟩dt; the integral is
        taken by 2-point Gauss–Legendre, exact when the θ-dependent part of f is a polynomial of degree
        ≤ 4 in x (quadratic in every problem here). Two ∇_x f evaluations, counted in ``ll_iters``."""
        d = (x - w).detach()
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            gap = theta.new_zeros(())
            for node in (0.5 - 0.5 / 3**0.5, 0.5 + 0.5 / 3**0.5):  # Gauss–Legendre nodes on [0, 1]
                self.counters.ll_iters += 1
                gap = gap + 0.5 * (self._ll_grad(th, w.detach() + node * d) * d).sum()
            (grad,) = torch.autograd.grad(gap, th)
        return grad

    def ll_solve(
        self, theta: Tensor, x: Tensor, eps: float, max_iters: int, step: float | None = None
    ) -> LowerResult:
        """Lower-level solve warm-started at x, stopped at certified ‖x − x̂(θ)‖ ≤ eps."""
        with torch.no_grad():
            return prox_gradient_solve(self, theta, x, eps, max_iters, step, self.ll_momentum)

    def ll_unrolled(
        self, theta: Tensor, x: Tensor, n_steps: int, step: float | None, momentum: str | None = None
    ) -> Tensor:
        """n_steps of the lower solver's own iteration from x, keeping the autograd graph (unrolling, LISTA):
        the loop of ``problems.lower`` with the problem's ``ll_momentum`` (ISTA, FISTA's t_k rule or the
        constant strongly-convex momentum), restarted at x, and a fixed number of steps instead of a
        stopping test, so it runs exactly the steps of a solve. Each step is one counted ``ll_grad``; each
        step a backward pass goes through is counted in ``ll_backward_iters`` when that backward pass really
        runs. ``momentum`` overrides the problem's rule (e.g. "none": plain steps, whose K-step gradient is
        the truncated Neumann series; trbp)."""
        lip = self.ll_lipschitz(theta.detach())
        lam = 1.0 / lip if step is None else step
        rule = self.ll_momentum if momentum is None else momentum
        betas = momentum_coefficients(rule, lip, self.ll_mu(theta.detach()))
        steps = ProxGradStep(self, theta, lam, on_step=self._hook_backward_count)
        return iterate(steps, x, betas, FixedSteps(), n_steps).x

    def _hook_backward_count(self, x_new: Tensor) -> None:
        if x_new.requires_grad:
            x_new.register_hook(self._count_backward_step)

    def _count_backward_step(self, grad: Tensor) -> None:
        """Tensor hook: autograd computed the gradient of one unrolled step's output (one backward step)."""
        self.counters.ll_backward_iters += 1

    def adjoint_solve(
        self,
        theta: Tensor,
        x: Tensor,
        tol: float,
        max_iters: int,
        q0: Tensor | None = None,
        *,
        ul_grad: Tensor | None = None,
        precondition: str = "none",
    ) -> tuple[Tensor, float]:
        """CG on H q = ∇_x g(x, θ) until ‖H q − ∇_x g‖ ≤ tol. Returns (q, residual norm).

        ``ul_grad``: ∇_x g(x, θ) when the caller already has it (not recomputed). ``precondition``:
        ``"none"`` (plain CG, the paper's) or a kind of :meth:`adjoint_preconditioner` (same residual
        test, usually fewer steps; each step also applies M⁻¹, uncounted)."""
        with torch.no_grad():
            grad = self.ul_grad_x(theta, x) if ul_grad is None else ul_grad  # counted
            rhs = self._mask(grad, theta, x)
            if q0 is not None:
                q0 = self._mask(q0, theta, x)
            precond = None if precondition == "none" else self.adjoint_preconditioner(theta, x, precondition)
            return conjugate_gradient(lambda v: self.hvp(theta, x, v), rhs, q0, tol, max_iters, precond)

    def tangent_solve(
        self, theta: Tensor, x: Tensor, v: Tensor, tol: float, max_iters: int, w0: Tensor | None = None
    ) -> tuple[Tensor, float]:
        """CG on H w = J v (J = ∂_θ∇_x h, on the active set) until ‖H w − J v‖ ≤ tol: w = −(dx̂/dθ)v,
        so x̂(θ − t v) ≈ x̂(θ) + t w (a first-order warm start). Returns (w, residual norm)."""
        with torch.no_grad():
            rhs = self._mask(self._ll_grad_jvp_theta(theta, x, v), theta, x)
            if w0 is not None:
                w0 = self._mask(w0, theta, x)
            return conjugate_gradient(lambda u: self.hvp(theta, x, u), rhs, w0, tol, max_iters)

    def adjoint_preconditioner(self, theta: Tensor, x: Tensor, kind: str) -> Callable[[Tensor], Tensor]:
        """v ↦ M⁻¹v for a symmetric positive definite M ≈ ∇²_xx h(x, θ) of the named kind."""
        raise ValueError(f"{self.name} has no adjoint preconditioner {kind!r}; use 'none'")

    # ------------------------------------------------------------------ autograd defaults
    def _mask(self, v: Tensor, theta: Tensor, x: Tensor) -> Tensor:
        mask = self.active_mask(theta, x)
        return v if mask is None else v * mask

    def _hvp(self, theta: Tensor, x: Tensor, v: Tensor) -> Tensor:
        v = self._mask(v, theta, x)
        with torch.enable_grad():
            # H symmetric: H v = ∂_x⟨∇_x f(x, θ), v⟩, one backward pass through the gradient.
            x_ = x.detach().requires_grad_(True)
            (hv,) = torch.autograd.grad((self._ll_grad(theta.detach(), x_) * v).sum(), x_)
        return self._mask(hv, theta, x)

    def _ul_grad_x(self, theta: Tensor, x: Tensor) -> Tensor:
        with torch.enable_grad():
            x_ = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.ul_g(theta.detach(), x_), x_)
        return grad

    def _ll_grad_jvp_theta(self, theta: Tensor, x: Tensor, v: Tensor) -> Tensor:
        """J v = ∂_θ∇_x f(x, θ)·v: the gradient in u of ⟨∂_θ⟨∇_x f(x, θ), u⟩, v⟩ (linear in u)."""
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            u = torch.zeros_like(x, requires_grad=True)
            (vjp,) = torch.autograd.grad((self._ll_grad(th, x.detach()) * u).sum(), th, create_graph=True)
            (jv,) = torch.autograd.grad((vjp * v).sum(), u)
        return jv

    def _hypergradient_from(self, theta: Tensor, x: Tensor, q: Tensor) -> Tensor:
        q = self._mask(q, theta, x).detach()
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            # −Jᵀq = −∂_θ⟨∇_x f(x, θ), q⟩ with x and q held fixed; one backward pass.
            lagrangian = self.ul_g(th, x) + self.ul_reg(th) - (self._ll_grad(th, x) * q).sum()
            (grad,) = torch.autograd.grad(lagrangian, th)
        return grad

    # ------------------------------------------------------------------ reference API (uncounted)
    @contextlib.contextmanager
    def uncounted(self) -> Iterator[None]:
        """Evaluation is never charged: counters, and every per-θ cache of the instance (each attribute that
        is a ``problems.caches.PerThetaCache``, so that evaluation neither pays for nor pre-pays a solver's
        set-up work), are restored on exit, and no budget is armed inside."""
        saved = self.counters.snapshot()
        caches = [(c, c.snapshot()) for c in vars(self).values() if isinstance(c, PerThetaCache)]
        saved_budget, self._budget = self._budget, None
        try:
            yield
        finally:
            self._budget = saved_budget
            for key, value in saved.items():
                setattr(self.counters, key, value)
            for cache, state in caches:
                cache.restore(state)

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
        self, theta: Tensor, tol: float | None = None, max_iters: int = REFERENCE_MAX_ITERS
    ) -> Tensor:
        """x̂(θ) to certified accuracy tol (default :meth:`reference_tol`) from x0 (uncounted reference)."""
        self.require_certificate("solve_lower")
        return self._reference_solve(self._as_tensor(theta), tol, max_iters)

    def _reference_solve(
        self, theta: Tensor, tol: float | None, max_iters: int, *, below_floor: bool = False
    ) -> Tensor:
        """Uncounted lower solve from x0 until the stopping test ‖∇h‖/μ ≤ tol (no certificate check).

        A tol below the dtype's accuracy floor (``LowerResult.eps_floor``) is clipped by the lower solver;
        the reference API then raises, since the result would not have the accuracy asked for, unless
        ``below_floor`` (baselines that accept the floor-accurate point, e.g. the TV baseline in float32)."""
        if tol is None:
            tol = self.reference_tol(theta)
        with self.uncounted():
            res = self.ll_solve(theta, self.x0, tol, max_iters)
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
        return res.x

    def upper_objective(self, theta: Tensor, tol: float | None = None) -> float:
        """F(θ) with the lower level solved to certified accuracy tol (default :meth:`reference_tol`)."""
        self.require_certificate("upper_objective")
        theta = self._as_tensor(theta)
        x = self._reference_solve(theta, tol, REFERENCE_MAX_ITERS)
        with torch.no_grad(), self.uncounted():
            return float(self.ul_g(theta, x) + self.ul_reg(theta))

    def hypergradient(self, theta: Tensor, tol: float | None = None) -> Tensor:
        """∇F(θ) with x̂ to accuracy tol (default :meth:`reference_tol`) and the adjoint H q = ∇_x g solved
        by CG to ‖H q − ∇_x g‖ ≤ reference_rtol(θ)·‖∇_x g‖."""
        self.require_certificate("hypergradient")
        theta = self._as_tensor(theta)
        x = self._reference_solve(theta, tol, REFERENCE_MAX_ITERS)
        with self.uncounted():
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

    def describe(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"
