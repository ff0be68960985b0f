"""Profile a few MAID upper iterations: where the time goes (see docs/profiling.md).

    python -m studies.profile_maid                       # deconv1d, and deblur2d 128×128 when registered
    python -m studies.profile_maid --case deconv1d --iters 20 --mode cprofile --top 25
    python -m studies.profile_maid --device cuda         # GPU: CUDA kernel times from torch.profiler

Per case: build the problem and MAID (the problem family's defaults), run ``init`` and one update
(warm-up), then replay the same ``--iters`` updates (MAID's states are immutable) three times: plain,
under torch.profiler, under cProfile. Three views, each printed:

* phases — wall time inside each problem oracle MAID calls (lower solves, CG, hypergradient assembly,
  upper values, ∇_x g), clock read after a CUDA synchronise, and the oracle counts;
* ``torch`` — torch.profiler's operator table (aten ops, self time), with the phases as
  ``record_function`` ranges so their totals appear in the same table;
* ``cprofile`` — cProfile's Python-level table (tottime), which shows interpreter overhead and the
  ``float(tensor)`` host synchronisations that torch.profiler attributes to ``aten::item``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from collections import defaultdict

import torch

from bench.harness import make_solver_for
from studies import microbench as mb

PHASES = ("ll_solve", "adjoint_solve", "hypergradient_from", "upper_value", "ul_grad_x")


class PhaseTimers:
    """Wrap a problem instance's oracles: accumulated wall time (CUDA-synchronised) + profiler ranges."""

    def __init__(self, problem):
        self.device = problem.device
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.enabled = False
        for name in PHASES:
            setattr(problem, name, self._wrap(name, getattr(problem, name)))

    def _wrap(self, name, fn):
        def timed(*args, **kwargs):
            if not self.enabled:
                return fn(*args, **kwargs)
            mb.sync(self.device)
            t0 = time.perf_counter()
            with torch.profiler.record_function(f"phase::{name}"):
                out = fn(*args, **kwargs)
            mb.sync(self.device)
            self.seconds[name] += time.perf_counter() - t0
            self.calls[name] += 1
            return out

        return timed


def _updates(maid, problem, state, iters: int):
    for _ in range(iters):
        state = maid.update(problem, state)
    mb.sync(problem.device)
    return state


def profile_case(case: str, device: str, iters: int, mode: str, top: int) -> None:
    problem = mb.make_case(case, device)
    maid = make_solver_for("maid", problem)
    timers = PhaseTimers(problem)
    state = maid.init(problem)
    start = maid.update(problem, state)  # warm-up (allocator, FFT plans, CUDA context)
    mb.sync(device)
    # MAID's states are immutable: every pass below replays the same iterations from ``start``.
    before = problem.counters.snapshot()
    timers.enabled = True
    t0 = time.perf_counter()
    state = _updates(maid, problem, start, iters)
    wall = time.perf_counter() - t0
    timers.enabled = False
    after = problem.counters.snapshot()
    work = {k: after[k] - before[k] for k in after}

    print(
        f"\n=== {problem.describe()} on {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"MAID, {iters} upper iterations after init + 1 warm-up iteration: {wall:.3f} s wall "
        f"({wall / iters * 1e3:.1f} ms per upper iteration, no profiler); ll_iters {work['ll_iters']}, "
        f"cg_iters {work['cg_iters']}, ul_evals {work['ul_evals']}; final upper value "
        f"{state.upper_value:.6g}, eps {state.eps:.3g}"
    )
    phase_total = sum(timers.seconds.values())
    print(f"\nphases (wall time inside the oracles; {phase_total / wall:.0%} of the loop):")
    for name, sec in sorted(timers.seconds.items(), key=lambda kv: -kv[1]):
        per = ""
        if name == "ll_solve" and work["ll_iters"]:
            per = f", {sec / work['ll_iters'] * 1e6:.1f} µs per lower-level iteration"
        if name == "adjoint_solve" and work["cg_iters"]:
            per = f", {sec / work['cg_iters'] * 1e6:.1f} µs per CG step"
        print(f"  {name:<20} {sec:8.3f} s  {sec / wall:6.1%}  {timers.calls[name]:6d} calls{per}")

    if mode in ("torch", "both"):
        activities = [torch.profiler.ProfilerActivity.CPU]
        cuda = torch.device(device).type == "cuda"
        if cuda:
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        timers.enabled = True  # for the phase::* ranges
        with torch.profiler.profile(activities=activities) as prof:
            _updates(maid, problem, start, iters)
        timers.enabled = False
        sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
        print(f"\ntorch.profiler (same iterations replayed), top {top} by {sort}:")
        print(prof.key_averages().table(sort_by=sort, row_limit=top, max_name_column_width=48))
    if mode in ("cprofile", "both"):
        cprof = cProfile.Profile()
        cprof.enable()
        _updates(maid, problem, start, iters)
        cprof.disable()
        out = io.StringIO()
        pstats.Stats(cprof, stream=out).sort_stats("tottime").print_stats(top)
        print(f"\ncProfile (same iterations replayed), top {top} by tottime:")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--case",
        action="append",
        help="deconv1d or deblur2d-<S> (repeatable; default: deconv1d and deblur2d-128 if registered)",
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=None, help="upper iterations (default 20 for 1D, 3 for 2D)")
    ap.add_argument("--mode", choices=("torch", "cprofile", "both"), default="both")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = args.case or mb.case_names(sizes=(128,))
    for case in cases:
        iters = args.iters or (20 if case == "deconv1d" else 3)
        profile_case(case, args.device, iters, args.mode, args.top)


if __name__ == "__main__":
    main()
