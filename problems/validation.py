"""Closed-form validation problems: exact x̂(θ), ∇F(θ) and θ* pin the solvers down (docs/maths.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from problems.base import OPERATOR, SIGNAL, BilevelProblem
from problems.deconv1d import gaussian_blur_matrix
from problems.params import ProblemParams, matrix_bytes, param


@dataclass(frozen=True)
class QuadraticParams(ProblemParams):
    """Sizes of the random matrices A₁ (m1×n), A₂, A₃ (m2×n) and the seed they are drawn from;
    1 ≤ n ≤ min(m1, m2)."""

    problem: ClassVar[str] = "quadratic"

    n: int = param(5, "dimension of θ and of x")
    m1: int = param(8, "rows of A₁ (upper residual)")
    m2: int = param(8, "rows of A₂, A₃ (lower residual)")
    seed: int = param(0, "seed of the random matrices and vectors")

    def check(self) -> None:
        if not (1 <= self.n <= min(self.m1, self.m2)):
            raise ValueError(
                f"quadratic needs 1 ≤ n ≤ min(m1, m2); got n={self.n}, m1={self.m1}, m2={self.m2}"
            )

    def memory_bytes(self, itemsize: int) -> int:
        return matrix_bytes(max(self.n, self.m1, self.m2), itemsize)


@dataclass(frozen=True)
class TikhonovADPParams(ProblemParams):
    """A 1D Tikhonov-regularised deconvolution with a learned operator B."""

    problem: ClassVar[str] = "tikhonov_adp"

    n: int = param(30, "grid points on [−1, 1]", ge=2)
    sigma: float = param(2.0, "width of the Gaussian blur A, in samples", gt=0)
    noise: float = param(0.01, "standard deviation of the noise on y", ge=0)
    alpha: float = param(0.05, "Tikhonov weight α of (α/2)‖x‖² (= μ)", gt=0)
    beta: float = param(0.01, "weight β of r(B) = (β/2)‖B − A‖²_F", ge=0)
    seed: int = param(0, "seed of the noise draw")
    step0: float = param(1e-2, "initial upper-level step shared by every solver", gt=0)

    def memory_bytes(self, itemsize: int) -> int:
        return matrix_bytes(self.n, itemsize)


def _matrix_with_singular_values(m: int, n: int, lo: float, hi: float, gen: torch.Generator) -> Tensor:
    """An m×n matrix with singular values spread in [lo, hi] (conditioning under control)."""
    u, _ = torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    k = min(m, n)
    s = torch.linspace(hi, lo, k, dtype=torch.float64)
    return u[:, :k] @ torch.diag(s) @ v[:, :k].T


class Quadratic(BilevelProblem):
    """min_θ ½‖A₁x(θ) − b₁‖²,  x(θ) = argmin_x ½‖A₂x + A₃θ − b₂‖².

    x(θ) = P(b₂ − A₃θ), P = (A₂ᵀA₂)⁻¹A₂ᵀ, so F(θ) = ½‖Mθ + c‖² with M = −A₁PA₃, c = A₁Pb₂ − b₁,
    ∇F = Mᵀ(Mθ + c) and θ* = argmin (least squares). With dim θ = dim x, J is invertible, so
    even unrolled differentiation has θ* as its fixed point.
    """

    name = "quadratic"
    Params = QuadraticParams
    metric_names = ("theta_error",)
    ll_momentum = "strongly_convex"

    def __init__(self, **params: object):
        super().__init__(**params)
        n, m1, m2, seed = self.config.n, self.config.m1, self.config.m2, self.config.seed
        gen = torch.Generator().manual_seed(seed)
        a1 = _matrix_with_singular_values(m1, n, 1.0, 2.0, gen)
        a2 = _matrix_with_singular_values(m2, n, 1.0, 2.0, gen)
        a3 = _matrix_with_singular_values(m2, n, 1.0, 2.0, gen)
        b1 = torch.randn(m1, generator=gen, dtype=torch.float64)
        b2 = torch.randn(m2, generator=gen, dtype=torch.float64)
        proj = torch.linalg.solve(a2.T @ a2, a2.T)
        m_mat = -a1 @ proj @ a3
        c = a1 @ proj @ b2 - b1
        theta_star = torch.linalg.lstsq(m_mat, -c[:, None]).solution[:, 0]
        to = dict(dtype=self.dtype, device=self.device)
        self.A1, self.A2, self.A3, self.b1, self.b2 = (v.to(**to) for v in (a1, a2, a3, b1, b2))
        self.M, self.c, self.theta_star = m_mat.to(**to), c.to(**to), theta_star.to(**to)
        sv = torch.linalg.svdvals(a2)
        self._mu, self._lip = float(sv[-1] ** 2), float(sv[0] ** 2)
        self._lg = float(torch.linalg.matrix_norm(a1, 2) ** 2)
        self._step = 1.0 / float(torch.linalg.matrix_norm(m_mat, 2) ** 2)
        self.theta0 = torch.zeros(n, **to)
        self.x0 = torch.zeros(n, **to)

    def _ll_grad(self, theta: Tensor, x: Tensor) -> Tensor:
        return self.A2.T @ (self.A2 @ x + self.A3 @ theta - self.b2)

    def ll_lipschitz(self, theta: Tensor) -> float:
        return self._lip

    def ll_mu(self, theta: Tensor) -> float:
        return self._mu

    def ul_g(self, theta: Tensor, x: Tensor) -> Tensor:
        return 0.5 * torch.sum((self.A1 @ x - self.b1) ** 2)

    def ul_lipschitz_x(self, theta: Tensor) -> float:
        return self._lg

    @property
    def ul_step0(self) -> float:
        return self._step

    def closed_form_objective(self, theta: Tensor) -> float:
        return float(0.5 * torch.sum((self.M @ theta + self.c) ** 2))

    def closed_form_hypergradient(self, theta: Tensor) -> Tensor:
        return self.M.T @ (self.M @ theta + self.c)

    def metrics(self, theta: Tensor, x: Tensor) -> dict[str, float]:
        err = torch.linalg.vector_norm(theta - self.theta_star) / torch.linalg.vector_norm(self.theta_star)
        return {"theta_error": float(err)}


class TikhonovADP(BilevelProblem):
    """ADP with R = ½‖x‖²:  x(B) = (BᵀB + αI)⁻¹Bᵀy,  F(B) = ½‖Ax(B) − y‖² + (β/2)‖B − A‖²_F.

    ∇_B F = −[(Bx − y)qᵀ + (Bq)xᵀ] + β(B − A),  q = (BᵀB + αI)⁻¹Aᵀ(Ax − y).
    """

    name = "tikhonov_adp"
    Params = TikhonovADPParams
    metric_names = ("rel_error",)
    figures = frozenset({SIGNAL, OPERATOR})
    ll_momentum = "strongly_convex"

    def __init__(self, **params: object):
        super().__init__(**params)
        c = self.config
        n, sigma, noise, seed = c.n, c.sigma, c.noise, c.seed
        self.alpha, self.beta, self._step0 = c.alpha, c.beta, c.step0
        gen = torch.Generator().manual_seed(seed)
        t = torch.linspace(-1, 1, n, dtype=torch.float64)
        a = gaussian_blur_matrix(n, sigma, torch.float64, torch.device("cpu"))
        x_true = (t.abs() < 0.5).to(torch.float64)
        y = a @ x_true + noise * torch.randn(n, generator=gen, dtype=torch.float64)
        to = dict(dtype=self.dtype, device=self.device)
        self.A, self.x_true, self.y = a.to(**to), x_true.to(**to), y.to(**to)
        self._lg = float(torch.linalg.matrix_norm(a, 2) ** 2)
        self.theta0 = self.A.clone()
        self.x0 = torch.zeros(n, **to)

    def _ll_grad(self, theta: Tensor, x: Tensor) -> Tensor:
        return theta.T @ (theta @ x - self.y) + self.alpha * x

    def ll_lipschitz(self, theta: Tensor) -> float:
        self._count_setup("lipschitz_evals")  # a spectral norm (SVD) of B, every call
        return float(torch.linalg.matrix_norm(theta.detach(), 2) ** 2) + self.alpha

    def ll_mu(self, theta: Tensor) -> float:
        return self.alpha

    def ul_g(self, theta: Tensor, x: Tensor) -> Tensor:
        return 0.5 * torch.sum((self.A @ x - self.y) ** 2)

    def ul_reg(self, theta: Tensor) -> Tensor:
        return 0.5 * self.beta * torch.sum((theta - self.A) ** 2)

    def ul_lipschitz_x(self, theta: Tensor) -> float:
        return self._lg

    @property
    def ul_step0(self) -> float:
        return self._step0

    def closed_form_solution(self, theta: Tensor) -> Tensor:
        eye = torch.eye(theta.shape[1], dtype=theta.dtype, device=theta.device)
        return torch.linalg.solve(theta.T @ theta + self.alpha * eye, theta.T @ self.y)

    def closed_form_hypergradient(self, theta: Tensor) -> Tensor:
        eye = torch.eye(theta.shape[1], dtype=theta.dtype, device=theta.device)
        x = self.closed_form_solution(theta)
        q = torch.linalg.solve(theta.T @ theta + self.alpha * eye, self.A.T @ (self.A @ x - self.y))
        res = theta @ x - self.y
        return -(torch.outer(res, q) + torch.outer(theta @ q, x)) + self.beta * (theta - self.A)

    def metrics(self, theta: Tensor, x: Tensor) -> dict[str, float]:
        return {
            "rel_error": float(
                torch.linalg.vector_norm(x - self.x_true) / torch.linalg.vector_norm(self.x_true)
            )
        }
