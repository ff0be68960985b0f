"""Solver registry: ``make_solver(name, **config)`` and ``list_solvers()``."""

from __future__ import annotations

import dataclasses

from solvers.base import Solver, SolverState
from solvers.ift import IFT
from solvers.lista import LISTA
from solvers.maid import MAID

_REGISTRY: dict[str, type] = {cls.name: cls for cls in (MAID, IFT, LISTA)}


def register_solver(cls: type) -> type:
    """Add a solver class (a frozen dataclass with ``name``, ``init`` and ``update``) to the registry."""
    _REGISTRY[cls.name] = cls
    return cls


def _lookup(name: str) -> type:
    if name not in _REGISTRY:
        raise ValueError(f"unknown solver {name!r}; valid solvers: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def solver_parameters(name: str) -> dict[str, object]:
    """The config fields of a solver with their defaults."""
    return {f.name: f.default for f in dataclasses.fields(_lookup(name))}


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


__all__ = ["Solver", "SolverState", "list_solvers", "make_solver", "register_solver"]
