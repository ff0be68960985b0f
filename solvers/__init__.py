"""Solver registry: ``make_solver(name, **config)`` and ``list_solvers()``."""

from __future__ import annotations

import dataclasses

from problems import values
from solvers.amigo import Amortised
from solvers.base import Solver, SolverState
from solvers.f2sa import ValuePenalty
from solvers.fixed_step import Estimator, FixedStep, estimator_of, fixed_step_solver
from solvers.hoag import HOAG
from solvers.ift import ImplicitCG
from solvers.lista import Unrolled
from solvers.maid import MAID
from solvers.maid_accel import MAIDAccel
from solvers.neumann import JacobianFree, NeumannSeries
from solvers.trbp import TruncatedBackprop

# ------------------------------------------------------------------------- compositions
# A fixed-step solver is (hypergradient estimator) × (fixed step rule): its config fields are the step rule's
# ``step0`` followed by the estimator's (``docs/solvers.md`` describes each). Class name, solver name,
# estimator, what ``adpbench list`` says of it.
IFT = fixed_step_solver("IFT", "ift", ImplicitCG, "implicit differentiation, CG adjoint (Arndt 2022, Alg. 1)")
LISTA = fixed_step_solver(
    "LISTA", "lista", Unrolled, "unrolled differentiation (Arndt 2022, Alg. 2)", default_max_iters=4000
)
Neumann = fixed_step_solver(
    "Neumann", "neumann", NeumannSeries, "Neumann-series adjoint (Lorraine et al. 2020)"
)
JFB = fixed_step_solver("JFB", "jfb", JacobianFree, "Jacobian-free backpropagation, K = 1 (Fung et al. 2022)")
TRBP = fixed_step_solver("TRBP", "trbp", TruncatedBackprop, "truncated back-propagation (Shaban et al. 2019)")
AmIGO = fixed_step_solver("AmIGO", "amigo", Amortised, "amortised inner steps (Arbel & Mairal 2022)")
F2SA = fixed_step_solver("F2SA", "f2sa", ValuePenalty, "value-function penalty gradient (Kwon et al. 2023)")

#: the paper's three solvers first, then the field's baselines; MAID, HOAG and maid_accel choose their
#: own steps (line searches, an adaptive constant), the others are the compositions above
_REGISTRY: dict[str, type] = {
    cls.name: cls for cls in (MAID, IFT, LISTA, HOAG, MAIDAccel, Neumann, JFB, TRBP, AmIGO, F2SA)
}


def register_solver(cls: type) -> type:
    """Add a solver class (a frozen dataclass with ``name``, ``init`` and ``update``) to the registry
    (usable as a decorator). A name already taken by another class is a one-line ValueError."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not dataclasses.is_dataclass(cls):
        raise ValueError(
            f"solver class {getattr(cls, '__name__', cls)!r} must be a frozen dataclass with a string "
            f"class attribute name, init(problem) and update(problem, state)"
        )
    values.check_new_name("solver", name, _REGISTRY, cls)
    _REGISTRY[name] = cls
    return cls


def unregister_solver(name: str) -> None:
    """Remove a solver name (a plug-in being unloaded); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def _lookup(name: str) -> type:
    if name not in _REGISTRY:
        raise ValueError(f"unknown solver {name!r}; valid solvers: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def solver_class(name: str) -> type:
    """The registered class of a solver name (a ValueError naming the valid ones otherwise)."""
    return _lookup(name)


def solver_parameters(name: str) -> dict[str, object]:
    """The config fields of a solver with their defaults."""
    return {f.name: f.default for f in dataclasses.fields(_lookup(name))}


def solver_names() -> list[str]:
    """Registered solver names in registry order (the paper's three first)."""
    return list(_REGISTRY)


def list_solvers() -> dict[str, dict[str, object]]:
    return {name: solver_parameters(name) for name in sorted(_REGISTRY)}


def make_solver(name: str, **config: object) -> Solver:
    """Build a solver; unknown fields or out-of-range values raise a ValueError naming what is valid."""
    cls = _lookup(name)
    values.check_names(config, solver_parameters(name), f"config field(s) ... for solver {name!r}")
    return cls(**config)


__all__ = [
    "F2SA",
    "IFT",
    "JFB",
    "LISTA",
    "TRBP",
    "AmIGO",
    "Estimator",
    "FixedStep",
    "Neumann",
    "Solver",
    "SolverState",
    "estimator_of",
    "fixed_step_solver",
    "list_solvers",
    "make_solver",
    "register_solver",
    "solver_class",
    "solver_names",
    "unregister_solver",
]
