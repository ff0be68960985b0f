"""Problem registry: ``make_problem(name, **params)`` and ``list_problems()``."""

from __future__ import annotations

import inspect

import torch

from problems.base import BilevelProblem, Counters
from problems.deblur2d import Deblur2D, SemiBlind2D
from problems.deconv1d import Deconv1D
from problems.tikhonov2d import TikhonovConv2D
from problems.validation import Quadratic, TikhonovADP

_REGISTRY: dict[str, type[BilevelProblem]] = {
    cls.name: cls for cls in (Deconv1D, Quadratic, TikhonovADP, Deblur2D, SemiBlind2D, TikhonovConv2D)
}

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def register_problem(cls: type[BilevelProblem]) -> type[BilevelProblem]:
    """Add a problem class to the registry (usable as a decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


def list_problems() -> dict[str, dict[str, object]]:
    """Registered problems and their parameters with defaults."""
    return {name: problem_parameters(name) for name in sorted(_REGISTRY)}


def problem_parameters(name: str) -> dict[str, object]:
    cls = _lookup(name)
    sig = inspect.signature(cls.__init__)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _lookup(name: str) -> type[BilevelProblem]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown problem {name!r}; valid problems: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def make_problem(name: str, **params: object) -> BilevelProblem:
    """Build a registered problem; unknown or invalid parameters raise a ValueError naming the valid ones."""
    cls = _lookup(name)
    valid = problem_parameters(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for problem {name!r}; "
            f"valid: {', '.join(f'{k}={v!r}' for k, v in valid.items())}"
        )
    if isinstance(params.get("dtype"), str):
        key = params["dtype"]
        if key not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {key!r}")
        params["dtype"] = _DTYPES[key]
    return cls(**params)


__all__ = ["BilevelProblem", "Counters", "list_problems", "make_problem", "register_problem"]
