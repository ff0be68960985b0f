"""Certified primal–dual TV solver (problems.primal_dual): the duality-gap certificate vs exact solutions."""

from __future__ import annotations

import math

import pytest
import torch

from problems.deblur2d import Deblur2D
from problems.primal_dual import (
    STEP_MARGIN,
    certificate,
    condat_vu_steps,
    distance_bound,
    gap_bound,
    primal_dual_solve,
)
from problems.tv import TotalVariation, difference_norm_sq
from problems.tv_reference import verify_solution

DT = torch.float64
ZETA = 0.1  # μ = ζ: a true strong-convexity modulus, and exact solves in a few hundred iterations at 8×8
#: (kind, α, seed of the kernel perturbation): instances whose exact solution verifies (problems.tv_reference)
CASES = [("anisotropic", 0.05, 1), ("isotropic", 0.01, 2)]


def _deblur(kind: str, alpha: float, seed: int, dtype: torch.dtype = DT):
    """8×8 periodic deblurring with the smooth part f = ½‖K_θx − y‖² + (ζ/2)‖x‖² of ``Deblur2D(alpha=0)``."""
    problem = Deblur2D(size=(8, 8), alpha=0.0, zeta=ZETA, boundary="periodic", beta=0.5, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    theta = problem.theta0 + 0.01 * torch.randn(problem.theta0.shape, generator=gen, dtype=DT).to(dtype)
    return problem, theta, TotalVariation(alpha, kind)


class Dense1D:
    """A 1D signal (shape (1, 1, n)) blurred by a dense Gaussian matrix K: f = ½‖Kx − y‖² + (ζ/2)‖x‖²."""

    def __init__(self, n: int = 40, seed: int = 0):
        t = torch.arange(n, dtype=DT)
        k = torch.exp(-((t[:, None] - t[None, :]) ** 2) / 8.0)
        self.K = k / k.sum(1, keepdim=True)
        truth = (t > n / 4).to(DT) - 0.7 * (t > n / 2).to(DT) + 0.5 * (t > 3 * n / 4).to(DT)
        gen = torch.Generator().manual_seed(seed)
        self.y = (self.K @ truth + 0.02 * torch.randn(n, generator=gen, dtype=DT)).reshape(1, 1, n)
        self.lip = float(torch.linalg.matrix_norm(self.K, 2)) ** 2 + ZETA

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        v = x.reshape(-1)
        return (self.K.T @ (self.K @ v - self.y.reshape(-1)) + ZETA * v).reshape(x.shape)

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        w = v.reshape(-1)
        return (self.K.T @ (self.K @ w) + ZETA * w).reshape(v.shape)


def _reference(grad, hvp, tv: TotalVariation, x0: torch.Tensor, lip: float):
    """x̂ solved on its structure and verified by the KKT conditions, certified to 1e-11."""
    res = primal_dual_solve(grad, tv, x0, None, 1e-9, 100_000, lip=lip, mu=ZETA)
    ref = verify_solution(grad, hvp, tv, res.x, res.p, res.sigma, mu=ZETA)
    assert ref.verified(1e-11), (ref.dist_bound, ref.support_margin)
    return ref


def _check_run(grad, tv: TotalVariation, x0: torch.Tensor, lip: float, ref) -> None:
    """Along a run, every returned point's certified bound is ≥ its true distance to x̂ (up to x̂'s own bound):
    raw iterates (eps = 0, fixed iteration counts) and the solver's stopping points at decreasing eps."""
    x, dual = x0, None
    for _ in range(12):
        res = primal_dual_solve(grad, tv, x, dual, 0.0, 15, lip=lip, mu=ZETA)
        assert res.iters == 15 and res.structure is None  # eps = 0: never passes, never projects
        dist = float(torch.linalg.vector_norm(res.x - ref.x))
        assert dist <= res.dist_bound + ref.dist_bound
        assert res.dist_bound <= gap_bound(res.gap, ZETA) * (1 + 1e-12)  # the sharper bound
        x, dual = res.x, res.p
    for k in range(1, 11):
        res = primal_dual_solve(grad, tv, x, dual, 10.0**-k, 100_000, lip=lip, mu=ZETA)
        assert res.converged and res.dist_bound <= 10.0**-k
        assert float(torch.linalg.vector_norm(res.x - ref.x)) <= res.dist_bound + ref.dist_bound
        x, dual = res.x, res.p


@pytest.mark.parametrize("kind, alpha, seed", CASES)
def test_certificate_holds_on_deblurring(kind: str, alpha: float, seed: int) -> None:
    problem, theta, tv = _deblur(kind, alpha, seed)
    lip = problem.ll_lipschitz(theta)

    def grad(x: torch.Tensor) -> torch.Tensor:
        return problem._ll_grad(theta, x)

    ref = _reference(grad, lambda v: problem._hvp(theta, None, v), tv, problem.x0, lip)
    _check_run(grad, tv, problem.x0, lip, ref)


def test_certificate_holds_in_1d() -> None:
    case = Dense1D()
    tv = TotalVariation(0.02, "anisotropic")  # in 1D the two TV norms coincide
    ref = _reference(case.grad, case.hvp, tv, case.y, case.lip)
    _check_run(case.grad, tv, case.y, case.lip, ref)
    iso = _reference(case.grad, case.hvp, TotalVariation(0.02, "isotropic"), case.y, case.lip)
    assert float(torch.linalg.vector_norm(iso.x - ref.x)) <= 1e-10


@pytest.mark.parametrize("kind, alpha, seed", CASES)
def test_certificate_holds_at_arbitrary_points(kind: str, alpha: float, seed: int) -> None:
    """The bound is a theorem for every x and every p ∈ B_α, not only for the solver's iterates."""
    problem, theta, tv = _deblur(kind, alpha, seed)

    def grad(x: torch.Tensor) -> torch.Tensor:
        return problem._ll_grad(theta, x)

    ref = _reference(
        grad, lambda v: problem._hvp(theta, None, v), tv, problem.x0, problem.ll_lipschitz(theta)
    )
    gen = torch.Generator().manual_seed(7)
    for scale in (1e-1, 1e-3, 1e-6):
        x = ref.x + scale * torch.randn(ref.x.shape, generator=gen, dtype=DT)
        for p in (ref.p, tv.project(ref.p + scale * torch.randn(ref.p.shape, generator=gen, dtype=DT))):
            bound, c, r = certificate(grad, tv, x, p, ZETA)
            assert c >= 0 and float(torch.linalg.vector_norm(x - ref.x)) <= bound + ref.dist_bound


def test_counts_equal_gradient_calls() -> None:
    """One counter unit = one ∇f (problem.ll_grad, counted in ll_iters): iterations plus projected checks."""
    problem, theta, tv = _deblur("anisotropic", 0.05, 1)
    before = problem.counters.ll_iters
    res = primal_dual_solve(
        lambda x: problem.ll_grad(theta, x),
        tv,
        problem.x0,
        None,
        1e-8,
        10_000,
        lip=problem.ll_lipschitz(theta),
        mu=ZETA,
    )
    assert res.converged and res.projections >= 1
    assert problem.counters.ll_iters - before == res.iters
    again = primal_dual_solve(
        lambda x: problem.ll_grad(theta, x),
        tv,
        res.x,
        res.p,
        1e-8,
        10_000,
        lip=problem.ll_lipschitz(theta),
        mu=ZETA,
    )
    assert again.iters == 1 and again.converged  # a warm start in x and p that is already certified
    assert problem.counters.ll_iters - before == res.iters + 1


def test_float32_certificate() -> None:
    """In float32 the certificate still bounds the distance to the float64 solution above its floor."""
    problem64, theta64, tv = _deblur("anisotropic", 0.05, 1)
    ref = _reference(
        lambda x: problem64._ll_grad(theta64, x),
        lambda v: problem64._hvp(theta64, None, v),
        tv,
        problem64.x0,
        problem64.ll_lipschitz(theta64),
    )
    problem, theta, _ = _deblur("anisotropic", 0.05, 1, torch.float32)
    res = primal_dual_solve(
        lambda x: problem._ll_grad(theta, x),
        tv,
        problem.x0,
        None,
        1e-3,
        10_000,
        lip=problem.ll_lipschitz(theta),
        mu=ZETA,
    )
    assert res.converged and res.x.dtype == torch.float32
    assert float(torch.linalg.vector_norm(res.x.double() - ref.x)) <= res.dist_bound


def test_step_condition() -> None:
    """1/τ − σ‖D‖² = STEP_MARGIN·L/2 > L/2 (Condat's condition), σ = ratio·τ."""
    for lip, ratio in ((1.4, 0.01), (1.0, 0.25), (250.0, 1e-4)):
        tau, sigma = condat_vu_steps(lip, difference_norm_sq(8, 8), ratio)
        assert sigma == pytest.approx(ratio * tau, rel=1e-15)
        assert 1 / tau - sigma * difference_norm_sq(8, 8) == pytest.approx(STEP_MARGIN * lip / 2, rel=1e-12)


def test_distance_bound_is_sharper_than_the_gap_bound() -> None:
    for c, r, mu in ((0.0, 1.0, 0.1), (1.0, 0.0, 0.1), (0.3, 0.2, 2.0), (1e-30, 1e-12, 1e-3)):
        assert distance_bound(c, r, mu) <= gap_bound(c + r * r / (2 * mu), mu) * (1 + 1e-12)
    assert distance_bound(0.0, 1.0, 0.1) == pytest.approx(10.0)  # the smooth test ‖∇h‖/μ
    assert distance_bound(1.0, 0.0, 4.0) == pytest.approx(math.sqrt(1.0 / 4.0))


def test_bad_solver_input() -> None:
    problem, theta, tv = _deblur("anisotropic", 0.05, 1)
    for kwargs in (dict(max_iters=0), dict(check_every=0)):
        with pytest.raises(ValueError, match="must be ≥ 1"):
            primal_dual_solve(
                lambda x: problem._ll_grad(theta, x),
                tv,
                problem.x0,
                None,
                1e-3,
                **{"max_iters": 10, **kwargs},
                lip=1.0,
                mu=ZETA,
            )
    res = primal_dual_solve(lambda x: x, tv, problem.x0, None, 1e-3, 10, lip=math.inf, mu=ZETA)
    assert not res.converged and torch.isnan(res.x).all()  # an overflowed θ: recorded as diverged
