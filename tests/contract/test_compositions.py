"""Every registered solver is a fixed-step composition (estimator × step rule) or a solver with its own
step logic; a composition is the flat frozen dataclass of its pieces' fields, picklable, and one update is
exactly one fixed step along what its estimator returns. The step rule is also checked on its own, with a
stub estimator."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any, ClassVar

import pytest
import torch

import problems
import solvers
from solvers.fixed_step import Estimator, FixedStep, FixedStepState

#: solvers that choose their own steps (line searches, an adaptive constant), not compositions
OWN_STEP_LOGIC = {"maid", "maid_accel", "hoag"}
COMPOSED = [n for n in solvers.solver_names() if n not in OWN_STEP_LOGIC]
PROBLEM = ("tikhonov_adp", {"n": 8})


def _fields(cls: type) -> list[tuple[str, Any]]:
    return [(f.name, f.default) for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("name", solvers.solver_names())
def test_solver_is_a_composition_or_has_its_own_steps(name):
    cls = solvers.solver_class(name)
    estimator = solvers.estimator_of(cls)
    assert (estimator is None) == (name in OWN_STEP_LOGIC), estimator
    if estimator is not None:  # the step rule's field, then the estimator's, nothing of its own
        assert _fields(cls) == [*_fields(FixedStep), *_fields(estimator)]


@pytest.mark.parametrize("name", COMPOSED)
def test_composition_is_a_picklable_frozen_dataclass(name):
    solver = solvers.make_solver(name)
    assert pickle.loads(pickle.dumps(solver)) == solver
    with pytest.raises(dataclasses.FrozenInstanceError):
        solver.step0 = 1.0


@pytest.mark.parametrize("name", COMPOSED)
def test_one_update_is_one_fixed_step_along_the_estimate(name):
    """θ₁ = θ₀ − α z(θ₀), z from the estimator piece alone (same fields) on a fresh copy of the problem."""
    solver = solvers.make_solver(name)
    p = problems.make_problem(PROBLEM[0], **PROBLEM[1])
    new = solver.update(p, solver.init(p))
    cls = solvers.estimator_of(type(solver))
    alone = cls(**{f.name: getattr(solver, f.name) for f in dataclasses.fields(cls)})
    q = problems.make_problem(PROBLEM[0], **PROBLEM[1])
    z = alone.hypergradient(alone.state_type(**alone.estimate(q, q.theta0, None)))
    assert torch.equal(new.theta, q.theta0 - q.ul_step0 * z)
    assert new.hypergrad_norm == float(torch.linalg.vector_norm(z))
    assert new.step_size == p.ul_step0


# ---------------------------------------------------------------------------------------- the step rule
@dataclasses.dataclass(frozen=True)
class ConstantDirection(Estimator):
    """A stub estimator: z = scale·1 everywhere, the lower point left at x₀."""

    scale: float = 0.5

    def estimate(self, problem, theta, last):
        return dict(theta=theta, x=problem.x0, z=torch.full_like(theta, self.scale), upper_value=0.0)


@dataclasses.dataclass(frozen=True)
class ConstantStepper(ConstantDirection, FixedStep):
    name: ClassVar[str] = "constant"


@pytest.mark.parametrize("step0", [None, 0.25])
def test_fixed_step_rule_with_a_stub_estimator(step0):
    p = problems.make_problem(PROBLEM[0], **PROBLEM[1])
    solver = ConstantStepper(step0=step0, scale=0.5)
    assert [f.name for f in dataclasses.fields(solver)] == ["step0", "scale"]
    state = solver.init(p)
    assert isinstance(state, FixedStepState)
    alpha = p.ul_step0 if step0 is None else step0
    for _ in range(3):
        state = solver.update(p, state)
    assert torch.allclose(state.theta, p.theta0 - 3 * alpha * 0.5, rtol=1e-15, atol=1e-15)
    assert state.step_size == alpha
    with pytest.raises(ValueError, match=r"ConstantStepper\.step0 must be in \(0, inf\)"):
        ConstantStepper(step0=0.0)
