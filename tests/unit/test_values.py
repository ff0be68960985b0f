"""One validator per kind of value (``problems.values``): its renderings, and every entry point that takes
a value of the kind (CLI, TOML/sweep, harness, backends, solvers) agreeing with its one predicate."""

from __future__ import annotations

import argparse
import math
import re

import pytest

import solvers
from bench import backends, cli, harness, sweep
from problems import values

COUNT_CASES = [1, 7, 0, -1, 2.5, 3.0, True, "3", math.nan]


def _accepts(call) -> bool:
    try:
        call()
    except (ValueError, argparse.ArgumentTypeError):
        return False
    return True


COUNT_ENTRY_POINTS = {
    "sweep threads": lambda v: sweep.check_threads(v),
    "sweep eval_every": lambda v: sweep.check_eval_every(v),
    "TOML budget max_iters": lambda v: sweep.check_budget({"max_iters": v}),
    "TOML budget max_ll_iters": lambda v: sweep.check_budget({"max_ll_iters": v}),
    "harness eval_every": lambda v: harness._check_budgets(None, None, None, v, None),
    "harness threads": lambda v: harness._check_budgets(None, None, None, 1, v),
    "backend jobs": lambda v: backends.Execution(jobs=v),
    "slurm time_min": lambda v: backends.SlurmOptions(time_min=v),
    "solver Neumann.n_terms": lambda v: solvers.make_solver("neumann", n_terms=v),
}


@pytest.mark.parametrize("entry", sorted(COUNT_ENTRY_POINTS))
def test_every_count_setting_agrees_with_the_one_predicate(entry):
    for value in COUNT_CASES:
        want = values.POSITIVE_INTEGER.accepts(value)
        assert _accepts(lambda v=value: COUNT_ENTRY_POINTS[entry](v)) == want, (entry, value)


@pytest.mark.parametrize("text", ["1", "7", "0", "-1", "2.5", "nan", "abc"])
def test_cli_counts_agree_with_the_one_predicate(text):
    try:
        want = values.POSITIVE_INTEGER.accepts(int(text))
    except ValueError:
        want = False
    assert _accepts(lambda: values.POSITIVE_INTEGER.parse(text)) == want
    assert _accepts(lambda: cli._COUNT(text)) == want


def test_zero_budget_is_refused_by_sweeps_and_accepted_by_the_python_api():
    for key, zero in (("max_iters", 0), ("max_time", 0.0), ("max_ll_iters", 0)):
        with pytest.raises(ValueError, match=rf"^budget {key} must be an? .* got 0"):
            sweep.check_budget({key: zero})
        harness._check_budgets(
            **{"max_iters": None, "max_time": None, "max_ll_iters": None, key: zero},
            eval_every=1,
            threads=None,
        )
    with pytest.raises(ValueError, match=r"^max_time must be a finite number of seconds ≥ 0, got -1\.0$"):
        harness._check_budgets(None, -1.0, None, 1, None)


@pytest.mark.parametrize(
    ("kind", "phrase", "notation", "condition"),
    [
        (values.POSITIVE_INTEGER, "an integer ≥ 1", "[1, inf)", "n ≥ 1"),
        (values.POSITIVE_NUMBER, "a finite number > 0", "(0, inf)", "n > 0"),
        (
            values.Interval(lo=0, hi=1, lo_open=True, hi_open=True),
            "a finite number in (0, 1)",
            "(0, 1)",
            "0 < n < 1",
        ),
        (values.Interval(integer=True, hi=5), "an integer ≤ 5", "(-inf, 5]", "n ≤ 5"),
        (values.ANY_NUMBER, "a finite number", "(-inf, inf)", "n"),
    ],
)
def test_interval_renderings(kind, phrase, notation, condition):
    assert (kind.phrase(), kind.notation(), kind.condition("n")) == (phrase, notation, condition)
    with pytest.raises(ValueError, match=rf"^x must be {re.escape(phrase)}, got 'bad'$"):
        kind.check("x", "bad")


def test_other_kinds():
    assert values.OneOf(("known", "learned")).phrase() == "'known' or 'learned'"
    assert values.OneOf(("a", "b", "c")).phrase() == "one of 'a', 'b', 'c'"
    size = values.Size((16, 16))
    assert (
        size.accepts(8) and size.accepts([8, 9]) and not size.accepts((8, 0)) and not size.accepts((8, 9, 3))
    )
    assert not values.FLAG.accepts(1) and values.TEXT.accepts("x")
    assert values.check_kind("p.a", None, values.ANY_NUMBER, none_means="the default") is None
    with pytest.raises(ValueError, match=r"^seeds must be a non-empty list of integers"):
        values.check_seeds([0, 1.5])
