"""When does inexactness pay? MAID, maid_accel and HOAG against fixed-accuracy IFT as the lower level
gets cheaper or dearer, plus the ten-solver tables and the series-bias table, one thread.

    python -m studies.inexactness study   [--out results/inexactness] [--scale 1.0]
    python -m studies.inexactness tables  # every solver: deconv1d (20 s each), deblur2d certified 128² (30 s)
    python -m studies.inexactness bias    # hypergradient bias of neumann / trbp / jfb against K

Clock: the machine these results come from is shared by six engineers (load average ≈ 10 on 2 cores), so
wall time measures the neighbours as much as the solver. By default (``--clock cpu``) the harness' clock
reads this thread's CPU time (``time.perf_counter`` is pointed at ``time.thread_time`` for the whole
process; torch runs on one thread here), which is what a solver
would take on an idle core, up to cache effects; budgets are then CPU seconds. ``--clock wall`` keeps the
harness' wall clock.

Study cases: deconv1d with n ∈ {50, 200, 800} (an ISTA step is one n×n matvec) and deblur2d (``certified``
preset, astronaut) from 32×32 to 256×256 (a lower step is a few FFTs of the image). Each solver runs with
its default settings for the problem (``bench.make_solver_for``) under a solver-time budget per case
(``CASES`` × ``--scale``). Target per case: F ≤ F* + GAP·(F(θ₀) − F*), F* the best upper value any of the
four runs reached, F(θ₀) solved to REFERENCE_TOL (uncounted); GAP = 3e-3 puts the deconv1d n = 200 target
at ≈ 0.0102, the paper's level. Output: ``summary.md``/``.csv`` (time and lower iterations to target,
ratio to IFT) and ``ratios.png`` (time-to-target / IFT's).
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import pandas as pd
import torch

import bench
import problems
import solvers
from bench import report, sweep

SOLVERS = ("maid", "maid_accel", "hoag", "ift")
GAP = 3e-3
REFERENCE_TOL = 1e-8
#: (label, problem, params, solver seconds per run)
CASES = (
    ("1D n=50", "deconv1d", {"n": 50}, 10.0),
    ("1D n=200", "deconv1d", {"n": 200}, 10.0),
    ("1D n=800", "deconv1d", {"n": 800}, 20.0),
    ("2D 32²", "deblur2d", {"size": (32, 32), "preset": "certified"}, 10.0),
    ("2D 64²", "deblur2d", {"size": (64, 64), "preset": "certified"}, 15.0),
    ("2D 128²", "deblur2d", {"size": (128, 128), "preset": "certified"}, 30.0),
    ("2D 256²", "deblur2d", {"size": (256, 256), "preset": "certified"}, 60.0),
)
#: the ten-solver tables: (output folder, problems, preset, CPU seconds per run, eval_every)
TABLES = (
    ("results/deconv1d-all", [("deconv1d", {})], None, 20.0, 1),
    (
        "results/deblur2d-certified-all",
        [("deblur2d", {"image": "astronaut", "size": [128, 128]})],
        "certified",
        30.0,
        10,
    ),
)
BIAS_KS = (1, 2, 5, 10, 20, 50, 100)


def use_cpu_clock() -> None:
    """Make every ``time.perf_counter()`` in this process read this thread's CPU time: the harness' clock
    and the problems' budget deadlines then agree (see the module docstring)."""
    time.perf_counter = time.thread_time


def lower_step_seconds(problem: problems.BilevelProblem, reps: int = 50) -> float:
    """Median thread CPU time of one (uncounted) lower-level gradient at θ₀, the unit of lower-level cost."""
    x = problem.x0.clone()
    samples = []
    with torch.no_grad():
        problem._ll_grad(problem.theta0, x)  # builds the per-θ cache outside the timing
        for _ in range(5):
            t0 = time.thread_time()
            for _ in range(reps):
                problem._ll_grad(problem.theta0, x)
            samples.append((time.thread_time() - t0) / reps)
    return sorted(samples)[2]


def run_case(label: str, name: str, params: dict, budget: float) -> list[dict]:
    probe = problems.make_problem(name, **params)
    f0 = probe.upper_objective(probe.theta0, REFERENCE_TOL)
    step_s = lower_step_seconds(probe)
    traces = {}
    for solver in SOLVERS:
        problem = problems.make_problem(name, **params)
        result = bench.run(solver, problem, max_time=budget, eval_every=10**9)
        traces[solver] = (result.status, result.trace)
        print(f"  {label} {solver}: {result.status}, {len(result.trace) - 1} upper iterations", flush=True)
    best = min(float(tr.upper_value.min()) for _, tr in traces.values())
    target = best + GAP * (f0 - best)
    rows = []
    for solver, (status, tr) in traces.items():
        hit = tr[tr.upper_value <= target]
        rows.append(
            dict(
                case=label,
                solver=solver,
                status=status,
                lower_step_us=1e6 * step_s,
                target=target,
                time_to_target=math.inf if hit.empty else float(hit.wall_time.iloc[0]),
                ll_iters_to_target=-1 if hit.empty else int(hit.ll_iters.iloc[0]),
                iters_to_target=-1 if hit.empty else int(hit.iteration.iloc[0]),
                final_value=float(tr.upper_value.iloc[-1]),
                upper_iters=len(tr) - 1,
                wall_time=float(tr.wall_time.iloc[-1]),
            )
        )
    ift = next(r["time_to_target"] for r in rows if r["solver"] == "ift")
    for r in rows:
        r["ratio_to_ift"] = r["time_to_target"] / ift if math.isfinite(ift) else math.nan
    return rows


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    cases = list(dict.fromkeys(df.case))
    for color, solver in zip(("C0", "C1", "C2"), SOLVERS[:-1], strict=False):
        sub = df[df.solver == solver].set_index("case").reindex(cases)
        ratio = sub.ratio_to_ift.where(sub.ratio_to_ift.map(math.isfinite))
        for family in ("1D", "2D"):  # separate lines: 1D and 2D are different problems
            idx = [i for i, c in enumerate(cases) if c.startswith(family)]
            label = solver if family == "1D" else None
            ax.plot(idx, ratio.iloc[idx], marker="o", color=color, label=label)
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="IFT (fixed accuracy)")
    ax.axvline(2.5, color="grey", lw=0.6)
    labels = [f"{c}\n{df[df.case == c].lower_step_us.iloc[0]:.0f} µs" for c in cases]
    ax.set_xticks(range(len(cases)), labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("time to target / IFT's")
    ax.set_title(
        "Time to target / IFT's (below 1: faster than IFT); x: case, CPU time of one lower step", fontsize=9
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tables(scale: float, clock: str) -> None:
    """Every registered solver on deconv1d and on deblur2d (certified, 128²), through the sweep and the
    report of ``adpbench run`` (``-s all``), one process."""
    for out, probs, preset, budget, eval_every in TABLES:
        probs = [(name, {**params, **({"preset": preset} if preset else {})}) for name, params in probs]
        solvs = [(name, {}) for name in solvers.solver_names()]
        jobs = sweep.expand(probs, solvs, [0], {"max_time": budget * scale}, "cpu", "float64", eval_every)
        sweep.run_jobs(jobs, Path(out), progress=False)
        print(report.write_report(Path(out)), flush=True)
        note = (
            f"\nMade by `python -m studies.inexactness tables` (every registered solver, one process, one "
            f"thread, {budget * scale:g} s each). Clock: {clock} time — `wall_time` and the times above are "
            f"{'thread CPU seconds' if clock == 'cpu' else 'wall seconds'} (2-core machine shared by six "
            f"engineers; see the script's docstring).\n"
        )
        with open(Path(out) / report.SUMMARY_FILE, "a") as fh:
            fh.write(note)


def _rel(g: torch.Tensor, exact: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(g - exact) / torch.linalg.vector_norm(exact))


def bias(out: Path) -> None:
    """‖z_K − ∇F‖/‖∇F‖ at θ₀, lower level solved to 1e-12, for neumann (K terms), trbp (K steps), jfb."""
    rows = []
    for name in ("deconv1d", "tikhonov_adp"):
        p = problems.make_problem(name)
        exact = p.hypergradient(p.theta0, 1e-12)
        x_hat = p.solve_lower(p.theta0, 1e-12)

        jfb = _rel(solvers.make_solver("jfb").series_hypergradient(p, p.theta0, x_hat), exact)
        for k in BIAS_KS:
            neu = solvers.make_solver("neumann", n_terms=k).series_hypergradient(p, p.theta0, x_hat)
            trbp = solvers.make_solver("trbp", n_unroll=k, eps=1e-12).truncated_gradient(p, p.theta0, x_hat)[
                0
            ]
            rows.append(dict(problem=name, K=k, neumann=_rel(neu, exact), trbp=_rel(trbp, exact), jfb_K1=jfb))
    df = pd.DataFrame(rows)
    text = (
        "# Hypergradient bias against K (`python -m studies.inexactness bias`)\n\n"
        "‖z_K − ∇F(θ₀)‖/‖∇F(θ₀)‖, lower level solved to 1e-12, λ = 1/L; jfb is K = 1 of the series.\n\n"
    )
    (out / "bias.md").write_text(text + df.to_markdown(index=False, floatfmt=".3g") + "\n")
    print(df.to_string())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", default="study", choices=["study", "tables", "bias", "plot"])
    parser.add_argument("--out", default="results/inexactness")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every time budget")
    parser.add_argument("--cases", help="comma-separated study case labels (default: all)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.clock == "cpu":
        use_cpu_clock()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.mode == "tables":
        tables(args.scale, args.clock)
        return 0
    if args.mode == "bias":
        bias(out)
        return 0
    if args.mode == "plot":  # redraw the figure from summary.csv
        plot(pd.read_csv(out / "summary.csv"), out / "ratios.png")
        return 0
    chosen = set(args.cases.split(",")) if args.cases else None
    rows = []
    for label, name, params, budget in CASES:
        if chosen is None or label in chosen:
            rows += run_case(label, name, params, budget * args.scale)
    df = pd.DataFrame(rows)
    df.to_csv(out / "summary.csv", index=False)
    header = (
        f"# When inexactness pays (`python -m studies.inexactness study`)\n\n"
        f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread, float64, on a "
        f"2-core machine shared by six engineers; clock: {args.clock} time (module docstring). "
        f"Target: F ≤ F* + {GAP:g}·(F(θ₀) − F*), F* the best value of the four runs.\n\n"
    )
    cols = [
        "case",
        "solver",
        "status",
        "lower_step_us",
        "time_to_target",
        "ratio_to_ift",
        "ll_iters_to_target",
        "iters_to_target",
        "final_value",
        "upper_iters",
    ]
    (out / "summary.md").write_text(header + df[cols].to_markdown(index=False, floatfmt=".4g") + "\n")
    plot(df, out / "ratios.png")
    print(df[cols].to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
