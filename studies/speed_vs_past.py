"""Speed of a complete 2D MAID run against this project's own past, in one run on one machine.

    python -m studies.speed_vs_past [--past a6e38a3] [--size 400,300] [--reps 3] [--decrease 5e-4]
        [--max-upper 60] [--out results/speed_vs_past.md]

1. ``git worktree add`` the past commit into a temporary folder; then, interleaved (past, now, past,
   now, …), run a complete MAID solve of ``deblur2d`` in a fresh subprocess per run with its own
   PYTHONPATH (that tree, or this one), the problem and MAID parameters of the ``certified`` protocol
   passed explicitly to both, until the upper value g(x̃) + r(θ) reaches the fixed target
   (1 − decrease)·F₀, F₀ the value after MAID's ``init`` (the same in both: init is one lower solve
   from y at ε₀). Each run reports its solver time (perf_counter around init + updates only), upper
   iterations, counts and the PSNR of its final x. Medians over ``reps``; the ratio past / now.
   Parameters that only exist now (the tangent warm start, the accuracy floor, …) take their defaults.
2. In this process: one lower iteration and one Hessian-vector product against one FFT forward+adjoint
   pair of the same operator, float64 and float32 (medians).

The machine is shared, hence the interleaving: both versions see the same background load on average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import problems
from problems.lower import prox_gradient_solve
from studies.microbench import median_seconds
from studies.publish import publish

ROOT = Path(__file__).resolve().parents[1]

#: The ``certified`` protocol, written out so that both versions get exactly these values.
PROBLEM = dict(
    image="coffee", seed=0, alpha=2e-3, beta=1e4, gamma=0.01, zeta=1e-3, boundary="replicate",
    upper_operator="known", noise=5 / 255, step0=1e-6, kernel_size=5, preset="certified",
)  # fmt: skip
MAID = dict(
    eps0=1.0, rho=0.1, rho_bar=1.5, max_backtracks=3, tol=1e-6, ll_max_iters=100_000, cg_max_iters=5_000
)

PCG_MAX_STEPS = 5_000
LOAD_AT_START = os.getloadavg()[0]

#: Runs inside the subprocess (the API it uses exists in both versions).
WORKER = r"""
import json, sys, time, torch
torch.set_num_threads(1)
import problems, solvers
args = json.loads(sys.argv[1])
p = problems.make_problem("deblur2d", size=tuple(args["size"]), **args["problem"])
solver = solvers.make_solver("maid", **args["maid"])
t0 = time.perf_counter()
state = solver.init(p)
elapsed = time.perf_counter() - t0
f0 = state.upper_value
target = (1.0 - args["decrease"]) * f0
it = 0
while state.upper_value > target and it < args["max_upper"] and not state.converged:
    t0 = time.perf_counter()
    state = solver.update(p, state)
    elapsed += time.perf_counter() - t0
    it += 1
m = p.metrics(state.theta, state.x)
print(json.dumps(dict(time=elapsed, upper=it, f0=f0, f=state.upper_value, reached=state.upper_value <= target,
                      psnr=m["psnr"], **p.counters.snapshot())))
"""


def run_once(tree: Path, args: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(args)], env=env, cwd=tree, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"run in {tree} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def unit_costs(size: tuple[int, int], dtype: torch.dtype, reps: int) -> dict[str, float]:
    """Median seconds of one lower iteration, one HVP and one FFT forward+adjoint pair (certified)."""
    p = problems.make_problem("deblur2d", size=size, dtype=dtype, **PROBLEM)
    theta, y = p.theta0, p.y
    op = p._setup(theta).op
    n_inner = 20
    return {
        "iteration": median_seconds(
            lambda: prox_gradient_solve(p, theta, p.x0, 0.0, n_inner, None, p.ll_momentum), reps
        )
        / n_inner,
        "hvp": median_seconds(lambda: p.hvp(theta, y, y), reps * n_inner),
        "pair": median_seconds(lambda: op.adjoint(op.forward(y)), reps * n_inner),
    }


def pcg_counts(size: tuple[int, int], preset: str, eps: float, ll_cap: int, delta: float) -> dict[str, tuple]:
    """CG steps and seconds to ‖H q − ∇ₓg‖ ≤ δ at θ₀ (x solved to ε, at most ll_cap iterations), for each
    adjoint preconditioner; also the largest relative difference of the hypergradients from plain CG's."""
    p = problems.make_problem("deblur2d", size=size, preset=preset)
    theta = p.theta0
    x = p.ll_solve(theta, p.x0, eps, ll_cap).x
    out, z_ref = {}, None
    for kind in ("none", "fourier", "jacobi"):
        p.counters.reset()
        t0 = time.perf_counter()
        q, _ = p.adjoint_solve(theta, x, delta, PCG_MAX_STEPS, precondition=kind)
        seconds = time.perf_counter() - t0
        z = p.hypergradient_from(theta, x, q)
        z_ref = z if z_ref is None else z_ref
        out[kind] = (p.counters.cg_iters, seconds, float((z - z_ref).norm() / z_ref.norm()))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--past", default="a6e38a3")
    ap.add_argument("--size", default="400,300", help="H,W")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--decrease", type=float, default=5e-4, help="target: (1 − decrease)·F₀")
    ap.add_argument("--max-upper", type=int, default=60, help="upper-iteration cap of each run")
    ap.add_argument("--skip-units", action="store_true")
    ap.add_argument("--skip-runs", action="store_true", help="only the unit costs and CG counts")
    ap.add_argument("--out", default="results/speed_vs_past.md")
    args = ap.parse_args(argv)
    size = [int(v) for v in args.size.split(",")]
    torch.set_num_threads(1)
    job = dict(size=size, problem=PROBLEM, maid=MAID, decrease=args.decrease, max_upper=args.max_upper)
    now_commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    runs: dict[str, list[dict]] = {"past": [], "now": []}
    with tempfile.TemporaryDirectory(prefix="adpbench-past-") as tmp:
        if args.skip_runs:
            args.reps = 0
        past_tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(past_tree), args.past],
            check=True,
            capture_output=True,
        )
        try:
            for rep in range(args.reps):
                for label, tree in (("past", past_tree), ("now", ROOT)):
                    r = run_once(tree, job)
                    runs[label].append(r)
                    print(f"rep {rep} {label}: {json.dumps(r)}", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(past_tree)], check=False
            )
    lines = [] if args.skip_runs else run_table(runs, args, size, now_commit)
    if not args.skip_units:
        lines += [
            "",
            "Unit costs (this version, medians, 1 thread):",
            "",
            "| dtype | lower iteration [ms] | HVP [ms] | FFT forward+adjoint pair [ms] | iteration / pair "
            "| HVP / pair |",
            "|---|---|---|---|---|---|",
        ]
        for dtype in (torch.float64, torch.float32):
            c = unit_costs(tuple(size), dtype, reps=10)
            lines.append(
                f"| {str(dtype).removeprefix('torch.')} | {c['iteration'] * 1e3:.2f} | {c['hvp'] * 1e3:.2f} "
                f"| {c['pair'] * 1e3:.2f} | {c['iteration'] / c['pair']:.2f} | {c['hvp'] / c['pair']:.2f} |"
            )
        lines += [
            "",
            "Adjoint CG at θ₀ to δ = 1e-6 (float64), per preconditioner: steps, seconds, relative difference "
            "of the hypergradient from plain CG's:",
            "",
            "| preset (x solved to) | none | fourier | jacobi |",
            "|---|---|---|---|",
        ]
        for preset, eps, cap in (("certified", 1e-2, 100_000), ("authors", 1e-3, 200)):
            c = pcg_counts(tuple(size), preset, eps, cap, 1e-6)
            cells = " | ".join(f"{n} steps, {t:.1f} s, {d:.1e}" for n, t, d in c.values())
            lines.append(f"| {preset} (ε = {eps:g}, ≤ {cap} iterations) | {cells} |")
    publish(lines, args.out)


def run_table(runs: dict[str, list[dict]], args: argparse.Namespace, size: list[int], now: str) -> list[str]:
    """The markdown table of the timed runs (medians) and the ratio past / now."""
    fields = ("time", "upper", "ll_iters", "cg_iters", "psnr")
    med = {k: {f: statistics.median(r[f] for r in v) for f in fields} for k, v in runs.items()}
    ratio = med["past"]["time"] / med["now"]["time"]
    lines = [
        "# MAID on deblur2d against the past (studies/speed_vs_past.py)",
        "",
        f"Machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs (load average "
        f"{LOAD_AT_START:.2f} at the start; runs interleaved), torch {torch.__version__}, 1 thread, "
        f"float64, CPU. deblur2d "
        f"3×{size[0]}×{size[1]}, protocol `certified` written out (problem {PROBLEM}; MAID {MAID}). "
        f"Target: upper value ≤ (1 − {args.decrease:g})·F₀. Past = {args.past}, now = {now} "
        f"(+ working tree). {args.reps} runs each, medians.",
        "",
        "| version | solver time [s] | upper iters | lower iters | CG steps | PSNR [dB] | reached target |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in ("past", "now"):
        m = med[label]
        reached = all(r["reached"] for r in runs[label])
        lines.append(
            f"| {label} | {m['time']:.1f} | {m['upper']:.0f} | {m['ll_iters']:.0f} | {m['cg_iters']:.0f} "
            f"| {m['psnr']:.3f} | {reached} |"
        )
    lines += [
        "",
        f"**Speed-up past / now: {ratio:.2f}×**; PSNR difference now − past: "
        f"{med['now']['psnr'] - med['past']['psnr']:+.3f} dB.",
        "",
        "Per-run times [s]: past " + ", ".join(f"{r['time']:.1f}" for r in runs["past"])
        + "; now " + ", ".join(f"{r['time']:.1f}" for r in runs["now"]) + ".",
    ]  # fmt: skip
    return lines


if __name__ == "__main__":
    main()
