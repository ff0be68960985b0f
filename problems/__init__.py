"""Problem registry: ``make_problem(name, **params)`` and ``list_problems()``."""

from __future__ import annotations

import inspect
import math
import os

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


def problem_class(name: str) -> type[BilevelProblem]:
    """The registered class of a problem name (a ValueError naming the valid ones otherwise)."""
    return _lookup(name)


def _lookup(name: str) -> type[BilevelProblem]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown problem {name!r}; valid problems: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_type(name: str, key: str, value: object, default: object, annotation: str = "") -> None:
    """The value must have its default's kind: finite numbers for numbers, strings for strings, (H, W)
    for sizes; a parameter defaulting to None takes None or the kind its annotation names (a finite
    number unless it says str or bool: the 2D parameters that a preset fills in)."""
    where = f"{name}.{key}"
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, kind = _is_number(value), "a finite number"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "a string"
    elif isinstance(default, tuple):
        items = [value] if isinstance(value, int) else value  # an int n means (n, n)
        ok = isinstance(items, (tuple, list)) and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items
        )
        kind = f"a tuple of {len(default)} positive integers like {default!r} (or one for a square)"
    elif default is None and "str" in annotation:
        ok, kind = value is None or isinstance(value, str), "a string (or None for the preset's value)"
    elif default is None and "bool" in annotation:
        ok, kind = value is None or isinstance(value, bool), "true or false (or None for the preset's value)"
    elif default is None:
        ok, kind = value is None or _is_number(value), "a finite number (or None for the preset's value)"
    else:  # dtype, device: checked by the problem itself
        return
    if not ok:
        raise ValueError(f"{where} must be {kind}, got {value!r}")


#: bytes per element and how many n×n (1D) or 3×H×W (2D) arrays a problem holds at once, as a lower bound:
#: operator, θ₀, θ, the per-θ Hessian and Gram matrices, a hypergradient and a trial θ (1D); images, data,
#: lower iterates, gradients, TV fields and FFT buffers (2D).
_ITEMSIZE = {"float32": 4, "float64": 8}
_MATRIX_COPIES = 6
_IMAGE_COPIES = 24


def memory_estimate(name: str, params: dict[str, object]) -> int:
    """A lower bound, in bytes, on the memory the problem and one solver need (0 when unknown)."""
    dtype = params.get("dtype", "float64")
    itemsize = _ITEMSIZE.get(str(dtype).replace("torch.", ""), 8)
    valid = problem_parameters(name)
    if "size" in valid:
        size = params.get("size", valid["size"])
        pixels = math.prod(int(v) for v in size) if isinstance(size, (tuple, list)) else int(size) ** 2
        return _IMAGE_COPIES * 3 * pixels * itemsize
    if "n" in valid:
        dims = [int(params.get(k, valid[k])) for k in ("n", "m1", "m2") if k in valid]  # type: ignore[call-overload]
        return _MATRIX_COPIES * max(dims) ** 2 * itemsize
    return 0


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
    """Names, kinds and finiteness of the parameters, and a memory estimate, before anything is allocated."""
    valid = problem_parameters(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for problem {name!r}; "
            f"valid: {', '.join(f'{k}={v!r}' for k, v in valid.items())}"
        )
    signature = inspect.signature(_lookup(name).__init__)
    annotations = {p.name: str(p.annotation) for p in signature.parameters.values()}
    for key, value in params.items():
        _check_type(name, key, value, valid[key], annotations.get(key, ""))
    if isinstance(params.get("dtype"), str) and params["dtype"] not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {params['dtype']!r}")
    need = memory_estimate(name, params)
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
    cls = _lookup(name)
    check_params(name, params)
    if isinstance(params.get("dtype"), str):
        params["dtype"] = _DTYPES[params["dtype"]]
    return cls(**params)


__all__ = [
    "BilevelProblem",
    "Counters",
    "available_memory",
    "check_params",
    "list_problems",
    "make_problem",
    "memory_estimate",
    "problem_class",
    "register_problem",
]
