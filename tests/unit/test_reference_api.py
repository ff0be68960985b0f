"""The evaluation API (``upper_objective``, ``hypergradient``, ``evaluate``) at its default tolerances
right, fast, and a clear error at once where no distance can be certified.

The 2D instances pass ζ = 1e-3 and α = 2e-3 explicitly (the ``certified`` protocol's values), so these
tests hold whichever protocol is the default.
"""

from __future__ import annotations

import time

import pytest
import torch

import problems

DT = torch.float64
CERTIFIED_2D = dict(zeta=1e-3, alpha=2e-3)
FD_STEP = 1e-5
# F(θ ± hV) for the differences: tighter than the default, above the float64 floor (≈ 4e-12 at 16×16,
# κ = L/μ ≈ 3000; ``problems.base.RESOLUTION_FACTOR``)
FD_TOL = 1e-11


def _direction(theta: torch.Tensor) -> torch.Tensor:
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(1), dtype=DT)
    return v / v.norm()


@pytest.mark.parametrize("name", ["deblur2d", "semiblind2d"])
@pytest.mark.parametrize("perturbation", [0.0, 1e-3], ids=["theta0", "perturbed"])
def test_default_hypergradient_matches_central_differences(name: str, perturbation: float) -> None:
    """At θ₀ (∇r = 0) the whole directional derivative comes from the lower level."""
    p = problems.make_problem(name, size=(16, 16), **CERTIFIED_2D)
    gen = torch.Generator().manual_seed(0)
    theta = p.theta0 + perturbation * torch.randn(p.theta0.shape, generator=gen, dtype=DT)
    v = _direction(theta)
    start = time.perf_counter()
    grad = p.hypergradient(theta)  # default tolerance
    seconds = time.perf_counter() - start
    analytic = float((grad * v).sum())
    fd = (p.upper_objective(theta + FD_STEP * v, FD_TOL) - p.upper_objective(theta - FD_STEP * v, FD_TOL)) / (
        2 * FD_STEP
    )
    assert abs(analytic - fd) <= 1e-6 * abs(fd), (analytic, fd)
    assert seconds < 30.0, seconds
    assert not any(p.counters.snapshot().values())


@pytest.mark.parametrize("name", ["deblur2d", "semiblind2d"])
@pytest.mark.parametrize("size", [16, 64])
def test_reference_api_at_default_tolerance_runs_in_seconds(name: str, size: int) -> None:
    p = problems.make_problem(name, size=(size, size), **CERTIFIED_2D)
    theta = p.theta0
    tol = p.reference_tol(theta)
    # relative to the image's scale (‖y‖ ≈ 0.5·√(3HW)), above the float64 floor 0.5·u·κ·‖x‖
    scale = float(p.y.norm())
    assert 1e-12 * scale < tol < 1e-10 * scale
    out = {}
    for call in (p.upper_objective, p.hypergradient, p.evaluate):
        start = time.perf_counter()
        out[call.__name__] = call(theta)
        assert time.perf_counter() - start < 30.0, call.__name__
    assert out["evaluate"]["upper_value"] == pytest.approx(out["upper_objective"], rel=1e-10)


@pytest.mark.parametrize("name", ["deblur2d", "semiblind2d"])
def test_float32_default_tolerance_is_resolvable(name: str) -> None:
    p = problems.make_problem(name, size=(16, 16), dtype="float32", **CERTIFIED_2D)
    kappa = p.ll_lipschitz(p.theta0) / p.ll_mu(p.theta0)
    assert p.reference_rtol(p.theta0) == pytest.approx(10 * torch.finfo(torch.float32).eps * kappa)
    grad = p.hypergradient(p.theta0)
    assert grad.dtype == torch.float32 and bool(torch.isfinite(grad).all())
    assert p.evaluate(p.theta0)["psnr"] > 0


@pytest.mark.parametrize("name", ["deblur2d", "semiblind2d"])
def test_no_strong_convexity_bound_raises_at_once(name: str) -> None:
    p = problems.make_problem(name, size=(16, 16), zeta=0.0, alpha=2e-3)  # μ = 1 only nominal
    assert not p.certified and not p.mu_is_bound
    for call in (p.upper_objective, p.hypergradient, p.evaluate, p.solve_lower):
        start = time.perf_counter()
        with pytest.raises(ValueError, match=r"nominal.*cannot be certified.*zeta > 0") as info:
            call(p.theta0)
        assert "\n" not in str(info.value)
        assert time.perf_counter() - start < 1.0
    # the TV baseline's gradient-norm mode still runs (it states no distance)
    assert p.tv_baseline(n_iters=3).shape == p.y.shape


def test_unreachable_tolerance_error_states_the_iterations_run() -> None:
    p = problems.make_problem("tikhonov_adp", dtype="float32")
    res = p.ll_solve(p.theta0, p.x0, 1e-20, 1_000_000)
    # 1e-20 is below the float32 accuracy floor: the solve stops at the floor, far short of the cap
    assert res.dist_bound > 1e-20 and res.eps_floor > 1e-20 and res.iters < 1_000_000
    with pytest.raises(RuntimeError, match=rf"stopped after {res.iters} iterations \(the accuracy floor"):
        p.upper_objective(p.theta0, 1e-20)
    with pytest.raises(RuntimeError, match=r"stopped after 5 iterations \(the iteration cap\)"):
        p.solve_lower(p.theta0, 1e-20, max_iters=5)
    assert p.upper_objective(p.theta0) == pytest.approx(p.upper_objective(p.theta0, 1e-4), rel=1e-4)


@pytest.mark.parametrize("name", ["quadratic", "tikhonov_adp", "tikhonov_conv2d"])
def test_default_tolerance_matches_closed_forms(name: str) -> None:
    p = problems.make_problem(name)
    gen = torch.Generator().manual_seed(0)
    theta = p.theta0 + 1e-2 * torch.randn(p.theta0.shape, generator=gen, dtype=DT)
    exact = p.closed_form_hypergradient(theta)
    assert float((p.hypergradient(theta) - exact).norm() / exact.norm()) <= 1e-8
    if hasattr(p, "closed_form_objective"):
        assert p.upper_objective(theta) == pytest.approx(p.closed_form_objective(theta), rel=1e-10)


def test_a_warm_start_changes_the_work_not_the_certified_accuracy() -> None:
    p = problems.make_problem("deconv1d")
    near = p.solve_lower_result(p.theta0)
    theta = p.theta0 + 1e-4 * _direction(p.theta0)
    cold = p.solve_lower_result(theta)
    warm = p.solve_lower_result(theta, start=near.x)
    tol = p.reference_tol(theta)
    assert cold.dist_bound <= tol and warm.dist_bound <= tol
    assert warm.iters < cold.iters
    assert float(torch.linalg.vector_norm(warm.x - cold.x)) <= 2 * tol  # both within tol of x̂(θ)
    assert p.upper_objective(theta, start=near.x) == pytest.approx(p.upper_objective(theta), rel=1e-9)
    assert torch.equal(p.solve_lower(theta, start=near.x), warm.x)
