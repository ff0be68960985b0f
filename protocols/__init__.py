"""Protocols: a problem-parameter set paired with per-solver settings and a TV-baseline rule.

Layering: ``problems`` ← ``solvers`` ← ``protocols`` ← ``bench``. A problem carries only maths: it is built
from a named parameter set (``problems/parameter_sets.py``) and records that name in ``params["preset"]``.
The solver settings of the protocol of the same name live here; ``bench.make_solver_for`` (the name path of
``bench.run``) applies them, and ``bench.run`` with a solver *object* checks the object against them and
fails with a one-line error naming the conflicting fields (``check_solver``) — never a silent difference.

Protocols (``names()``; ``adpbench list`` prints them):

* ``authors`` — the authors' 2D protocol as their code runs it (docs/maths.md §6), its inconsistencies
  included and labelled (``Protocol.label``): MAID with their 2D settings, every lower solve and CG capped
  at 200.
* ``authors-fix-<deviation>`` — ``authors`` with one deviation removed (``DEVIATIONS``); several joined by
  ``+`` also work. ``ablation_rows()`` gives one row per deviation; ``ablation_path()`` removes them one
  after another towards ``certified``.
* ``certified`` — sound: one objective, μ = ζ a true bound so ε is a certified distance, solves to their
  accuracy (100 000-iteration safeguard), α and β from the documented grid searches. The default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from problems import parameter_sets
from problems.parameter_sets import AUTHORS_CAP, DEVIATION_KEYS, DEVIATIONS, MISMATCHED

__all__ = [
    "DEVIATIONS",
    "DEVIATION_KEYS",
    "MISMATCHED",
    "Protocol",
    "ablation_path",
    "ablation_rows",
    "check_solver",
    "get",
    "names",
    "resolve",
    "solver_settings",
]

#: config fields whose protocol value reaches every solver through the problem (its ``lower_caps``), so a
#: solver the protocol's table does not name still runs under them
THROUGH_PROBLEM = ("ll_max_iters", "cg_max_iters")

#: the authors' 2D MAID settings (docs/maths.md §6)
_MAID_AUTHORS_2D = {"eps0": 1.0, "rho": 0.1, "rho_bar": 1.5, "max_backtracks": 3, "tol": 1e-6}


def _field_solvers(eps: float, ll_max_iters: int, cg_max_iters: int) -> dict[str, dict[str, Any]]:
    """The field's solvers under a protocol: MAID's / IFT's caps; the inexact ones start at the
    authors' ε₀ = 1, the fixed-accuracy ones use IFT's ε; F2SA's penalty stops at λ = 1e3 so its inner
    accuracy ε₀(λ₀/λ)² bottoms out at 1e-4 instead of 1e-10."""
    caps = {"ll_max_iters": ll_max_iters}
    fixed = {"eps": eps, **caps}
    return {
        "hoag": {"eps0": _MAID_AUTHORS_2D["eps0"], **caps, "cg_max_iters": cg_max_iters},
        "maid_accel": {**_MAID_AUTHORS_2D, **caps, "cg_max_iters": cg_max_iters},
        "neumann": fixed,
        "jfb": fixed,
        "trbp": fixed,
        "f2sa": {"eps0": _MAID_AUTHORS_2D["eps0"], "lam_max": 1e3, **caps},
    }


#: the 200-iteration caps of their lower solves and CG; IFT's analogue: ‖∇h‖ ≤ 1e-3 (1000× MAID's ε₀)
_CAPPED = {
    "maid": {**_MAID_AUTHORS_2D, "ll_max_iters": AUTHORS_CAP, "cg_max_iters": AUTHORS_CAP},
    "ift": {"eps": 1e-3, "ll_max_iters": AUTHORS_CAP, "cg_tol": 1e-6, "cg_max_iters": AUTHORS_CAP},
    "lista": {"n_unroll": 50},
    **_field_solvers(1e-3, AUTHORS_CAP, AUTHORS_CAP),
}
#: solves to their accuracy, the cap only a safeguard
_UNCAPPED = {
    "maid": {**_MAID_AUTHORS_2D, "ll_max_iters": 100_000, "cg_max_iters": 5_000},
    "ift": {"eps": 1e-3, "ll_max_iters": 100_000, "cg_tol": 1e-6, "cg_max_iters": 5_000},
    "lista": {"n_unroll": 50},
    **_field_solvers(1e-3, 100_000, 5_000),
}
#: certified: IFT's fixed accuracy is a distance 1e-2 (relative 1e-4 of ‖x‖ at 128×128), and so the other
#: fixed-accuracy solvers'
_CERTIFIED = {**_UNCAPPED, "ift": {**_UNCAPPED["ift"], "eps": 1e-2}, **_field_solvers(1e-2, 100_000, 5_000)}


@dataclass(frozen=True)
class Protocol:
    """A named protocol: which authors' deviations it keeps, its solver settings and TV-baseline rule."""

    name: str
    deviations: tuple[str, ...]  # the authors' deviations still on (empty for certified)
    solvers: dict[str, dict[str, Any]]

    @property
    def sound(self) -> bool:
        """No piece makes the hypergradient belong to no objective and no early stop is imposed."""
        return not self.deviations

    @property
    def mismatched(self) -> tuple[str, ...]:
        """The deviations that make the hypergradient the gradient of no objective (FD tests exempt)."""
        return tuple(d for d in self.deviations if d in MISMATCHED)

    def problem_params(self, problem: str) -> dict[str, Any]:
        """The problem parameters of this protocol (``tv_baseline`` included)."""
        return parameter_sets.parameter_set(self.name, problem)

    @property
    def label(self) -> str:
        """The name, with the inconsistencies it keeps labelled (as every listing and report shows it)."""
        if self.name == "certified":
            return "certified (sound)"
        if not self.deviations:
            return f"{self.name} (every authors' deviation removed)"
        tag = "INCONSISTENT" if self.mismatched else "early-stopped / non-certified"
        return f"{self.name} [{tag}: {', '.join(self.deviations)}]"


def names() -> tuple[str, ...]:
    """authors, one ``authors-fix-<deviation>`` row per deviation, certified."""
    return parameter_sets.preset_names()


def get(name: str) -> Protocol:
    """The protocol of a name (any ``authors-fix-a+b`` combination too); a ValueError naming valid ones."""
    base, removed = parameter_sets.parse_name(name)
    if base == "certified":
        return Protocol(name, (), _CERTIFIED)
    kept = tuple(k for k in DEVIATION_KEYS if k not in removed)
    return Protocol(name, kept, _CAPPED if "caps" in kept else _UNCAPPED)


def solver_settings(protocol: str, solver: str) -> dict[str, Any]:
    """The config fields the protocol sets for a solver ({} for a solver it does not mention)."""
    return dict(get(protocol).solvers.get(solver, {}))


def decided_fields(protocol: str) -> tuple[str, ...]:
    """The solver config fields a protocol decides for the solvers it names, less those it applies to every
    solver through the problem (``THROUGH_PROBLEM``): a solver with one of them needs an entry."""
    table = get(protocol).solvers
    return tuple(sorted({k for entry in table.values() for k in entry} - set(THROUGH_PROBLEM)))


def resolve(
    protocol: str,
    solver: str,
    fields: Any,
    config: dict[str, Any],
    own: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The plain config of ``solver`` under ``protocol``: the protocol's entry for it (its table, else
    ``own[protocol]``: what the solver class declares for this protocol), then ``config`` on top.

    What the protocol fixes about the lower level (caps, step rule, stopping test) reaches every solver
    through the problem. A solver the protocol does not name runs with its own defaults only when it has
    none of the fields the protocol decides for the solvers it names (``decided_fields``) or ``config``
    sets them all; otherwise a one-line ValueError says what is missing — never a silent difference."""
    proto = get(protocol)
    entry = proto.solvers.get(solver)
    if entry is None and own is not None:
        entry = own.get(protocol)
    if entry is None:
        missing = [f for f in decided_fields(protocol) if f in set(fields) and f not in config]
        if missing:
            known = ", ".join(sorted(proto.solvers))
            raise ValueError(
                f"protocol {protocol!r} has no settings for solver {solver!r}, whose field(s) "
                f"{', '.join(missing)} it decides for the solvers it names ({known}); "
                f"set them (--solver-param {solver}.{missing[0]}=...) or declare them on the solver class "
                f"(protocol_settings = {{{protocol!r}: {{...}}}})"
            )
        entry = {}
    return {**entry, **config}


def ablation_rows() -> list[str]:
    """``authors``, then ``authors`` with each deviation removed on its own, then ``certified``."""
    return list(names())


def ablation_path() -> list[str]:
    """``authors`` → certified, one deviation removed at a time (cumulative). ``grad-weight`` is never
    removed on the way: once the adjoint and the step use the descended problem, the objective's α enters
    nothing, so the row before ``certified`` is α_eff = e⁻⁶ solved consistently (removing it instead would
    switch to α = 100·e⁻⁶ solved consistently, the over-smoothing old ``paper`` preset)."""
    keys = [k for k in DEVIATION_KEYS if k != "grad-weight"]
    return ["authors"] + [parameter_sets.fixed_name(keys[: i + 1]) for i in range(len(keys))] + ["certified"]


def check_solver(solver: Any, problem: Any) -> None:
    """Raise a one-line ValueError when a solver object's config differs from what the problem's protocol
    sets for it (the name path would run other settings than the object path)."""
    protocol = getattr(problem, "params", {}).get("preset")
    if protocol is None or not isinstance(protocol, str):
        return
    want = solver_settings(protocol, getattr(solver, "name", ""))
    bad = [
        f"{k}={getattr(solver, k, None)!r} (protocol: {v!r})"
        for k, v in want.items()
        if _differs(solver, k, v)
    ]
    if bad:
        raise ValueError(
            f"solver {solver.name!r} conflicts with protocol {protocol!r} of {problem.name} on "
            f"{', '.join(bad)}; pass the solver by name (bench.run({solver.name!r}, problem, "
            f"solver_config={{...}}) for deliberate overrides) or build it with bench.make_solver_for"
        )


def _differs(solver: Any, key: str, value: Any) -> bool:
    have = getattr(solver, key, None)
    if isinstance(value, float) and isinstance(have, (int, float)):
        return float(have) != value
    return have != value
