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

The grid is the product problems × solvers × seeds; a problem's ``seed`` parameter is the seed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import problems as problem_registry
import solvers as solver_registry
from bench import provenance, results
from bench.harness import run

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUDGET_KEYS = ("max_iters", "max_time", "max_ll_iters")
TOP_KEYS = {"out", "seeds", "device", "dtype", "budget", "problems", "solvers", "eval_every", "preset"}


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
    return cfg


def expand(
    problems: Iterable[tuple[str, dict[str, Any]]],
    solvers: Iterable[tuple[str, dict[str, Any]]],
    seeds: Iterable[int],
    budget: dict[str, Any],
    device: str,
    dtype: str,
    eval_every: int = 1,
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
    return [
        Job(pname, dict(pparams), sname, dict(sconfig), seed, dict(budget), device, dtype, eval_every)
        for pname, pparams in problems
        for seed in seeds
        for sname, sconfig in solvers
    ]


def run_jobs(
    jobs: list[Job],
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Run every job, writing each finished run at once. Returns the run ids present at the end."""
    done = results.finished_runs(out_dir) if resume else set()
    for i, job in enumerate(jobs, 1):
        tag = f"[{i}/{len(jobs)}] {job.problem}/{job.solver} seed={job.seed}"
        if job.run_id in done:
            log(f"{tag}: finished earlier, skipped (--resume)")
            continue
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
            **job.budget,
        )
        res.trace["budget"] = json.dumps(job.budget, sort_keys=True)
        results.write_run(res, out_dir, job.run_id)
        last = res.trace.iloc[-1]
        log(
            f"{tag}: {res.status}, {int(last.iteration)} upper iterations, "
            f"{last.wall_time:.2f} s, upper value {last.upper_value:.6g}"
            + (f" ({res.message.splitlines()[0]})" if res.message else "")
        )
    return [job.run_id for job in jobs]
