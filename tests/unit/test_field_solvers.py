"""The field's solvers: series/truncation bias against the exact hypergradient, the F2SA
gradient oracle against finite differences, exact work counts, HOAG's schedule and step control,
maid_accel's nonmonotone guarantee, bad configs, and `adpbench run -s all`.

θ* on `quadratic`, oracle counts against real calls and the solver × problem contract are the
registry-driven tests of ``tests/unit/test_solvers.py`` and ``tests/contract/test_harness.py``."""

from __future__ import annotations

import pytest
import torch

import bench
import problems
import solvers
from bench import cli, results


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


KS = (1, 2, 5, 10, 20, 50)


def series_bias(problem: problems.BilevelProblem, name: str, k: int) -> float:
    """‖z_K − ∇F‖/‖∇F‖ at θ₀ with the lower level solved to 1e-12 (the hypergradient's own bias)."""
    theta = problem.theta0
    exact = problem.hypergradient(theta, 1e-12)
    x_hat = problem.solve_lower(theta, 1e-12)
    if name == "trbp":
        solver = solvers.make_solver("trbp", n_unroll=k, eps=1e-12)
        grad, _, _ = solver.truncated_gradient(problem, theta, x_hat)
    elif name == "jfb":
        grad = solvers.make_solver("jfb").series_hypergradient(problem, theta, x_hat)
    else:
        grad = solvers.make_solver("neumann", n_terms=k).series_hypergradient(problem, theta, x_hat)
    return _rel(grad, exact)


# ---------------------------------------------------------------------------------------- bias vs K
@pytest.mark.parametrize("problem_name", ["deconv1d", "tikhonov_adp"])
@pytest.mark.parametrize("name", ["neumann", "trbp"])
def test_truncation_bias_shrinks_with_k(problem_name, name):
    """Theory: the error of q_K is −(I − λH)^K q with 0 ⪯ I − λH ≺ I (λ = 1/L), so it shrinks with K."""
    p = problems.make_problem(problem_name)
    bias = [series_bias(p, name, k) for k in KS]
    print(f"{name} bias on {problem_name} for K={KS}: " + ", ".join(f"{b:.3g}" for b in bias))
    assert all(a > b for a, b in zip(bias, bias[1:], strict=False)), bias
    assert bias[-1] < 0.5 * bias[0], bias


@pytest.mark.parametrize("problem_name", ["deconv1d", "tikhonov_adp", "quadratic"])
def test_trbp_from_the_solution_is_the_neumann_series(problem_name):
    """K back-propagated steps from x̂ give dx_K/dθ = Σ_{j<K}(I − λH)^j(−λ∂_θ∇f): the K-term series, and
    JFB is its K = 1 term."""
    p = problems.make_problem(problem_name)
    theta = p.theta0
    x_hat = p.solve_lower(theta, 1e-12)
    for k in (1, 3, 10):
        trbp, _, _ = solvers.make_solver("trbp", n_unroll=k, eps=1e-12).truncated_gradient(p, theta, x_hat)
        neu = solvers.make_solver("neumann", n_terms=k).series_hypergradient(p, theta, x_hat)
        assert _rel(trbp, neu) <= 1e-8, (k, _rel(trbp, neu))
    jfb = solvers.make_solver("jfb").series_hypergradient(p, theta, x_hat)
    one = solvers.make_solver("neumann", n_terms=1).series_hypergradient(p, theta, x_hat)
    assert torch.equal(jfb, one)


def test_neumann_series_converges_to_the_exact_hypergradient():
    p = problems.make_problem("tikhonov_adp")
    exact = torch.as_tensor(p.closed_form_hypergradient(p.theta0))
    deep = solvers.make_solver("neumann", n_terms=20000).series_hypergradient(
        p, p.theta0, p.solve_lower(p.theta0, 1e-12)
    )
    assert _rel(deep, exact) <= 1e-8


@pytest.mark.parametrize("name", ["neumann", "jfb", "trbp"])
def test_biased_solvers_decrease_the_upper_objective(name):
    p = problems.make_problem("deconv1d")
    result = bench.run(name, p, max_iters=30)
    f0 = p.upper_objective(p.theta0, 1e-10)
    f_end = p.upper_objective(result.theta, 1e-10)
    assert f_end < f0, (f0, f_end)
    assert result.trace.upper_value.is_monotonic_decreasing


# ---------------------------------------------------------------------------------------- F2SA oracle
def test_gap_gradient_matches_central_differences():
    """∇_θ[h(x, θ) − h(w, θ)] against central differences of the hand-written h of tikhonov_adp."""
    p = problems.make_problem("tikhonov_adp", n=8)
    gen = torch.Generator().manual_seed(1)
    x, w = (torch.randn(8, generator=gen, dtype=torch.float64) for _ in range(2))
    direction = torch.randn(8, 8, generator=gen, dtype=torch.float64)

    def h(theta, v):
        return 0.5 * torch.sum((theta @ v - p.y) ** 2) + 0.5 * p.alpha * torch.sum(v**2)

    grad = p.ll_gap_grad_theta(p.theta0, x, w)
    t = 1e-6
    plus, minus = p.theta0 + t * direction, p.theta0 - t * direction
    fd = ((h(plus, x) - h(plus, w)) - (h(minus, x) - h(minus, w))) / (2 * t)
    assert float(torch.sum(grad * direction)) == pytest.approx(float(fd), rel=1e-7)
    assert p.counters.ll_iters == 2  # two counted ∇_x f evaluations


def test_f2sa_penalty_gradient_approaches_the_hypergradient():
    """‖∇F_λ − ∇F‖ = O(1/λ) (Kwon et al., Lemma 3.1): a tenfold λ cuts the error about tenfold."""
    p = problems.make_problem("tikhonov_adp")
    exact = p.closed_form_hypergradient(p.theta0)
    errors = []
    for lam in (1e2, 1e3, 1e4):
        f2sa = solvers.make_solver("f2sa", lam0=lam, lam_max=lam, eps0=1e-12, ll_max_iters=100_000)
        state = f2sa.init(p)
        errors.append(_rel(state.z, exact))
    assert errors[0] < 0.1
    for a, b in zip(errors, errors[1:], strict=False):
        assert 5 < a / b < 20, errors


# ---------------------------------------------------------------------------------------- exact counts
def test_work_per_iteration_is_what_the_docstrings_say():
    p = problems.make_problem("deconv1d")
    amigo = solvers.make_solver("amigo", ll_inner=4, adjoint_inner=3)
    last = bench.run(amigo, p, max_iters=5).trace.iloc[-1]
    assert (last.ll_iters, last.cg_iters, last.ul_evals) == (6 * 4, 6 * 3, 6)
    neumann = solvers.make_solver("neumann", n_terms=7)
    tr = bench.run(neumann, problems.make_problem("deconv1d"), max_iters=5).trace
    assert tr.cg_iters.iloc[-1] == 6 * 6 and tr.ul_evals.iloc[-1] == 6
    for name in ("jfb", "trbp", "f2sa"):  # no Hessian-vector products
        tr = bench.run(name, problems.make_problem("deconv1d"), max_iters=3).trace
        assert tr.cg_iters.iloc[-1] == 0 and tr.ll_iters.iloc[-1] > 0, name


# ---------------------------------------------------------------------------------------- HOAG
def test_hoag_schedules():
    geo = solvers.make_solver("hoag", eps0=1e-2, eps_decrease=0.5, eps_min=1e-5)
    assert [geo.eps_at(k) for k in (0, 1, 3, 20)] == pytest.approx([1e-2, 5e-3, 1.25e-3, 1e-5])
    quad = solvers.make_solver("hoag", schedule="quadratic", eps0=1.0, eps_min=1e-9)
    cubic = solvers.make_solver("hoag", schedule="cubic", eps0=1.0, eps_min=1e-9)
    assert quad.eps_at(3) == pytest.approx(1 / 16) and cubic.eps_at(3) == pytest.approx(1 / 64)


def test_hoag_rejects_a_rising_step_and_doubles_l():
    p = problems.make_problem("quadratic")
    hoag = solvers.make_solver("hoag", step0=50 * p.ul_step0)  # far past 2/L of F: F rises
    state = hoag.init(p)
    new = hoag.update(p, state)
    assert not new.accepted and new.step_size == 0.0
    assert torch.equal(new.theta, state.theta) and new.lip == pytest.approx(2 * state.lip)
    result = bench.run(hoag, problems.make_problem("quadratic"), max_iters=200)
    assert result.trace.accepted.iloc[1:].any() and result.trace.upper_value.iloc[-1] < state.upper_value


# ---------------------------------------------------------------------------------------- maid_accel
def test_maid_accel_iterates_stay_below_the_nonmonotone_reference():
    """Guarantee of the docstring: F(θ_{k+1}) ≤ C_k − w_k − cα‖z‖² on accepted steps, C_k non-increasing."""
    p = problems.make_problem("deconv1d")
    solver = solvers.make_solver("maid_accel", eps0=0.1, step0=0.05)
    c = solver.eta**2
    state = solver.init(p)
    assert p.upper_objective(state.theta, 1e-11) <= state.ref
    accepted = 0
    for _ in range(15):
        new = solver.update(p, state)
        assert new.ref <= state.ref + 1e-15
        if new.accepted:
            accepted += 1
            f_new = p.upper_objective(new.theta, 1e-11)
            assert f_new <= state.ref - c * new.step_size * new.hypergrad_norm**2 + 1e-9
        state = new
    assert accepted >= 10


def test_maid_accel_without_bb_and_memory_is_maid():
    p1, p2 = problems.make_problem("deconv1d"), problems.make_problem("deconv1d")
    a = bench.run(solvers.make_solver("maid_accel", zh_eta=0.0, bb_safeguard=1.0), p1, max_iters=8)
    b = bench.run(solvers.make_solver("maid"), p2, max_iters=8)  # both with MAID's tangent warm start
    cols = ["upper_value", "step_size", "eps", "backtracks", "ll_iters", "cg_iters"]
    assert torch.allclose(a.theta, b.theta, rtol=1e-12, atol=1e-14)
    assert (a.trace[cols[3:]].values == b.trace[cols[3:]].values).all()


# ---------------------------------------------------------------------------------------- bad input, CLI
@pytest.mark.parametrize(
    ("name", "config", "match"),
    [
        ("hoag", {"schedule": "linear"}, r"HOAG\.schedule must be one of geometric, quadratic, cubic"),
        ("hoag", {"eps_decrease": 1.0}, r"HOAG\.eps_decrease must be in \(0, 1\)"),
        ("maid_accel", {"zh_eta": 1.5}, r"MAIDAccel\.zh_eta must be in \[0, 1\]"),
        ("maid_accel", {"bb_safeguard": 0.5}, r"MAIDAccel\.bb_safeguard must be in \[1, inf\)"),
        ("neumann", {"n_terms": 0}, r"Neumann\.n_terms must be in \[1, inf\)"),
        ("jfb", {"eps": -1.0}, r"JFB\.eps must be in \(0, inf\)"),
        ("trbp", {"n_unroll": 2.5}, r"TRBP\.n_unroll must be an integer"),
        ("amigo", {"adjoint_inner": 0}, r"AmIGO\.adjoint_inner must be in \[1, inf\)"),
        ("f2sa", {"lam_max": 1.0}, r"F2SA\.lam_max must be in \[10\.0, inf\)"),
    ],
)
def test_field_solver_bad_config(name, config, match):
    with pytest.raises(ValueError, match=match):
        solvers.make_solver(name, **config)


@pytest.mark.parametrize("name", ["hoag", "maid_accel", "neumann", "jfb", "trbp", "amigo", "f2sa"])
def test_unknown_field_lists_the_valid_ones(name):
    valid = solvers.list_solvers()[name]
    with pytest.raises(
        ValueError, match=rf"unknown config field\(s\) bogus for solver '{name}'; valid: "
    ) as err:
        solvers.make_solver(name, bogus=1)
    assert all(f"{field}=" in str(err.value) for field in valid)


def test_cli_all_runs_every_solver(tmp_path):
    out = tmp_path / "r"
    code = cli.main(
        [
            "run",
            "--no-progress",
            "--no-report",
            "-p",
            "quadratic",
            "-s",
            "all",
            "--max-iters",
            "1",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    traces = results.load_traces(out)
    assert sorted(set(traces.solver)) == sorted(solvers.list_solvers())
    assert solvers.solver_names()[:3] == ["maid", "ift", "lista"]
