"""Solver registry: ``make_solver(name, **config)`` and ``list_solvers()``."""

from __future__ import annotations

import dataclasses

from solvers.amigo import AmIGO
from solvers.base import Solver, SolverState
from solvers.f2sa import F2SA
from solvers.hoag import HOAG
from solvers.ift import IFT
from solvers.lista import LISTA
from solvers.maid import MAID
from solvers.maid_accel import MAIDAccel
from solvers.neumann import JFB, Neumann
from solvers.trbp import TRBP

#: the paper's three solvers first, then the field's baselines (issue 10)
_REGISTRY: dict[str, type] = {
    cls.name: cls for cls in (MAID, IFT, LISTA, HOAG, MAIDAccel, Neumann, JFB, TRBP, AmIGO, F2SA)
}


def register_solver(cls: type) -> type:
    """Add a solver class (a frozen dataclass with ``name``, ``init`` and ``update``) to the registry."""
    _REGISTRY[cls.name] = cls
    return cls


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
    valid = solver_parameters(name)
    unknown = sorted(set(config) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown config field(s) {', '.join(unknown)} for solver {name!r}; "
            f"valid: {', '.join(f'{k}={v!r}' for k, v in valid.items())}"
        )
    return cls(**config)


__all__ = [
    "Solver",
    "SolverState",
    "list_solvers",
    "make_solver",
    "register_solver",
    "solver_class",
    "solver_names",
]
