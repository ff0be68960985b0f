"""2D problems: hypergradients vs finite differences (docs/maths.md §1), closed forms vs autograd,
data, API."""

from __future__ import annotations

import math

import pytest
import torch

from problems import list_problems, make_problem
from problems.base import BilevelProblem
from problems.deblur2d import RGB_IMAGES, Deblur2D, SemiBlind2D
from problems.tikhonov2d import TikhonovConv2D

DT = torch.float64
# Small, well-conditioned instances: ζ > 0 and μ = ζ make the certificate true, and the lower level
# converges to 1e-12 in a few hundred iterations.
SMALL = dict(size=(16, 16), alpha=0.01, gamma=0.1, zeta=0.1, beta=0.5)


def _perturbed(problem: BilevelProblem, seed: int = 0, scale: float = 0.01) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return problem.theta0 + scale * torch.randn(problem.theta0.shape, generator=gen, dtype=DT)


def _fd_check(problem: BilevelProblem, h: float = 1e-5) -> None:
    """⟨∇F(θ), V⟩ vs (F(θ + hV) − F(θ − hV))/2h, lower level to 1e-12: ≥ 6 significant digits."""
    theta = _perturbed(problem)
    gen = torch.Generator().manual_seed(1)
    direction = torch.randn(theta.shape, generator=gen, dtype=DT)
    direction /= direction.norm()
    grad = problem.hypergradient(theta, tol=1e-12)
    analytic = float((grad * direction).sum())
    fd = (
        problem.upper_objective(theta + h * direction, tol=1e-12)
        - problem.upper_objective(theta - h * direction, tol=1e-12)
    ) / (2 * h)
    assert abs(analytic - fd) <= 1e-6 * abs(fd), (analytic, fd)


@pytest.mark.parametrize(
    "cls, params",
    [
        (Deblur2D, dict(upper_operator="known")),
        (Deblur2D, dict(upper_operator="learned")),
        (SemiBlind2D, {}),
        (Deblur2D, dict(upper_operator="learned", boundary="periodic")),
        (Deblur2D, dict(upper_operator="known", boundary="reflect")),
        (Deblur2D, dict(upper_operator="learned", boundary="zero", size=(20, 24))),
    ],
)
def test_hypergradient_finite_differences(cls: type, params: dict) -> None:
    _fd_check(cls(**{**SMALL, **params}))


@pytest.mark.parametrize("upper_operator", ["known", "learned"])
def test_tikhonov_conv2d_exact(upper_operator: str) -> None:
    p = TikhonovConv2D(beta=0.5, upper_operator=upper_operator)
    theta = _perturbed(p)
    x = p.solve_lower(theta, 1e-12)
    assert (x - p.closed_form_solution(theta)).abs().max() <= 1e-11
    exact = p.closed_form_hypergradient(theta)
    assert (p.hypergradient(theta, tol=1e-12) - exact).abs().max() <= 1e-9 * exact.abs().max()
    assert p.upper_objective(theta, 1e-12) == pytest.approx(p.closed_form_objective(theta), rel=1e-12)
    assert p.ll_mu(theta) == p.tikhonov_alpha and p.ll_momentum == "strongly_convex"
    if upper_operator == "known":
        _fd_check(p)


@pytest.mark.parametrize("boundary", ["replicate", "periodic"])
@pytest.mark.parametrize("upper_operator", ["known", "learned"])
def test_closed_forms_match_autograd(boundary: str, upper_operator: str) -> None:
    p = Deblur2D(**SMALL, boundary=boundary, upper_operator=upper_operator)
    theta = _perturbed(p)
    gen = torch.Generator().manual_seed(2)
    x = p.y + 0.1 * torch.randn(p.y.shape, generator=gen, dtype=DT)
    v, q = torch.randn_like(x), torch.randn_like(x)
    assert (p._hvp(theta, x, v) - BilevelProblem._hvp(p, theta, x, v)).abs().max() <= 1e-12
    hg = p._hypergradient_from(theta, x, q)
    assert (hg - BilevelProblem._hypergradient_from(p, theta, x, q)).abs().max() <= 1e-12 * hg.abs().max()
    assert (p._ul_grad_x(theta, x) - BilevelProblem._ul_grad_x(p, theta, x)).abs().max() <= 1e-12
    xx = x.clone().requires_grad_(True)
    (grad_h,) = torch.autograd.grad(p.lower_objective(theta, xx), xx)
    assert (p._ll_grad(theta, x) - grad_h).abs().max() <= 1e-12
    # ll_grad also differentiates w.r.t. θ and x (LISTA's unrolling)
    th = theta.clone().requires_grad_(True)
    x_k = p.ll_unrolled(th, p.x0, 3, None)
    (g,) = torch.autograd.grad(p.ul_g(th, x_k) + p.ul_reg(th), th)
    assert torch.isfinite(g).all() and g.abs().max() > 0


def test_lipschitz_and_certificate() -> None:
    p = Deblur2D(**SMALL)
    assert p.ll_momentum == "strongly_convex" and p.ll_mu(p.theta0) == 0.1 and p.certified
    q = Deblur2D(size=(16, 16), zeta=0.0)
    assert q.ll_momentum == "fista" and q.ll_mu(q.theta0) == 1.0 and not q.certified
    # L bounds the Hessian: power iteration on H at x = y
    theta = _perturbed(p)
    z = torch.randn(p.y.shape, generator=torch.Generator().manual_seed(3), dtype=DT)
    for _ in range(100):
        z = p._hvp(theta, p.y, z)
        z /= z.norm()
    assert float((z * p._hvp(theta, p.y, z)).sum()) <= p.ll_lipschitz(theta)
    assert p.ll_lipschitz(theta) <= 1.02 * (p.kernel_norm_sq_bound(theta) + 0.01 * 8 / 0.1 + 0.1)


def test_data_images_and_registry() -> None:
    p = make_problem("deblur2d", size=[16, 20], seed=3)
    assert p.y.shape == p.x_true.shape == (3, 16, 20) and p.theta0.shape == (3, 5, 5)
    assert float(p.y.min()) >= 0.0 and float(p.y.max()) <= 1.0 and torch.equal(p.x0, p.y)
    again = Deblur2D(size=(16, 20), seed=3)
    assert torch.equal(again.y, p.y)
    assert not torch.equal(Deblur2D(size=(16, 20), seed=4).y, p.y)
    p32 = Deblur2D(size=(16, 20), seed=3, dtype=torch.float32)
    assert p32.y.dtype == torch.float32 and torch.equal(p32.y, p.y.float())
    assert float(p32.ll_grad(p32.theta0, p32.x0).norm()) > 0
    sb = SemiBlind2D(size=(16, 20), seed=3)
    assert sb.upper_operator == "learned" and torch.equal(sb.theta0, p.theta0)
    assert not torch.equal(sb.y, p.y)
    assert {"deblur2d", "semiblind2d", "tikhonov_conv2d"} <= set(list_problems())
    for bad in ("camera", "no_such_image"):
        with pytest.raises(ValueError, match="astronaut"):
            Deblur2D(image=bad, size=(16, 16))
    assert "chelsea" in RGB_IMAGES
    with pytest.raises(ValueError):
        Deblur2D(size=(16, 16), boundary="mirror")
    with pytest.raises(ValueError):
        Deblur2D(size=(16, 16), upper_operator="blind")


def test_metrics_baselines_and_counters() -> None:
    p = Deblur2D(size=(24, 20), alpha=0.003, gamma=0.05)
    blurry = p.blurry_metrics()
    assert set(blurry) == {"psnr", "ssim"} and 5 < blurry["psnr"] < 60 and 0 < blurry["ssim"] < 1
    # metrics clamp x to [0, 1]
    assert (
        p.metrics(p.theta0, p.x_true + 2.0)["psnr"] == p.metrics(p.theta0, torch.ones_like(p.x_true))["psnr"]
    )
    x100 = p.tv_baseline(n_iters=100)
    x_tol = p.tv_baseline(tol=1e-6)
    assert p.counters.ll_iters == 0  # evaluation is never charged
    assert float(p._ll_grad(p.theta0, x_tol).norm()) <= 1e-6 * p.mu
    assert p.metrics(p.theta0, x_tol)["psnr"] > blurry["psnr"]
    assert (x100 - x_tol).norm() < (p.y - x_tol).norm()
    with pytest.raises(ValueError):
        p.tv_baseline()
    p.ll_grad(p.theta0, p.x0)
    assert p.counters.ll_iters == 1


def test_parameter_sets() -> None:
    from problems.parameter_sets import ALPHA_AUTHORS, ALPHA_CERTIFIED

    p = Deblur2D(size=(16, 16))
    assert p.params["preset"] == "certified" and p.alpha == ALPHA_CERTIFIED and p.certified
    assert p.ul_step0 == 1e-6 and not p.inconsistencies
    a = Deblur2D(size=(16, 16), preset="authors")
    assert a.alpha == ALPHA_AUTHORS and a.alpha_descended == pytest.approx(ALPHA_AUTHORS / 100)
    assert not a.certified and len(a.inconsistencies) == 3
    assert Deblur2D(size=(16, 16), preset="certified", alpha=0.01).alpha == 0.01  # explicit wins
    for bad in ("nope", "paper", "authors-fix-nope"):
        with pytest.raises(ValueError, match="preset must be 'certified', 'authors' or"):
            Deblur2D(size=(16, 16), preset=bad)


def test_maid_runs_on_semiblind2d() -> None:
    from bench.harness import run

    res = run("maid", SemiBlind2D(**SMALL), max_iters=3, solver_config=dict(eps0=1e-2))
    assert res.status in ("budget", "converged") and len(res.trace) >= 2
    assert res.trace["ll_iters"].iloc[-1] > 0 and math.isfinite(res.trace["psnr"].iloc[-1])
