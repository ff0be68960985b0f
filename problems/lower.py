"""The lower-level loop: (accelerated) proximal gradient with the momentum, step and stopping test passed in.

    y₀ = x₀,   x_{k+1} = prox_{λR}(y_k − λ∇f(y_k)),   y_{k+1} = x_{k+1} + β_k (x_{k+1} − x_k)

:func:`iterate` is the only such loop in the project. What varies is passed in:

* momentum β_k (:func:`momentum_coefficients`): "none" (ISTA / gradient descent, y = x), "fista" (t₁ = 1,
  t_{k+1} = (1 + √(1 + 4t_k²))/2, β_k = (t_k − 1)/t_{k+1}), "strongly_convex" (β = (√L − √μ)/(√L + √μ));
* the step y ↦ (x_{k+1}, ∇f(y)) (:class:`ProxGradStep`, λ = 1/L unless given; a closed form may pass its own,
  e.g. deconv1d's unrolled ISTA that records what its hand-written backward needs);
* the stopping test: :class:`CertifiedStop` (below; every certified solve, :func:`prox_gradient_solve`),
  :class:`FixedSteps` (unrolling: ``BilevelProblem.ll_unrolled`` keeps the autograd graph through K steps),
  or the authors' test (``problems/authors2d.py``).

The extrapolation is one ``torch.lerp`` (x_{k+1} + β(x_{k+1} − x_k) in one pass) and the step one
``torch.add(y, ∇f, alpha=−λ)``, so a solve and an unrolling of the same steps agree to the last bit.

**Certificate** (paper Lemma 2): for h = f + R μ-strongly convex, with the prox-gradient map
G_λ(y) = (y − prox_{λR}(y − λ∇f(y)))/λ, λ ≤ 1/L,

    ‖prox-step − x̂‖ ≤ ‖y − x̂‖ ≤ (1 + λL)‖G_λ(y)‖ / μ,        and for smooth h: ‖y − x̂‖ ≤ ‖∇h(y)‖/μ.

:class:`CertifiedStop` stops as soon as that bound is ≤ eps. One iteration = one counted ``problem.ll_grad``.

**Accuracy floor.** ∇h is computed with a rounding error of order eps_machine·L·‖x‖ (‖∇²h x‖ ≤ L‖x‖),
so the certificate cannot resolve distances below

    ε_floor = FLOOR_FACTOR · eps_machine · c_cert · (L·‖x‖ + ‖G(x)‖),   c_cert = 1/μ (smooth), (1 + λL)/μ,

with x the solve's start point and G(x) its (prox-)gradient map (the scale of ∇f's terms when
x = 0). Measured on deblur2d (certified, 32×32 and 128×128, float32 and float64): the smallest ‖∇h‖
reached in 9 000 iterations is 0.39–0.47·eps_machine·L·‖x‖, so with FLOOR_FACTOR = 1 the floor sits about
2× above what rounding allows (deconv1d in float64 reaches 1e-13 against a floor of 5.6e-14 from x = 0).
A request eps < ε_floor is clipped to ε_floor (``LowerResult.eps_floor`` records it; ``converged`` then
means "reached the floor") instead of iterating on rounding noise. A stall rule remains only as a
safeguard *at* the floor: it stops a solve whose bound is within STALL_MARGIN·ε_floor and has not improved
for STALL_ITERS iterations, so it cannot fire on a solve that is still converging above the dtype's
resolution (FISTA's bound is not monotone).

**Host reads.** The bound is computed on the device and read back once every ``check_every`` iterations
(the only host synchronisation of the loop; one more for ‖x‖ at the start, fused with the first check).
On the CPU a read costs nothing, so the default is 1 there and counts are those of a test at every
iteration; on an accelerator the default is CHECK_EVERY_ACCELERATOR, and a solve then runs at most
check_every − 1 iterations past the first one that would have passed the test (counted: ``ll_iters`` is
the gradients really computed).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

MOMENTA = ("none", "fista", "strongly_convex")
FLOOR_FACTOR = 1.0
STALL_ITERS = 1000
STALL_MARGIN = 100.0
#: relative decrease of the bound that counts as progress for the stall rule
STALL_PROGRESS = 1e-3
CHECK_EVERY_ACCELERATOR = 16


@dataclass
class LowerResult:
    x: Tensor
    iters: int
    dist_bound: float  # certified bound on ‖x − x̂(θ)‖
    converged: bool  # dist_bound ≤ max(eps, eps_floor)
    eps_floor: float = 0.0  # the dtype's accuracy floor for this solve (module docstring)


class Stop(Protocol):
    """A stopping test of :func:`iterate`."""

    def start(self, x: Tensor, max_iters: int) -> None: ...

    def check(self, k: int, y: Tensor, x_new: Tensor, grad: Tensor) -> LowerResult | None:
        """After step k from y to x_new (with ∇f(y) = grad): the result to return, or None to go on."""

    def at_cap(self, x_last: Tensor, max_iters: int) -> LowerResult: ...


def default_check_every(device: torch.device) -> int:
    """Iterations between two host reads of the stopping test: 1 on the CPU, more on an accelerator."""
    return 1 if device.type == "cpu" else CHECK_EVERY_ACCELERATOR


def accuracy_floor(
    dtype: torch.dtype, cert_factor: float, lip: float, x_norm: float, res_norm: float = 0.0
) -> float:
    """ε_floor = FLOOR_FACTOR · eps_machine · c_cert · (L·‖x‖ + ‖G(x)‖) (module docstring)."""
    return FLOOR_FACTOR * torch.finfo(dtype).eps * cert_factor * (lip * x_norm + res_norm)


def momentum_coefficients(rule: str, lip: float, mu: float) -> Iterator[float] | None:
    """β_k of the named rule (module docstring); None for "none" (plain steps, y_{k+1} = x_{k+1})."""
    check_momentum(rule)
    if rule == "none":
        return None
    if rule == "strongly_convex":
        return itertools.repeat((math.sqrt(lip) - math.sqrt(mu)) / (math.sqrt(lip) + math.sqrt(mu)))
    return _fista_coefficients()


def check_momentum(rule: str) -> None:
    if rule not in MOMENTA:
        raise ValueError(f"momentum must be one of {', '.join(MOMENTA)}; got {rule!r}")


def _fista_coefficients() -> Iterator[float]:
    t = 1.0
    while True:
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        yield (t - 1.0) / t_next
        t = t_next


@dataclass(frozen=True)
class LowerCaps:
    """Iteration caps a protocol puts on every solver's lower-level work through the problem: each counted
    lower solve (``ll_solve``) runs at most ``ll_max_iters`` steps and each CG solve (``adjoint_solve``,
    ``tangent_solve``) at most ``cg_max_iters``, whatever the solver asks for (None: no cap). The problem's
    uncounted reference solves are never capped: they measure, they are not part of any protocol."""

    ll_max_iters: int | None = None
    cg_max_iters: int | None = None

    def cap(self, kind: str, max_iters: int) -> int:
        """``max_iters`` limited by the cap of ``kind`` ("ll_max_iters" or "cg_max_iters")."""
        limit = getattr(self, kind)
        return max_iters if limit is None else min(max_iters, limit)


@dataclass
class ProxGradStep:
    """y ↦ (prox_{λR}(y − λ∇f(y)), ∇f(y)) with one counted ``problem.ll_grad``; ``on_step`` sees each new
    iterate (unrolling hooks its backward counter there)."""

    problem: Any  # a BilevelProblem, or any view with ll_grad, ll_prox and ll_smooth
    theta: Tensor
    lam: float
    on_step: Callable[[Tensor], None] | None = None

    def __post_init__(self) -> None:
        self.smooth = self.problem.ll_smooth

    def __call__(self, y: Tensor) -> tuple[Tensor, Tensor]:
        grad = self.problem.ll_grad(self.theta, y)
        x_new = torch.add(y, grad, alpha=-self.lam)
        if not self.smooth:
            x_new = self.problem.ll_prox(x_new, self.lam)
        if self.on_step is not None:
            self.on_step(x_new)
        return x_new, grad


def iterate(
    step: Callable[[Tensor], tuple[Tensor, Any]],
    x: Tensor,
    momentum: Iterator[float] | None,
    stop: Stop,
    max_iters: int,
) -> LowerResult:
    """The loop of the module docstring: at most ``max_iters`` steps from x, until ``stop`` says so."""
    stop.start(x, max_iters)
    y = x_prev = x
    for k in range(1, max_iters + 1):
        x_new, grad = step(y)
        done = stop.check(k, y, x_new, grad)
        if done is not None:
            return done
        y = x_new if momentum is None else torch.lerp(x_new, x_prev, -next(momentum))
        x_prev = x_new
    return stop.at_cap(x_prev, max_iters)


class FixedSteps:
    """Exactly ``max_iters`` steps (unrolling); the result carries no certificate."""

    def start(self, x: Tensor, max_iters: int) -> None:
        pass

    def check(self, k: int, y: Tensor, x_new: Tensor, grad: Tensor) -> None:
        return None

    def at_cap(self, x_last: Tensor, max_iters: int) -> LowerResult:
        return LowerResult(x_last, max_iters, math.inf, False)


class CertifiedStop:
    """The certified test of the module docstring, read on the host every ``check_every`` iterations."""

    def __init__(self, eps: float, lip: float, mu: float, lam: float, smooth: bool, check_every: int):
        self.eps, self.lip, self.lam, self.smooth, self.check_every = eps, lip, lam, smooth, check_every
        # the certificate for smooth h is ‖∇h(y)‖/μ; for composite h, (1 + λL)‖G_λ(y)‖/μ
        self.factor = (1.0 if smooth else 1.0 + lam * lip) / mu

    def start(self, x: Tensor, max_iters: int) -> None:
        self.x_norm = torch.linalg.vector_norm(x)  # read with the first check: the floor's scale
        self.dtype, self.max_iters = x.dtype, max_iters
        self.floor = self.target = self.bound = self.best = math.inf
        self.best_k = 0

    def check(self, k: int, y: Tensor, x_new: Tensor, grad: Tensor) -> LowerResult | None:
        if not (k % self.check_every == 0 or k == 1 or k == self.max_iters):
            return None
        # one host read: the bound of y (smooth) or of the prox step x_new (composite)
        res = (
            torch.linalg.vector_norm(grad) if self.smooth else torch.linalg.vector_norm(y - x_new) / self.lam
        )
        if k == 1:
            res_norm, x0_norm = torch.stack((res, self.x_norm)).tolist()
            self.floor = accuracy_floor(self.dtype, self.factor, self.lip, x0_norm, res_norm)
            self.target = max(self.eps, self.floor)
        else:
            res_norm = res.item()
        self.bound = bound = self.factor * res_norm
        if bound <= self.target:
            return LowerResult(y if self.smooth else x_new, k, bound, True, self.floor)
        if bound < self.best * (1.0 - STALL_PROGRESS):
            self.best, self.best_k = bound, k
        elif bound <= STALL_MARGIN * self.floor and k - self.best_k >= STALL_ITERS:
            return LowerResult(x_new, k, bound, False, self.floor)  # x_new: a step from y, no farther
        return None

    def at_cap(self, x_last: Tensor, max_iters: int) -> LowerResult:
        # x_last is the step taken from the last checked point y; a (prox-)gradient step with
        # λ ≤ 1/L does not move away from x̂, so the bound of y holds for it too.
        return LowerResult(x_last, max_iters, self.bound, self.bound <= self.target, self.floor)


def diverged(x: Tensor) -> LowerResult:
    """The result for a θ that has overflowed (L or λ not finite, a diverging upper iteration): nothing to
    solve or certify. A non-finite point, rather than an exception inside the prox, so the run is
    recorded as diverged."""
    return LowerResult(torch.full_like(x, math.nan), 0, math.inf, False)


def prox_gradient_solve(
    problem: Any,
    theta: Tensor,
    x: Tensor,
    eps: float,
    max_iters: int,
    step: float | None = None,
    momentum: str = "none",
    check_every: int | None = None,
) -> LowerResult:
    """ISTA / FISTA from x until the certified distance to x̂(θ) is ≤ max(eps, ε_floor), at most
    max_iters steps; the test is read on the host every ``check_every`` iterations (module docstring).
    ``problem``: a BilevelProblem or any view with ``ll_grad``, ``ll_prox``, ``ll_smooth``,
    ``ll_lipschitz`` and ``ll_mu`` (e.g. F2SA's penalised lower problem)."""
    check_momentum(momentum)
    check_every = default_check_every(x.device) if check_every is None else int(check_every)
    if check_every < 1:
        raise ValueError(f"check_every must be ≥ 1, got {check_every}")
    lip = problem.ll_lipschitz(theta)
    mu = problem.ll_mu(theta)
    lam = 1.0 / lip if step is None else float(step)
    if not (math.isfinite(lip) and math.isfinite(lam)):
        return diverged(x)
    betas = momentum_coefficients(momentum, lip, mu)
    stop = CertifiedStop(eps, lip, mu, lam, problem.ll_smooth, check_every)
    return iterate(ProxGradStep(problem, theta, lam), x, betas, stop, max_iters)
