"""No solver accepts a config field it ignores: for every field of every registered solver, a changed
(valid) value changes the run on a small problem, or the run refuses it with a ValueError.

Each field gets a changed value and a *scenario* (a base configuration under which its branch runs, e.g. a
long first step so that line searches backtrack); the run with the changed value must differ from the
scenario's run in its trace (counters, values, steps, accuracies, acceptances), status or final θ. A field
without an entry fails the table check, so a new field must say how its effect is seen."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import torch

import bench
import problems
import solvers
from problems.base import BilevelProblem

#: a small smooth problem: every lower solve and CG takes several steps, a run takes milliseconds
PROBLEM = ("tikhonov_adp", {"n": 8})
ITERS = 4
#: trace columns that describe what the run did, besides the problem's counters (no timing, provenance)
STATE_COLUMNS = ("upper_value", "hypergrad_norm", "step_size", "eps", "delta", "backtracks", "accepted")


def _times_shared_step(factor: float) -> Callable[[BilevelProblem], float]:
    return lambda p: factor * p.ul_step0


@dataclasses.dataclass(frozen=True)
class Change:
    """A changed value of a field (a constant or a function of the problem), the scenario it is seen in
    (config fields, values likewise) and the upper iterations that takes."""

    value: Any
    scenario: dict[str, Any] = dataclasses.field(default_factory=dict)
    iters: int = ITERS


# Scenarios measured on PROBLEM: MAID's first trial at 300× the shared step backtracks (twice at iteration
# 1); at 1000× whole line searches fail (accuracy retries at iterations 2–4); HOAG's first step at 200× is
# rejected (L doubles).
BACKTRACKING = {"step0": _times_shared_step(300)}
RETRYING = {"step0": _times_shared_step(1000)}
REJECTING = {"step0": _times_shared_step(200)}
COMMON = {
    "step0": Change(_times_shared_step(2)),
    "ll_step": Change(lambda p: 0.5 / p.ll_lipschitz(p.theta0)),
    "ll_max_iters": Change(1),
    "cg_max_iters": Change(1),
    "cg_precond": Change("jacobi"),  # PROBLEM has no such preconditioner: refused where the field is used
    "eps": Change(1e-2),
    "eps0": Change(1e-1),
}
MAID_FIELDS = {
    "delta0": Change(1e-8),
    "rho": Change(0.25, BACKTRACKING),
    "rho_bar": Change(2.0),
    "nu": Change(0.25, RETRYING),
    "nu_bar": Change(1.5),
    "eta": Change(0.5, BACKTRACKING),
    "c": Change(0.25, BACKTRACKING),
    "max_backtracks": Change(1, BACKTRACKING),
    "max_accuracy_retries": Change(1, RETRYING),
    "tol": Change(1.0),
    "tangent_share": Change(None),
}
PER_SOLVER = {
    "maid": MAID_FIELDS,
    "maid_accel": {
        **MAID_FIELDS,
        "eta": Change(0.5),
        "c": Change(0.25),
        "zh_eta": Change(0.0, iters=8),  # the reference C_k first changes a decision at iteration 5
        "bb_safeguard": Change(1.0),
    },
    "ift": {"cg_tol": Change(1e-3)},
    "neumann": {"n_terms": Change(2)},
    "trbp": {"n_unroll": Change(2)},
    "lista": {"n_unroll": Change(2)},
    "amigo": {"ll_inner": Change(2), "adjoint_inner": Change(2)},
    "f2sa": {"lam0": Change(20.0), "lam_power": Change(1.0), "lam_max": Change(20.0)},
    "hoag": {
        "schedule": Change("quadratic"),
        "eps_decrease": Change(0.5),
        "tol_c": Change(1e6, REJECTING),
        "lip_decrease": Change(0.5),
        "lip_increase": Change(4.0, REJECTING),
        "eps_min": Change(1e-3),
    },
}
CASES = [(s, f.name) for s in solvers.solver_names() for f in dataclasses.fields(solvers.solver_class(s))]


def _change(solver: str, field: str) -> Change | None:
    return PER_SOLVER.get(solver, {}).get(field, COMMON.get(field))


def _run(solver: str, config: dict[str, Any], iters: int) -> tuple[bytes, ...]:
    """What the run did: its trace's counters and state columns, its status and its final θ. The config
    must be valid; the run may refuse it (a ValueError)."""
    p = problems.make_problem(PROBLEM[0], **PROBLEM[1])
    configured = solvers.make_solver(solver, **{k: v(p) if callable(v) else v for k, v in config.items()})
    try:
        result = bench.run(configured, p, max_iters=iters)
    except ValueError as exc:
        return (f"refused: {exc}".encode(),)
    trace = result.trace[[*p.counters.snapshot(), *STATE_COLUMNS]].to_numpy(dtype=float)
    return trace.tobytes(), result.status.encode(), result.theta.to(torch.float64).numpy().tobytes()


def test_every_field_of_every_solver_has_a_change():
    missing = [f"{s}.{f}" for s, f in CASES if _change(s, f) is None]
    assert not missing, f"no changed value for {', '.join(missing)}: add one to this file's tables"


@pytest.mark.parametrize(("solver", "field"), CASES, ids=[f"{s}.{f}" for s, f in CASES])
def test_changing_a_field_changes_the_run_or_is_refused(solver, field):
    change = _change(solver, field)
    if change is None:
        pytest.fail(f"no changed value for {solver}.{field}")
    assert change.value != solvers.solver_parameters(solver)[field], "the changed value is the default"
    base = _run(solver, change.scenario, change.iters)
    assert not base[0].startswith(b"refused"), base  # the scenario itself runs
    same = _run(solver, {**change.scenario, field: change.value}, change.iters) == base
    assert not same, f"{solver}.{field} = {change.value!r} left the run unchanged: the field is ignored"
