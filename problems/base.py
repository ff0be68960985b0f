"""The bilevel-problem protocol: the maths of one problem family and its counted oracles.

    upper:  F(θ) = g(x̂(θ), θ) + r(θ)
    lower:  x̂(θ) = argmin_x h(x, θ),   h = f + R   (f smooth, R with a cheap prox; R = 0 if smooth)

A subclass states the maths (``_ll_grad`` = ∇_x f, ``ll_prox``, ``ul_g``, ``ul_reg``, constants);
the base class turns it into the oracles solvers call, and *counts every call* in ``counters``.
Closed forms may override ``_hvp``, ``_ul_grad_x`` and ``_hypergradient_from``; the autograd
defaults here are the reference they are tested against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from problems import optima
from problems.counting import Budget, BudgetExhausted, Counted, Counters
from problems.linalg import conjugate_gradient
from problems.lower import (
    FixedSteps,
    LowerCaps,
    LowerResult,
    ProxGradStep,
    iterate,
    momentum_coefficients,
    prox_gradient_solve,
)
from problems.params import ProblemParams, signature_of
from problems.reference import REFERENCE_MAX_ITERS, REFERENCE_RTOL, RESOLUTION_FACTOR, ReferenceAPI

#: What a problem can show in figures (``BilevelProblem.figures``); each capability names what the problem
#: then provides, so a report asks for the capability instead of guessing from metric names or shapes:
#: a 1D signal — ``x_true`` and ``y`` are vectors like x (optionally a grid ``t``): reconstructions vs truth
SIGNAL = "signal"
#: an operator — θ is a matrix, shown as an image of θ − θ₀
OPERATOR = "operator"
#: an image — ``x_true``, ``y`` and x are (3, H, W) in [0, 1]; ``metrics`` gives psnr and ssim, and
#: ``blurry_metrics()`` / ``tv_reference()`` the baselines (``problems/quality2d.py``)
IMAGE = "image"
#: a kernel — θ is a (C, k, k) convolution kernel, shown with |θ − θ₀|
KERNEL = "kernel"
FIGURES = (SIGNAL, OPERATOR, IMAGE, KERNEL)

#: What a problem's lower level offers beyond the oracles every problem provides (``ll_solve``,
#: ``adjoint_solve``, ``tangent_solve``, ``ll_unrolled``, ``hypergradient_from``, which a problem implements
#: however its lower level needs): ``BilevelProblem.ll_capabilities``. A solver that uses more states it in
#: ``requires`` (``solvers/base.py``) and is refused, before any run, on a problem without it.
#: the prox-gradient form — h = f + R with ∇f and a cheap prox of R, so prox-gradient steps on h
#: (``ll_grad``, ``ll_prox``, ``problems.lower``) and the Hessian of h on the active set (``hvp``,
#: ``adjoint_rhs``, ``active_mask``) are valid building blocks; missing for a lower level like TV itself
PROX_GRADIENT = "prox_gradient"
#: what a solver lacking a capability is told (``adpbench list solvers``, the refusal of ``adpbench run``)
CAPABILITY_NOTES = {PROX_GRADIENT: "not applicable to non-smooth lower level (needs the prox-gradient form)"}

__all__ = [  # re-exported from counting.py and reference.py
    "CAPABILITY_NOTES",
    "PROX_GRADIENT",
    "REFERENCE_MAX_ITERS",
    "REFERENCE_RTOL",
    "RESOLUTION_FACTOR",
    "BilevelProblem",
    "BudgetExhausted",
    "Counters",
]


class BilevelProblem(ReferenceAPI, Counted):
    """Base class of every problem. See the module docstring for the maths; counting and budgets are in
    ``problems/counting.py``, the uncounted reference API in ``problems/reference.py``."""

    name: ClassVar[str] = "abstract"
    #: keys of the dict returned by :meth:`metrics`
    metric_names: ClassVar[tuple[str, ...]] = ()
    #: what the problem can show in figures (a subset of ``FIGURES``; none: the convergence curves only)
    figures: ClassVar[frozenset[str]] = frozenset()
    #: ``g(·, θ)`` convex in x: the MAID lower bound then needs no curvature term
    ul_convex_in_x: ClassVar[bool] = True
    #: momentum of the lower-level solver: "none" (ISTA/GD), "fista", "strongly_convex"
    ll_momentum: ClassVar[str] = "none"
    #: momentum of the reference (evaluation) solve, None = ``ll_momentum``: the certificate does not
    #: depend on the path, so a problem whose solvers use ISTA (as its paper does) may evaluate faster
    reference_momentum: ClassVar[str | None] = None
    #: ``ll_mu`` is a true strong-convexity modulus of h(·, θ), so ‖∇h‖/μ bounds ‖x − x̂‖ (False: μ nominal;
    #: the reference API then raises at once). An instance may set its own value.
    certified: bool = True
    #: ``ll_mu`` is a true strong-convexity bound of h(·, θ) (the stopping test may still differ from
    #: ‖∇h‖ ≤ μ·tol, e.g. deblur2d's per-channel mean); the reference API refuses at once when False
    mu_is_bound: bool = True
    #: why the harness cannot evaluate this instance exactly at an affordable cost (None: it can); its
    #: exact columns then stay NaN and its verdict says so, never a value the solver reported
    evaluation_unavailable: str | None = None
    #: lower-level capabilities (``CAPABILITY_NOTES``); an instance may have fewer (deblur2d, regulariser=tv)
    ll_capabilities: frozenset[str] = frozenset({PROX_GRADIENT})
    #: the problem's parameters (a frozen dataclass, ``problems/params.py``): one declaration drives the
    #: constructor, ``params``, validation, the memory estimate and the listings
    Params: ClassVar[type[ProblemParams]] = ProblemParams
    #: the harness's exact evaluation (``bench/evaluation.py``) is cheap next to an upper iteration: it
    #: evaluates F(θ_k) and ‖∇F(θ_k)‖ at every row (otherwise F on a log-spaced schedule, no ‖∇F‖)
    cheap_evaluation: ClassVar[bool] = False
    #: caps a protocol puts on every solver's counted lower and CG solves (``problems.lower.LowerCaps``;
    #: a problem built from a named parameter set takes them from it)
    lower_caps: LowerCaps = LowerCaps()

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
        """The initial upper-level step shared by every solver on this problem (docs/maths.md §7)."""
        raise NotImplementedError

    def metrics(self, theta: Tensor, x: Tensor) -> dict[str, float]:
        """Untimed evaluation metrics of a reconstruction x (never calls a counted oracle)."""
        return {}

    # ------------------------------------------------------------------ counted oracles
    def ll_grad(self, theta: Tensor, x: Tensor) -> Tensor:
        """One lower-level iteration's gradient ∇_x f(x, θ); counted in ``ll_iters``."""
        self._count("ll_iters")
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
        self._count("cg_iters")
        return self._hvp(theta, x, v)

    def upper_value(self, theta: Tensor, x: Tensor) -> float:
        """g(x, θ) + r(θ) at an approximate lower solution; counted in ``ul_evals``."""
        self._count("ul_evals")
        with torch.no_grad():
            return float(self.ul_g(theta, x) + self.ul_reg(theta))

    def upper_value_graph(self, theta: Tensor, x: Tensor) -> Tensor:
        """g(x, θ) + r(θ) as a 0-d tensor keeping its autograd graph (unrolling); counted in ``ul_evals``."""
        self._count("ul_evals")
        return self.ul_g(theta, x) + self.ul_reg(theta)

    def ul_grad_x(self, theta: Tensor, x: Tensor) -> Tensor:
        """∇_x g(x, θ), the full gradient (its norm enters MAID's bounds on g(x̂) for every component
        of x̂ − x, on or off the active set). The adjoint system restricts it: :meth:`adjoint_rhs`.
        Counted in ``ul_grad_evals``."""
        self._count("ul_grad_evals")
        return self._ul_grad_x(theta, x)

    def adjoint_rhs(self, theta: Tensor, x: Tensor) -> Tensor:
        """Right-hand side of H q = ∇_x g: the gradient restricted to the active set (``ul_grad_evals``)."""
        self._count("ul_grad_evals")
        return self._mask(self._ul_grad_x(theta, x), theta, x)

    def hypergradient_from(self, theta: Tensor, x: Tensor, q: Tensor) -> Tensor:
        """z = ∂_θ g(x, θ) − Jᵀq + ∇r(θ), J = ∂_θ ∇_x h(x, θ) (paper Alg. 1, step 3); ``hypergrad_evals``."""
        self._count("hypergrad_evals")
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
                self._count("ll_iters")
                gap = gap + 0.5 * (self._ll_grad(th, w.detach() + node * d) * d).sum()
            (grad,) = torch.autograd.grad(gap, th)
        return grad

    def ll_solve(
        self,
        theta: Tensor,
        x: Tensor,
        eps: float,
        max_iters: int,
        step: float | None = None,
        *,
        momentum: str | None = None,
    ) -> LowerResult:
        """Lower-level solve warm-started at x, stopped at certified ‖x − x̂(θ)‖ ≤ eps (at most
        ``max_iters`` steps, and at most the protocol's cap :attr:`lower_caps`); ``momentum`` overrides the
        problem's rule (the reference solve's ``reference_momentum``)."""
        max_iters = self._capped("ll_max_iters", max_iters)
        with torch.no_grad():
            rule = self.ll_momentum if momentum is None else momentum
            return prox_gradient_solve(self, theta, x, eps, max_iters, step, rule)

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

    def config_refusal(self, config: dict[str, Any]) -> str | None:
        """Why this instance cannot run a solver with these settings (None: it can), so that a setting the
        lower level cannot honour is refused before any run, not at its first use. None here."""
        return None

    def _capped(self, kind: str, max_iters: int) -> int:
        """A solver's iteration cap limited by the protocol's (:attr:`lower_caps`); the uncounted reference
        solves keep theirs."""
        return max_iters if getattr(self, "_evaluating", 0) else self.lower_caps.cap(kind, max_iters)

    def _hook_backward_count(self, x_new: Tensor) -> None:
        if x_new.requires_grad:
            x_new.register_hook(self._count_backward_step)

    def _count_backward_step(self, grad: Tensor) -> None:
        """Tensor hook: autograd computed the gradient of one unrolled step's output (one backward step)."""
        self._count("ll_backward_iters")

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
        test, usually fewer steps; each step also applies M⁻¹, uncounted). At most the protocol's CG cap."""
        max_iters = self._capped("cg_max_iters", max_iters)
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
        max_iters = self._capped("cg_max_iters", max_iters)
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

    def reference_optimum(self) -> float | None:
        """F* = min_θ F(θ) of this instance, or None when unknown: a closed form where a subclass has one,
        else the committed best-known value of ``problems/optima.json`` (``problems/optima.py``)."""
        entry = optima.lookup(self.name, self.params)
        return None if entry is None else float(entry["value"])

    def describe(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"
