"""`deconv1d` — paper §4.1 (Arndt's 1D experiment).

    θ = B ∈ R^{n×n},  lower  h(x, B) = ½‖Bx − y‖² + a₁‖x‖₁ + (a₂/2)‖x‖²   (f = ½‖Bx−y‖² + (a₂/2)‖x‖²)
    upper  g(x) = ½‖Ax − y‖²  (or ½‖Bx − y‖² for upper_operator="learned"),  r(B) = (β/2)‖B − A‖²_F

Hypergradient on the active set 𝒜 = {x_i ≠ 0}:  (B_𝒜ᵀB_𝒜 + a₂I) q_𝒜 = (∇_x g)_𝒜, q = 0 off 𝒜,
∇_B F = −[(Bx − y)qᵀ + (Bq)xᵀ] + β(B − A) (+ (Bx − y)xᵀ when g uses B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from problems.base import OPERATOR, SIGNAL, BilevelProblem
from problems.caches import RecentSetups
from problems.lower import FixedSteps, iterate
from problems.params import ProblemParams, matrix_bytes, param


def gaussian_blur_matrix(n: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A_ij = exp(−(i−j)²/(2σ²)) / (σ√(2π)) (σ in samples)."""
    idx = torch.arange(n, dtype=dtype, device=device)
    diff = idx[:, None] - idx[None, :]
    return torch.exp(-(diff**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))


def piecewise_constant_truth(t: Tensor) -> Tensor:
    """x† = 1·[t>−0.6] − 0.7·[t>−0.5] − 0.3·[t>0] + 0.7·[t>0.2] − 0.7·[t>0.5]."""
    jumps = ((-0.6, 1.0), (-0.5, -0.7), (0.0, -0.3), (0.2, 0.7), (0.5, -0.7))
    return sum(h * (t > t0).to(t.dtype) for t0, h in jumps)


def normal_matrix(theta: Tensor, a2: float) -> Tensor:
    """BᵀB + a₂I, the Hessian of f (the per-θ set-up of deconv1d: one n×n×n matmul)."""
    hess = theta.T @ theta
    hess.diagonal().add_(a2)
    return hess


def schur_norm_sq(mat: Tensor) -> float:
    """Upper bound ‖M‖₂² ≤ ‖M‖₁‖M‖_∞ (Schur test); tight for near-Toeplitz blur matrices."""
    return float(mat.abs().sum(0).max() * mat.abs().sum(1).max())


class _UnrolledISTA(torch.autograd.Function):
    """x_K of K ISTA steps x ← S_{λa₁}(x − λ(Hx + c)), H = BᵀB + a₂I, c = −Bᵀy (``problems.lower.iterate``
    with this closed-form step, recording what the backward needs), with a hand-written backward: the
    adjoint recursion u_k = m_k ⊙ (u_{k+1} − λHu_{k+1}) and ∂H = −λ Σ_k u_k x_kᵀ as one matmul. Same maths
    as autograd through K steps (tested), without K outer-product accumulations."""

    @staticmethod
    def forward(
        ctx,
        hess: Tensor,
        c: Tensor,
        x: Tensor,
        lam: float,
        threshold: float,
        n_steps: int,
        problem: Deconv1D,
    ) -> Tensor:
        xs, masks = [], []

        def step(x: Tensor) -> tuple[Tensor, None]:
            v = x - lam * torch.addmv(c, hess, x)
            xs.append(x)  # what the backward needs: every step's input and active set
            masks.append(v.abs() > threshold)
            return torch.nn.functional.softshrink(v, threshold), None

        x = iterate(step, x, None, FixedSteps(), n_steps).x  # the one lower loop, plain ISTA steps
        ctx.save_for_backward(hess, torch.stack(xs), torch.stack(masks))
        ctx.lam = lam
        ctx.problem = problem  # counts (and charges) the backward steps
        return x

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        hess, xs, masks = ctx.saved_tensors
        lam = ctx.lam
        ctx.problem._count("ll_backward_iters", xs.shape[0])  # this backward pass goes through every step
        us = torch.empty_like(xs)
        g = grad_out
        for k in range(xs.shape[0] - 1, -1, -1):
            u = g * masks[k]  # gradient w.r.t. the pre-threshold v_k
            us[k] = u
            g = u - lam * torch.mv(hess.T, u)  # gradient w.r.t. x_k
        grad_hess = -lam * (us.T @ xs)
        grad_c = -lam * us.sum(0)
        return grad_hess, grad_c, g, None, None, None, None


@dataclass(frozen=True)
class Deconv1DParams(ProblemParams):
    """The 1D deconvolution of the paper: n samples of a piecewise-constant x† on [−1, 1]."""

    problem: ClassVar[str] = "deconv1d"

    n: int = param(200, "grid points on [−1, 1] (x ∈ Rⁿ, B ∈ R^{n×n})", ge=2)
    sigma: float = param(5.0, "width of the Gaussian blur A, in samples", gt=0)
    noise: float = param(0.005, "standard deviation of the noise on y", ge=0)
    a1: float = param(0.108, "ℓ¹ weight a₁ of the lower level", ge=0)
    a2: float = param(0.027, "ℓ² weight a₂ of the lower level (= μ)", gt=0, why="strong convexity")
    beta: float = param(0.0, "weight β of r(B) = (β/2)‖B − A‖²_F", ge=0)
    upper_operator: str = param(
        "known", "g measures the data fit with the known A or the learned B", choices=("known", "learned")
    )
    seed: int = param(0, "seed of the noise draw")
    step0: float = param(1e-3, "initial upper-level step shared by every solver", gt=0)

    def memory_bytes(self, itemsize: int) -> int:
        return matrix_bytes(self.n, itemsize)


@dataclass
class _Setup:
    """Per-θ quantities, computed once per B (one matmul; counted in ``setup_evals``) so an ISTA step is
    one matvec."""

    hess: Tensor  # BᵀB + a₂I
    neg_bty: Tensor  # −Bᵀy, so ∇f(x) = hess·x − Bᵀy is a single addmv
    lip: float  # ‖B‖₁‖B‖_∞ + a₂ ≥ L


class Deconv1D(BilevelProblem):
    """1D deconvolution with a learned n×n operator B and an ℓ¹ + ℓ² lower level (ISTA)."""

    name = "deconv1d"
    Params = Deconv1DParams
    metric_names = ("rel_error", "l1_error")
    figures = frozenset({SIGNAL, OPERATOR})
    ll_momentum = "none"  # ISTA, as in the paper
    #: a warm-started reference solve is ~10² ISTA matvecs at n = 200, comparable to one upper iteration
    cheap_evaluation = True
    report_target = 0.0102  # ½‖Ax − y‖² level used for time-to-target (docs/maths.md)

    def __init__(self, **params: object):
        super().__init__(**params)
        c = self.config
        n, sigma, noise, seed = c.n, c.sigma, c.noise, c.seed
        self.a1, self.a2, self.beta, self.upper_operator = c.a1, c.a2, c.beta, c.upper_operator
        self._step0 = c.step0
        dev, dt = self.device, self.dtype
        self.h = 2.0 / n
        self.t = -1 + self.h / 2 + self.h * torch.arange(n, dtype=torch.float64)
        self.A = gaussian_blur_matrix(n, sigma, torch.float64, torch.device("cpu"))
        # The Gaussian tail underflows to subnormals (|i−j| ≳ 190), which slow every n² pass by
        # several × on x86; flushing them to 0 changes A by < 2.3e-308 per entry.
        self.A[self.A < torch.finfo(torch.float64).tiny] = 0.0
        self.x_true = piecewise_constant_truth(self.t)
        gen = torch.Generator().manual_seed(seed)
        # Data in float64 on the CPU from a fixed seed, then moved: identical across devices/dtypes.
        self.y = self.A @ self.x_true + noise * torch.randn(n, generator=gen, dtype=torch.float64)
        self.A, self.x_true, self.y, self.t = (v.to(dev, dt) for v in (self.A, self.x_true, self.y, self.t))
        self.theta0 = self.A.clone()
        self.x0 = torch.zeros(n, dtype=dt, device=dev)
        self._ata = self.A.T @ self.A
        self._aty = self.A.T @ self.y
        self._lg_known = float(torch.linalg.matrix_norm(self.A, 2)) ** 2
        self._setup_cache = RecentSetups(1)

    # ------------------------------------------------------------------ maths
    def _setup(self, theta: Tensor) -> _Setup:
        cached = self._setup_cache.find(theta)
        if cached is not None:
            return cached
        self._count_setup()  # one n×n×n matmul: ≈ 72 ISTA steps at n = 200 (docs/cost_model.md)
        hess = normal_matrix(theta, self.a2)
        lip = schur_norm_sq(theta.detach()) + self.a2
        return self._setup_cache.add(theta, _Setup(hess, -(theta.T @ self.y), lip))

    def _ll_grad(self, theta: Tensor, x: Tensor) -> Tensor:
        s = self._setup(theta)
        return torch.addmv(s.neg_bty, s.hess, x)

    def ll_prox(self, v: Tensor, step: float) -> Tensor:
        return torch.nn.functional.softshrink(v, step * self.a1)

    def ll_lipschitz(self, theta: Tensor) -> float:
        return self._setup(theta).lip

    def ll_unrolled(
        self, theta: Tensor, x: Tensor, n_steps: int, step: float | None, momentum: str | None = None
    ) -> Tensor:
        if momentum not in (None, "none"):
            raise ValueError(f"deconv1d unrolls ISTA steps only (momentum 'none'), got {momentum!r}")
        s = self._setup(theta)
        lam = 1.0 / s.lip if step is None else step
        self._count("ll_iters", n_steps)  # each unrolled step is one lower-level gradient step
        return _UnrolledISTA.apply(s.hess, s.neg_bty, x, lam, lam * self.a1, n_steps, self)

    def ll_mu(self, theta: Tensor) -> float:
        return self.a2

    def ul_g(self, theta: Tensor, x: Tensor) -> Tensor:
        op = self.A if self.upper_operator == "known" else theta
        return 0.5 * torch.sum((op @ x - self.y) ** 2)

    def ul_reg(self, theta: Tensor) -> Tensor:
        if not self.beta:  # β = 0 (the paper's 1D setting): skip an n² pass per evaluation
            return theta.new_zeros(())
        return 0.5 * self.beta * torch.sum((theta - self.A) ** 2)

    def ul_lipschitz_x(self, theta: Tensor) -> float:
        return self._lg_known if self.upper_operator == "known" else schur_norm_sq(theta)

    def active_mask(self, theta: Tensor, x: Tensor) -> Tensor:
        return (x != 0).to(x.dtype)

    @property
    def ul_step0(self) -> float:
        return self._step0

    # ------------------------------------------------------------------ closed forms
    def _hvp(self, theta: Tensor, x: Tensor, v: Tensor) -> Tensor:
        mask = self.active_mask(theta, x)
        return torch.mv(self._setup(theta).hess, v * mask) * mask

    def _ul_grad_x(self, theta: Tensor, x: Tensor) -> Tensor:
        if self.upper_operator == "known":
            return torch.mv(self._ata, x) - self._aty
        return theta.T @ (theta @ x - self.y)

    def _ll_grad_jvp_theta(self, theta: Tensor, x: Tensor, v: Tensor) -> Tensor:
        """J V = ∂_B[Bᵀ(Bx − y) + a₂x]·V = Vᵀ(Bx − y) + BᵀVx."""
        return v.T @ (theta @ x - self.y) + theta.T @ (v @ x)

    def _hypergradient_from(self, theta: Tensor, x: Tensor, q: Tensor) -> Tensor:
        q = q * self.active_mask(theta, x)
        res = theta @ x - self.y
        grad = -(torch.outer(res, q) + torch.outer(theta @ q, x))
        if self.upper_operator == "learned":
            grad += torch.outer(res, x)  # ∂_B g, the term the authors' code forgets
        if self.beta:
            grad += self.beta * (theta - self.A)
        return grad

    def metrics(self, theta: Tensor, x: Tensor) -> dict[str, float]:
        err = x - self.x_true
        return {
            "rel_error": float(torch.linalg.vector_norm(err) / torch.linalg.vector_norm(self.x_true)),
            "l1_error": float(self.h * err.abs().sum()),
        }
