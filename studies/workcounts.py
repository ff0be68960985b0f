"""Deterministic work counts: the CI gate's numbers and asv's ``track_*`` benchmarks (one source).

Wall time depends on the machine and its load; the work a solver does to reach a fixed target does not.
Each count below is one function (registered in :data:`COUNTS`); ``studies/asv/workcounts.py`` turns each
into a ``track_<name>`` benchmark and ``tests/regression/test_workcount_gate.py`` compares each against the
committed baseline ``studies/workcounts_baseline.json``.

    python -m studies.workcounts            # compute, compare with the baseline (exit status 1 on a change)
    python -m studies.workcounts --update   # rewrite the baseline after an intended change (commit it)

Counts are computed with one torch thread (:func:`single_thread`): faster for these small problems on a
shared CPU, and no thread-count dependent reduction order. Counters are the problems' own (docs/maths.md §8).

Tolerances (stored per count in the baseline): float values 1e-6 relative. Integer counts 1 % relative
(so exact below 100). Measured: scaling θ₀ by (1 + 1e-15), a few ulps, moved IFT's CG count on deconv1d
217 → 218 (by 1 + 1e-12: → 216) and left every other count unchanged; a different BLAS/CPU rounds
differently, so an exact integer gate would flag such one-step moves as regressions. A real algorithmic
regression moves the counts by far more (MAID with ρ = 0.9 instead of 0.5: +44 % lower-level iterations).

Override hook (to check that the gate fires, or to explore settings without editing solver files):
``ADPBENCH_WORKCOUNT_OVERRIDES='{"maid": {"rho": 0.9}}'`` merges those config fields into the named
solvers' configs for every count. ``--update`` refuses to run while it is set.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.harness import make_solver_for
from studies.microbench import has_2d, make_case, single_thread

BASELINE_PATH = Path(__file__).with_name("workcounts_baseline.json")
OVERRIDES_ENV = "ADPBENCH_WORKCOUNT_OVERRIDES"
UPDATE_COMMAND = "python -m studies.workcounts --update"

INT_REL_TOL = 0.01
FLOAT_REL_TOL = 1e-6

# deconv1d: the authors' published target ½‖Ax − y‖² ≤ 0.0102 (MAID reaches it at upper iteration 50)
DECONV1D_TARGET = 0.0102
DECONV1D_TARGET_CAP = 150  # upper iterations MAID may take to reach it before the count reads -1
DECONV1D_BUDGET = {"maid": 20, "ift": 10, "lista": 20}  # upper iterations for the final values
# deblur2d: a small instance, few iterations. The target is a relative decrease of the true upper
# objective at θ₀ (lower level solved to REFERENCE_TOL, uncounted): F ≤ (1 − DEBLUR2D_DECREASE)·F(θ₀).
# Not relative to the value after MAID's init: that x̃ is only ε₀ = 1 accurate, and tightening ε alone
# lowers g(x̃) by ~4 % on this instance without any accepted step.
DEBLUR2D_CASE = "deblur2d-32"
DEBLUR2D_DECREASE = 2e-4
REFERENCE_TOL = 1e-6
DEBLUR2D_TARGET_CAP = 40
DEBLUR2D_BUDGET = 10


# ---------------------------------------------------------------------------------------------- runs
def solver_overrides() -> dict[str, dict[str, Any]]:
    """Solver config overrides from ``$ADPBENCH_WORKCOUNT_OVERRIDES`` (JSON: solver → {field: value})."""
    raw = os.environ.get(OVERRIDES_ENV, "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"${OVERRIDES_ENV} is not valid JSON ({exc}): {raw!r}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(
            f'${OVERRIDES_ENV} must map solver names to config dicts, e.g. {{"maid": {{"rho": 0.9}}}}'
        )
    return data


@dataclass(frozen=True)
class RunCounts:
    upper_iters: int  # upper iterations done (to the target when one was given and reached)
    ll_iters: int
    cg_iters: int
    final_value: float  # upper value g(x, θ) + r(θ) of the last state
    reached: bool  # the target was reached (True when no target was asked for)


def run_counts(
    case: str,
    solver: str,
    max_iters: int,
    target: float | None = None,
    rel_decrease: float | None = None,
) -> RunCounts:
    """Run ``solver`` on ``case`` (CPU, float64) until the upper value is ≤ the target, the solver's own
    stopping rule fires, or ``max_iters`` upper iterations; return the problem's counters then.

    ``target`` is absolute; ``rel_decrease`` sets it to (1 − rel_decrease)·F(θ₀), F(θ₀) from an uncounted
    lower solve to ``REFERENCE_TOL``.
    """
    overrides = json.dumps(solver_overrides(), sort_keys=True)
    return _run_counts(case, solver, max_iters, target, rel_decrease, overrides)


@functools.cache
def _run_counts(
    case: str,
    solver: str,
    max_iters: int,
    target: float | None,
    rel_decrease: float | None,
    overrides: str,
) -> RunCounts:
    with single_thread():
        problem = make_case(case)
        slv = make_solver_for(solver, problem, **json.loads(overrides).get(solver, {}))
        if rel_decrease is not None:
            # x̂(θ₀) to ‖∇h‖ ≤ μ·tol through tv_baseline, which (unlike upper_objective) also runs when μ is
            # only nominal (the ``authors`` protocol)
            x_ref = problem.tv_baseline(tol=REFERENCE_TOL)
            with torch.no_grad():
                f_ref = float(problem.ul_g(problem.theta0, x_ref) + problem.ul_reg(problem.theta0))
            target = (1.0 - rel_decrease) * f_ref
        problem.counters.reset()
        state = slv.init(problem)
        k = 0
        while not (target is not None and state.upper_value <= target):
            if k >= max_iters or state.converged or not math.isfinite(state.upper_value):
                break
            state = slv.update(problem, state)
            k += 1
        reached = target is None or state.upper_value <= target
        c = problem.counters
        return RunCounts(k, c.ll_iters, c.cg_iters, float(state.upper_value), reached)


def _to_target(run: RunCounts, field: str) -> int:
    """A to-target count, or −1 when the target was not reached within the cap."""
    return int(getattr(run, field)) if run.reached else -1


# ---------------------------------------------------------------------------------------------- counts
@dataclass(frozen=True)
class Count:
    name: str
    fn: Callable[[], float]
    kind: str  # "int" or "float"
    unit: str
    description: str
    requires: str | None = None  # a problem that must be registered

    @property
    def rel_tol(self) -> float:
        return INT_REL_TOL if self.kind == "int" else FLOAT_REL_TOL

    def available(self) -> bool:
        return self.requires is None or (self.requires == "deblur2d" and has_2d())

    def __call__(self) -> float:
        value = self.fn()
        return int(value) if self.kind == "int" else float(value)


#: every count, by name (the order is the report order)
COUNTS: dict[str, Count] = {}


def count(kind: str, unit: str, description: str, requires: str | None = None):
    def register(fn: Callable[[], float]) -> Callable[[], float]:
        COUNTS[fn.__name__] = Count(fn.__name__, fn, kind, unit, description, requires)
        return fn

    return register


def _maid_deconv1d_to_target() -> RunCounts:
    return run_counts("deconv1d", "maid", DECONV1D_TARGET_CAP, target=DECONV1D_TARGET)


def _deconv1d_budget(solver: str) -> RunCounts:
    return run_counts("deconv1d", solver, DECONV1D_BUDGET[solver])


def _maid_deblur2d_to_target() -> RunCounts:
    return run_counts(DEBLUR2D_CASE, "maid", DEBLUR2D_TARGET_CAP, rel_decrease=DEBLUR2D_DECREASE)


def _maid_deblur2d_budget() -> RunCounts:
    return run_counts(DEBLUR2D_CASE, "maid", DEBLUR2D_BUDGET)


@count("int", "lower-level iterations", "MAID on deconv1d: lower-level iterations to ½‖Ax−y‖² ≤ 0.0102")
def maid_deconv1d_ll_iters_to_target() -> int:
    return _to_target(_maid_deconv1d_to_target(), "ll_iters")


@count("int", "CG steps", "MAID on deconv1d: CG steps (Hessian-vector products) to ½‖Ax−y‖² ≤ 0.0102")
def maid_deconv1d_cg_iters_to_target() -> int:
    return _to_target(_maid_deconv1d_to_target(), "cg_iters")


@count("int", "upper iterations", "MAID on deconv1d: upper iterations to ½‖Ax−y‖² ≤ 0.0102")
def maid_deconv1d_upper_iters_to_target() -> int:
    return _to_target(_maid_deconv1d_to_target(), "upper_iters")


@count(
    "float", "upper value", f"MAID on deconv1d: upper value after {DECONV1D_BUDGET['maid']} upper iterations"
)
def maid_deconv1d_final_value() -> float:
    return _deconv1d_budget("maid").final_value


@count(
    "int",
    "lower-level iterations",
    f"IFT on deconv1d: lower-level iterations in {DECONV1D_BUDGET['ift']} upper iterations",
)
def ift_deconv1d_ll_iters_budget() -> int:
    return _deconv1d_budget("ift").ll_iters


@count("int", "CG steps", f"IFT on deconv1d: CG steps in {DECONV1D_BUDGET['ift']} upper iterations")
def ift_deconv1d_cg_iters_budget() -> int:
    return _deconv1d_budget("ift").cg_iters


@count(
    "float", "upper value", f"IFT on deconv1d: upper value after {DECONV1D_BUDGET['ift']} upper iterations"
)
def ift_deconv1d_final_value() -> float:
    return _deconv1d_budget("ift").final_value


@count(
    "float",
    "upper value",
    f"LISTA on deconv1d: upper value after {DECONV1D_BUDGET['lista']} upper iterations",
)
def lista_deconv1d_final_value() -> float:
    return _deconv1d_budget("lista").final_value


_2D_TARGET = f"F ≤ (1 − {DEBLUR2D_DECREASE:g})·F(θ₀)"


@count(
    "int",
    "lower-level iterations",
    f"MAID on {DEBLUR2D_CASE}: lower-level iterations to {_2D_TARGET}",
    "deblur2d",
)
def maid_deblur2d_ll_iters_to_target() -> int:
    return _to_target(_maid_deblur2d_to_target(), "ll_iters")


@count("int", "CG steps", f"MAID on {DEBLUR2D_CASE}: CG steps to {_2D_TARGET}", "deblur2d")
def maid_deblur2d_cg_iters_to_target() -> int:
    return _to_target(_maid_deblur2d_to_target(), "cg_iters")


@count("int", "upper iterations", f"MAID on {DEBLUR2D_CASE}: upper iterations to {_2D_TARGET}", "deblur2d")
def maid_deblur2d_upper_iters_to_target() -> int:
    return _to_target(_maid_deblur2d_to_target(), "upper_iters")


@count(
    "float",
    "upper value",
    f"MAID on {DEBLUR2D_CASE}: upper value after {DEBLUR2D_BUDGET} upper iterations",
    "deblur2d",
)
def maid_deblur2d_final_value() -> float:
    return _maid_deblur2d_budget().final_value


def available_counts() -> dict[str, Count]:
    return {name: c for name, c in COUNTS.items() if c.available()}


def compute_all() -> dict[str, float]:
    return {name: c() for name, c in available_counts().items()}


# ---------------------------------------------------------------------------------------------- baseline
def load_baseline(path: Path = BASELINE_PATH) -> dict[str, dict[str, Any]]:
    """``{name: {"value", "kind", "rel_tol", ...}}`` from the committed baseline file."""
    return json.loads(Path(path).read_text())["counts"]


def write_baseline(values: dict[str, float], path: Path = BASELINE_PATH) -> None:
    from bench.provenance import git_commit

    data = {
        "about": (
            "Deterministic work counts checked by tests/regression/test_workcount_gate.py. Regenerate after "
            f"an intended change with `{UPDATE_COMMAND}` and commit this file. rel_tol: allowed "
            "|new − old| / |old| (integers: 1 %, exact below 100; floats: 1e-6)."
        ),
        "generated_with": {
            "git_commit": git_commit(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "torch_threads": 1,
        },
        "counts": {
            name: {
                "value": value,
                "kind": COUNTS[name].kind,
                "rel_tol": COUNTS[name].rel_tol,
                "unit": COUNTS[name].unit,
                "description": COUNTS[name].description,
            }
            for name, value in values.items()
        },
    }
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)


def check(name: str, old: dict[str, Any] | None, new: float | None) -> str | None:
    """None when ``new`` is within the baseline entry's tolerance, else a failure message."""
    if old is None:
        return (
            f"{name}: new count ({new!r}) with no baseline entry. "
            f"Run `{UPDATE_COMMAND}` and commit the baseline."
        )
    if new is None:
        return (
            f"{name}: in the baseline ({old['value']!r}) but not computable here (needs "
            f"{COUNTS[name].requires if name in COUNTS else 'a count that no longer exists'}). "
            f"If it was removed on purpose, run `{UPDATE_COMMAND}`."
        )
    value, tol = old["value"], float(old["rel_tol"])
    if abs(new - value) <= tol * abs(value):
        return None
    ratio = new / value if value else math.inf
    unit = COUNTS[name].unit if name in COUNTS else ""
    note = " (−1: target not reached within the cap)" if -1 in (new, value) and old["kind"] == "int" else ""
    return (
        f"{name}: baseline {value!r}, now {new!r} {unit}, ratio {ratio:.4f} "
        f"(allowed ±{tol:g} relative){note}\n"
        f"    {old.get('description', '')}\n"
        f"    If this change is intended, run `{UPDATE_COMMAND}` and commit studies/workcounts_baseline.json."
    )


def gate_names(baseline: dict[str, dict[str, Any]]) -> list[str]:
    """Every name in the baseline or computable here (so both additions and removals are caught)."""
    return list(dict.fromkeys([*available_counts(), *baseline]))


def compute_one(name: str) -> float | None:
    c = COUNTS.get(name)
    return c() if c is not None and c.available() else None


# ---------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--update", action="store_true", help=f"rewrite {BASELINE_PATH.name}")
    ap.add_argument("--baseline", type=Path, default=BASELINE_PATH)
    args = ap.parse_args(argv)
    if args.update and os.environ.get(OVERRIDES_ENV, "").strip():
        print(f"refusing to --update while ${OVERRIDES_ENV} is set", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    values = compute_all()
    elapsed = time.perf_counter() - t0
    baseline = load_baseline(args.baseline) if args.baseline.exists() else {}
    width = max(map(len, COUNTS))
    for name, value in values.items():
        old = baseline.get(name, {}).get("value")
        ratio = f"{value / old:.4f}" if isinstance(old, (int, float)) and old else "-"
        print(f"{name:<{width}}  {value!r:>22}  baseline {old!r:>22}  ratio {ratio}")
    print(f"({len(values)} counts in {elapsed:.1f} s)")
    if args.update:
        write_baseline(values, args.baseline)
        print(f"wrote {args.baseline}")
        return 0
    failures = [
        msg for name in gate_names(baseline) if (msg := check(name, baseline.get(name), values.get(name)))
    ]
    for msg in failures:
        print("FAIL " + msg, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
