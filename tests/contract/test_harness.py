"""The harness: oracle counts, determinism, trace schema on every solver × problem, budgets,
divergence and errors (docs/maths.md §7, §8)."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

import bench
import problems
import solvers
from solvers.base import SolverState

ALL_SOLVERS = sorted(solvers.list_solvers())
ALL_PROBLEMS = sorted(problems.list_problems())
COUNTERS = ("ll_iters", "cg_iters", "ul_evals")
DOCUMENTED_COLUMNS = (
    "problem",
    "solver",
    "seed",
    "iteration",
    "wall_time",
    "upper_value",
    "hypergrad_norm",
    "ll_iters",
    "cg_iters",
    "eps",
    "step_size",
    "backtracks",
    "status",
)


# ---------------------------------------------------------------------------------------- 6. oracle counts
class _CallCounter:
    """Counts the calls that reach the problem's maths, by wrapping the instance's bound methods.

    ``_ll_grad`` is one lower-level step; an ``ll_unrolled`` call is n_steps of them whether or not it goes
    through ``_ll_grad`` (a closed-form override need not); ``_hvp`` is one CG product; ``ul_g`` is one
    upper-level evaluation (on deconv1d nothing else calls it: ∇_x g, Hv and z are closed forms there).
    """

    def __init__(self, problem, monkeypatch):
        self.ll = self.hvp = self.ul = 0
        self.inner_ll = []  # _ll_grad calls made inside each ll_unrolled call
        self._unrolling = False
        orig_grad, orig_hvp, orig_g = problem._ll_grad, problem._hvp, problem.ul_g
        orig_unrolled = problem.ll_unrolled

        def ll_grad(theta, x):
            if self._unrolling:
                self.inner_ll[-1] += 1
            else:
                self.ll += 1
            return orig_grad(theta, x)

        def ll_unrolled(theta, x, n_steps, step, **kwargs):
            self.ll += n_steps
            self.inner_ll.append(0)
            self._unrolling = True
            try:
                return orig_unrolled(theta, x, n_steps, step, **kwargs)
            finally:
                self._unrolling = False

        def hvp(theta, x, v):
            self.hvp += 1
            return orig_hvp(theta, x, v)

        def ul_g(theta, x):
            self.ul += 1
            return orig_g(theta, x)

        for name, fn in (("_ll_grad", ll_grad), ("ll_unrolled", ll_unrolled), ("_hvp", hvp), ("ul_g", ul_g)):
            monkeypatch.setattr(problem, name, fn)


@pytest.mark.parametrize("solver_name", ALL_SOLVERS)
def test_counters_equal_oracle_calls(solver_name, monkeypatch):
    p = problems.make_problem("deconv1d")
    calls = _CallCounter(p, monkeypatch)
    solver = solvers.make_solver(solver_name)
    # the harness's exact evaluation calls the same maths, uncounted: off here, so every call is the solver's
    result = bench.run(solver, p, max_iters=3, exact=False)
    assert result.status == "budget"
    last = result.trace.iloc[-1]
    assert (last.ll_iters, last.cg_iters, last.ul_evals) == (calls.ll, calls.hvp, calls.ul)
    assert calls.ll > 0 and calls.ul > 0
    if solver_name == "lista":  # K steps per forward pass (init + 3 updates), one evaluation each, no CG
        k = solver.n_unroll
        assert len(calls.inner_ll) == 4
        # an unrolled call does its K steps either all through _ll_grad or all in a closed form
        assert all(inner in (0, k) for inner in calls.inner_ll)
        assert (last.ll_iters, last.cg_iters, last.ul_evals) == (4 * k, 0, 4)
    if solver_name in ("maid", "ift"):
        assert last.cg_iters > 0 and not calls.inner_ll
    # untimed evaluation is never charged: with the exact evaluation on, at every row or only on the
    # schedule, the counts are the same
    again = bench.run(
        solvers.make_solver(solver_name), problems.make_problem("deconv1d"), max_iters=3, eval_every=100
    )
    pd.testing.assert_frame_equal(result.trace[list(COUNTERS)], again.trace[list(COUNTERS)])


# ---------------------------------------------------------------------------------------- 7. determinism
@pytest.mark.parametrize("solver_name", ALL_SOLVERS)
def test_same_seed_same_trace(solver_name):
    runs = [bench.run(solver_name, "deconv1d", max_iters=3, seed=s) for s in (7, 7, 8)]
    a, b, other = (r.trace.drop(columns=["wall_time", "eval_time"]) for r in runs)  # the two clocks
    pd.testing.assert_frame_equal(a, b)
    assert torch.equal(runs[0].theta, runs[1].theta) and torch.equal(runs[0].x, runs[1].x)
    assert (a.seed == 7).all() and (other.seed == 8).all()
    assert a.upper_value.iloc[0] != other.upper_value.iloc[0]  # the seed reaches the problem's data


# ---------------------------------------------------------------------------------------- 8. every pair
@pytest.mark.parametrize("problem_name", ALL_PROBLEMS)
@pytest.mark.parametrize("solver_name", ALL_SOLVERS)
def test_every_solver_on_every_problem(solver_name, problem_name, small_problem):
    p = small_problem(problem_name)  # image problems at 16×16
    theta0 = p.theta0.clone()
    result = bench.run(solver_name, p, max_iters=2)
    trace = result.trace
    missing = {*DOCUMENTED_COLUMNS, *p.metric_names} - set(trace.columns)
    assert not missing, missing
    assert result.status == "budget", result.message
    assert trace.iteration.tolist() == [0, 1, 2]
    assert trace.status.tolist() == ["running", "running", "budget"]
    assert (trace.problem == problem_name).all() and (trace.solver == solver_name).all()
    for col in (*COUNTERS, "wall_time"):
        assert trace[col].is_monotonic_increasing, col
    assert trace.ll_iters.iloc[-1] > 0
    assert trace.upper_value.map(math.isfinite).all()
    assert result.theta.shape == theta0.shape
    assert torch.equal(p.theta0, theta0)  # the solver did not modify the problem's θ₀ in place


# ---------------------------------------------------------------------------------------- budgets
def test_lower_level_budget_stops_the_run():
    """The cap holds inside a lower solve: the step that would pass it is not taken, and the unfinished
    upper iteration is recorded as a partial row with the last accepted θ."""
    result = bench.run("maid", "deconv1d", max_ll_iters=500, max_iters=100)
    trace = result.trace
    assert result.status == "budget" and trace.status.iloc[-1] == "budget"
    assert trace.ll_iters.iloc[-1] == 500 and trace.ll_iters.iloc[-2] < 500
    assert bool(trace.partial.iloc[-1]) and not trace.partial.iloc[:-1].any()
    assert trace.iteration.iloc[-1] == trace.iteration.iloc[-2]  # completed iterations only
    assert trace.upper_value.iloc[-1] == trace.upper_value.iloc[-2]
    assert "max_ll_iters" in result.message
    assert len(trace) < 101


def _entry_times(problem, monkeypatch) -> list[float]:
    """Record when each lower-level step begins (wrapping the maths the counted oracle calls)."""
    import time

    starts: list[float] = []
    orig = problem._ll_grad

    def timed(theta, x):
        starts.append(time.perf_counter())
        return orig(theta, x)

    monkeypatch.setattr(problem, "_ll_grad", timed)
    return starts


def test_time_budget_holds_inside_one_long_lower_solve(monkeypatch):
    """2D: IFT's first lower solve (ε = 1e-9 at 48×48, about 1 100 steps, seconds) is far longer than the
    0.2 s budget. The run must stop inside it, within one lower-level step of the budget, and record
    the initial point as a partial row with status budget."""
    p = problems.make_problem("deblur2d", size=(48, 48), preset="certified")
    starts = _entry_times(p, monkeypatch)
    max_time = 0.2
    config = dict(eps=1e-9, ll_max_iters=100_000)  # by name: deliberate overrides of the protocol's settings
    result = bench.run("ift", p, max_time=max_time, solver_config=config)
    trace = result.trace
    assert result.status == "budget" and "during init" in result.message
    assert trace.iteration.tolist() == [0] and bool(trace.partial.iloc[0])
    assert trace.cg_iters.iloc[0] == 0 and trace.ul_evals.iloc[0] == 0  # cut inside the first lower solve
    assert torch.equal(result.theta, p.theta0)
    one_step = max(np.diff(starts))  # the longest lower-level step (gradient + prox + certificate)
    overrun = trace.wall_time.iloc[0] - max_time
    assert 0 <= overrun <= one_step + 0.01, (overrun, one_step)


def test_time_budget_cuts_an_upper_iteration_and_keeps_the_last_accepted_iterate(monkeypatch):
    p = problems.make_problem("deconv1d")
    starts = _entry_times(p, monkeypatch)
    result = bench.run("ift", p, max_time=0.3)
    trace = result.trace
    assert result.status == "budget"
    if result.message == "max_time":  # the deadline fell after an update's last oracle call (rare)
        assert not trace.partial.any()
    else:
        assert "max_time reached during upper iteration" in result.message
        assert bool(trace.partial.iloc[-1]) and trace.iteration.iloc[-1] == trace.iteration.iloc[-2]
    assert torch.isfinite(result.theta).all()
    assert trace.wall_time.iloc[-1] - 0.3 <= max(np.diff(starts)) + 0.01
    # evaluation stays off the clock and unarmed: metrics were computed after the deadline
    assert trace.rel_error.notna().iloc[-1]


def test_budget_is_disarmed_outside_solver_calls():
    p = problems.make_problem("quadratic")
    with p.budget(deadline=0.0):
        with pytest.raises(problems.base.BudgetExhausted):
            p.upper_value(p.theta0, p.x0)
        with p.uncounted():
            p.upper_value(p.theta0, p.x0)  # evaluation: never charged, never cut
    p.upper_value(p.theta0, p.x0)
    with p.budget(max_ll_iters=3):
        p.ll_unrolled(p.theta0, p.x0, 3, None)
        with pytest.raises(problems.base.BudgetExhausted, match="max_ll_iters"):
            p.ll_grad(p.theta0, p.x0)
    assert p.counters.ll_iters == 3


def test_budget_is_checked_in_the_backward_pass_of_unrolling():
    """LISTA's backward through K unrolled steps is as long as its forward: each step checks the deadline."""
    p = problems.make_problem("deblur2d", size=(16, 16), preset="certified")
    theta = p.theta0.clone().requires_grad_(True)
    with p.budget():
        x = p.ll_unrolled(theta, p.x0, 3, None)
        value = p.upper_value_graph(theta, x)
    with p.budget(deadline=0.0), pytest.raises(problems.base.BudgetExhausted, match="max_time"):
        torch.autograd.grad(value, theta)
    (grad,) = torch.autograd.grad(p.upper_value_graph(theta, p.ll_unrolled(theta, p.x0, 3, None)), theta)
    assert torch.isfinite(grad).all()  # unarmed: no check, no change


def test_zero_time_budget_records_only_the_initial_state():
    result = bench.run("ift", "quadratic", max_time=0.0, max_iters=100)
    assert result.status == "budget" and result.trace.iteration.tolist() == [0]


# ---------------------------------------------------------------------------------------- 9. bad input
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"solver": "nope", "problem": "quadratic"}, r"unknown solver 'nope'; valid solvers: .*maid"),
        ({"solver": "maid", "problem": "nope"}, r"unknown problem 'nope'; valid problems: .*quadratic"),
        (
            {"solver": "maid", "problem": "quadratic", "problem_params": {"size": 3}},
            r"unknown parameter\(s\) size for problem 'quadratic'; valid: .*m1=8",
        ),
        (
            {"solver": "maid", "problem": "quadratic", "solver_config": {"rho": 1.5}},
            r"MAID\.rho must be in \(0, 1\)",
        ),
        (
            {"solver": "maid", "problem": "quadratic", "dtype": "float16"},
            r"dtype must be one of float32, float64",
        ),
        ({"solver": "maid", "problem": "quadratic", "max_iters": -1}, r"max_iters must be an integer ≥ 0"),
        ({"solver": "maid", "problem": "quadratic", "eval_every": 0}, r"eval_every must be ≥ 1"),
    ],
)
def test_run_rejects_bad_input(kwargs, match):
    solver, problem = kwargs.pop("solver"), kwargs.pop("problem")
    with pytest.raises(ValueError, match=match):
        bench.run(solver, problem, **kwargs)


def test_run_rejects_device_mismatch():
    with pytest.raises(ValueError, match=r"device='meta' but the problem lives on cpu"):
        bench.run("maid", problems.make_problem("quadratic"), device="meta")


# ------------------------------------------------------------------------------------ 10. divergence, errors
@pytest.mark.parametrize(
    ("problem_name", "solver_name", "step_factor"),
    [
        ("quadratic", "ift", 1e6),  # F grows past divergence_factor × F(θ₀)
        ("tikhonov_adp", "lista", 1e6),
        # F is bounded on deconv1d (x̂ → 0 as ‖B‖ → ∞); a step that overflows θ must still end as
        # "diverged" (non-finite value), not as an exception inside the lower solver
        ("deconv1d", "ift", 1e297),
        ("deconv1d", "lista", 1e297),
    ],
)
def test_divergence_is_recorded(problem_name, solver_name, step_factor):
    p = problems.make_problem(problem_name)
    solver = solvers.make_solver(solver_name, step0=step_factor * p.ul_step0)
    result = bench.run(solver, p, max_iters=50)
    assert result.status == "diverged", result.message
    assert re.match(r"(upper value|‖θ‖) .* at iteration \d+$", result.message), result.message
    assert result.trace.status.iloc[-1] == "diverged"
    assert (result.trace.status.iloc[:-1] == "running").all()
    assert len(result.trace) < 51


def test_maid_never_accepts_an_uncertified_step():
    """With an absurd initial step every line search fails: θ must stay put, without an exception."""
    p = problems.make_problem("deconv1d")
    result = bench.run(solvers.make_solver("maid", step0=1e300), p, max_iters=5)
    assert result.status in ("stalled", "budget"), result.message  # never "converged" without progress
    assert torch.equal(result.theta, p.theta0)
    assert not result.trace.accepted.iloc[1:].any() and (result.trace.step_size == 0.0).all()


@dataclasses.dataclass(frozen=True)
class _Failing:
    """A solver that takes gradient-free no-op steps and raises in update number ``fail_at``."""

    fail_at: int = 2

    name: ClassVar[str] = "failing"
    default_max_iters: ClassVar[int] = 10

    def init(self, problem):
        return SolverState(
            theta=problem.theta0, x=problem.x0, upper_value=problem.upper_value(problem.theta0, problem.x0)
        )

    def update(self, problem, state):
        calls = getattr(state, "calls", 0) + 1
        if calls == self.fail_at:
            raise FloatingPointError("boom in update")
        new = dataclasses.replace(state)
        new.calls = calls
        return new


def test_exception_in_update_is_recorded(monkeypatch):
    monkeypatch.setitem(solvers._REGISTRY, "failing", _Failing)
    assert "failing" in solvers.list_solvers()
    result = bench.run("failing", "quadratic", max_iters=10)
    assert result.status == "error"
    assert "FloatingPointError: boom in update" in result.message
    assert result.trace.status.iloc[-1] == "error"
    assert result.trace.iteration.tolist() == [0, 1, 2]
    assert (result.trace.solver == "failing").all()


def test_exception_in_init_propagates():
    with pytest.raises(FloatingPointError, match="boom"):
        bench.run(_BrokenInit(), "quadratic", max_iters=2)


@dataclasses.dataclass(frozen=True)
class _BrokenInit(_Failing):
    def init(self, problem):
        raise FloatingPointError("boom in init")


def test_divergence_message_names_what_diverged():
    from bench.harness import _divergence

    assert _divergence(1.0, 1.0, (1.0, 1.0), 1e10) == ""
    assert _divergence(1e11, 1.0, (1.0, 1.0), 1e10).startswith("upper value 1e+11 > 1e+10")
    assert _divergence(1.0, 1e11, (1.0, 1.0), 1e10).startswith("‖θ‖ = 1e+11 > 1e+10")
    assert _divergence(math.nan, 1.0, (1.0, 1.0), 1e10) == "upper value is nan"
    assert _divergence(1.0, math.inf, (1.0, 1.0), 1e10).startswith("‖θ‖ is inf")
