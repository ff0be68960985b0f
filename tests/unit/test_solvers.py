"""Solvers: the closed-form optimum, MAID's certified decrease, LISTA's bias, config validation
(docs/maths.md §7)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import bench
import problems
import solvers


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


# ---------------------------------------------------------------------------------------- 3. θ* of quadratic
def _quadratic_optimal_step(p) -> float:
    """2/(σ_max² + σ_min²) of M: the fastest fixed gradient step on F = ½‖Mθ + c‖²."""
    s = torch.linalg.svdvals(p.M)
    return 2.0 / float(s[0] ** 2 + s[-1] ** 2)


# Per-solver configuration and budget that converge on `quadratic`; a solver registered later gets its
# defaults and the fallback budget. MAID adapts its own step; the fixed-step methods get the optimal one.
QUADRATIC_RUNS = {
    "maid": (lambda p: {"tol": 1e-14, "ll_max_iters": 2000}, 2000),
    "ift": (lambda p: {"eps": 1e-11, "step0": _quadratic_optimal_step(p)}, 1500),
    "lista": (lambda p: {"step0": _quadratic_optimal_step(p)}, 1500),
    # the field's solvers; the series / truncated / penalty methods have θ* as their fixed point
    # here (dim θ = dim x, J invertible), so they are held to the same tolerance
    "hoag": (lambda p: {"eps_min": 1e-12, "step0": _quadratic_optimal_step(p)}, 1200),
    "maid_accel": (lambda p: {"tol": 1e-14, "ll_max_iters": 2000}, 1500),
    "neumann": (lambda p: {"eps": 1e-11, "step0": _quadratic_optimal_step(p)}, 1200),
    "jfb": (lambda p: {"eps": 1e-11, "step0": _quadratic_optimal_step(p)}, 2000),
    "trbp": (lambda p: {"eps": 1e-11, "step0": _quadratic_optimal_step(p)}, 1200),
    "amigo": (lambda p: {"step0": _quadratic_optimal_step(p)}, 1200),
    "f2sa": (lambda p: {"step0": _quadratic_optimal_step(p)}, 1200),
}
#: the tighter targets (relative error of θ); every other solver: 1e-5
QUADRATIC_TOL = {"maid_accel": 1e-6, "amigo": 1e-6}
#: targets for the best iterate of the run, where the final one cannot show how close a solver got. HOAG
#: accepts a step whose inexact value rose by at most its tolerance terms C·ε + ε(C + 1)Δ; with ε at eps_min,
#: once F − F* is below them that admits a slow divergence along the top eigenvector until the rise shows
#: and the step is halved: it reaches ~1e-12, then cycles up to ~6e-6 (seeds 0–5, 3000 iterations), so
#: where the budget ends in the cycle depends on rounding. Judged at 1e-5 at the end, 1e-9 at its best.
QUADRATIC_BEST_TOL = {"hoag": 1e-9}


#: `quadratic` has the same conditioning (cond(M) = 10, ‖θ*‖ = 1) at every seed: several seeds, one test
QUADRATIC_SEEDS = (0, 1, 2)


@pytest.mark.parametrize("seed", QUADRATIC_SEEDS)
@pytest.mark.parametrize("name", sorted(solvers.list_solvers()))
def test_every_solver_reaches_quadratic_optimum(name, seed):
    p = problems.make_problem("quadratic", seed=seed)
    config, budget = QUADRATIC_RUNS.get(name, (lambda p: {}, 3000))
    # judged against θ* directly: the harness's exact evaluation (tested on the quadratic at its own seeds in
    # tests/integration/test_exact_verdicts.py) would only add its cost at each of up to 3000 rows
    result = bench.run(solvers.make_solver(name, **config(p)), p, max_iters=budget, exact=False)
    assert result.status in ("converged", "budget"), result.message
    err = _rel(result.theta, p.theta_star)
    assert err <= QUADRATIC_TOL.get(name, 1e-5), (name, err, len(result.trace) - 1)
    if name in QUADRATIC_BEST_TOL:
        assert result.trace["theta_error"].min() <= QUADRATIC_BEST_TOL[name], name
    assert result.trace["theta_error"].iloc[-1] == pytest.approx(err, rel=1e-12)
    assert result.trace["upper_value"].iloc[-1] == pytest.approx(
        p.closed_form_objective(p.theta_star), rel=1e-9
    )


# ---------------------------------------------------------------------------------------- 4. MAID certifies
@pytest.mark.parametrize(
    ("name", "config"),
    [
        # a coarse start (ε₀ = 0.1) and a long first step force rejections and accuracy retries
        ("deconv1d", {"eps0": 0.1, "step0": 0.05}),
        ("deconv1d", {}),
        ("tikhonov_adp", {}),
    ],
    ids=["deconv1d-coarse", "deconv1d-paper", "tikhonov_adp"],
)
def test_maid_accepted_steps_decrease_true_objective(name, config):
    p = problems.make_problem(name)
    maid = solvers.make_solver("maid", **config)
    c = maid.eta**2 if maid.c is None else maid.c
    tol = 1e-11
    state = maid.init(p)
    f_old = p.upper_objective(state.theta, tol)
    accepted = rejections = 0
    for _ in range(20):
        eps_before = state.eps
        new = maid.update(p, state)
        retries = new.backtracks // maid.max_backtracks  # failed line searches before the accepted one
        if new.accepted:
            accepted += 1
            assert new.eps == pytest.approx(eps_before * maid.nu**retries * maid.nu_bar, rel=1e-12)
            f_new = p.upper_objective(new.theta, tol)
            assert f_new < f_old
            # Lemma 1: F(θ') − F(θ) ≤ −c·α·‖z‖²; both F computed to within ‖∇g‖·tol (+ O(tol²))
            slack = 2 * tol * (1.0 + float(torch.linalg.vector_norm(p.ul_grad_x(new.theta, new.x))))
            assert f_new - f_old <= -c * new.step_size * new.hypergrad_norm**2 + slack
            f_old = f_new
        else:
            assert torch.equal(new.theta, state.theta) and new.step_size == 0.0
            assert new.eps < eps_before
        rejections += new.backtracks
        state = new
    assert accepted >= 10
    if name == "deconv1d" and config:
        assert rejections > 0  # the case above exercises the rejection path


# ---------------------------------------------------------------------------------------- 5. LISTA bias
@pytest.mark.parametrize("name", ["deconv1d", "tikhonov_adp"])
@pytest.mark.parametrize("start", ["xhat_loose", "x0"])
def test_lista_bias_decreases_with_unrolling_depth(name, start):
    p = problems.make_problem(name)
    theta = p.theta0
    exact = p.hypergradient(theta, 1e-12)
    x_start = p.solve_lower(theta, 1e-3) if start == "xhat_loose" else p.x0
    errors = [
        _rel(solvers.make_solver("lista", n_unroll=k).unrolled_gradient(p, theta, x_start), exact)
        for k in (5, 20, 50, 200)
    ]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 1e-2 * errors[0], errors


def test_lista_gradient_is_exact_in_the_limit():
    p = problems.make_problem("tikhonov_adp")
    exact = p.hypergradient(p.theta0, 1e-12)
    deep = solvers.make_solver("lista", n_unroll=1000).unrolled_gradient(
        p, p.theta0, p.solve_lower(p.theta0, 1e-3)
    )
    assert _rel(deep, exact) <= 1e-9


def test_lista_1d_bias_at_k50():
    """The paper's LISTA discussion quotes ≈4 % at K = 50 in 1D; measured here: ≈1.8 % (step 1/L) from
    x̂(θ₀)."""
    p = problems.make_problem("deconv1d")
    theta = p.theta0
    exact = p.hypergradient(theta, 1e-12)
    x_hat = p.solve_lower(theta, 1e-10)
    bias = {
        step: _rel(
            solvers.make_solver("lista", n_unroll=50, ll_step=step).unrolled_gradient(p, theta, x_hat), exact
        )
        for step in (None, 1.0)
    }
    print(
        f"LISTA 1D hypergradient bias at K=50 from x̂(θ₀): step 1/L {bias[None]:.4%}, step 1 {bias[1.0]:.4%}"
    )
    for value in bias.values():
        assert 1e-3 <= value <= 0.2


# ---------------------------------------------------------------------------------------- 9. config errors
def test_unknown_solver_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown solver 'adam'; valid solvers: .*ift.*lista.*maid"):
        solvers.make_solver("adam")


def test_unknown_config_field_lists_valid_fields():
    with pytest.raises(
        ValueError, match=r"unknown config field\(s\) rhoo for solver 'maid'; valid: .*rho=0\.5"
    ):
        solvers.make_solver("maid", rhoo=0.5)


@pytest.mark.parametrize(
    ("name", "config", "match"),
    [
        ("maid", {"rho": 1.5}, r"MAID\.rho must be in \(0, 1\), got 1\.5"),
        ("maid", {"nu": 0.0}, r"MAID\.nu must be in \(0, 1\)"),
        ("maid", {"rho_bar": 0.9}, r"MAID\.rho_bar must be in \[1, inf\)"),
        ("maid", {"eps0": -1e-3}, r"MAID\.eps0 must be in \(0, inf\)"),
        ("maid", {"max_backtracks": 0}, r"MAID\.max_backtracks must be in \[1, inf\)"),
        ("maid", {"tol": float("nan")}, r"MAID\.tol"),
        ("ift", {"eps": 0.0}, r"IFT\.eps must be in \(0, inf\)"),
        ("ift", {"step0": -1.0}, r"IFT\.step0"),
        ("ift", {"step0": float("inf")}, r"IFT\.step0 must be in \(0, inf\), got inf"),
        ("lista", {"n_unroll": 0}, r"LISTA\.n_unroll must be in \[1, inf\)"),
        ("lista", {"ll_step": 0.0}, r"LISTA\.ll_step"),
    ],
)
def test_out_of_range_config(name, config, match):
    with pytest.raises(ValueError, match=match):
        solvers.make_solver(name, **config)


@pytest.mark.parametrize("name", sorted(solvers.list_solvers()))
def test_solver_configs_are_frozen_named_dataclasses(name):
    solver = solvers.make_solver(name)
    assert solver.name == name and dataclasses.is_dataclass(solver)
    assert set(solvers.list_solvers()[name]) == {f.name for f in dataclasses.fields(solver)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        solver.step0 = 1.0


def test_maid_slack_uses_the_full_upper_gradient():
    """MAID bounds g(x̂) with ‖∇ₓg(x̃)‖·ε; x̂ − x̃ has components off the ℓ¹ support too, so the norm must be
    of the full gradient, not of the active-set right-hand side of the adjoint system."""
    p = problems.make_problem("deconv1d")
    x = p.solve_lower(p.theta0, 1e-3)
    full, rhs = p.ul_grad_x(p.theta0, x), p.adjoint_rhs(p.theta0, x)
    mask = x != 0
    assert mask.any() and not mask.all()
    assert torch.equal(rhs[~mask], torch.zeros_like(rhs[~mask])) and torch.equal(rhs[mask], full[mask])
    assert float(full[~mask].abs().max()) > 0  # the off-support part is really there
