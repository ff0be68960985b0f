"""Timing benchmark of the 1D comparison (issue: deconv1d MAID vs IFT vs LISTA), one process.

    python -m studies.deconv1d_timing [--repeats 3] [--full] [--out results/deconv1d/timing.md]

For each solver: solver time to reach ½‖Ax − y‖² ≤ 0.0102 (median of ``repeats`` runs, all in this
process, solvers interleaved so drift hits all alike), where the time goes (lower solves, adjoint CG,
hypergradient assembly, unrolled forward/backward), and the cost per lower-level iteration against a
bare 200×200 matrix-vector product timed here. ``--full`` also runs the paper's full budgets
(300 / 7 500 / 4 000 upper iterations) once each and reports total times, the paper's measure.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections import defaultdict

import torch

import bench
import problems
from studies.publish import publish

TARGET = 0.0102
SOLVERS = ("maid", "ift", "lista")
WRAPPED = ("ll_solve", "adjoint_solve", "hypergradient_from", "ll_unrolled", "upper_value", "ul_grad_x")


class _Timers:
    """Wraps problem oracles to accumulate their wall time (per call, so the overhead is negligible)."""

    def __init__(self, problem: problems.BilevelProblem):
        self.seconds: dict[str, float] = defaultdict(float)
        for name in WRAPPED:
            original = getattr(problem, name)
            setattr(problem, name, self._wrap(name, original))

    def _wrap(self, name, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t0

        return timed


def bare_matvec_seconds(n: int = 200, reps: int = 20000) -> float:
    """Median-of-5 time of one addmv with an n×n float64 matrix (the ISTA step's only O(n²) work)."""
    m = torch.randn(n, n, dtype=torch.float64)
    x = torch.randn(n, dtype=torch.float64)
    c = torch.randn(n, dtype=torch.float64)
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.addmv(c, m, x)
        samples.append((time.perf_counter() - t0) / reps)
    return statistics.median(samples)


def lista_backward_comparison(reps: int = 200) -> tuple[float, float]:
    """Median time of one LISTA hypergradient (K = 50) with deconv1d's hand-written unrolled backward
    and with plain autograd through the K steps (the base-class ``ll_unrolled``), side by side."""
    from problems.base import BilevelProblem
    from solvers import make_solver

    p = problems.make_problem("deconv1d")
    lista = make_solver("lista")
    x = p.solve_lower(p.theta0, 1e-3)
    autograd_problem = problems.make_problem("deconv1d")
    autograd_problem.ll_unrolled = BilevelProblem.ll_unrolled.__get__(autograd_problem)
    times: dict[str, list[float]] = {"hand": [], "autograd": []}
    for _ in range(reps):
        for key, prob in (("hand", p), ("autograd", autograd_problem)):
            t0 = time.perf_counter()
            lista.unrolled_gradient(prob, prob.theta0, x)
            times[key].append(time.perf_counter() - t0)
    return statistics.median(times["hand"]), statistics.median(times["autograd"])


def one_run(solver: str, max_time: float, max_iters: int | None = None, stop_at_target: bool = True) -> dict:
    problem = problems.make_problem("deconv1d")
    timers = _Timers(problem)
    res = bench.run(solver, problem, max_time=max_time, max_iters=max_iters)
    tr = res.trace
    hit = tr[tr.upper_value <= TARGET]
    last = tr.iloc[-1]
    return dict(
        solver=solver,
        status=res.status,
        iters=int(last.iteration),
        total_time=float(last.wall_time),
        ll_iters=int(last.ll_iters),
        cg_iters=int(last.cg_iters),
        final_value=float(last.upper_value),
        rel_error=float(last.rel_error),
        time_to_target=float(hit.wall_time.iloc[0]) if len(hit) else float("nan"),
        iters_to_target=int(hit.iteration.iloc[0]) if len(hit) else -1,
        ll_to_target=int(hit.ll_iters.iloc[0]) if len(hit) else -1,
        seconds=dict(timers.seconds),
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="also run the paper's full budgets once")
    ap.add_argument("--out", default="results/deconv1d/timing.md")
    args = ap.parse_args(argv)
    budgets = {"maid": 5.0, "ift": 10.0, "lista": 8.0}  # each reaches the target in ≲ 1/2 of its budget
    runs: dict[str, list[dict]] = defaultdict(list)
    for _ in range(args.repeats):
        for solver in SOLVERS:
            runs[solver].append(one_run(solver, budgets[solver]))
    matvec = bare_matvec_seconds()
    lines = [
        "# deconv1d timing (studies/deconv1d_timing.py)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, float64, CPU. Medians of {args.repeats} runs per solver in one process.",
        f"Target ½‖Ax − y‖² ≤ {TARGET}. Bare 200×200 addmv: {matvec * 1e6:.2f} µs.",
        "",
        "| solver | time to target [s] | upper iters to target | ll iters to target | × MAID time | "
        "ll solve share | CG share | µs per ll iter (in ll_solve) | × bare matvec |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    med = {s: statistics.median(r["time_to_target"] for r in runs[s]) for s in SOLVERS}
    for s in SOLVERS:
        r = runs[s][0]
        tot = r["total_time"]
        secs = r["seconds"]
        ll_time = secs.get("ll_solve", 0.0) + secs.get("ll_unrolled", 0.0)
        per_iter = ll_time / max(r["ll_iters"], 1)
        lines.append(
            f"| {s} | {med[s]:.3f} | {r['iters_to_target']} | {r['ll_to_target']} | "
            f"{med[s] / med['maid']:.1f} | "
            f"{ll_time / tot:.0%} | {secs.get('adjoint_solve', 0.0) / tot:.0%} | {per_iter * 1e6:.1f} | "
            f"{per_iter / matvec:.1f} |"
        )
    lines += [
        "",
        "Per-run times to target [s]: "
        + "; ".join(f"{s}: " + ", ".join(f"{r['time_to_target']:.3f}" for r in runs[s]) for s in SOLVERS),
    ]
    hand, auto = lista_backward_comparison()
    lines += [
        "",
        f"LISTA hypergradient (K = 50, one forward + backward): hand-written unrolled backward "
        f"{hand * 1e3:.2f} ms vs autograd through the 50 steps {auto * 1e3:.2f} ms (× {auto / hand:.2f}), "
        "medians, interleaved in this process.",
    ]
    lines += ["", "Where the time goes (first run, seconds inside each oracle / total solver time):", ""]
    for s in SOLVERS:
        r = runs[s][0]
        parts = ", ".join(f"{k} {v:.3f}" for k, v in sorted(r["seconds"].items(), key=lambda kv: -kv[1]))
        lines.append(f"- {s}: total {r['total_time']:.3f} s over {r['iters']} upper iterations; {parts}")
    if args.full:
        full_iters = {"maid": 300, "ift": 7500, "lista": 4000}
        lines += [
            "",
            "Full paper budgets (one run each; MAID stops earlier when ε < tol):",
            "",
            "| solver | status | upper iters | total time [s] | ll iters | final ½‖Ax−y‖² | rel. error |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in SOLVERS:
            r = one_run(s, max_time=600.0, max_iters=full_iters[s])
            lines.append(
                f"| {s} | {r['status']} | {r['iters']} | {r['total_time']:.2f} | {r['ll_iters']} | "
                f"{r['final_value']:.5f} | {r['rel_error']:.4f} |"
            )
    publish(lines, args.out)


if __name__ == "__main__":
    main()
