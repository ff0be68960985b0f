"""Problem registry: ``make_problem(name, **params)``, ``list_problems()`` and the public accessors
``problem_class(name)``, ``problem_parameters(name)``, ``parameter_spec(name)``, ``figures(name)``.

Every problem declares its parameters once, as a frozen dataclass (``Problem.Params``, see
``problems/params.py``); everything here reads that declaration.
"""

from __future__ import annotations

import os

import torch

from problems import values
from problems.base import FIGURES, IMAGE, KERNEL, OPERATOR, SIGNAL, BilevelProblem, Counters
from problems.deblur2d import Deblur2D, SemiBlind2D
from problems.deconv1d import Deconv1D
from problems.params import ITEMSIZE, RUN_SETTINGS, ParamSpec, ProblemParams
from problems.tikhonov2d import TikhonovConv2D
from problems.validation import Quadratic, TikhonovADP

_REGISTRY: dict[str, type[BilevelProblem]] = {
    cls.name: cls for cls in (Deconv1D, Quadratic, TikhonovADP, Deblur2D, SemiBlind2D, TikhonovConv2D)
}

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def register_problem(cls: type[BilevelProblem]) -> type[BilevelProblem]:
    """Add a problem class to the registry (usable as a decorator). The class declares its parameters as a
    frozen dataclass ``Params`` (``problems.params.ProblemParams``) whose ``problem`` is the class's name."""
    if getattr(cls.Params, "problem", None) != cls.name:
        raise ValueError(
            f"problem class {cls.__name__} ({cls.name!r}) must declare its parameters: Params = a frozen "
            f"dataclass subclassing problems.params.ProblemParams with problem = {cls.name!r}"
        )
    values.check_new_name("problem", cls.name, _REGISTRY, cls)
    _REGISTRY[cls.name] = cls
    return cls


def unregister_problem(name: str) -> None:
    """Remove a problem name (a plug-in being unloaded); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def problem_names() -> list[str]:
    """Registered problem names, sorted."""
    return sorted(_REGISTRY)


def problem_class(name: str) -> type[BilevelProblem]:
    """The registered class of a problem; a one-line ValueError naming the valid problems otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown problem {name!r}; valid problems: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_problems() -> dict[str, dict[str, object]]:
    """Registered problems and their parameters with defaults."""
    return {name: problem_parameters(name) for name in sorted(_REGISTRY)}


def problem_parameters(name: str) -> dict[str, object]:
    """A problem's parameters with their defaults, then the run settings (dtype, device)."""
    return {**problem_class(name).Params.defaults(), **RUN_SETTINGS}


def parameter_spec(name: str) -> list[ParamSpec]:
    """A problem's parameters with kind, default, valid values and a one-line description (listings)."""
    return problem_class(name).Params.spec()


def figures(name: str) -> frozenset[str]:
    """What a problem can show in figures (``problems.FIGURES``: signal, operator, image, kernel)."""
    return problem_class(name).figures


def memory_estimate(name: str, params: dict[str, object]) -> int:
    """A lower bound, in bytes, on the memory the problem and one solver need (0 when unknown)."""
    return _memory(_config(name, params), params)


def _config(name: str, params: dict[str, object]) -> ProblemParams:
    """The validated parameters (names, kinds, ranges) of ``params``, the run settings left out."""
    return problem_class(name).Params.from_values({k: v for k, v in params.items() if k not in RUN_SETTINGS})


def _memory(config: ProblemParams, params: dict[str, object]) -> int:
    itemsize = ITEMSIZE.get(str(params.get("dtype", "float64")).replace("torch.", ""), 8)
    return config.memory_bytes(itemsize)


def available_memory(device: str = "cpu") -> int | None:
    """Bytes free for a new problem on the device (None when the platform does not say)."""
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g} GB"


def check_params(name: str, params: dict[str, object]) -> None:
    """Names, kinds, ranges and finiteness of the parameters (the problem's ``Params``), the dtype, and a
    memory estimate, before anything is allocated; one-line ValueErrors naming what is valid."""
    if set(params) - set(problem_parameters(name)):
        problem_class(name).Params.from_values(params)  # the one-line error naming the valid ones
    config = _config(name, params)
    if isinstance(params.get("dtype"), str) and params["dtype"] not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {params['dtype']!r}")
    need = _memory(config, params)
    free = available_memory(str(params.get("device", "cpu")))
    if free is not None and need > free:
        shown = ", ".join(f"{k}={params[k]!r}" for k in ("n", "m1", "m2", "size") if k in params)
        raise ValueError(
            f"problem {name!r} with {shown or 'these parameters'} needs at least {_gb(need)} "
            f"but {_gb(free)} is available; choose a smaller size"
        )


def make_problem(name: str, **params: object) -> BilevelProblem:
    """Build a registered problem; unknown or invalid parameters, and problems too large for the memory
    available, raise a one-line ValueError (naming the valid values) before anything is allocated."""
    cls = problem_class(name)
    check_params(name, params)
    if isinstance(params.get("dtype"), str):
        params["dtype"] = _DTYPES[params["dtype"]]
    return cls(**params)


__all__ = [
    "FIGURES",
    "IMAGE",
    "KERNEL",
    "OPERATOR",
    "SIGNAL",
    "BilevelProblem",
    "Counters",
    "ParamSpec",
    "available_memory",
    "check_params",
    "figures",
    "list_problems",
    "make_problem",
    "memory_estimate",
    "parameter_spec",
    "problem_class",
    "problem_names",
    "problem_parameters",
    "register_problem",
    "unregister_problem",
]
