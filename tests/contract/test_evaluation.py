"""The harness's exact evaluation is off the solver's books: identical counts with and without it, solver
time that excludes it, the published columns on every trace, F(θ_k) by the reference solve, and a solver's
own claims (upper_value, converged) judged against it (``bench/evaluation.py``, ``bench/verdicts.py``)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
import pytest
import torch

import bench
import problems
from bench import evaluation, report, results, verdicts
from problems.counting import Counters
from solvers.base import SolverState

COUNTERS = list(Counters().snapshot())


@pytest.mark.parametrize("solver_name", ["maid", "ift", "lista"])
@pytest.mark.parametrize("problem_name", ["deconv1d", "quadratic"])
def test_counts_are_identical_with_and_without_evaluation(solver_name, problem_name):
    on = bench.run(solver_name, problem_name, max_iters=4, solver_config={})
    off = bench.run(solver_name, problem_name, max_iters=4, exact=False)
    pd.testing.assert_frame_equal(on.trace[COUNTERS], off.trace[COUNTERS])
    assert torch.equal(on.theta, off.theta)
    assert on.trace.exact_upper_value.notna().all()  # cheap problems: every row
    assert off.trace.exact_upper_value.isna().all() and off.trace.eval_time.isna().all()


@dataclass(frozen=True)
class _SlowEvaluation:
    """A stand-in for ``Evaluator.evaluate`` that sleeps: an evaluation inside the clock would show."""

    seconds: ClassVar[float] = 0.05


def test_solver_time_excludes_evaluation(monkeypatch):
    real = evaluation.Evaluator.evaluate

    def slow(self, theta):
        row = real(self, theta)
        time.sleep(_SlowEvaluation.seconds)
        row["eval_time"] += _SlowEvaluation.seconds
        return row

    monkeypatch.setattr(evaluation.Evaluator, "evaluate", slow)
    result = bench.run("ift", "quadratic", max_iters=5)
    trace = result.trace
    assert (trace.eval_time >= _SlowEvaluation.seconds).all()
    # six evaluations took ≥ 0.3 s; the solver's five cheap iterations on a 5×5 problem far less
    assert trace.wall_time.iloc[-1] < trace.eval_time.sum() / 2


def test_columns_and_values_are_the_reference_api():
    p = problems.make_problem("tikhonov_adp")
    result = bench.run("maid", p, max_iters=3)
    trace = result.trace
    assert set(evaluation.COLUMNS) <= set(trace.columns)
    last = trace.iloc[-1]
    assert last.exact_upper_value == pytest.approx(p.closed_form_objective(result.theta), rel=1e-9)
    grad = p.closed_form_hypergradient(result.theta)
    assert last.exact_grad_norm == pytest.approx(float(torch.linalg.vector_norm(grad)), rel=1e-6)
    assert (trace.eval_ll_iters > 0).all() and (trace.eval_time > 0).all()
    assert trace.rel_gap.isna().all() and trace.suboptimality.isna().all()  # no F* for tikhonov_adp
    assert result.info["verdict"] == "budget"


def test_quadratic_gaps_use_the_planted_optimum():
    p = problems.make_problem("quadratic")
    result = bench.run("maid", p, max_iters=5)
    trace = result.trace
    f_star = p.reference_optimum()
    assert f_star == 0.5
    f0 = p.closed_form_objective(p.theta0)
    assert trace.exact_upper_value.iloc[0] == pytest.approx(f0, rel=1e-9)
    expected = (trace.exact_upper_value - f_star) / (f0 - f_star)
    pd.testing.assert_series_equal(trace.rel_gap, expected, check_names=False, rtol=1e-7)
    assert trace.rel_gap.iloc[0] == pytest.approx(1.0)


def test_expensive_problems_follow_the_schedule(small_problem):
    p = small_problem("tikhonov_conv2d")
    assert not p.cheap_evaluation
    result = bench.run("ift", p, max_iters=7, eval_every=5)
    evaluated = result.trace.exact_upper_value.notna().tolist()
    # rows 0-4, 6 (log-spaced), 5 (eval_every), 7 (the last); exact_grad_norm only where cheap
    assert evaluated == [True] * 8
    assert result.trace.exact_grad_norm.isna().all()
    result = bench.run("ift", p, max_iters=11, eval_every=100)
    rows = result.trace.iteration[result.trace.exact_upper_value.notna()].tolist()
    assert rows == [0, 1, 2, 3, 4, 6, 8, 11]


# --------------------------------------------------------------------------- a solver that lies
@dataclass(frozen=True)
class _Liar:
    """Reports F = 0 and convergence at its first iteration, after one small gradient-free step."""

    name: ClassVar[str] = "liar"
    default_max_iters: ClassVar[int] = 10

    def init(self, problem):
        return SolverState(theta=problem.theta0, x=problem.x0, upper_value=0.0)

    def update(self, problem, state):
        problem.ll_grad(state.theta, state.x)  # some counted work
        return SolverState(theta=state.theta * 0.999, x=state.x, upper_value=0.0, converged=True)


@pytest.fixture
def lying_run(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.harness.protocols, "check_solver", lambda solver, problem: None)
    result = bench.run(_Liar(), problems.make_problem("quadratic", seed=3), max_iters=10)
    result.trace["budget"] = "{}"
    results.write_run(result, tmp_path, "quadratic__liar__seed3__planted")
    return result, tmp_path


def test_a_lying_solver_is_judged_by_the_exact_values(lying_run):
    result, folder = lying_run
    trace = result.trace
    assert result.status == "converged" and (trace.upper_value == 0.0).all()
    assert (trace.exact_upper_value > 0.5).all()  # F ≥ F* = 1/2 everywhere
    assert trace.rel_gap.iloc[-1] > verdicts.REL_GAP_TARGETS[0]
    assert result.info["verdict"] == "stopped_early" and (trace.verdict == "stopped_early").all()
    assert verdicts.contradicted(result.status, result.info["verdict"])
    table = verdicts.targets_table(trace.assign(case="quadratic", run_id="planted"))
    assert not table.reached.any() and (table.time == math.inf).all()


def test_the_report_contradicts_a_lying_solver(lying_run):
    result, folder = lying_run
    text = report.write_report(folder, figures=False)
    line = next(row for row in text.splitlines() if "| liar |" in row)
    assert "**stopped_early**" in line and "converged" in line
    csv = pd.read_csv(folder / report.SUMMARY_CSV)
    row = csv[csv.solver == "liar"].iloc[0]
    assert row.final_exact_upper_value > 0.5 and math.isnan(row.time_to_target)
    side = (folder / "runs" / "quadratic__liar__seed3__planted.json").read_text()
    assert '"verdict": "stopped_early"' in side


def test_a_problem_that_cannot_be_evaluated_affordably_is_marked_not_evaluated_never_given_own_values():
    p = problems.make_problem("deblur2d", size=(8, 8), regulariser="tv", alpha=0.01, zeta=0.1)
    assert p.evaluation_unavailable  # the reason the report and the docs quote
    res = bench.run("lista", p, max_iters=2)  # fixed work per step (certified isotropic solves stall)
    assert res.trace.exact_upper_value.isna().all() and res.trace.rel_gap.isna().all()
    assert res.trace.upper_value.notna().all()  # the solver's own values stay beside them
    assert res.info["verdict"] == verdicts.NOT_EVALUATED
    assert problems.make_problem("deblur2d", size=(8, 8)).evaluation_unavailable is None
    aniso = problems.make_problem("deblur2d", size=(8, 8), regulariser="tv_aniso")
    assert aniso.evaluation_unavailable is None


@pytest.mark.parametrize("solver_name", ["maid", "ift", "lista"])
@pytest.mark.parametrize("problem_name", ["deblur2d", "semiblind2d"])
def test_anisotropic_tv_runs_are_evaluated_exactly_and_off_the_books(problem_name, solver_name):
    """Anisotropic TV: the reference solve (staged primal–dual + the verified exact solution on the flat
    structure) gives every row its exact value, without touching the solver's counts or iterates."""
    params = {"size": (16, 16), "regulariser": "tv_aniso"}
    on = bench.run(solver_name, problem_name, max_iters=3, problem_params=params)
    off = bench.run(solver_name, problem_name, max_iters=3, problem_params=params, exact=False)
    pd.testing.assert_frame_equal(on.trace[COUNTERS], off.trace[COUNTERS])
    assert torch.equal(on.theta, off.theta)
    assert on.trace.exact_upper_value.notna().all()
    p = problems.make_problem(problem_name, **params)  # a fresh instance: no solver state to warm-start from
    assert p.mu_is_bound and p.evaluation_unavailable is None
    assert on.info["verdict"] != verdicts.NOT_EVALUATED
    exact = on.trace.exact_upper_value
    assert exact.iloc[0] == pytest.approx(p.upper_objective(p.theta0), rel=1e-10)
    assert exact.iloc[-1] == pytest.approx(p.upper_objective(on.theta), rel=1e-10)


def test_the_report_of_a_run_not_evaluated_puts_no_own_value_in_the_exact_columns(tmp_path):
    p = problems.make_problem("deblur2d", size=(8, 8), regulariser="tv", alpha=0.01, zeta=0.1)
    results.write_run(bench.run("lista", p, max_iters=2), tmp_path, "tv_lista")
    report.write_report(tmp_path, figures=False, html=False)
    row = pd.read_csv(tmp_path / report.SUMMARY_CSV).iloc[0]
    assert row.verdict == verdicts.NOT_EVALUATED
    assert math.isnan(row.final_exact_upper_value) and math.isnan(row.best_rel_gap)
    assert math.isfinite(row.final_upper_value)  # the solver's own value, in its own column
    assert math.isnan(row.target) and math.isnan(row.reached)  # no target, so no count of runs reaching it
    # nobody evaluated it: no target rows (neither reached nor missed), and the summary says so
    assert pd.read_csv(tmp_path / report.TARGETS_CSV).empty
    text = (tmp_path / report.SUMMARY_FILE).read_text()
    assert "**Not evaluated exactly** (deblur2d" in text and "## Time to targets" not in text
    report.write_report(tmp_path, figures=False, html=True)  # the page carries the same note
    assert "<b>Not evaluated exactly</b> (deblur2d" in (tmp_path / report.HTML_FILE).read_text()
