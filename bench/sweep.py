"""Sweeps: a grid of (problem, solver, seed) jobs from CLI options and/or a TOML file.

TOML layout (every key optional; CLI flags override)::

    out = "runs/my-grid"     # default runs/<first problem> (ignored by git)
    seeds = [0, 1, 2]
    device = "cpu"
    dtype = "float64"
    threads = 1              # torch intra-op threads per run
    eval_every = 1
    preset = "certified"     # 2D problems only: certified | authors | authors-fix-<deviation>
    [budget]
    max_time = 20.0          # solver seconds per run (> 0)
    max_iters = 500          # upper iterations per run (≥ 1; default: each solver's paper setting)
    max_ll_iters = 100000    # cumulative lower-level iterations per run (≥ 1)
    [[problems]]
    name = "deconv1d"
    params = { beta = 0.0 }
    [[solvers]]
    name = "maid"
    config = { eps0 = 1e-3 }

The grid is the product problems × solvers × seeds; a problem's ``seed`` parameter is the seed. Every
value is checked (kind, range, finiteness, a memory estimate) before the first run starts.
"""

from __future__ import annotations

import json
import math
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
}
#: problem parameters set by their own option, never through --param / params
RUN_LEVEL_PARAMS = {"dtype": "--dtype (TOML: dtype)", "device": "--device (TOML: device)"}


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
    threads: int | None = None  # torch intra-op threads; recorded in the trace, not part of the run id
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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_budget(budget: object, where: str = "budget") -> dict[str, Any]:
    """Budgets are positive: max_iters, max_ll_iters integers ≥ 1, max_time a finite number > 0 (seconds).
    (Zero is refused: a run that may do no work measures nothing.)"""
    if not isinstance(budget, dict):
        raise ValueError(f"{where} must be a table of {', '.join(BUDGET_KEYS)}, got {budget!r}")
    bad = sorted(set(budget) - set(BUDGET_KEYS))
    if bad:
        raise ValueError(f"{where}: unknown key(s) {', '.join(bad)}; valid: {', '.join(BUDGET_KEYS)}")
    for key, value in budget.items():
        if key == "max_time":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value <= 0:
                raise ValueError(f"{where} max_time must be a finite number of seconds > 0, got {value!r}")
        elif not _is_int(value) or value < 1:
            raise ValueError(f"{where} {key} must be an integer ≥ 1, got {value!r}")
    return dict(budget)


def check_threads(value: object, where: str = "threads") -> int | None:
    if value is not None and (not _is_int(value) or value < 1):
        raise ValueError(f"{where} must be an integer ≥ 1, got {value!r}")
    return value  # type: ignore[return-value]


def check_eval_every(value: object, where: str = "eval_every") -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{where} must be an integer ≥ 1, got {value!r}")
    return value  # type: ignore[return-value]


def check_seeds(value: object, where: str = "seeds") -> list[int]:
    if not isinstance(value, list) or not value or not all(_is_int(v) for v in value):
        raise ValueError(f"{where} must be a non-empty list of integers, e.g. [0, 1, 2], got {value!r}")
    return list(value)


_STRING_KEYS = ("out", "device", "dtype", "preset")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and check a TOML sweep file: a ValueError naming the file and the key for a missing file, a
    folder, invalid TOML, an unknown key or a value of the wrong kind."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"config file {path} does not exist")
    if not path.is_file():
        raise ValueError(f"config path {path} is not a file (a TOML sweep file is expected)")
    try:
        with open(path, "rb") as fh:
            cfg = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None
    unknown = sorted(set(cfg) - TOP_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(TOP_KEYS))}")
    for key in _STRING_KEYS:
        if key in cfg and not isinstance(cfg[key], str):
            raise ValueError(f"{path}: {key} must be a string, got {cfg[key]!r}")
    if "budget" in cfg:
        check_budget(cfg["budget"], f"{path}: [budget]")
    if "seeds" in cfg:
        check_seeds(cfg["seeds"], f"{path}: seeds")
    if "threads" in cfg:
        check_threads(cfg["threads"], f"{path}: threads")
    if "eval_every" in cfg:
        check_eval_every(cfg["eval_every"], f"{path}: eval_every")
    for section, key in (("problems", "params"), ("solvers", "config")):
        entries = cfg.get(section, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError(f"{path}: {section} must be an array of tables [[{section}]], got {entries!r}")
        for entry in entries:
            extra = sorted(set(entry) - {"name", key})
            if not isinstance(entry.get("name"), str) or extra or not isinstance(entry.get(key, {}), dict):
                raise ValueError(
                    f"{path}: each [[{section}]] needs a string 'name' and optionally a table '{key}'; "
                    f"got {entry}"
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
    threads: int | None = None,
) -> list[Job]:
    """The job grid. Everything is validated here, before anything runs: names, parameter kinds and
    ranges (each distinct problem instance is built once, after a memory estimate), solver configs,
    budgets, device, dtype, eval_every and threads."""
    problems, solvers, seeds = list(problems), list(solvers), list(seeds)
    check_budget(budget)
    check_eval_every(eval_every)
    check_threads(threads)
    if not seeds or not all(_is_int(s) for s in seeds):
        raise ValueError(f"seeds must be integers, got {seeds!r}")
    for name, params in problems:
        for key, option in RUN_LEVEL_PARAMS.items():
            if key in params:
                raise ValueError(f"problem parameter {name}.{key} is set by {option}, not as a parameter")
        problem_registry.check_params(name, {**params, "dtype": dtype})
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
    for name, params in problems:
        # Range checks live in the problem constructors: build each instance once (no solver work),
        # so a bad value fails here and not after other runs have finished.
        problem_registry.make_problem(name, **{"seed": seeds[0], **params, "dtype": dtype, "device": device})
    return [
        Job(
            pname, dict(pparams), sname, dict(sconfig), seed, dict(budget), device, dtype, eval_every, threads
        )
        for pname, pparams in problems
        for seed in seeds
        for sname, sconfig in solvers
    ]


def execute_job(job: Job, out_dir: str | Path, *, progress: bool = False) -> dict[str, Any]:
    """Run one job and write its files atomically; return a one-line summary of the run as a dict."""
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
    path = results.write_run(res, out_dir, job.run_id)
    last = res.trace.iloc[-1]
    return {
        "run_id": job.run_id,
        "path": str(path),
        "status": res.status,
        "message": res.message,
        "upper_iters": int(last.iteration),
        "wall_time": float(last.wall_time),
        "upper_value": float(last.upper_value),
    }


def describe(summary: dict[str, Any]) -> str:
    """The log line of one finished run."""
    message = summary["message"].splitlines()[0] if summary["message"] else ""
    return (
        f"{summary['status']}, {summary['upper_iters']} upper iterations, {summary['wall_time']:.2f} s, "
        f"upper value {summary['upper_value']:.6g}" + (f" ({message})" if message else "")
    )


def run_jobs(
    jobs: list[Job],
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Run every job, writing each finished run at once. Returns the run ids present at the end.

    With ``resume``, runs whose files pass the finished-run check are skipped; damaged ones run again."""
    done = set()
    if resume:
        done, damaged = results.scan(out_dir)
        wanted = {job.run_id for job in jobs}
        for run_id, why in damaged.items():
            log(
                f"{run_id}: damaged ({why}); "
                + ("it runs again" if run_id in wanted else "not in this sweep")
            )
    for i, job in enumerate(jobs, 1):
        tag = f"[{i}/{len(jobs)}] {job.problem}/{job.solver} seed={job.seed}"
        if job.run_id in done:
            log(f"{tag}: finished earlier, skipped (--resume)")
            continue
        log(f"{tag}: " + describe(execute_job(job, out_dir, progress=progress)))
    return [job.run_id for job in jobs]
