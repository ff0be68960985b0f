"""The geometric-mean time ratio and its paired percentile bootstrap on cases with a known answer."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench import profiles

INF = math.inf


def _table(costs: dict[tuple[str, int], tuple[float, float]], target: float = 1e-2) -> pd.DataFrame:
    """Solver S and reference R with the given (S, R) times per (instance, seed); inf = not reached."""
    rows = []
    for (instance, seed), pair in costs.items():
        for solver, time in zip(("S", "R"), pair, strict=True):
            reached = math.isfinite(time)
            cost = time if reached else INF
            ident = dict(
                instance=instance, seed=seed, solver=solver, config="", run_id=f"{instance}{seed}{solver}"
            )
            costs_ = dict(time=cost, ll_iters=cost, cg_iters=0.0, work=cost)
            rows.append(dict(**ident, target=target, target_kind="rel_gap", reached=reached, **costs_))
    return pd.DataFrame(rows)


def _ratio(costs: dict, **kw) -> pd.Series:
    out = profiles.time_ratios(profiles.prepare(_table(costs)), "R", **kw)
    return out[out.target == "rel_gap ≤ 0.01"].iloc[0]


def test_identical_solvers_give_ratio_one_with_interval_one() -> None:
    row = _ratio({("a", 0): (1.0, 1.0), ("b", 0): (5.0, 5.0), ("b", 1): (2.0, 2.0), ("c", 0): (0.3, 0.3)})
    assert (row.geomean, row.lo, row.hi) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(1.0))
    assert row.pairs == 4


def test_a_constant_ratio_is_recovered_exactly() -> None:
    row = _ratio({("a", 0): (2.0, 1.0), ("b", 0): (10.0, 5.0), ("c", 0): (0.6, 0.3)})
    assert (row.geomean, row.lo, row.hi) == (pytest.approx(2.0), pytest.approx(2.0), pytest.approx(2.0))


def test_two_instances_with_ratios_one_and_four() -> None:
    # geometric mean 2; a resample draws (1, 1) with probability 1/4, (4, 4) with 1/4: the 2.5 % and 97.5 %
    # percentiles are the extremes 1 and 4
    row = _ratio({("a", 0): (1.0, 1.0), ("b", 0): (4.0, 1.0)})
    assert row.geomean == pytest.approx(2.0)
    assert (row.lo, row.hi) == (pytest.approx(1.0), pytest.approx(4.0))


def test_seeds_are_resampled_within_an_instance() -> None:
    # one instance, two seeds with ratios 1 and 4: resampling instances alone would give [2, 2]
    row = _ratio({("a", 0): (1.0, 1.0), ("a", 1): (4.0, 1.0)})
    assert row.geomean == pytest.approx(2.0)
    assert (row.lo, row.hi) == (pytest.approx(1.0), pytest.approx(4.0))


def test_only_pairs_where_both_solved_enter_and_the_others_are_counted() -> None:
    costs = {("a", 0): (2.0, 1.0), ("b", 0): (INF, 1.0), ("c", 0): (3.0, INF), ("d", 0): (INF, INF)}
    row = _ratio(costs)
    assert row.geomean == pytest.approx(2.0) and row.lo == pytest.approx(2.0)
    assert (row.pairs, row.only_series, row.only_reference, row.neither) == (1, 1, 1, 1)


def test_pooled_over_targets_and_fixed_seed() -> None:
    df = pd.concat(
        [_table({("a", 0): (2.0, 1.0)}, 1e-1), _table({("a", 0): (8.0, 1.0), ("b", 0): (2.0, 1.0)})]
    )
    first = profiles.time_ratios(profiles.prepare(df), "R")
    pooled = first[first.target == "all"].iloc[0]
    assert pooled.pairs == 3 and pooled.geomean == pytest.approx((2 * 8 * 2) ** (1 / 3))
    again = profiles.time_ratios(profiles.prepare(df), "R")
    assert first.equals(again)  # the bootstrap's seed is fixed
    assert profiles.N_RESAMPLES >= 10_000


def test_no_reference_no_ratios() -> None:
    assert profiles.time_ratios(profiles.prepare(_table({("a", 0): (1.0, 1.0)})), "nobody").empty


def test_bootstrap_mean_of_known_values() -> None:
    same = pd.DataFrame(dict(instance=["a", "b", "c"], seed=[0, 0, 0], sum=[0.5, 0.5, 0.5], count=[1.0] * 3))
    assert profiles.bootstrap_mean(same) == (pytest.approx(0.5), pytest.approx(0.5), pytest.approx(0.5))
    units = pd.DataFrame(dict(instance=list("abcd"), seed=[0] * 4, sum=[1.0, 2.0, 3.0, 6.0], count=[1.0] * 4))
    mean, lo, hi = profiles.bootstrap_mean(units)
    assert mean == pytest.approx(3.0) and 1.0 <= lo < mean < hi <= 6.0
    # the geometric mean is the same resampling of logs, exponentiated
    logs = units.assign(sum=units["sum"].map(math.log))
    g, glo, ghi = profiles.bootstrap_geomean(logs)
    assert g == pytest.approx(math.exp(logs["sum"].mean())) and glo < g < ghi
