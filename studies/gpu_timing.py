"""CPU against GPU on deblur2d at the paper's size and at 1024×1024, one short script.

    python -m studies.gpu_timing [--sizes 400x300,1024x1024] [--dtypes float64,float32] [--decrease 5e-4]
        [--max-upper 20] [--cpu-max-time 600] [--out results/gpu_timing.md]

For each size, dtype and device (cpu, cuda): a complete MAID run of ``deblur2d`` (protocol
``certified`` as written out in ``studies.speed_vs_past``) until g(x̃) + r(θ) ≤ (1 − decrease)·F₀ or
``max_upper`` upper iterations (the CPU run also stops after ``cpu-max-time`` seconds and says so);
reported: the time of MAID's ``init``, the median time of one upper iteration, the total, the counts and
the PSNR. ``torch.cuda.synchronize()`` runs before every clock read, so the GPU times include all
queued work. The card's name, the CPU's thread count and torch's version are printed with the table.
Without CUDA it exits with a one-line message.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch

import problems
from bench.harness import make_solver_for
from studies.publish import publish
from studies.speed_vs_past import MAID, PROBLEM


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def maid_run(size: tuple[int, int], dtype: torch.dtype, device: str, args: argparse.Namespace) -> dict:
    """One MAID run to the target; times from synchronised clock reads around init and each update."""
    p = problems.make_problem("deblur2d", size=size, dtype=dtype, device=device, **PROBLEM)
    solver = make_solver_for("maid", p, **MAID)
    dev = torch.device(device)
    t0 = _now(dev)
    state = solver.init(p)
    t_init = _now(dev) - t0
    target = (1.0 - args.decrease) * state.upper_value
    per_iter: list[float] = []
    note = ""
    while state.upper_value > target and not state.converged:
        if len(per_iter) >= args.max_upper:
            note = f"cap of {args.max_upper} upper iterations"
            break
        if dev.type == "cpu" and t_init + sum(per_iter) > args.cpu_max_time:
            note = f"stopped after {args.cpu_max_time:g} s"
            break
        t0 = _now(dev)
        state = solver.update(p, state)
        per_iter.append(_now(dev) - t0)
    psnr = p.metrics(state.theta, state.x)["psnr"]
    return dict(
        init=t_init,
        upper=statistics.median(per_iter) if per_iter else float("nan"),
        total=t_init + sum(per_iter),
        iters=len(per_iter),
        note=note or ("target reached" if state.upper_value <= target else "MAID stopped"),
        psnr=psnr,
        **p.counters.snapshot(),
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="400x300,1024x1024")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--decrease", type=float, default=5e-4)
    ap.add_argument("--max-upper", type=int, default=20)
    ap.add_argument("--cpu-max-time", type=float, default=600.0)
    ap.add_argument("--out", default="results/gpu_timing.md")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("studies.gpu_timing needs a CUDA device; none is available here")
    card = torch.cuda.get_device_name(0)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    dtypes = [getattr(torch, d) for d in args.dtypes.split(",")]
    lines = [
        "# deblur2d, CPU against GPU (studies/gpu_timing.py)",
        "",
        f"GPU: {card}; CPU: {platform.machine()} {platform.processor() or ''}, "
        f"{torch.get_num_threads()} torch threads; torch {torch.__version__}. MAID, protocol `certified` "
        "written out, target "
        f"(1 − {args.decrease:g})·F₀; clocks read after torch.cuda.synchronize().",
        "",
        "| size | dtype | device | init [s] | one upper iteration [s] (median) | total [s] | upper iters "
        "| lower iters | CG steps | PSNR [dB] | end |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        for dtype in dtypes:
            for device in ("cuda", "cpu"):
                r = maid_run(size, dtype, device, args)
                name = str(dtype).removeprefix("torch.")
                row = (
                    f"| {size[0]}×{size[1]} | {name} | {device} | {r['init']:.2f} | {r['upper']:.3f} "
                    f"| {r['total']:.1f} | {r['iters']} | {r['ll_iters']} | {r['cg_iters']} "
                    f"| {r['psnr']:.3f} | {r['note']} |"
                )
                print(row, flush=True)
                lines.append(row)
    publish(lines, args.out)


if __name__ == "__main__":
    main()
