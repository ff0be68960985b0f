"""Speed-up of a sweep on the local process pool: one 12-run 2D sweep, sequentially and with ``--jobs N``.

The sweep: deblur2d and semiblind2d (``authors`` protocol: every lower solve capped at 200 iterations, so the
work per upper iteration is fixed) × MAID, IFT, LISTA × seeds 0, 1, at ``size``×``size``, a fixed budget
of upper iterations and one torch thread per run. Both executions run in this process, one after the
other, ``repeats`` times alternating; the wall time is the whole sweep as the driver sees it (for the
pool: worker start-up included). Also printed: the summed solver time of the runs (how much each run
slowed down next to the others) and a check that both executions produced the same runs and traces.

    python -m studies.sweep_speedup                          # 64×64, 3 upper iterations, --jobs 2
    python -m studies.sweep_speedup --size 16 --iters 1      # smoke test (seconds)
    python -m studies.sweep_speedup --write results/sweep_speedup.md

On an idle machine the speed-up should approach min(jobs, cores).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench import backends, results, sweep

PROBLEMS = ("deblur2d", "semiblind2d")
SOLVERS = ("maid", "ift", "lista")
SEEDS = (0, 1)
TIMING_COLUMNS = ["wall_time", "backend", "concurrent_jobs"]


def make_jobs(size: int, iters: int) -> list[sweep.Job]:
    """The 12 runs, one torch thread each."""
    return sweep.expand(
        [(name, {"size": (size, size), "preset": "authors"}) for name in PROBLEMS],
        [(name, {}) for name in SOLVERS],
        list(SEEDS),
        {"max_iters": iters},
        "cpu",
        "float64",
        threads=1,
    )


def time_sweep(jobs: list[sweep.Job], out: Path, execution: backends.Execution) -> tuple[float, float]:
    """(wall seconds of the whole sweep, summed solver seconds of its runs)."""
    start = time.perf_counter()
    sweep.run_jobs(jobs, out, progress=False, log=lambda _: None, execution=execution)
    wall = time.perf_counter() - start
    traces = results.load_traces(out)
    return wall, float(traces.groupby("run_id").wall_time.max().sum())


def same_runs(a: Path, b: Path) -> bool:
    """Same run ids, and traces equal but for how long they took and how they executed."""
    ta, tb = (
        results.load_traces(d).sort_values(["run_id", "iteration"]).reset_index(drop=True) for d in (a, b)
    )
    if set(ta.run_id) != set(tb.run_id):
        return False
    try:
        pd.testing.assert_frame_equal(ta.drop(columns=TIMING_COLUMNS), tb.drop(columns=TIMING_COLUMNS))
    except AssertionError:
        return False
    return True


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="image side (default 64)")
    ap.add_argument("--iters", type=int, default=3, help="upper iterations per run (default 3)")
    ap.add_argument("--jobs", type=int, default=2, help="pool size (default 2)")
    ap.add_argument("--repeats", type=int, default=1, help="alternating repetitions; medians reported")
    ap.add_argument("--write", type=Path, help="also write the markdown table here")
    args = ap.parse_args(argv)
    jobs = make_jobs(args.size, args.iters)
    modes = {"sequential": backends.Execution(), f"--jobs {args.jobs}": backends.Execution(jobs=args.jobs)}
    walls: dict[str, list[float]] = {m: [] for m in modes}
    solver: dict[str, list[float]] = {m: [] for m in modes}
    identical = True
    with tempfile.TemporaryDirectory(prefix="adpbench-speedup-") as tmp:
        for r in range(args.repeats):
            for i, (mode, execution) in enumerate(modes.items()):
                out = Path(tmp) / f"r{r}-{i}"
                wall, busy = time_sweep(jobs, out, execution)
                walls[mode].append(wall)
                solver[mode].append(busy)
                print(f"repeat {r + 1}/{args.repeats}, {mode}: {wall:.2f} s wall, {busy:.2f} s solver time")
            identical &= same_runs(Path(tmp) / f"r{r}-0", Path(tmp) / f"r{r}-1")
    seq_mode, pool_mode = modes
    seq = statistics.median(walls[seq_mode])
    lines = [
        f"Sweep speed-up: {len(jobs)} runs ({' + '.join(PROBLEMS)}, authors protocol, "
        f"{args.size}×{args.size}; {', '.join(SOLVERS)}; seeds {', '.join(map(str, SEEDS))}), "
        f"{args.iters} upper iterations per run, "
        f"1 torch thread per run, {backends.usable_cores()} usable cores, median of {args.repeats}.",
        "",
        "| execution | sweep wall time [s] | summed solver time [s] | speed-up |",
        "|---|---|---|---|",
    ]
    for mode in modes:
        wall = statistics.median(walls[mode])
        lines.append(f"| {mode} | {wall:.2f} | {statistics.median(solver[mode]):.2f} | {seq / wall:.2f}× |")
    lines += [
        "",
        f"Speed-up with {pool_mode}: **{seq / statistics.median(walls[pool_mode]):.2f}×**; same run ids and "
        f"traces (timing columns aside): {'yes' if identical else 'NO'}.",
        "Command: python -m studies.sweep_speedup "
        f"--size {args.size} --iters {args.iters} --jobs {args.jobs} --repeats {args.repeats}",
    ]
    text = "\n".join(lines)
    print()
    print(text)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
