"""Closed-form validation problems: exact x̂(θ), ∇F(θ) and θ* pin the solvers down (docs/maths.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from problems.base import OPERATOR, SIGNAL, BilevelProblem
from problems.deconv1d import gaussian_blur_matrix
from problems.params import ProblemParams, matrix_bytes, param

#: ‖θ*‖ of every quadratic instance (so "error to θ*" means the same at every seed)
THETA_STAR_NORM = 1.0
#: ‖Mθ* + c‖ at the optimum when m1 > n (F* = ½·RESIDUAL_NORM²: a minimum that is not zero)
RESIDUAL_NORM = 1.0
#: singular values of A₂: the lower level's L/μ = 4, whatever the seed
LOWER_SINGULAR_VALUES = (1.0, 2.0)


@dataclass(frozen=True)
class QuadraticParams(ProblemParams):
    """Sizes of A₁ (m1×n), A₂, A₃ (m2×n), the condition number of M and the seed; 1 ≤ n ≤ min(m1, m2)."""

    problem: ClassVar[str] = "quadratic"

    n: int = param(5, "dimension of θ and of x")
    m1: int = param(8, "rows of A₁ (upper residual)")
    m2: int = param(8, "rows of A₂, A₃ (lower residual)")
    seed: int = param(0, "seed of the random matrices and vectors")
    cond: float = param(10.0, "condition number of M (its singular values span [1/cond, 1])", ge=1)

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


def _orthonormal(m: int, gen: torch.Generator) -> Tensor:
    """A random m×m orthogonal matrix (Q of a Gaussian matrix's QR)."""
    q, _ = torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=torch.float64))
    return q


def _with_singular_values(m: int, s: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """(U_m diag(s) Vᵀ, U_m): an m×n matrix with singular values s (n = len(s)) and its left factor."""
    u, v = _orthonormal(m, gen), _orthonormal(len(s), gen)
    return u[:, : len(s)] @ torch.diag(s) @ v.T, u


class Quadratic(BilevelProblem):
    """min_θ ½‖A₁x(θ) − b₁‖²,  x(θ) = argmin_x ½‖A₂x + A₃θ − b₂‖².

    x(θ) = P(b₂ − A₃θ), P = (A₂ᵀA₂)⁻¹A₂ᵀ, so F(θ) = ½‖Mθ + c‖² with M = −A₁PA₃, c = A₁Pb₂ − b₁,
    ∇F = Mᵀ(Mθ + c) and θ* = argmin F. With dim θ = dim x, J is invertible, so
    even unrolled differentiation has θ* as its fixed point.

    Every seed is built to be the same test (only directions are random):

    * A₂ has singular values spread over [1, 2] (``LOWER_SINGULAR_VALUES``: the lower level's L/μ = 4);
    * A₃ = A₂Q + (I − A₂P)G with Q orthogonal and G Gaussian: PA₃ = Q (the second part is invisible to
      x(θ) but makes A₃ a general matrix), so M = −A₁Q has the singular values of A₁;
    * A₁ = U diag(s) Vᵀ with s geometric from 1 down to 1/``cond``: ‖M‖ = 1 and cond(M) = ``cond``, so the
      upper level's F is (1/cond²)-strongly convex with a 1-Lipschitz gradient;
    * θ* is planted: a random direction of norm THETA_STAR_NORM, and c = r* − Mθ* with r* ⟂ range(A₁) of
      norm RESIDUAL_NORM (0 when m1 = n), so Mᵀ(Mθ* + c) = Mᵀr* = 0 and F* = ½‖r*‖²; b₂ is Gaussian and
      b₁ = A₁Pb₂ − c.
    """

    name = "quadratic"
    Params = QuadraticParams
    metric_names = ("theta_error",)
    ll_momentum = "strongly_convex"
    cheap_evaluation = True  # n ≤ m ≤ tens: a reference solve is a few dozen tiny matvecs

    def __init__(self, **params: object):
        super().__init__(**params)
        n, m1, m2, cond = self.config.n, self.config.m1, self.config.m2, float(self.config.cond)
        gen = torch.Generator().manual_seed(self.config.seed)
        lo, hi = LOWER_SINGULAR_VALUES
        a2, _ = _with_singular_values(m2, torch.linspace(hi, lo, n, dtype=torch.float64), gen)
        proj = torch.linalg.solve(a2.T @ a2, a2.T)
        g = torch.randn(m2, n, generator=gen, dtype=torch.float64)
        a3 = a2 @ _orthonormal(n, gen) + (g - a2 @ (proj @ g))
        a1, u1 = _with_singular_values(
            m1, torch.logspace(0.0, -math.log10(cond), n, dtype=torch.float64), gen
        )
        direction = torch.randn(n, generator=gen, dtype=torch.float64)
        theta_star = THETA_STAR_NORM * direction / torch.linalg.vector_norm(direction)
        resid = u1[:, n:] @ torch.randn(m1 - n, generator=gen, dtype=torch.float64)
        if m1 > n:
            resid = RESIDUAL_NORM * resid / torch.linalg.vector_norm(resid)
        m_mat = -a1 @ proj @ a3
        b2 = torch.randn(m2, generator=gen, dtype=torch.float64)
        b1 = a1 @ proj @ b2 - (resid - m_mat @ theta_star)
        c = a1 @ proj @ b2 - b1
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

    def reference_optimum(self) -> float:
        """F* = ½‖r*‖², planted (class docstring): ½·RESIDUAL_NORM² when m1 > n, else 0."""
        return 0.5 * RESIDUAL_NORM**2 if self.config.m1 > self.config.n else 0.0

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
    cheap_evaluation = True  # n = 30: a reference solve is a few hundred 30×30 matvecs

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

    def closed_form_objective(self, theta: Tensor) -> float:
        """F(B) = ½‖A x(B) − y‖² + (β/2)‖B − A‖²_F with the closed-form x(B)."""
        theta = self._as_tensor(theta)
        return float(self.ul_g(theta, self.closed_form_solution(theta)) + self.ul_reg(theta))

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
