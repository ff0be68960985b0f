"""Counting and budgets in one place: every counted oracle charges the armed budget before it counts, no
code outside ``problems/counting.py`` writes a counter, and evaluation restores every per-θ cache."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import problems
from problems.caches import RecentSetups
from problems.counting import BudgetExhausted

ORACLES = {
    "ll_grad": lambda p, x: p.ll_grad(p.theta0, x),
    "hvp": lambda p, x: p.hvp(p.theta0, x, x),
    "upper_value": lambda p, x: p.upper_value(p.theta0, x),
    "upper_value_graph": lambda p, x: p.upper_value_graph(p.theta0, x),
    "ul_grad_x": lambda p, x: p.ul_grad_x(p.theta0, x),
    "adjoint_rhs": lambda p, x: p.adjoint_rhs(p.theta0, x),
    "hypergradient_from": lambda p, x: p.hypergradient_from(p.theta0, x, x),
    "ll_gap_grad_theta": lambda p, x: p.ll_gap_grad_theta(p.theta0, x, torch.zeros_like(x)),
    "ll_unrolled": lambda p, x: p.ll_unrolled(p.theta0, x, 3, None),
}


@pytest.mark.parametrize("oracle", sorted(ORACLES))
@pytest.mark.parametrize("name", problems.problem_names())
def test_every_counted_oracle_charges_the_budget(name, oracle, small_problem):
    p = small_problem(name)
    x = p.x0 + 0.1  # off zero: deconv1d's active set is not empty
    before = p.counters.snapshot()
    with p.budget(deadline=0.0), pytest.raises(BudgetExhausted, match="max_time"):
        ORACLES[oracle](p, x)
    assert p.counters.snapshot() == before  # charged before anything is counted
    ORACLES[oracle](p, x)  # disarmed: runs and counts
    assert p.counters.snapshot() != before


def test_value_function_gradient_respects_the_lower_level_cap():
    p = problems.make_problem("quadratic")
    with p.budget(max_ll_iters=1), pytest.raises(BudgetExhausted, match="max_ll_iters"):
        p.ll_gap_grad_theta(p.theta0, p.x0, p.x0 + 1.0)  # two ∇_x f evaluations, one allowed


def test_only_the_counting_module_writes_counters():
    root = Path(problems.__file__).parent
    write = re.compile(r"counters\.\w+\s*(\+|-)?=|setattr\(\s*self\.counters")
    offenders = [
        f"{path.name}:{n}"
        for path in sorted(root.glob("*.py"))
        if path.name != "counting.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if write.search(line)
    ]
    assert not offenders, offenders


def test_uncounted_restores_every_per_theta_cache_it_finds(small_problem):
    p = small_problem("deblur2d")
    p.ll_grad(p.theta0, p.x0)  # a solver's set-up at θ₀
    p._extra_cache = RecentSetups(2)  # any attribute of a cache type is found, no list to keep
    setups, lip, counts = p._setup_cache.snapshot(), p._lip_cache.snapshot(), p.counters.snapshot()
    with p.uncounted():
        theta = p.theta0 * 1.01  # a new kernel: set-up and Lipschitz bound recomputed inside
        p.ll_grad(theta, p.x0)
        p.ll_lipschitz(theta)
        p._extra_cache.add(theta, "value")
        assert p.counters.setup_evals > counts["setup_evals"]
    assert p._setup_cache.snapshot() == setups and p._lip_cache.snapshot() is lip
    assert p._extra_cache.snapshot() == [] and p.counters.snapshot() == counts
