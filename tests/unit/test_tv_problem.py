"""deblur2d with TV itself in the lower level (regulariser tv / tv_aniso): validation, hypergradients vs
central differences, the hypergradient error bound, counts, MAID's certified descent, LISTA through
primal–dual steps, and which solvers apply.

Differentiable points: the instances of ``test_piggyback.py`` (8×8, ζ = 0.1, θ = θ₀ + 0.01·noise). At θ and
at θ ± h the structure of x̂ is read off a tight primal–dual solve and verified exactly
(``problems.tv_reference``: the reduced solve on that structure and the KKT conditions, certified ≤ 1e-11),
and the point is used only if the three structures agree — then F is smooth on [θ − h, θ + h] and the central
difference is meaningful.
"""

from __future__ import annotations

import math

import pytest
import torch

import bench
from problems.base import PROX_GRADIENT
from problems.deblur2d import Deblur2D
from problems.tv_reference import verify_solution
from solvers import make_solver, solver_class, solver_names
from solvers.base import not_applicable

DT = torch.float64
ZETA = 0.1
FD_STEP = 1e-4  # central differences: O(h²) truncation far below the 1e-6 relative asserted
REF_TOL = 1e-12  # the reference solves (F(θ ± h), ∇F)
#: (regulariser, α, noise seed of θ, boundary, upper operator) — verified differentiable (module docstring)
FD_CASES = [
    ("tv_aniso", 0.05, 1, "periodic", "known"),
    ("tv_aniso", 0.05, 0, "replicate", "known"),
    ("tv_aniso", 0.02, 2, "periodic", "learned"),
    ("tv", 0.01, 2, "periodic", "known"),
    ("tv", 0.02, 1, "periodic", "learned"),
]


def _problem(reg: str, alpha: float, boundary: str = "periodic", upper: str = "known", **kw) -> Deblur2D:
    return Deblur2D(
        size=(8, 8),
        regulariser=reg,
        alpha=alpha,
        zeta=ZETA,
        boundary=boundary,
        beta=0.5,
        upper_operator=upper,
        **kw,
    )


def _theta(problem: Deblur2D, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return problem.theta0 + 0.01 * torch.randn(problem.theta0.shape, generator=gen, dtype=DT)


def _verified_structure(problem: Deblur2D, theta: torch.Tensor):
    """The exact structure of x̂(θ) (module docstring): the reference solve, verified by the KKT conditions."""
    with problem.uncounted():
        x = problem.solve_lower(theta, REF_TOL)
        res = problem.tv_lower.result(x)
        ref = verify_solution(
            lambda v: problem._ll_grad(theta, v),
            lambda v: problem._hvp(theta, None, v),
            problem.tv_lower.tv,
            res.x,
            res.p,
            res.sigma,
            mu=ZETA,
        )
    assert ref.verified(1e-11), (ref.dist_bound, ref.support_margin)
    return ref


# ---------------------------------------------------------------------------------------------- parameters
def test_default_is_smoothed_tv_and_tv_needs_a_true_mu() -> None:
    p = Deblur2D(size=(8, 8))
    assert p.params["regulariser"] == "smoothed_tv" and p.tv_lower is None
    assert p.ll_capabilities == frozenset({PROX_GRADIENT})
    for reg in ("tv", "tv_aniso"):
        with pytest.raises(ValueError, match=r"needs zeta > 0") as err:
            Deblur2D(size=(8, 8), regulariser=reg, zeta=0.0)
        assert "\n" not in str(err.value)
        with pytest.raises(ValueError, match=r"certified settings only"):
            Deblur2D(size=(8, 8), regulariser=reg, preset="authors", zeta=1e-3)
    with pytest.raises(ValueError, match="must be one of 'smoothed_tv', 'tv', 'tv_aniso'"):
        Deblur2D(size=(8, 8), regulariser="total_variation")
    p = Deblur2D(size=(8, 8), regulariser="tv")
    assert p.ll_capabilities == frozenset() and p.mu == p.zeta > 0 and p.certified
    assert p.tv_lower.tv.isotropic and not Deblur2D(size=(8, 8), regulariser="tv_aniso").tv_lower.tv.isotropic


# ------------------------------------------------------------------------------------------ hypergradients
@pytest.mark.parametrize("adjoint", ["piggyback", "projected_cg"])
@pytest.mark.parametrize("reg, alpha, seed, boundary, upper", FD_CASES)
def test_hypergradient_matches_central_differences(reg, alpha, seed, boundary, upper, adjoint) -> None:
    """⟨z, V⟩ from the problem's own oracles (ll_solve, adjoint_solve, hypergradient_from) vs
    (F(θ + hV) − F(θ − hV))/2h with F from the reference API at 1e-12: ≥ 6 significant digits."""
    problem = _problem(reg, alpha, boundary, upper, tv_adjoint=adjoint)
    theta = _theta(problem, seed)
    exact = _verified_structure(problem, theta)
    direction = torch.randn(theta.shape, generator=torch.Generator().manual_seed(100 + seed), dtype=DT)
    direction /= torch.linalg.vector_norm(direction)
    values = []
    for sign in (1.0, -1.0):
        shifted = theta + sign * FD_STEP * direction
        assert _verified_structure(problem, shifted).structure.same_as(exact.structure)
        values.append(problem.upper_objective(shifted, REF_TOL))
    fd = (values[0] - values[1]) / (2 * FD_STEP)

    res = problem.ll_solve(theta, problem.x0, 1e-10, 200_000)
    assert res.converged
    rhs_norm = float(torch.linalg.vector_norm(problem.ul_grad_x(theta, res.x)))
    q, residual = problem.adjoint_solve(theta, res.x, 1e-10 * rhs_norm, 200_000)
    assert residual <= 1e-10 * rhs_norm
    z = float((problem.hypergradient_from(theta, res.x, q) * direction).sum())
    assert abs(z - fd) <= 1e-6 * abs(fd), (z, fd)
    # the reference API's hypergradient (certified by the gap, adjoint on the verified structure) agrees too
    ref = float((problem.hypergradient(theta, REF_TOL) * direction).sum())
    assert abs(ref - fd) <= 1e-6 * abs(fd), (ref, fd)


@pytest.mark.parametrize("reg, alpha, seed, boundary, upper", [c for c in FD_CASES if c[0] == "tv_aniso"])
def test_hypergradient_error_bound_holds(reg, alpha, seed, boundary, upper) -> None:
    """‖z − ∇F(θ)‖ ≤ ω(ε, δ) (``hypergradient_error_bound``) at every tested accuracy pair whose point has the
    structure of x̂ (the bound's hypothesis), against ∇F from the reference API at 1e-12."""
    problem = _problem(reg, alpha, boundary, upper, tv_adjoint="piggyback")
    theta = _theta(problem, seed)
    exact = _verified_structure(problem, theta)
    grad_ref = problem.hypergradient(theta, REF_TOL)
    tested = 0
    for eps in (1e-3, 1e-5, 1e-7, 1e-9):
        for delta in (1e-2, 1e-5, 1e-8):
            res = problem.ll_solve(theta, problem.x0, eps, 200_000)
            if not problem.tv_lower.structure(res.x).same_as(exact.structure):
                continue
            q, residual = problem.adjoint_solve(theta, res.x, delta, 200_000)
            z = problem.hypergradient_from(theta, res.x, q)
            omega = problem.hypergradient_error_bound(theta, res.x, q, res.dist_bound, residual)
            err = float(torch.linalg.vector_norm(z - grad_ref))
            assert err <= omega, (eps, delta, err, omega)
            tested += 1
    assert tested >= 6  # the tight solves always identify the structure
    assert math.isinf(_problem("tv", 0.01).hypergradient_error_bound(theta, res.x, q, 1e-9, 1e-9))


# ---------------------------------------------------------------------------------------------- counting
@pytest.mark.parametrize("reg", ["tv", "tv_aniso"])
@pytest.mark.parametrize("adjoint", ["piggyback", "projected_cg"])
def test_counts_equal_real_calls(reg: str, adjoint: str) -> None:
    """ll_iters = ∇f evaluations (one per primal–dual iteration or projected check), cg_iters = ∇²f products,
    ll_backward_iters = unrolled primal–dual steps back-propagated."""
    problem = _problem(reg, 0.02, tv_adjoint=adjoint)
    calls = {"grad": 0, "hvp": 0}
    grad, hvp = problem._ll_grad, problem._hvp

    def counted_grad(theta, x):
        calls["grad"] += 1
        return grad(theta, x)

    def counted_hvp(theta, x, v):
        calls["hvp"] += 1
        return hvp(theta, x, v)

    problem._ll_grad, problem._hvp = counted_grad, counted_hvp
    theta = _theta(problem, 1)
    res = problem.ll_solve(theta, problem.x0, 1e-6, 100_000)
    assert res.iters == calls["grad"] == problem.counters.ll_iters
    q, _ = problem.adjoint_solve(theta, res.x, 1e-6, 100_000)
    z = problem.hypergradient_from(theta, res.x, q)
    problem.tangent_solve(theta, res.x, z / torch.linalg.vector_norm(z), 1e-6, 10_000)
    assert calls["hvp"] == problem.counters.cg_iters > 0
    before = calls["grad"]
    leaf = theta.clone().requires_grad_(True)
    with torch.enable_grad():
        x = problem.ll_unrolled(leaf, res.x, 7, None)
        (x * x).sum().backward()
    assert calls["grad"] - before == 7 and problem.counters.ll_iters == calls["grad"]
    assert problem.counters.ll_backward_iters == 7
    counted, kept = problem.counters.snapshot(), problem.tv_lower.snapshot()
    problem.upper_objective(theta, 1e-9)  # evaluation is never charged, and leaves no warm start behind
    assert problem.counters.snapshot() == counted and problem.tv_lower.snapshot() == kept


# ---------------------------------------------------------------------------------------------- solvers
@pytest.mark.parametrize("reg, ref_tol, updates", [("tv_aniso", REF_TOL, 8), ("tv", 1e-10, 4)])
def test_maid_accepted_steps_decrease_the_true_objective(reg: str, ref_tol: float, updates: int) -> None:
    """Every step MAID accepts on the certified bounds decreases F as the reference API computes it (the
    isotropic reference to 1e-10 only: its primal–dual solves converge far more slowly)."""
    problem = _problem(reg, 0.02, upper="learned")
    maid = make_solver("maid", eps0=1e-2, step0=1e-1, tol=1e-8, ll_max_iters=100_000, cg_max_iters=20_000)
    state = maid.init(problem)
    value = problem.upper_objective(state.theta, ref_tol)
    accepted = 0
    for _ in range(updates):
        new = maid.update(problem, state)
        if new.accepted:
            new_value = problem.upper_objective(new.theta, ref_tol)
            assert new_value < value, (new_value, value)
            value, accepted = new_value, accepted + 1
        state = new
    assert accepted >= updates // 2


def test_lista_unrolls_primal_dual_steps_towards_the_hypergradient() -> None:
    """LISTA's gradient through K primal–dual steps from the solved point approaches ∇F as K grows."""
    problem = _problem("tv_aniso", 0.05)
    theta = _theta(problem, 1)
    grad_ref = problem.hypergradient(theta, REF_TOL)
    res = problem.ll_solve(theta, problem.x0, 1e-10, 200_000)
    errors = []
    for k in (50, 1500):
        lista = make_solver("lista", n_unroll=k)
        z = lista.unrolled_gradient(problem, theta, res.x)
        errors.append(float(torch.linalg.vector_norm(z - grad_ref) / torch.linalg.vector_norm(grad_ref)))
    assert errors[1] < errors[0] and errors[1] < 1e-5, errors


def test_which_solvers_apply_to_the_non_smooth_lower_level() -> None:
    """A solver applies unless it requires the prox-gradient form; the harness and the job grid refuse
    before any run (``-s all`` skips)."""
    tv, smooth = _problem("tv", 0.02), Deblur2D(size=(8, 8))
    expected = {"maid", "ift", "lista", "hoag", "maid_accel"}
    applies = {n for n in solver_names() if not_applicable(solver_class(n), tv) is None}
    assert applies == expected
    assert all(not_applicable(solver_class(n), smooth) is None for n in solver_names())
    with pytest.raises(ValueError, match="not applicable to non-smooth lower level") as err:
        bench.run("f2sa", tv, max_iters=1)
    assert "\n" not in str(err.value)
    assert tv.counters.ll_iters == 0  # refused before any work
    from bench import sweep

    params = {"size": (8, 8), "regulariser": "tv", "zeta": ZETA}
    probs, solvs = [("deblur2d", params)], [(n, {}) for n in solver_names()]
    with pytest.raises(ValueError, match="solver 'neumann' on deblur2d"):
        sweep.expand(probs, solvs, [0], {"max_iters": 1}, "cpu", "float64")
    jobs = sweep.expand(probs, solvs, [0], {"max_iters": 1}, "cpu", "float64", skip_inapplicable=True)
    assert {j.solver for j in jobs} == expected


@pytest.mark.parametrize(
    "solver, setting, value", [("maid", "cg_precond", "jacobi"), ("ift", "ll_step", 0.1)]
)
def test_settings_the_tv_lower_level_cannot_honour_are_refused_before_any_run(solver, setting, value) -> None:
    from bench import sweep

    tv = _problem("tv", 0.02)
    with pytest.raises(ValueError, match=f"solver '{solver}' on deblur2d: {setting} must be") as err:
        bench.run(solver, tv, max_iters=1, solver_config={setting: value})
    assert "\n" not in str(err.value) and tv.counters.ll_iters == 0
    params = {"size": (8, 8), "regulariser": "tv", "zeta": ZETA}
    with pytest.raises(ValueError, match=f"{setting} must be"):
        sweep.expand([("deblur2d", params)], [(solver, {setting: value})], [0], {}, "cpu", "float64")
    assert _problem("tv", 0.02).config_refusal({"ll_step": None, "cg_precond": "none"}) is None
    assert Deblur2D(size=(8, 8)).config_refusal({setting: value}) is None  # smoothed TV takes both


def test_semiblind2d_takes_the_same_lower_level() -> None:
    """semiblind2d inherits the parameter and the oracles: a certified solve and a finite hypergradient."""
    from problems.deblur2d import SemiBlind2D

    problem = SemiBlind2D(size=(8, 8), regulariser="tv_aniso", alpha=0.05, zeta=ZETA, beta=0.5)
    res = problem.ll_solve(problem.theta0, problem.x0, 1e-8, 100_000)
    assert res.converged and res.dist_bound <= 1e-8
    q, _ = problem.adjoint_solve(problem.theta0, res.x, 1e-8, 100_000)
    assert torch.isfinite(problem.hypergradient_from(problem.theta0, res.x, q)).all()
    assert math.isfinite(problem.upper_objective(problem.theta0))


def test_smoothed_tv_converges_to_tv_as_gamma_shrinks() -> None:
    """F_γ(θ) and ∇F_γ(θ) of the smoothed problem approach F(θ), ∇F(θ) of regulariser=tv_aniso (both by the
    reference API) as γ → 0 at a verified differentiable point: F at O(γ) (each tenfold smaller γ shrinks the
    error ≥ 5×), ∇F monotonically and ≥ 5× over two decades — more slowly than O(γ) here, since the point is
    near-degenerate (flat edges whose dual sits close to ±α delay the hypergradient's O(γ) regime until γ is
    below that slack, docs/nonsmooth_tv.md §8; ``test_tv_smoothing.py`` on a 4×4 instance: O(γ))."""
    tv = _problem("tv_aniso", 0.02, "periodic", "learned")
    theta = _theta(tv, 2)
    value, grad = tv.upper_objective(theta, REF_TOL), tv.hypergradient(theta, REF_TOL)
    value_err, grad_err = [], []
    for gamma in (1e-3, 1e-4, 1e-5):
        smooth = _problem("smoothed_tv", 0.02, "periodic", "learned", gamma=gamma)
        value_err.append(abs(smooth.upper_objective(theta) - value))
        grad_err.append(float(torch.linalg.vector_norm(smooth.hypergradient(theta) - grad)))
    assert all(b <= a / 5 for a, b in zip(value_err, value_err[1:], strict=False)), value_err
    assert grad_err[0] > grad_err[1] > grad_err[2] and grad_err[2] <= grad_err[0] / 5, grad_err
