"""Problems: hypergradients against finite differences and closed forms, the lower-level certificate,
CG, the uncounted reference API, and parameter validation (docs/maths.md §1, §5, §8)."""

from __future__ import annotations

import pytest
import torch

import problems
from problems.base import BilevelProblem
from problems.linalg import conjugate_gradient

CORE_PROBLEMS = ("deconv1d", "quadratic", "tikhonov_adp")

# (case id, problem name, make_problem parameters); the hypergradient must match FD on each.
FD_CASES = [
    ("deconv1d", "deconv1d", {}),
    ("deconv1d-learned", "deconv1d", {"upper_operator": "learned"}),
    ("deconv1d-learned-beta", "deconv1d", {"upper_operator": "learned", "beta": 0.1}),
    ("deconv1d-known-beta", "deconv1d", {"beta": 0.1}),
    ("quadratic", "quadratic", {}),
    ("tikhonov_adp", "tikhonov_adp", {}),
]

FD_STEP = 1e-4
FD_LL_TOL = 1e-12
FD_RTOL = 1e-6  # 6 significant digits (docs/maths.md §1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn_like(t: torch.Tensor, seed: int) -> torch.Tensor:
    return torch.randn(t.shape, generator=_gen(seed), dtype=t.dtype).to(t.device)


def perturbed_theta(problem: BilevelProblem, seed: int = 0) -> torch.Tensor:
    """A generic point near θ₀: B = A + 1e-3·randn for the matrix problems, θ₀ + 0.1·randn otherwise."""
    scale = 1e-3 if problem.theta0.ndim == 2 else 1e-1
    return problem.theta0 + scale * _randn_like(problem.theta0, seed)


def _unit_direction(theta: torch.Tensor, seed: int) -> torch.Tensor:
    v = _randn_like(theta, seed)
    return v / torch.linalg.vector_norm(v)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def test_core_problems_registered():
    assert set(CORE_PROBLEMS) <= set(problems.list_problems())
    for name in CORE_PROBLEMS:
        assert problems.make_problem(name).name == name


# ---------------------------------------------------------------------------------------- 1. hypergradients
@pytest.mark.parametrize(("name", "params"), [c[1:] for c in FD_CASES], ids=[c[0] for c in FD_CASES])
def test_hypergradient_matches_central_differences(name, params):
    p = problems.make_problem(name, **params)
    theta = perturbed_theta(p)
    grad = p.hypergradient(theta, FD_LL_TOL)
    assert grad.shape == theta.shape and bool(torch.isfinite(grad).all())
    x = p.solve_lower(theta, FD_LL_TOL)
    mask = p.active_mask(theta, x)
    if name == "deconv1d":  # the ℓ¹ case: the IFT must be restricted to a proper, nonempty active set
        assert 0 < int(mask.sum()) < x.numel()
    for seed in (1, 2, 3):
        v = _unit_direction(theta, seed)
        if mask is not None:  # F is smooth along ±hV only if the support does not change there
            for sign in (1, -1):
                x_h = p.solve_lower(theta + sign * FD_STEP * v, FD_LL_TOL)
                assert torch.equal(p.active_mask(theta, x_h), mask)
        analytic = float(torch.sum(grad * v))
        f_plus = p.upper_objective(theta + FD_STEP * v, FD_LL_TOL)
        f_minus = p.upper_objective(theta - FD_STEP * v, FD_LL_TOL)
        numeric = (f_plus - f_minus) / (2 * FD_STEP)
        assert abs(analytic - numeric) <= FD_RTOL * abs(numeric), (seed, analytic, numeric)


@pytest.mark.parametrize("name", ["quadratic", "tikhonov_adp"])
def test_hypergradient_matches_closed_form(name):
    p = problems.make_problem(name)
    for theta in (p.theta0, perturbed_theta(p, seed=5)):
        assert _rel(p.hypergradient(theta, 1e-12), p.closed_form_hypergradient(theta)) <= 1e-9


def test_quadratic_closed_forms():
    p = problems.make_problem("quadratic")
    theta = perturbed_theta(p)
    assert p.upper_objective(theta, 1e-12) == pytest.approx(p.closed_form_objective(theta), rel=1e-12)
    # θ* is a stationary point of F, and F(θ*) is below F elsewhere
    g_star = p.closed_form_hypergradient(p.theta_star)
    assert float(torch.linalg.vector_norm(g_star)) <= 1e-12 * float(torch.linalg.vector_norm(p.c))
    assert p.closed_form_objective(p.theta_star) < p.closed_form_objective(theta)


def test_tikhonov_closed_form_solution():
    p = problems.make_problem("tikhonov_adp")
    theta = perturbed_theta(p)
    x_ref = p.closed_form_solution(theta)
    assert float(torch.linalg.vector_norm(p.solve_lower(theta, 1e-12) - x_ref)) <= 1e-12


@pytest.mark.parametrize("upper_operator", ["known", "learned"])
def test_deconv1d_closed_forms_match_autograd_defaults(upper_operator):
    p = problems.make_problem("deconv1d", upper_operator=upper_operator, beta=0.3)
    theta = perturbed_theta(p)
    x = p.solve_lower(theta, 1e-10)
    assert 0 < int((x != 0).sum()) < x.numel()
    v, q = _randn_like(x, 7), _randn_like(x, 8)

    hv = p._hvp(theta, x, v)
    hv_ref = BilevelProblem._hvp(p, theta, x, v)
    assert _rel(hv, hv_ref) <= 1e-13
    assert bool((hv[x == 0] == 0).all())  # restricted to the active set

    assert _rel(p._ul_grad_x(theta, x), BilevelProblem._ul_grad_x(p, theta, x)) <= 1e-13

    z = p._hypergradient_from(theta, x, q)
    z_ref = BilevelProblem._hypergradient_from(p, theta, x, q)
    assert _rel(z, z_ref) <= 1e-13


# ---------------------------------------------------------------------------------------- 2. certificate, CG
@pytest.mark.parametrize(
    ("name", "step"),
    [("deconv1d", None), ("deconv1d", 0.1), ("quadratic", None), ("tikhonov_adp", None)],
    ids=["deconv1d", "deconv1d-paper-step", "quadratic", "tikhonov_adp"],
)
def test_lower_solve_certificate(name, step):
    p = problems.make_problem(name)
    theta = perturbed_theta(p)
    ref = p.ll_solve(theta, p.x0, 1e-13, 1_000_000)
    assert ref.converged and ref.dist_bound <= 1e-13
    for eps in (1e-2, 1e-4, 1e-6, 1e-8):
        before = p.counters.ll_iters
        res = p.ll_solve(theta, p.x0, eps, 100_000, step)
        assert res.converged and res.dist_bound <= eps
        assert p.counters.ll_iters - before == res.iters  # every iteration is a counted oracle call
        true_dist = float(torch.linalg.vector_norm(res.x - ref.x))
        assert true_dist <= eps - ref.dist_bound, (eps, true_dist, res.dist_bound)
        assert true_dist <= res.dist_bound + ref.dist_bound  # the certificate is an upper bound
    # warm started at the solution: certified after one step
    assert p.ll_solve(theta, ref.x, 1e-8, 10, step).iters == 1


@pytest.mark.parametrize("name", CORE_PROBLEMS)
def test_lower_solve_bound_holds_when_capped(name):
    p = problems.make_problem(name)
    theta = perturbed_theta(p)
    ref = p.ll_solve(theta, p.x0, 1e-13, 1_000_000)
    res = p.ll_solve(theta, p.x0, 1e-10, 3)
    assert not res.converged and res.iters == 3 and res.dist_bound > 1e-10
    assert float(torch.linalg.vector_norm(res.x - ref.x)) <= res.dist_bound + ref.dist_bound


def _spd(n: int, cond: float, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=_gen(seed), dtype=torch.float64))
    return (
        q
        @ torch.diag(torch.logspace(0, torch.log10(torch.tensor(cond)).item(), n, dtype=torch.float64))
        @ q.T
    )


@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-9])
def test_conjugate_gradient_reaches_requested_residual(tol):
    h = _spd(60, 1e3, seed=0)
    rhs = torch.randn(60, generator=_gen(1), dtype=torch.float64)
    calls = []

    def matvec(v):
        calls.append(1)
        return h @ v

    q, res = conjugate_gradient(matvec, rhs, None, tol, 1000)
    true_res = float(torch.linalg.vector_norm(h @ q - rhs))
    assert res <= tol and true_res <= tol
    assert abs(true_res - res) <= 1e-12 * float(torch.linalg.vector_norm(rhs))
    assert len(calls) <= 1000
    # warm start at the answer: one matvec for the initial residual, nothing else
    calls.clear()
    q2, res2 = conjugate_gradient(matvec, rhs, q, tol, 1000)
    assert len(calls) == 1 and torch.equal(q2, q) and res2 <= tol


def test_adjoint_solve_counts_hvps():
    p = problems.make_problem("tikhonov_adp")
    theta = p.theta0
    x = p.solve_lower(theta, 1e-10)
    assert not any(p.counters.snapshot().values())  # reference = uncounted
    q, res = p.adjoint_solve(theta, x, 1e-9, 500)
    assert res <= 1e-9 and p.counters.cg_iters > 0
    hq = BilevelProblem._hvp(p, theta, x, q)
    assert float(torch.linalg.vector_norm(hq - p.ul_grad_x(theta, x))) <= 1e-9


# ---------------------------------------------------------------------------------------- reference API
@pytest.mark.parametrize("name", CORE_PROBLEMS)
def test_reference_api_is_uncounted(name):
    p = problems.make_problem(name)
    theta = perturbed_theta(p)
    value = p.upper_objective(theta, 1e-10)
    grad = p.hypergradient(theta, 1e-10)
    out = p.evaluate(theta, 1e-10)
    assert not any(p.counters.snapshot().values())
    assert set(out) == {"upper_value", *p.metric_names}
    assert out["upper_value"] == pytest.approx(value, rel=1e-9)
    assert grad.shape == theta.shape


def test_float32_instance():
    p = problems.make_problem("quadratic", dtype="float32")
    assert p.theta0.dtype == torch.float32 and p.x0.dtype == torch.float32
    assert p.upper_objective(p.theta0, 1e-4) == pytest.approx(p.closed_form_objective(p.theta0), rel=1e-4)


# ---------------------------------------------------------------------------------------- 9. bad input
def test_unknown_problem_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown problem 'nope'.*valid problems:.*deconv1d.*quadratic"):
        problems.make_problem("nope")


def test_unknown_parameter_lists_valid_parameters():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) sigmaa .*'deconv1d'.*valid:.*sigma=5\.0"):
        problems.make_problem("deconv1d", sigmaa=1.0)


@pytest.mark.parametrize("dtype", ["float16", "double", torch.float16, torch.int64])
def test_bad_dtype(dtype):
    with pytest.raises(ValueError, match=r"dtype must be .*float32.*float64"):
        problems.make_problem("quadratic", dtype=dtype)


def test_bad_upper_operator():
    with pytest.raises(ValueError, match=r"upper_operator must be 'known' or 'learned', got 'blind'"):
        problems.make_problem("deconv1d", upper_operator="blind")


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("deconv1d", {"a2": 0.0}, r"a2 > 0"),
        ("deconv1d", {"beta": -1.0}, r"beta ≥ 0"),
        ("tikhonov_adp", {"alpha": 0.0}, r"alpha > 0"),
        ("quadratic", {"n": 9}, r"n ≤ min\(m1, m2\)"),
    ],
)
def test_out_of_range_problem_parameters(name, params, match):
    with pytest.raises(ValueError, match=match):
        problems.make_problem(name, **params)


def test_lower_solve_stops_when_the_dtype_cannot_resolve_the_accuracy():
    """float32 cannot resolve ‖∇h‖ ≤ 1e-20: the request is clipped to the dtype's floor, the
    solve stops there (not at max_iters) and reports the floor and the bound it achieved."""
    p = problems.make_problem("tikhonov_adp", dtype="float32")
    res = p.ll_solve(p.theta0, p.x0, 1e-20, 1_000_000)
    assert 0 < res.eps_floor < 1e-3
    assert res.converged and res.dist_bound <= res.eps_floor
    assert res.iters < 10_000
