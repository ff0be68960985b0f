"""`deconv1d` — paper §4.1 (Arndt's 1D experiment), SPEC §2.1.

    θ = B ∈ R^{n×n},  lower  h(x, B) = ½‖Bx − y‖² + a₁‖x‖₁ + (a₂/2)‖x‖²   (f = ½‖Bx−y‖² + (a₂/2)‖x‖²)
    upper  g(x) = ½‖Ax − y‖²  (or ½‖Bx − y‖² for upper_operator="learned"),  r(B) = (β/2)‖B − A‖²_F

Hypergradient on the active set 𝒜 = {x_i ≠ 0}:  (B_𝒜ᵀB_𝒜 + a₂I) q_𝒜 = (∇_x g)_𝒜, q = 0 off 𝒜,
∇_B F = −[(Bx − y)qᵀ + (Bq)xᵀ] + β(B − A) (+ (Bx − y)xᵀ when g uses B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from problems.base import BilevelProblem, Counters


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
    """x_K of K ISTA steps x ← S_{λa₁}(x − λ(Hx + c)), H = BᵀB + a₂I, c = −Bᵀy, with a hand-written
    backward: the adjoint recursion u_k = m_k ⊙ (u_{k+1} − λHu_{k+1}) and ∂H = −λ Σ_k u_k x_kᵀ as one
    matmul. Same maths as autograd through K steps (tested), without K outer-product accumulations."""

    @staticmethod
    def forward(
        ctx,
        hess: Tensor,
        c: Tensor,
        x: Tensor,
        lam: float,
        threshold: float,
        n_steps: int,
        counters: Counters,
    ) -> Tensor:
        xs, masks = [], []
        for _ in range(n_steps):
            v = x - lam * torch.addmv(c, hess, x)
            xs.append(x)
            masks.append(v.abs() > threshold)
            x = torch.nn.functional.softshrink(v, threshold)
        ctx.save_for_backward(hess, torch.stack(xs), torch.stack(masks))
        ctx.lam = lam
        ctx.counters = counters
        return x

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        hess, xs, masks = ctx.saved_tensors
        lam = ctx.lam
        ctx.counters.ll_backward_iters += xs.shape[0]  # this backward pass goes through every step
        us = torch.empty_like(xs)
        g = grad_out
        for k in range(xs.shape[0] - 1, -1, -1):
            u = g * masks[k]  # gradient w.r.t. the pre-threshold v_k
            us[k] = u
            g = u - lam * torch.mv(hess.T, u)  # gradient w.r.t. x_k
        grad_hess = -lam * (us.T @ xs)
        grad_c = -lam * us.sum(0)
        return grad_hess, grad_c, g, None, None, None, None


@dataclass
class _Setup:
    """Per-θ quantities, computed once per B (one matmul; counted in ``setup_evals``) so an ISTA step is
    one matvec."""

    key: Tensor
    version: int
    hess: Tensor  # BᵀB + a₂I
    neg_bty: Tensor  # −Bᵀy, so ∇f(x) = hess·x − Bᵀy is a single addmv
    lip: float  # ‖B‖₁‖B‖_∞ + a₂ ≥ L


class Deconv1D(BilevelProblem):
    name = "deconv1d"
    metric_names = ("rel_error", "l1_error")
    ll_momentum = "none"  # ISTA, as in the paper
    report_target = 0.0102  # ½‖Ax − y‖² level used for time-to-target (SPEC §5)
    per_theta_caches = ("_setup_cache",)

    def __init__(
        self,
        n: int = 200,
        sigma: float = 5.0,
        noise: float = 0.005,
        a1: float = 0.108,
        a2: float = 0.027,
        beta: float = 0.0,
        upper_operator: str = "known",
        seed: int = 0,
        step0: float = 1e-3,
        *,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ):
        super().__init__(dtype=dtype, device=device)
        if upper_operator not in ("known", "learned"):
            raise ValueError(f"upper_operator must be 'known' or 'learned', got {upper_operator!r}")
        if n < 2 or sigma <= 0 or noise < 0 or a1 < 0 or a2 <= 0 or beta < 0 or step0 <= 0:
            raise ValueError(
                "deconv1d needs n ≥ 2, sigma > 0, noise ≥ 0, a1 ≥ 0, a2 > 0 (strong convexity), "
                f"beta ≥ 0, step0 > 0; got n={n}, sigma={sigma}, noise={noise}, a1={a1}, a2={a2}, "
                f"beta={beta}, step0={step0}"
            )
        self.params = dict(
            n=n,
            sigma=sigma,
            noise=noise,
            a1=a1,
            a2=a2,
            beta=beta,
            upper_operator=upper_operator,
            seed=seed,
            step0=step0,
        )
        self.a1, self.a2, self.beta, self.upper_operator = a1, a2, beta, upper_operator
        self._step0 = step0
        dev, dt = self.device, dtype
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
        self._setup_cache: _Setup | None = None

    # ------------------------------------------------------------------ maths
    def _setup(self, theta: Tensor) -> _Setup:
        c = self._setup_cache
        if c is not None and c.key is theta and c.version == theta._version:
            return c
        self.counters.setup_evals += 1  # one n×n×n matmul: ≈ 72 ISTA steps at n = 200 (docs/cost_model.md)
        hess = normal_matrix(theta, self.a2)
        lip = schur_norm_sq(theta.detach()) + self.a2
        self._setup_cache = _Setup(theta, theta._version, hess, -(theta.T @ self.y), lip)
        return self._setup_cache

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
        self._count_ll_iters(n_steps)  # each unrolled step is one lower-level gradient step
        return _UnrolledISTA.apply(s.hess, s.neg_bty, x, lam, lam * self.a1, n_steps, self.counters)

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
