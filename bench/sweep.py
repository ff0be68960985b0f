"""Sweeps: a grid of (problem, solver, seed) jobs from CLI options and/or a TOML file.

TOML layout (every key optional; CLI flags override)::

    out = "results/my-grid"
    seeds = [0, 1, 2]
    device = "cpu"
    dtype = "float64"
    [budget]
    max_time = 20.0          # solver seconds per run
    max_iters = 500          # upper iterations per run (default: each solver's paper setting)
    max_ll_iters = 100000
    [[problems]]
    name = "deconv1d"
    params = { beta = 0.0 }
    [[solvers]]
    name = "maid"
    config = { eps0 = 1e-3 }
    # execution (bench/backends.py): how many runs at once, where, threads per run
    jobs = 2                 # runs at once (default 1: one after the other in this process)
    threads = 1              # torch threads per run (default: cores ÷ jobs)
    backend = "local"        # local | dask | submitit
    scheduler = "tcp://host:8786"   # dask only: a running scheduler (default: a local cluster)
    [slurm]                  # submitit only
    partition = "gpu"
    time_min = 60
    cpus_per_task = 4
    gpus_per_node = 1
    array_parallelism = 16

(Top-level keys such as ``jobs`` must come before the first ``[table]`` in a TOML file.)
The grid is the product problems × solvers × seeds; a problem's ``seed`` parameter is the seed.
Whatever the backend, each run is written atomically into ``out/runs/`` by the process that ran it,
and its trace records the backend, the number of concurrent runs and the threads per run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import problems as problem_registry
import solvers as solver_registry
from bench import backends, provenance, results
from bench.harness import run

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUDGET_KEYS = ("max_iters", "max_time", "max_ll_iters")
TOP_KEYS = {
    "out",
    "seeds",
    "device",
    "dtype",
    "budget",
    "problems",
    "solvers",
    "eval_every",
    "preset",
    "threads",
    "jobs",
    "backend",
    "scheduler",
    "slurm",
}


@dataclass
class Job:
    problem: str
    problem_params: dict[str, Any]
    solver: str
    solver_config: dict[str, Any]
    seed: int
    budget: dict[str, Any]
    device: str
    dtype: str
    eval_every: int = 1
    threads: int | None = None  # torch threads; how it runs, not what it computes: not in the run id
    run_id: str = field(init=False)

    def __post_init__(self) -> None:
        self.run_id = provenance.run_id(
            self.problem,
            self.solver,
            self.seed,
            self.problem_params,
            self.solver_config,
            self.budget,
            self.device,
            self.dtype,
            self.eval_every,
        )


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and check a TOML sweep file; unknown keys raise a ValueError naming the valid ones."""
    with open(path, "rb") as fh:
        cfg = tomllib.load(fh)
    unknown = sorted(set(cfg) - TOP_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(TOP_KEYS))}")
    bad_budget = sorted(set(cfg.get("budget", {})) - set(BUDGET_KEYS))
    if bad_budget:
        raise ValueError(
            f"{path}: unknown budget key(s) {', '.join(bad_budget)}; valid: {', '.join(BUDGET_KEYS)}"
        )
    for section, key in (("problems", "params"), ("solvers", "config")):
        for entry in cfg.get(section, []):
            extra = sorted(set(entry) - {"name", key})
            if "name" not in entry or extra:
                raise ValueError(
                    f"{path}: each [[{section}]] needs 'name' and optionally '{key}'; got {entry}"
                )
    slurm = cfg.get("slurm", {})
    if not isinstance(slurm, dict) or set(slurm) - set(backends.SLURM_KEYS):
        raise ValueError(f"{path}: [slurm] takes {', '.join(backends.SLURM_KEYS)}; got {slurm}")
    return cfg


def expand(
    problems: Iterable[tuple[str, dict[str, Any]]],
    solvers: Iterable[tuple[str, dict[str, Any]]],
    seeds: Iterable[int],
    budget: dict[str, Any],
    device: str,
    dtype: str,
    eval_every: int = 1,
    threads: int | None = None,
) -> list[Job]:
    """The job grid; names and parameters are validated here, before anything runs."""
    problems, solvers, seeds = list(problems), list(solvers), list(seeds)
    for name, params in problems:
        valid = problem_registry.problem_parameters(name)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} for problem {name!r}; valid: {', '.join(valid)}"
            )
    for name, config in solvers:
        solver_registry.make_solver(name, **config)  # raises with the valid fields
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if device != "cpu":
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available here; valid: cpu")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ValueError(f"threads must be an integer ≥ 1, got {threads!r}")
    return [
        Job(
            pname, dict(pparams), sname, dict(sconfig), seed, dict(budget), device, dtype, eval_every, threads
        )
        for pname, pparams in problems
        for seed in seeds
        for sname, sconfig in solvers
    ]


def execute_job(
    job: Job,
    out_dir: str | Path,
    *,
    backend: str = "sequential",
    concurrent_jobs: int = 1,
    progress: bool = False,
) -> str:
    """Run one job with its threads pinned and write it atomically into ``out_dir``; return a summary
    line. Runs in whichever process the backend chose (the driver, a pool worker, a cluster node)."""
    params = dict(job.problem_params)
    params.setdefault("seed", job.seed)
    res = run(
        job.solver,
        job.problem,
        problem_params=params,
        solver_config=job.solver_config,
        seed=job.seed,
        device=job.device,
        dtype=job.dtype,
        progress=progress,
        eval_every=job.eval_every,
        threads=job.threads,
        **job.budget,
    )
    res.trace["budget"] = json.dumps(job.budget, sort_keys=True)
    res.trace["backend"] = backend
    res.trace["concurrent_jobs"] = concurrent_jobs
    results.write_run(res, out_dir, job.run_id)
    results.clear_failure(out_dir, job.run_id)
    last = res.trace.iloc[-1]
    return (
        f"{res.status}, {int(last.iteration)} upper iterations, "
        f"{last.wall_time:.2f} s, upper value {last.upper_value:.6g}"
        + (f" ({res.message.splitlines()[0]})" if res.message else "")
    )


def run_jobs(
    jobs: list[Job],
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    execution: backends.Execution | None = None,
) -> list[str]:
    """Run every job on the chosen backend (default: one after the other in this process); each
    finished run is written at once by the process that ran it. A run that ends without a trace (its
    worker died, it could not start) is recorded as failed and the sweep goes on; Ctrl-C stops the
    sweep and keeps every finished run. One progress bar for the sweep. Returns the run ids."""
    execution = execution or backends.Execution()
    out_dir = Path(out_dir).resolve()  # workers may run elsewhere (a cluster node, another cwd)
    unique = list({job.run_id: job for job in jobs}.values())  # a run listed twice runs once
    done = results.finished_runs(out_dir) if resume else set()
    todo = [job for job in unique if job.run_id not in done]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(unique), initial=len(unique) - len(todo), desc="sweep", unit="run")
    emit = log or (bar.write if bar is not None else print)
    if len(todo) < len(unique):
        emit(f"{len(unique) - len(todo)} run(s) finished earlier, skipped (--resume)")
    failures = 0
    try:
        if todo:
            threads = max(job.threads or 1 for job in todo)
            engine = backends.make_engine(execution, len(todo), folder=out_dir / "submitit", threads=threads)
            call = functools.partial(
                execute_job,
                out_dir=out_dir,
                backend=engine.name,
                concurrent_jobs=engine.concurrency,
                progress=progress and engine.name == "sequential",  # per-run bars only in this process
            )
            with contextlib.closing(engine.map(call, todo)) as outcomes:  # closing stops the workers
                for job, outcome in outcomes:
                    tag = f"{job.problem}/{job.solver} seed={job.seed}"
                    if isinstance(outcome, backends.Failure):
                        failures += 1
                        record = dict(problem=job.problem, solver=job.solver, seed=job.seed)
                        record |= dict(backend=engine.name, reason=outcome.reason)
                        results.write_failure(out_dir, job.run_id, record)
                        emit(f"{tag}: error, no trace ({outcome.reason.splitlines()[0]})")
                    else:
                        emit(f"{tag}: {outcome}")
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(failed=failures)
    finally:
        if bar is not None:
            bar.close()
    if failures:
        emit(f"{failures} run(s) failed without a trace (runs/*{results.FAILURE_SUFFIX}); --resume reruns")
    return [job.run_id for job in jobs]
