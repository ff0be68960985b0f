"""The solver contract (bench/contract.py): every built-in solver keeps it; a solver that skips the problem's
oracles, or that ignores the budget, is caught and the broken contract is named."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import pytest
import torch

import solvers
from bench import cli, contract, plugins
from problems.base import BudgetExhausted
from solvers import SolverState


@pytest.mark.parametrize("name", solvers.solver_names())
def test_every_built_in_solver_keeps_the_contract(name):
    contract.assert_solver_contract(name)


@dataclass(frozen=True)
class ClosedFormCheat:
    """Gradient steps on the closed-form hypergradient of ``quadratic``: the problem's tensors used
    directly, no counted oracle called (θ* is reached, and nothing is counted)."""

    name: ClassVar[str] = "closed_form_cheat"
    default_max_iters: ClassVar[int] = 100

    def _state(self, problem, theta):
        x = torch.linalg.lstsq(problem.A2, problem.b2 - problem.A3 @ theta).solution
        value = float(0.5 * torch.sum((problem.A1 @ x - problem.b1) ** 2))
        return SolverState(theta=theta, x=x, upper_value=value, step_size=problem.ul_step0)

    def init(self, problem):
        return self._state(problem, problem.theta0)

    def update(self, problem, state):
        theta = state.theta - state.step_size * problem.closed_form_hypergradient(state.theta)
        return self._state(problem, theta)


@dataclass(frozen=True)
class BudgetIgnorer:
    """Lower-level gradient steps that catch BudgetExhausted and carry on as if the iteration were
    complete (and a fixed step on ∂_θ g with the lower point, which does not matter here)."""

    name: ClassVar[str] = "budget_ignorer"
    default_max_iters: ClassVar[int] = 100
    inner: int = 20

    def _solve(self, problem, theta, x):
        for _ in range(self.inner):
            try:
                x = x - 0.25 * problem.ll_grad(theta, x)
            except BudgetExhausted:
                continue  # the broken part: the budget said stop
        return x

    def init(self, problem):
        x = self._solve(problem, problem.theta0, problem.x0)
        return SolverState(theta=problem.theta0, x=x, upper_value=problem.upper_value(problem.theta0, x))

    def update(self, problem, state):
        x = self._solve(problem, state.theta, state.x)
        return replace(state, x=x, upper_value=problem.upper_value(state.theta, x))


def _failed(checks):
    return {c.contract for c in checks if not c.passed}


def test_a_solver_that_skips_the_oracles_fails_naming_the_contract():
    checks = contract.check_solver(ClosedFormCheat)
    assert "oracles" in _failed(checks)
    (oracles,) = [c for c in checks if c.contract == "oracles"]
    assert "θ moved while every counter stayed at 0" in oracles.detail
    with pytest.raises(AssertionError, match="FAIL  oracles"):
        contract.assert_solver_contract(ClosedFormCheat)


def test_a_solver_that_ignores_the_budget_fails_naming_the_contract():
    checks = contract.check_solver(BudgetIgnorer)
    assert "budget" in _failed(checks)
    (budget,) = [c for c in checks if c.contract == "budget"]
    assert "oracle call(s) after BudgetExhausted" in budget.detail
    assert {"counts", "oracles", "determinism", "statuses"}.isdisjoint(_failed(checks))


def test_a_solver_that_bypasses_an_oracle_fails_counts_and_oracles():
    @dataclass(frozen=True)
    class PrivateGradient(BudgetIgnorer):
        name: ClassVar[str] = "private_gradient"

        def _solve(self, problem, theta, x):
            for _ in range(self.inner):
                x = x - 0.25 * problem._ll_grad(theta, x)  # the maths behind the oracle, uncounted
            return x

    failed = _failed(contract.check_solver(PrivateGradient))
    assert {"counts", "oracles"} <= failed


BROKEN_PLUGIN = """
from dataclasses import dataclass
from typing import ClassVar

import torch

from solvers import SolverState, register_solver


@register_solver
@dataclass(frozen=True)
class Cheat:
    name: ClassVar[str] = "cheat"
    default_max_iters: ClassVar[int] = 50

    def init(self, problem):
        return SolverState(theta=problem.theta0, x=problem.x0, upper_value=0.0)

    def update(self, problem, state):
        return SolverState(theta=state.theta + 1e-3, x=state.x, upper_value=0.0)
"""


def test_check_solver_command_passes_and_fails_with_exit_codes(tmp_path, capsys):
    assert cli.main(["check-solver", "ift"]) == 0
    out = capsys.readouterr().out
    assert "PASS  counts" in out and "7/7 contracts hold" in out
    path = tmp_path / "cheat.py"
    path.write_text(BROKEN_PLUGIN)
    try:
        assert cli.main(["check-solver", "cheat", "--plugin", str(path)]) == 1
    finally:
        plugins.reset()
    out = capsys.readouterr().out
    assert "FAIL  oracles" in out and "FAIL  theta_star" in out and "failed: " in out
    assert cli.main(["check-solver", "nobody"]) == 2
    assert "unknown solver 'nobody'; valid solvers:" in capsys.readouterr().err
