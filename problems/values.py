"""One validator per kind of value, shared by problems, solvers, the harness, the CLI and TOML sweep files.

A *kind* is what a setting may hold: an integer or a finite number in an interval (:class:`Interval`), one
of a few strings (:class:`OneOf`), true/false or a string (:class:`InstanceOf`), an image size
(:class:`Size`); and the names of a table of settings (:func:`check_names`). Each kind has a
single predicate, ``accepts(value)``, and renders what it accepts in the forms its callers print:

* a phrase — ``Interval(integer=True, lo=1).phrase()`` is "an integer ≥ 1" (harness, CLI, TOML, backends);
* an interval — ``.notation()`` is "[1, inf)" (solver configurations);
* a condition — ``.condition("n")`` is "n ≥ 2" (a problem's "needs ..." line).

Whatever the rendering, the decision comes from the one predicate, so two callers cannot disagree about a
value. Budgets (:func:`check_budget`) are the one place where callers differ on purpose: a sweep (CLI and
TOML) refuses a zero budget, since a recorded run that may do no work measures nothing, while the Python
API (``bench.run``) accepts 0, which records the initial state alone (how a caller asks for row 0).

This module imports nothing from the project, so every layer may use it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def is_integer(value: object) -> bool:
    """An integer, not a bool (``True`` is an ``int`` to Python, never an iteration count to us)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite real number (integers included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Interval:
    """Integers or finite numbers between ``lo`` and ``hi`` (each bound open or closed, None: unbounded)."""

    integer: bool = False
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    #: the unit a phrase names ("seconds": "a finite number of seconds > 0")
    unit: str = ""

    def accepts(self, value: object) -> bool:
        if not (is_integer(value) if self.integer else is_number(value)):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):  # type: ignore[operator]
            return False
        return self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)  # type: ignore[operator]

    @property
    def bounded(self) -> bool:
        return self.lo is not None or self.hi is not None

    def _bounds(self, name: str = "") -> str:
        """ "≥ 1", "> 0", "in (0, 1)" (name given: "n ≥ 2", "0 < rho < 1")."""
        lo_op, hi_op = ("<" if self.lo_open else "≤"), ("<" if self.hi_open else "≤")
        if self.lo is not None and self.hi is not None:
            return f"{self.lo} {lo_op} {name} {hi_op} {self.hi}" if name else f"in {self.notation()}"
        if self.lo is not None:
            return f"{name} {'>' if self.lo_open else '≥'} {self.lo}".strip()
        if self.hi is not None:
            return f"{name} {hi_op} {self.hi}".strip()
        return name

    def noun(self) -> str:
        noun = "an integer" if self.integer else "a finite number"
        return f"{noun} of {self.unit}" if self.unit else noun

    def phrase(self) -> str:
        """What the kind accepts, as a noun phrase: "an integer ≥ 1", "a finite number in (0, 1)"."""
        return f"{self.noun()} {self._bounds()}".strip()

    def notation(self) -> str:
        """The interval: "[1, inf)", "(0, 1)"."""
        left, right = ("(" if self.lo_open else "["), (")" if self.hi_open else "]")
        lo = "-inf" if self.lo is None else self.lo
        hi = "inf" if self.hi is None else self.hi
        if self.lo is None:
            left = "("
        if self.hi is None:
            right = ")"
        return f"{left}{lo}, {hi}{right}"

    def condition(self, name: str) -> str:
        """The range as a condition on a named value: "n ≥ 2", "0 < rho < 1"."""
        return self._bounds(name)

    def check(self, where: str, value: object, *, optional: bool = False) -> Any:
        """``value`` when accepted (or None when optional); otherwise a ValueError
        "<where> must be <phrase>, got <value>"."""
        if value is None and optional:
            return None
        if not self.accepts(value):
            raise ValueError(f"{where} must be {self.phrase()}, got {value!r}")
        return value

    def parse(self, text: str) -> int | float:
        """A value from command-line text; a ValueError "must be <phrase>, got '<text>'" otherwise (the
        caller names the flag)."""
        try:
            value: int | float | None = int(text) if self.integer else float(text)
        except ValueError:
            value = None
        if value is None or not self.accepts(value):
            raise ValueError(f"must be {self.phrase()}, got {text!r}")
        return value


#: the kinds most settings are
POSITIVE_INTEGER = Interval(integer=True, lo=1)
NONNEGATIVE_INTEGER = Interval(integer=True, lo=0)
POSITIVE_NUMBER = Interval(lo=0, lo_open=True)
ANY_NUMBER = Interval()
ANY_INTEGER = Interval(integer=True)


@dataclass(frozen=True)
class OneOf:
    """One of a few values (strings, usually)."""

    choices: tuple[Any, ...]

    def accepts(self, value: object) -> bool:
        return value in self.choices

    def phrase(self) -> str:
        """ "'known' or 'learned'" for two choices, "one of 'a', 'b', 'c'" for more."""
        shown = [repr(c) for c in self.choices]
        return " or ".join(shown) if len(shown) == 2 else f"one of {', '.join(shown)}"

    def check(self, where: str, value: object) -> Any:
        if not self.accepts(value):
            raise ValueError(f"{where} must be {self.phrase()}, got {value!r}")
        return value


@dataclass(frozen=True)
class InstanceOf:
    """A value of one Python type (no conversion)."""

    type: type
    description: str

    def accepts(self, value: object) -> bool:
        return isinstance(value, self.type)

    def phrase(self) -> str:
        return self.description


FLAG = InstanceOf(bool, "true or false")
TEXT = InstanceOf(str, "a string")


@dataclass(frozen=True)
class Size:
    """An image size: ``dims`` positive integers, or one integer n meaning (n, n, ...)."""

    example: tuple[int, ...] = (128, 128)

    def accepts(self, value: object) -> bool:
        items = [value] * len(self.example) if is_integer(value) else value
        return (
            isinstance(items, (tuple, list))
            and len(items) == len(self.example)
            and all(is_integer(v) and v > 0 for v in items)
        )

    def phrase(self) -> str:
        return f"a tuple of {len(self.example)} positive integers like {self.example!r} (or one for a square)"


def check_kind(where: str, value: object, kind: Any, *, none_means: str | None = None) -> Any:
    """``value`` when the kind accepts it, or None when ``none_means`` says what None stands for."""
    if value is None and none_means is not None:
        return None
    if not kind.accepts(value):
        extra = f" (or None for {none_means})" if none_means else ""
        raise ValueError(f"{where} must be {kind.phrase()}{extra}, got {value!r}")
    return value


def check_names(given: Iterable[str], valid: Mapping[str, object], what: str) -> None:
    """Names of settings: a ValueError "unknown <what>: a, b; valid: k=default, ..." for names not in
    ``valid`` (``what`` names the kind and the owner, e.g. "parameter(s) ... for problem 'deconv1d'")."""
    unknown = sorted(set(given) - set(valid))
    if unknown:
        shown = ", ".join(f"{k}={v!r}" for k, v in valid.items())
        raise ValueError(f"unknown {what.replace('...', ', '.join(unknown))}; valid: {shown}")


# ---------------------------------------------------------------------------------------------- run settings
BUDGET_KEYS = ("max_iters", "max_time", "max_ll_iters")


def budget_kinds(allow_zero: bool) -> dict[str, Interval]:
    """The kinds of the budget keys: iteration caps are integers, the time is seconds; ≥ 0 where zero is
    allowed (the Python API), ≥ 1 / > 0 otherwise (sweeps: see the module docstring)."""
    least = 0 if allow_zero else 1
    return {
        "max_iters": Interval(integer=True, lo=least),
        "max_time": Interval(lo=0, lo_open=not allow_zero, unit="seconds"),
        "max_ll_iters": Interval(integer=True, lo=least),
    }


def check_budget(budget: object, where: str = "", *, allow_zero: bool = False) -> dict[str, Any]:
    """A copy of a budget table {max_iters, max_time, max_ll_iters} (each optional; None: no cap) after
    checking its keys and values; a ValueError naming the key and what is valid otherwise."""
    label = where or "budget"
    if not isinstance(budget, Mapping):
        raise ValueError(f"{label} must be a table of {', '.join(BUDGET_KEYS)}, got {budget!r}")
    bad = sorted(set(budget) - set(BUDGET_KEYS))
    if bad:
        raise ValueError(f"{label}: unknown key(s) {', '.join(bad)}; valid: {', '.join(BUDGET_KEYS)}")
    kinds = budget_kinds(allow_zero)
    for key, value in budget.items():
        kinds[key].check(f"{where} {key}".strip(), value, optional=True)
    return dict(budget)


def check_seeds(value: object, where: str = "seeds") -> list[int]:
    """A non-empty list of integer seeds."""
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        value_ok = False
    else:
        value_ok = all(is_integer(v) for v in value)
    if not value_ok:
        raise ValueError(f"{where} must be a non-empty list of integers, e.g. [0, 1, 2], got {value!r}")
    return list(value)  # type: ignore[arg-type]


class NameClash(ValueError):
    """A registry name already taken by another class (``kind``: solver or problem; ``name``; ``holder``:
    the class holding it)."""

    def __init__(self, kind: str, name: str, holder: type) -> None:
        self.kind, self.name, self.holder = kind, name, holder
        super().__init__(
            f"{kind} name {name!r} is already registered ({holder.__module__}.{holder.__qualname__})"
        )


def check_new_name(kind: str, name: str, registry: dict[str, type], cls: type) -> None:
    """Raise :class:`NameClash` when ``name`` is registered to a class other than ``cls`` (registering the
    same class again is harmless)."""
    holder = registry.get(name)
    if holder is not None and holder is not cls:
        raise NameClash(kind, name, holder)
