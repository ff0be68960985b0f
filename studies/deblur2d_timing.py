"""Speed of the 2D problems, in one process, on the machine it runs on.

    python -m studies.deblur2d_timing [--size 400,300] [--reps 30] [--skip-maid]
        [--out results/deblur2d_timing.md]

1. One lower-level iteration (``prox_gradient_solve`` — FISTA step, counted gradient, stopping test —
   timed over many iterations) against one FFT forward+adjoint convolution pair of the same operator;
   the rest is broken down into the TV gradient and the vector updates.
2. A complete MAID run of ``deblur2d`` under the ``authors`` protocol at the paper's size, with its own
   stopping rule (ε < tol, at most 300 upper iterations), in float64: solver wall time, iterations, PSNR.
"""

from __future__ import annotations

import argparse
import platform

import torch

import bench
import problems
from problems.lower import prox_gradient_solve
from studies.microbench import median_seconds
from studies.publish import publish


def lower_iteration_cost(size: tuple[int, int], reps: int, boundary: str) -> dict[str, float]:
    p = problems.make_problem("deblur2d", size=size, boundary=boundary, preset="authors")
    theta = p.theta0
    op = p._setup(theta).op
    n_inner = 20

    def solve() -> None:  # eps = 0: runs exactly n_inner iterations
        prox_gradient_solve(p, theta, p.x0, 0.0, n_inner, None, p.ll_momentum)

    t_iter = median_seconds(solve, reps) / n_inner
    t_pair = median_seconds(lambda: op.adjoint(op.forward(p.y)), reps * 3)
    t_grad = median_seconds(lambda: p._ll_grad(theta, p.y), reps * 3)
    t_tv = median_seconds(lambda: p.tv.grad(p.y), reps * 3)
    return {"iteration": t_iter, "pair": t_pair, "ll_grad": t_grad, "tv_grad": t_tv}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="400,300", help="H,W")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--skip-maid", action="store_true")
    ap.add_argument("--out", default="results/deblur2d_timing.md")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.split(","))
    lines = [
        "# deblur2d timing (studies/deblur2d_timing.py)",
        "",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, float64, CPU. Image 3×{size[0]}×{size[1]}, 5×5 kernel. "
        f"Medians of {args.reps}+ repetitions.",
        "",
        "| boundary | lower iteration [ms] | FFT forward+adjoint pair [ms] | ratio "
        "| ∇ₓf (conv pair + TV) [ms] | TV gradient [ms] |",
        "|---|---|---|---|---|---|",
    ]
    for boundary in ("replicate", "periodic"):
        c = lower_iteration_cost(size, args.reps, boundary)
        lines.append(
            f"| {boundary} | {c['iteration'] * 1e3:.2f} | {c['pair'] * 1e3:.2f} | "
            f"{c['iteration'] / c['pair']:.2f} | {c['ll_grad'] * 1e3:.2f} | {c['tv_grad'] * 1e3:.2f} |"
        )
    lines += [
        "",
        "The rest of an iteration beyond ∇ₓf: the FISTA extrapolation and the gradient-norm test "
        "(a few fused vector passes).",
    ]
    if not args.skip_maid:
        params = dict(size=size, preset="authors")
        res = bench.run("maid", "deblur2d", problem_params=params, eval_every=10**9)
        last = res.trace.iloc[-1]
        lines += [
            "",
            f"Complete MAID run, deblur2d {size[0]}×{size[1]}, preset authors (authors' 2D protocol, stop at "
            f"ε < 1e-6 or 300 upper iterations), float64:",
            "",
            f"- status {res.status}, {int(last.iteration)} upper iterations, "
            f"solver time **{last.wall_time:.1f} s**, "
            f"{int(last.ll_iters)} lower-level iterations, {int(last.cg_iters)} CG steps, "
            f"PSNR {last.psnr:.2f} dB, SSIM {last.ssim:.4f}.",
        ]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
