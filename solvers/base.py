"""The solver protocol (jaxopt style): a frozen dataclass of named hyperparameters with
``init(problem) -> state`` and ``update(problem, state) -> state``, one upper iteration per update.

Solvers do *not* count oracle calls, keep logs or read clocks: the problem counts, the harness
(`bench.harness.run`) owns the loop, clock, budget and records, and reads what it logs from the state.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar, Protocol

from torch import Tensor

from problems import values
from problems.base import CAPABILITY_NOTES, BilevelProblem


@dataclass
class SolverState:
    """What every solver exposes after each upper iteration (the harness logs these fields)."""

    theta: Tensor
    x: Tensor  # the solver's current lower-level point for theta
    upper_value: float  # g(x, θ) + r(θ) at the current (θ, x)
    hypergrad_norm: float = math.nan  # ‖z‖ of the (approximate) hypergradient used this iteration
    step_size: float = math.nan  # the step taken (0 if no step was accepted)
    eps: float = math.nan  # lower-level accuracy ε in force after this iteration
    delta: float = math.nan  # adjoint (CG) accuracy δ in force after this iteration
    eps_floor: float = math.nan  # the dtype's lower-level accuracy floor (problems/lower.py) in force
    backtracks: int = 0  # line-search trials rejected this iteration
    accepted: bool = True
    converged: bool = False  # the solver's own stopping rule fired (the run stops)
    stalled: bool = False  # ...but without certified progress: the harness records "stalled", not "converged"


class Solver(Protocol):
    name: ClassVar[str]
    default_max_iters: ClassVar[int]
    #: lower-level capabilities the solver uses beyond the oracles every problem provides
    #: (``problems.base.CAPABILITY_NOTES``); empty: it applies to every problem
    requires: ClassVar[frozenset[str]]

    def init(self, problem: BilevelProblem) -> SolverState: ...

    def update(self, problem: BilevelProblem, state: SolverState) -> SolverState: ...


def requirement_note(cls: type) -> str:
    """What ``adpbench list solvers`` adds to a solver's line: the notes of the capabilities it requires."""
    return "; ".join(CAPABILITY_NOTES[c] for c in sorted(getattr(cls, "requires", frozenset())))


def not_applicable(cls: type, problem: BilevelProblem) -> str | None:
    """Why solver class ``cls`` does not apply to this problem instance (None: it does)."""
    missing = sorted(getattr(cls, "requires", frozenset()) - problem.ll_capabilities)
    return "; ".join(CAPABILITY_NOTES[c] for c in missing) or None


def check_applicable(cls: type, problem: BilevelProblem) -> None:
    """A one-line ValueError when the solver needs a lower-level capability the problem lacks."""
    why = not_applicable(cls, problem)
    if why is not None:
        name = getattr(cls, "name", cls.__name__)
        setting = f" (regulariser={problem.params['regulariser']})" if "regulariser" in problem.params else ""
        raise ValueError(f"solver {name!r} on {problem.name}{setting}: {why}")


#: what the error for a non-string ``cg_precond`` suggests ("none": plain CG; a kind a problem implements)
PRECOND_EXAMPLES = "'none', 'jacobi'"


def check_range(
    config: object,
    field: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = True,
    hi_open: bool = True,
    optional: bool = False,
) -> None:
    """Raise a ValueError naming the field and its valid range when a config value is outside it (the
    shared validators of ``problems.values``; a field declared ``int`` takes integers only)."""
    value = getattr(config, field)
    if value is None and optional:
        return
    name = f"{type(config).__name__}.{field}"
    # Integer fields (iteration caps) must be integers: 2.5 iterations is a typo, not a setting.
    declared = {f.name: f.type for f in dataclasses.fields(config)}.get(field)  # type: ignore[arg-type]
    integer = declared in (int, "int")
    if integer and values.is_number(value) and not values.is_integer(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    valid = values.Interval(integer=integer, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open)
    if not valid.accepts(value):
        raise ValueError(f"{name} must be in {valid.notation()}, got {value!r}")


def check_string(config: object, field: str, examples: str) -> None:
    """Raise a ValueError naming the field when a config value is not a string (``examples``: valid ones)."""
    value = getattr(config, field)
    if not isinstance(value, str):
        raise ValueError(f"{type(config).__name__}.{field} must be a string ({examples}), got {value!r}")


def config_dict(config: object) -> dict[str, object]:
    return dataclasses.asdict(config)  # type: ignore[arg-type]
