"""Problem parameters as frozen dataclasses: one declaration per problem.

Each problem class names its parameters class (``Problem.Params``), a frozen dataclass whose fields are
declared with :func:`param`: default, kind (from the type hint), range, choices, a one-line description.
That one declaration drives

* what ``make_problem(name, **params)`` and the class accept (unknown names: one line naming the valid
  ones with their defaults) and the class's signature (``inspect.signature``);
* validation, on construction: kinds (``problems.values``), choices, ranges, finiteness, then the
  cross-parameter rule ``check``; one-line ValueErrors;
* ``problem.params``, the plain dict written into every trace (:meth:`ProblemParams.record`);
* the memory estimate checked before anything is allocated (:meth:`ProblemParams.memory_bytes`);
* ``adpbench list`` and ``docs/problems.md`` (:func:`parameter_spec`, ``python -m problems.describe``).

A range failure prints every ranged parameter of the problem, e.g. "deconv1d needs n ≥ 2, sigma > 0, ...;
got n=1, sigma=5.0, ...", so one line says what is valid.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from problems import values

#: the run-level settings every problem takes besides its parameters (set by --dtype / --device)
RUN_SETTINGS: dict[str, object] = {"dtype": torch.float64, "device": "cpu"}
#: bytes per element of the dtypes a problem may use
ITEMSIZE = {"float32": 4, "float64": 8}
#: how many n×n (1D) or 3×H×W (2D) arrays a problem holds at once, as a lower bound: operator, θ₀, θ, the
#: per-θ Hessian and Gram matrices, a hypergradient and a trial θ (1D); images, data, lower iterates,
#: gradients, TV fields and FFT buffers (2D)
MATRIX_COPIES = 6
IMAGE_COPIES = 24


def param(
    default: Any,
    doc: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
    why: str = "",
    none_means: str | None = None,
    convert: typing.Callable[[Any], Any] | None = None,
) -> Any:
    """A parameter field: ``ge``/``gt`` and ``le``/``lt`` bound it (closed / open), ``choices`` lists its
    values, ``why`` says why the range (shown in the error), ``none_means`` what None stands for (the field
    is then optional), ``convert`` normalises an accepted value (e.g. an int size n to (n, n))."""
    meta = dict(
        doc=doc,
        lo=gt if gt is not None else ge,
        lo_open=gt is not None,
        hi=lt if lt is not None else le,
        hi_open=lt is not None,
        choices=choices,
        why=why,
        none_means=none_means,
        convert=convert,
    )
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter as a listing shows it."""

    name: str
    kind: str  # the phrase of its kind: "an integer", "a finite number", "'known' or 'learned'"
    default: Any
    valid: str  # its range ("n ≥ 2") or choices, "" when any value of the kind goes
    doc: str


def _kind(hint: Any, meta: typing.Mapping[str, Any], default: Any) -> Any:
    """The ``problems.values`` kind of a field from its type hint (``X | None``: the kind of X)."""
    base = _base_type(hint)
    if meta.get("choices"):
        return values.OneOf(tuple(meta["choices"]))
    if base is bool:
        return values.FLAG
    if base is int:
        return values.ANY_INTEGER
    if base is float:
        return values.ANY_NUMBER
    if base is str:
        return values.TEXT
    if typing.get_origin(base) is tuple:
        return values.Size(tuple(default))  # the default shows the shape: (H, W)
    raise TypeError(f"no kind for parameter type {hint!r}")


def _base_type(hint: Any) -> Any:
    """X of a type hint ``X | None`` (the hint itself otherwise)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _interval(hint: Any, meta: typing.Mapping[str, Any]) -> values.Interval | None:
    if meta.get("lo") is None and meta.get("hi") is None:
        return None
    return values.Interval(
        integer=_base_type(hint) is int,
        lo=meta["lo"],
        hi=meta["hi"],
        lo_open=meta["lo_open"],
        hi_open=meta["hi_open"],
    )


@dataclass(frozen=True)
class ProblemParams:
    """Base of every problem's parameters (no fields: a problem without parameters)."""

    #: the registered name of the problem these parameters belong to (error messages, listings)
    problem: ClassVar[str] = "problem"

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = _kind(hints[f.name], f.metadata, f.default)
            values.check_kind(
                f"{self.problem}.{f.name}", value, kind, none_means=f.metadata.get("none_means")
            )
            convert = f.metadata.get("convert")
            if convert is not None and value is not None:
                object.__setattr__(self, f.name, convert(value))
        self._check_ranges(hints)
        self.check()

    def _check_ranges(self, hints: dict[str, Any]) -> None:
        ranged = [
            (f, iv)
            for f in dataclasses.fields(self)
            if (iv := _interval(hints[f.name], f.metadata)) is not None
        ]
        bad = [
            f
            for f, iv in ranged
            if getattr(self, f.name) is not None and not iv.accepts(getattr(self, f.name))
        ]
        if bad:
            needs = ", ".join(
                iv.condition(f.name) + (f" ({f.metadata['why']})" if f.metadata["why"] else "")
                for f, iv in ranged
            )
            got = ", ".join(f"{f.name}={getattr(self, f.name)}" for f, _ in ranged)
            raise ValueError(f"{self.problem} needs {needs}; got {got}")

    def check(self) -> None:
        """Rules across parameters (a subclass hook; one-line ValueError)."""

    def record(self) -> dict[str, Any]:
        """The plain dict a trace records (``problem.params``): every field, as resolved."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def memory_bytes(self, itemsize: int) -> int:
        """A lower bound, in bytes, on the memory the problem and one solver need (0 when unknown)."""
        return 0

    @classmethod
    def named_settings(cls) -> dict[str, dict[str, Any]]:
        """Settings the problem takes from elsewhere than its own defaults, by name (a named parameter
        set's values, or what a problem fixes): for listings and ``docs/problems.md``; none here."""
        return {}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def from_values(cls, given: typing.Mapping[str, Any]) -> ProblemParams:
        """Build from keyword values; unknown names are one line listing the valid ones with defaults."""
        values.check_names(
            given, {**cls.defaults(), **RUN_SETTINGS}, f"parameter(s) ... for problem {cls.problem!r}"
        )
        return cls(**given)

    @classmethod
    def spec(cls) -> list[ParamSpec]:
        """Every parameter with its kind, default, valid values and description (for listings)."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            kind = _kind(hints[f.name], f.metadata, f.default)
            iv = _interval(hints[f.name], f.metadata)
            valid = [kind.phrase()] if isinstance(kind, values.OneOf) else []
            if iv is not None:
                valid.append(iv.condition(f.name) + (f" ({f.metadata['why']})" if f.metadata["why"] else ""))
            if f.metadata.get("none_means"):
                valid.append(f"None: {f.metadata['none_means']}")
            noun = "a string" if isinstance(kind, values.OneOf) else kind.phrase()
            out.append(ParamSpec(f.name, noun, f.default, "; ".join(valid), f.metadata["doc"]))
        return out


def signature_of(params_cls: type[ProblemParams]) -> inspect.Signature:
    """The keyword-only signature a problem class accepts: its parameters, then the run settings."""
    items = {**params_cls.defaults(), **RUN_SETTINGS}
    return inspect.Signature(
        [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in items.items()]
    )


def matrix_bytes(n: int, itemsize: int) -> int:
    """MATRIX_COPIES n×n arrays."""
    return MATRIX_COPIES * int(n) ** 2 * itemsize


def image_bytes(size: tuple[int, int], itemsize: int) -> int:
    """IMAGE_COPIES 3×H×W arrays."""
    return IMAGE_COPIES * 3 * math.prod(int(v) for v in size) * itemsize
