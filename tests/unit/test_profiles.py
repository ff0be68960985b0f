"""Performance profiles, data profiles and runtime ECDFs against hand-computed values (bench/profiles.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench import profiles

INF = math.inf


def table(rows: list[tuple]) -> pd.DataFrame:
    """A targets table from (instance, seed, solver, target, time, work) rows; inf time = not reached."""
    out = []
    for instance, seed, solver, target, time, work in rows:
        reached = math.isfinite(time)
        out.append(
            dict(
                run_id=f"{instance}-{seed}-{solver}",
                case="c",
                instance=instance,
                problem="p",
                solver=solver,
                config="",
                seed=seed,
                target=target,
                target_kind="rel_gap",
                reached=reached,
                time=time if reached else INF,
                ll_iters=work / 2 if reached else INF,
                cg_iters=work / 2 if reached else INF,
                work=work if reached else INF,
                upper_iters=3,
            )
        )
    return pd.DataFrame(out)


# Three instances, two solvers, target 1e-2: a (A faster), b (a tie), c (A not solved). Seconds per unit of
# work c_i: a 0.5, b 1, c 2. Target 1e-1: everyone solves.
ROWS = [
    ("a", 0, "A", 1e-2, 1.0, 2.0),
    ("a", 0, "B", 1e-2, 2.0, 4.0),
    ("b", 0, "A", 1e-2, 3.0, 3.0),
    ("b", 0, "B", 1e-2, 3.0, 3.0),
    ("c", 0, "A", 1e-2, INF, INF),
    ("c", 0, "B", 1e-2, 4.0, 2.0),
    ("a", 0, "A", 1e-1, 0.5, 1.0),
    ("a", 0, "B", 1e-1, 1.0, 2.0),
    ("b", 0, "A", 1e-1, 1.0, 1.0),
    ("b", 0, "B", 1e-1, 1.0, 1.0),
    ("c", 0, "A", 1e-1, 2.0, 1.0),
    ("c", 0, "B", 1e-1, 1.0, 0.5),
]
HARD = "rel_gap ≤ 0.01"


def test_performance_profile_with_a_tie_and_an_unsolved_instance() -> None:
    df = profiles.prepare(table(ROWS))
    costs, filled = profiles.cost_matrix(df, HARD, "time")
    assert filled == 0 and list(costs.columns) == ["A", "B"]
    ratios = profiles.performance_ratios(costs)
    assert ratios.loc[("a", 0)].tolist() == [1.0, 2.0]
    assert ratios.loc[("b", 0)].tolist() == [1.0, 1.0]  # a tie is best for both
    assert ratios.loc[("c", 0)].tolist() == [INF, 1.0]
    rho = profiles.performance_profile(costs, np.array([1.0, 1.9, 2.0, 1e9]))
    assert rho["A"].tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2 / 3])  # ρ(∞): the share it solves
    assert rho["B"].tolist() == pytest.approx([2 / 3, 2 / 3, 1.0, 1.0])


def test_data_profile_in_units_of_each_instance_own_lower_iteration_cost() -> None:
    df = profiles.prepare(table(ROWS))
    unit_cost = profiles.instance_unit_costs(df)
    assert unit_cost.to_dict() == pytest.approx({"a": 0.5, "b": 1.0, "c": 2.0})
    costs, _ = profiles.cost_matrix(df, HARD, "time")
    # normalised: A → a 2, b 3, c ∞;  B → a 4, b 3, c 2
    d = profiles.data_profile(costs, unit_cost, np.array([1.9, 2.0, 3.0, 4.0]))
    assert d["A"].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3])
    assert d["B"].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1.0])
    work, _ = profiles.cost_matrix(df, HARD, "work")  # work is already in lower iterations: c_i = 1
    assert profiles.data_profile(work, None, np.array([3.0]))["B"].tolist() == pytest.approx([2 / 3])


def test_runtime_ecdf_over_every_instance_target_pair() -> None:
    df = profiles.prepare(table(ROWS))
    # A: [1, 3, ∞, 0.5, 1, 2];  B: [2, 3, 4, 1, 1, 1]
    ecdf = profiles.runtime_ecdf(df, "time", np.array([0.4, 1.0, 2.0, 3.0, 4.0, 1e9]))
    assert ecdf["A"].tolist() == pytest.approx([0, 3 / 6, 4 / 6, 5 / 6, 5 / 6, 5 / 6])
    assert ecdf["B"].tolist() == pytest.approx([0, 3 / 6, 4 / 6, 5 / 6, 1.0, 1.0])


def test_one_solver_only() -> None:
    df = profiles.prepare(table([r for r in ROWS if r[2] == "A"]))
    costs, _ = profiles.cost_matrix(df, HARD, "time")
    rho = profiles.performance_profile(costs, np.array([1.0, 1e9]))
    assert rho["A"].tolist() == pytest.approx([2 / 3, 2 / 3])  # fastest wherever it solves
    solved, units = profiles.solved_counts(df)
    assert solved.loc["A", HARD] == 2 and units[HARD] == 3


def test_a_missing_or_failed_run_counts_as_not_solved_never_as_missing() -> None:
    rows = [r for r in ROWS if not (r[0] == "c" and r[2] == "B" and r[3] == 1e-2)]  # B's run on c: no row
    tab = table(rows)
    # a run that hit its budget (or diverged) before the target: not reached, whatever its cost columns say
    budget = (tab.instance == "a") & (tab.solver == "A") & (tab.target == 1e-2)
    tab.loc[budget, "reached"] = False
    df = profiles.prepare(tab)
    costs, filled = profiles.cost_matrix(df, HARD, "time")
    assert filled == 1 and len(costs) == 3  # the unit stays in the denominator
    assert costs.loc[("c", 0), "B"] == INF and costs.loc[("a", 0), "A"] == INF
    rho = profiles.performance_profile(costs, np.array([1e9]))
    assert rho["A"].tolist() == pytest.approx([1 / 3]) and rho["B"].tolist() == pytest.approx([2 / 3])


def test_zero_costs_tie_only_with_zero() -> None:
    costs = pd.DataFrame(
        {"A": [0.0, 0.0], "B": [0.0, 1.0]}, index=pd.MultiIndex.from_tuples([("a", 0), ("b", 0)])
    )
    ratios = profiles.performance_ratios(costs)
    assert ratios["A"].tolist() == [1.0, 1.0] and ratios["B"].tolist() == [1.0, INF]


def test_targets_ordered_easiest_first_and_series_carry_their_configuration() -> None:
    tab = table(ROWS)
    extra = tab.iloc[:2].assign(target_kind="value", target=0.0102)
    tab = pd.concat([extra, tab], ignore_index=True)
    tab.loc[tab.solver == "B", "config"] = "eps=0.1"
    df = profiles.prepare(tab)
    assert profiles.labels(df) == ["rel_gap ≤ 0.1", "rel_gap ≤ 0.01", "value ≤ 0.0102"]
    assert set(df.series) == {"A", "B [eps=0.1]"}


def test_missing_columns_are_one_line_naming_them() -> None:
    with pytest.raises(ValueError, match="lacks column\\(s\\) work") as info:
        profiles.prepare(table(ROWS).drop(columns=["work"]))
    assert "\n" not in str(info.value)


def test_forest_accepts_an_interval_a_rounding_error_inside_its_point(tmp_path) -> None:
    # one pair: the bootstrap's bounds and the geometric mean differ in the last bit (seen on deconv1d)
    ratios = pd.DataFrame(
        dict(series=["A"], reference=["B"], target=["all"], geomean=[13.709599504597385],
             lo=[13.709599504597383], hi=[13.709599504597383], pairs=[1])
    )  # fmt: skip
    profiles._forest(ratios, "B", tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
