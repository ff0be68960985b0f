"""Verdicts, targets, the evaluation schedule and the optima table on hand-built inputs."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import problems
from bench import evaluation, verdicts
from problems import optima

NAN = math.nan


def _trace(gaps, status, run_id="r", values=None, problem="quadratic", **columns) -> pd.DataFrame:
    n = len(gaps)
    values = values if values is not None else [0.5 + g if not math.isnan(g) else NAN for g in gaps]
    frame = dict(
        run_id=run_id,
        case="c",
        problem=problem,
        problem_params='{"seed": 0}',
        solver="s",
        seed=0,
        iteration=range(n),
        wall_time=[0.1 * k for k in range(n)],
        ll_iters=[10 * k for k in range(n)],
        cg_iters=[3 * k for k in range(n)],
        upper_value=values,
        exact_upper_value=values,
        rel_gap=gaps,
        status=["running"] * (n - 1) + [status],
    )
    frame.update(columns)
    return pd.DataFrame(frame)


@pytest.mark.parametrize(
    ("gaps", "status", "expected"),
    [
        ([1.0, 0.5, 2e-5], "budget", "reached 1e-4"),
        ([1.0, 1e-7, 2e-5], "budget", "reached 1e-6"),  # the best row counts, not the last
        ([1.0, 0.05, 0.001], "converged", "reached 1e-3"),  # 1e-3 itself is reached (≤)
        ([1.0, 0.5], "converged", "stopped_early"),
        ([1.0, 0.5], "stalled", "stopped_early"),
        ([1.0, 0.5], "budget", "budget"),
        ([1.0, 1e-3], "diverged", "diverged"),  # failures first, whatever was reached before
        ([1.0, 1e-3], "error", "error"),
        ([1.0, NAN, 0.2], "budget", "budget"),  # rows not evaluated are NaN
        ([NAN, NAN], "converged", "no reference optimum"),
        ([NAN, NAN], "budget", "budget"),
        ([1.0, -1e-3], "converged", "reached 1e-6"),  # below a best-known F*: every target met
    ],
)
def test_verdicts(gaps, status, expected):
    assert verdicts.verdict(pd.Series(gaps), status) == expected


def test_contradiction_is_a_self_stop_above_the_loosest_target():
    assert verdicts.contradicted("converged", "stopped_early")
    assert not verdicts.contradicted("budget", "budget")
    assert not verdicts.contradicted("converged", "reached 1e-1")
    assert verdicts.contradicted("stalled", "stopped_early (vs folder best)")


def test_target_texts():
    assert [verdicts.target_text(t) for t in verdicts.REL_GAP_TARGETS] == [
        "1e-1",
        "1e-2",
        "1e-3",
        "1e-4",
        "1e-6",
    ]
    assert verdicts.target_text(0.0102) == "0.0102"


def test_targets_table_costs_at_the_first_row_at_or_below():
    trace = _trace([1.0, 0.2, 0.05, 0.004, 1e-7], "budget")
    table = verdicts.targets_table(trace).set_index("target")
    assert list(table.index) == list(verdicts.REL_GAP_TARGETS)
    row = table.loc[1e-1]
    assert row.reached and (row.time, row.ll_iters, row.cg_iters, row.upper_iters) == (0.2, 20, 6, 2)
    assert row.work == 26
    assert table.loc[1e-3].upper_iters == 4 and table.loc[1e-6].upper_iters == 4
    assert set(table.gap_source) == {"reference optimum"}


def test_failed_runs_reach_nothing_and_unreached_costs_are_infinite():
    table = verdicts.targets_table(_trace([1.0, 0.05, 1e-7], "diverged"))
    assert not table.reached.any() and (table.time == math.inf).all()
    table = verdicts.targets_table(_trace([1.0, 0.05], "budget")).set_index("target")
    assert table.loc[1e-1].reached and not table.loc[1e-2].reached and table.loc[1e-2].time == math.inf


def test_runs_not_evaluated_have_no_target_rows_beside_evaluated_ones():
    nan = [NAN, NAN, NAN]
    skipped = _trace(nan, "budget", run_id="tv", verdict=verdicts.NOT_EVALUATED, upper_value=[0.9, 0.5, 0.1])
    judged = _trace([1.0, 0.05, 1e-3], "budget", run_id="smooth")
    table = verdicts.targets_table(pd.concat([skipped, judged], ignore_index=True))
    assert set(table.run_id) == {"smooth"}  # the solver's own values of "tv" never stand in
    assert table.set_index("target").loc[1e-1].reached


def test_published_level_is_an_absolute_target_on_exact_values():
    values = [0.8, 0.02, 0.0101]
    own = [0.8, 0.0, 0.0]  # the solver's own estimate says 0 early: it must not count
    trace = _trace([NAN, NAN, NAN], "budget", values=values, problem="deconv1d")
    trace["upper_value"] = own
    table = verdicts.targets_table(trace)
    level = table[table.target_kind == verdicts.VALUE].iloc[0]
    assert level.target == 0.0102 and level.reached and level.upper_iters == 2


def test_without_f_star_gaps_are_against_the_best_exact_value_in_the_folder():
    a = _trace([NAN] * 3, "budget", run_id="a", values=[1.0, 0.5, 0.2])
    b = _trace([NAN] * 3, "budget", run_id="b", values=[1.0, 0.3, 0.25])
    gaps = verdicts.with_gaps(pd.concat([a, b], ignore_index=True))
    assert gaps[gaps.run_id == "a"].gap.tolist() == pytest.approx([1.0, 0.375, 0.0])
    assert gaps[gaps.run_id == "b"].gap.tolist() == pytest.approx([1.0, 0.125, 0.0625])
    assert set(gaps.gap_source) == {"best in folder"}
    judged = verdicts.run_verdicts(pd.concat([a, b], ignore_index=True)).set_index("run_id")
    assert judged.loc["a"].verdict == "reached 1e-6 (vs folder best)"
    assert judged.loc["b"].verdict == "reached 1e-1 (vs folder best)"


# ----------------------------------------------------------------------------------------- schedule
def test_log_spaced_schedule():
    rows = [k for k in range(100) if evaluation.on_log_schedule(k)]
    assert rows == [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96]


def test_schedule_adds_eval_every_multiples_and_cheap_problems_take_every_row():
    rows = [k for k in range(40) if evaluation.scheduled(k, 10, cheap=False)]
    assert rows == [0, 1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 30, 32]
    # without an interval: the log-spaced rows only, or every row of a cheap problem
    assert [k for k in range(40) if evaluation.scheduled(k, None, cheap=False)] == [
        0,
        1,
        2,
        3,
        4,
        6,
        8,
        12,
        16,
        24,
        32,
    ]
    assert all(evaluation.scheduled(k, None, cheap=True) for k in range(40))
    # an interval asked for thins a cheap problem's rows too (suites, long 1D runs)
    assert [k for k in range(40) if evaluation.scheduled(k, 10, cheap=True)] == rows


def test_gaps():
    assert evaluation.gaps(0.6, 1.5, 0.5) == {
        "suboptimality": pytest.approx(0.1),
        "rel_gap": pytest.approx(0.1),
    }
    assert all(math.isnan(v) for v in evaluation.gaps(0.6, 1.5, None).values())
    assert math.isnan(evaluation.gaps(0.5, 0.5, 0.5)["rel_gap"])  # started at the optimum


# ----------------------------------------------------------------------------------------- optima
def test_optima_lookup_by_instance_parameters(tmp_path):
    path = tmp_path / "optima.json"
    params = {"n": 3, "seed": 1, "size": (4, 5)}
    assert optima.lookup("p", params, path) is None
    key = optima.store("p", params, {"value": 0.25, "grad_norm": 1e-9, "source": {"solver": "maid"}}, path)
    assert key.startswith("p:") and len(key) == 2 + optima.KEY_DIGITS
    assert optima.lookup("p", dict(reversed(params.items())), path)["value"] == 0.25  # order-free
    assert optima.lookup("p", {**params, "seed": 2}, path) is None  # another noise draw, another instance
    assert optima.lookup("q", params, path) is None
    assert json.loads(path.read_text())[key]["params"] == {"n": 3, "seed": 1, "size": [4, 5]}


def test_committed_optimum_of_the_default_deconv1d_instance():
    p = problems.make_problem("deconv1d")
    entry = optima.lookup(p.name, p.params)
    assert entry is not None and p.reference_optimum() == entry["value"]
    assert entry["source"]["solver"] == "maid" and entry["grad_norm"] >= 0
    assert 0 < entry["value"] < problems.problem_class("deconv1d").report_target
    assert problems.make_problem("deconv1d", seed=1).reference_optimum() is None
    assert (
        problems.make_problem("deconv1d", device="cpu", dtype=p.dtype).reference_optimum() == entry["value"]
    )
    assert problems.make_problem("quadratic").reference_optimum() == 0.5
    assert problems.make_problem("quadratic", m1=5).reference_optimum() == 0.0  # m1 = n: r* = 0


def test_a_failed_run_does_not_set_the_folder_best():
    good = _trace([NAN] * 3, "budget", run_id="good", values=[1.0, 0.5, 0.2])
    bad = _trace([NAN] * 3, "diverged", run_id="bad", values=[1.0, 0.01, 1e9])
    gaps = verdicts.with_gaps(pd.concat([good, bad], ignore_index=True))
    assert gaps[gaps.run_id == "good"].gap.iloc[-1] == 0.0  # its own 0.2 is the best that counts
    table = verdicts.targets_table(pd.concat([good, bad], ignore_index=True))
    assert not table[table.run_id == "bad"].reached.any()


def test_published_level_only_for_the_setting_it_was_published_for():
    # any noise draw of the paper's setting keeps the level; another noise level or blur width does not
    every = problems.problem_parameters("deconv1d")
    defaults = {k: v for k, v in every.items() if k not in verdicts.PER_DRAW}
    paper = json.dumps({**defaults, "seed": 3})
    assert verdicts.value_target("deconv1d", paper) == 0.0102
    assert verdicts.value_target("deconv1d", json.dumps({"n": 200, "sigma": 5})) == 0.0102  # 5 == 5.0
    for other in ({"noise": 0.01}, {"sigma": 3.0}):
        assert verdicts.value_target("deconv1d", json.dumps({**defaults, **other})) is None
    values = [0.8, 0.02, 0.0101]
    trace = _trace([NAN, NAN, NAN], "budget", values=values, problem="deconv1d")
    trace["problem_params"] = json.dumps({**defaults, "noise": 0.01})
    assert verdicts.VALUE not in set(verdicts.targets_table(trace).target_kind)
