"""What `adpbench list` prints: one line per problem, solver, protocol and suite, details on request.

adpbench list                      every kind, one line per entry
adpbench list solvers              one kind
adpbench list solvers maid         one entry in full (its fields with their defaults)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import problems as problem_registry
import protocols
import solvers as solver_registry
from bench import plugins
from problems import parameter_sets
from solvers.base import requirement_note

KINDS = ("problems", "solvers", "protocols", "suites")
_NAME_WIDTH = 26


def summary_of(obj: object) -> str:
    """A one-line description: the ``summary`` attribute, else the first sentence of the class docstring,
    else of its module's docstring (without a leading "`name` — ")."""
    text = getattr(obj, "summary", None)
    if not text:
        module = sys.modules.get(getattr(obj, "__module__", ""), None)
        for doc in (getattr(obj, "__doc__", None), getattr(module, "__doc__", None)):
            if doc and doc.strip():
                text = doc.strip().splitlines()[0]
                break
    text = (text or "").strip()
    if text.startswith("`") and " — " in text:
        text = text.split(" — ", 1)[1]
    return text.rstrip(".")


def _suites():
    """The suites module when it is present (an optional part of the harness)."""
    try:
        return importlib.import_module("bench.suites")
    except ImportError:
        return None


def _line(name: str, text: str) -> str:
    return (
        f"  {name:<{_NAME_WIDTH}} {text}"
        if len(name) < _NAME_WIDTH
        else f"  {name}\n  {'':<{_NAME_WIDTH}} {text}"
    )


def _solver_summary(name: str) -> str:
    """The solver's summary, and the lower levels it does not apply to (``solvers.base.requirement_note``)."""
    cls = solver_registry.solver_class(name)
    note = requirement_note(cls)
    return summary_of(cls) + (f" [{note}]" if note else "")


def _protocol_summary(name: str) -> str:
    proto = protocols.get(name)
    if proto.sound:
        return "sound: one objective, μ = ζ a true bound so ε is a certified distance, solves to accuracy"
    base, removed = parameter_sets.parse_name(name)
    if not removed:
        return f"the authors' 2D code as it runs, deviations kept: {', '.join(proto.deviations)}"
    return f"authors with {' + '.join(removed)} removed" + (
        " (still inconsistent)" if proto.mismatched else ""
    )


def names_of(kind: str) -> list[str]:
    """The entries of one kind, in listing order."""
    if kind == "problems":
        return list(problem_registry.list_problems())
    if kind == "solvers":
        return solver_registry.solver_names()
    if kind == "protocols":
        return list(protocols.names())
    suites = _suites()
    return [] if suites is None else list(suites.names())


def _from_plugin(kind: str, name: str) -> str:
    """`` [plug-in my_solver.py]`` for a name a plug-in registered ("" for a built-in)."""
    where = plugins.origin(kind, name)
    return f" [{where}]" if where else ""


def _summaries(kind: str) -> Callable[[str], str]:
    if kind == "problems":
        return lambda n: summary_of(problem_registry.problem_class(n)) + _from_plugin("problem", n)
    if kind == "solvers":
        return lambda n: _solver_summary(n) + _from_plugin("solver", n)
    if kind == "protocols":
        return _protocol_summary
    suites = _suites()
    return lambda n: suites.get(n).summary if suites is not None else ""


_HEADERS = {
    "problems": "problems (`adpbench list problems NAME`: its parameters)",
    "solvers": "solvers (`adpbench list solvers NAME`: its configuration fields)",
    "protocols": "protocols of the 2D problems (`--preset NAME`; 'authors-fix-a+b' combines rows; "
    "`adpbench list protocols NAME`: its settings)",
    "suites": "suites (`--suite NAME`; `adpbench list suites NAME`: instances and cost)",
}


def overview(kinds: tuple[str, ...] = KINDS) -> str:
    """One line per entry of each kind."""
    out = []
    for kind in kinds:
        entries = names_of(kind)
        if not entries:
            continue
        out.append(_HEADERS[kind] + ":")
        if kind == "protocols":  # the label names the protocol and the inconsistencies it keeps
            out += [f"  {protocols.get(n).label}" for n in entries]
            continue
        describe = _summaries(kind)
        out += [_line(n, describe(n)) for n in entries]
    return "\n".join(out)


def _fields(values: dict[str, object]) -> list[str]:
    return [f"  {k} = {v!r}" for k, v in values.items()]


def detail(kind: str, name: str) -> str:
    """One entry in full."""
    if kind == "problems":
        cls = problem_registry.problem_class(name)
        return "\n".join(
            [f"{name}: {summary_of(cls)}", "parameters (default):"]
            + _fields(problem_registry.problem_parameters(name))
        )
    if kind == "solvers":
        cls = solver_registry.solver_class(name)
        return "\n".join(
            [f"{name}: {summary_of(cls)}", "configuration fields (default):"]
            + _fields(solver_registry.solver_parameters(name))
        )
    if kind == "protocols":
        proto = protocols.get(name)
        out = [f"{proto.label}", f"  {_protocol_summary(name)}"]
        baseline = None
        for problem in parameter_sets.PROBLEMS:
            params = proto.problem_params(problem)
            baseline = params.pop("tv_baseline")
            out.append(f"  {problem}: " + ", ".join(f"{k}={v!r}" for k, v in params.items()))
        out.append(f"  TV baseline: {baseline}")
        for solver, config in proto.solvers.items():
            out.append(f"  {solver}: " + ", ".join(f"{k}={v!r}" for k, v in config.items()))
        if proto.deviations:
            out.append("  deviations kept (each removed by authors-fix-<key>):")
            for dev in protocols.DEVIATIONS:
                if dev.key in proto.deviations:
                    tag = " [hypergradient of no objective]" if dev.key in protocols.MISMATCHED else ""
                    out.append(f"    {dev.key}: {dev.what}{tag}")
        return "\n".join(out)
    suites = _suites()
    if suites is None:
        raise ValueError("no suites are available")
    return suites.get(name).describe()


def render(kind: str | None = None, name: str | None = None) -> str:
    """The text of `adpbench list [KIND [NAME]]`; a one-line ValueError naming the valid kinds or names."""
    if kind is None:
        return overview()
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(KINDS)}")
    if name is None:
        return overview((kind,))
    if kind != "protocols" and name not in names_of(kind):  # protocols also take combined names
        raise ValueError(f"unknown {kind[:-1]} {name!r}; valid: {', '.join(names_of(kind))}")
    return detail(kind, name)
