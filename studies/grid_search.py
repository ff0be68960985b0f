"""Documented grid searches for the 2D weights: α of the smoothed-TV lower level and β of the
H¹ kernel penalty, on one tuning image (astronaut by default); the other images are held out.

    python -m studies.grid_search alpha [--alphas 1e-3,2e-3,...] [--size 128]
    python -m studies.grid_search beta --problem semiblind2d --preset certified [--betas 1e2,1e3,1e4]
        [--max-time 20] [--workers 2]

``alpha``: PSNR of the fully solved smoothed TV (certified distance 1e-4, ζ = ZETA_CERTIFIED) per α →
the ``certified`` protocol's α (``problems/parameter_sets.py``). ``beta``: every solver (MAID, IFT, LISTA —
never one alone) runs by name, i.e. with the protocol's solver settings (``protocols``), with each β; the β
with the best mean final PSNR over solvers wins. (The ``authors`` protocol keeps their β = 100: not searched.)
Runs are independent processes with one torch thread each. Writes a markdown table to ``--out``.
"""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

SOLVERS = ("maid", "ift", "lista")


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def _tv_job(args: tuple) -> dict:
    problem, image, size, alpha = args
    torch.set_num_threads(1)
    import problems

    p = problems.make_problem(problem, image=image, size=size, preset="certified", alpha=alpha)
    x = p.tv_reference()
    return {"alpha": alpha, **p.metrics(p.theta0, x)}


def _beta_job(args: tuple) -> dict:
    problem, image, size, preset, beta, solver, max_time = args
    torch.set_num_threads(1)
    import bench

    params = dict(image=image, size=size, preset=preset, beta=beta)
    res = bench.run(solver, problem, problem_params=params, max_time=max_time, eval_every=10**9)
    last = res.trace.iloc[-1]
    return {
        "beta": beta,
        "solver": solver,
        "psnr": float(last.psnr),
        "ssim": float(last.ssim),
        "status": res.status,
        "iters": int(last.iteration),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["alpha", "beta"])
    ap.add_argument("--problem", default="deblur2d")
    ap.add_argument("--preset", default="certified")
    ap.add_argument("--image", default="astronaut")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--alphas", default="5e-4,1e-3,2e-3,3e-3,5e-3,1e-2,3e-2,0.1,0.2479")
    ap.add_argument("--betas", default="1e2,1e3,1e4")
    ap.add_argument("--max-time", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    size = (args.size, args.size)
    with ProcessPoolExecutor(args.workers) as pool:
        if args.what == "alpha":
            jobs = [(args.problem, args.image, size, a) for a in _floats(args.alphas)]
            rows = list(pool.map(_tv_job, jobs))
            best = max(rows, key=lambda r: r["psnr"])
            lines = [
                f"# α grid: fully solved smoothed TV, {args.problem}, {args.image} {args.size}², ζ = 1e-3",
                "",
                "| α | PSNR | SSIM |",
                "|---|---|---|",
            ]
            lines += [f"| {r['alpha']:g} | {r['psnr']:.3f} | {r['ssim']:.4f} |" for r in rows]
            lines += ["", f"Best: α = {best['alpha']:g} ({best['psnr']:.3f} dB)."]
        else:
            jobs = [
                (args.problem, args.image, size, args.preset, b, s, args.max_time)
                for b in _floats(args.betas)
                for s in SOLVERS
            ]
            rows = list(pool.map(_beta_job, jobs))
            by_beta = {b: [r for r in rows if r["beta"] == b] for b in _floats(args.betas)}
            mean = {b: statistics.fmean(r["psnr"] for r in rs) for b, rs in by_beta.items()}
            best = max(mean, key=mean.get)
            lines = [
                f"# β grid: {args.problem}, preset {args.preset}, {args.image} {args.size}², "
                f"{args.max_time:g} s per run",
                "",
                "| β | " + " | ".join(f"{s} PSNR / SSIM (iters, status)" for s in SOLVERS) + " | mean PSNR |",
                "|---|" + "---|" * (len(SOLVERS) + 1),
            ]
            for b, rs in by_beta.items():
                cells = {
                    r["solver"]: f"{r['psnr']:.3f} / {r['ssim']:.4f} ({r['iters']}, {r['status']})"
                    for r in rs
                }
                lines.append(f"| {b:g} | " + " | ".join(cells[s] for s in SOLVERS) + f" | {mean[b]:.3f} |")
            lines += ["", f"Best mean over solvers: β = {best:g}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
