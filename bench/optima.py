"""Reference optima: ``python -m bench.optima compute -p deconv1d [--param deconv1d.seed=1 ...]``.

F* of an instance without a closed form is the lowest value the harness's exact evaluation has seen on a
long, high-accuracy MAID run (``HIGH_ACCURACY``; the run's final θ, since MAID's certified line search
accepts only steps that decrease F), stored in ``problems/optima.json`` with where it came from and its
certificate ‖∇F(θ)‖ by the reference hypergradient. On a nonconvex problem (deconv1d's F(B) is) it is the
best *known* value: a solver may later beat it, and rel_gap is then negative (``docs/evaluation.md``).
``python -m bench.optima show`` lists the stored entries.
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
from typing import Any

import torch

import problems as problem_registry
from bench import provenance, sweep
from bench.harness import run
from problems import optima

#: MAID's settings for a reference run: the stopping tolerance far below any target's resolution, and lower
#: and CG caps that never bind (at the default 500 a solve to ε ≈ 1e-10 on deconv1d stops at its cap, the
#: hypergradient is then off and the line search fails: the run ends early), so the run ends on its time
#: budget or its accuracy floor
HIGH_ACCURACY = {"tol": 1e-11, "ll_max_iters": 100_000, "cg_max_iters": 100_000}
#: solver seconds of a reference run unless --max-time says otherwise
DEFAULT_MAX_TIME = 300.0
#: an upper-iteration cap that never binds before the time budget
MAX_ITERS = 10_000_000


def compute(problem: str, params: dict[str, Any], max_time: float, solver_config: dict[str, Any]) -> dict:
    """Run MAID on the instance (float64, CPU) and return the entry ``optima.store`` writes."""
    instance = problem_registry.make_problem(problem, **params)
    config = {**HIGH_ACCURACY, **solver_config}
    result = run("maid", instance, max_time=max_time, max_iters=MAX_ITERS, solver_config=config)
    trace = result.trace
    value = instance.upper_objective(result.theta)
    grad_norm = float(torch.linalg.vector_norm(instance.hypergradient(result.theta)))
    lowest = float(trace.exact_upper_value.min())
    return {
        "value": min(value, lowest) if math.isfinite(lowest) else value,
        "final_value": value,
        "grad_norm": grad_norm,
        "source": {
            "solver": "maid",
            "solver_config": config,
            "status": result.status,
            "upper_iters": int(trace.iteration.iloc[-1]),
            "solver_seconds": float(trace.wall_time.iloc[-1]),
            "git_commit": provenance.git_commit(),
            "torch": torch.__version__,
            "date": datetime.date.today().isoformat(),
        },
        "dtype": "float64",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.optima", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compute", help="recompute an instance's F* by a long exactly evaluated MAID run")
    c.add_argument("--problem", "-p", required=True)
    c.add_argument("--param", action="append", metavar="PROBLEM.KEY=VALUE")
    c.add_argument("--solver-param", action="append", metavar="maid.KEY=VALUE")
    c.add_argument("--max-time", type=float, default=DEFAULT_MAX_TIME, help="solver seconds (default 300)")
    c.add_argument("--dry-run", action="store_true", help="print the entry, do not store it")
    sub.add_parser("show", help="list the stored optima")
    args = parser.parse_args(argv)
    if args.command == "show":
        for key, entry in optima.load().items():
            print(f"{key}  F* = {entry['value']:.12g}  ‖∇F‖ = {entry['grad_norm']:.3g}  {entry['params']}")
        return 0
    try:
        problem_registry.problem_class(args.problem)
        params = sweep.parse_assignments(args.param, "param").get(args.problem, {})
        config = sweep.parse_assignments(args.solver_param, "solver-param").get("maid", {})
    except ValueError as exc:
        print(f"adpbench optima: error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    entry = compute(args.problem, params, args.max_time, config)
    instance = problem_registry.make_problem(args.problem, **params)
    stored = optima.lookup(instance.name, instance.params)
    print(f"{args.problem} {instance.params}: F* = {entry['value']:.12g}, ‖∇F‖ = {entry['grad_norm']:.3g}")
    if stored is not None:
        print(f"stored before: F* = {stored['value']:.12g}")
    if not args.dry_run:
        if stored is not None and stored["value"] < entry["value"]:
            print("kept the stored value (lower); nothing written")
        else:
            print(f"written: {optima.store(instance.name, instance.params, entry)} in {optima.OPTIMA_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
