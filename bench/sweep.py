"""Sweeps: a grid of (problem, solver, seed) jobs from CLI options and/or a TOML file.

TOML layout (every key optional; CLI flags override)::

    out = "runs/my-grid"     # default runs/<first problem> (ignored by git)
    seeds = [0, 1, 2]
    device = "cpu"
    dtype = "float64"
    threads = 1              # torch intra-op threads per run
    eval_every = 10          # also evaluate every 10th row (default: the log-spaced rows only)
    preset = "certified"     # 2D problems only: certified | authors | authors-fix-<deviation>
    plugins = ["my_solver.py", "my_pkg.problems"]   # plug-ins (files relative to this TOML, or modules)
    suite = "quick"          # a named suite (bench/suites.py) instead of [[problems]]; image_dir = "..."
                             # puts a folder's images on its image axes
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

Execution keys (bench/backends.py; top-level keys must come before the first ``[table]``)::

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

The grid is the product problems × solvers × seeds; a problem's ``seed`` parameter is the seed. Every
value is checked (kind, range, finiteness, a memory estimate) before the first run starts. Whatever
the backend, each run is written atomically into ``out/runs/`` by the process that ran it, and its trace
records the backend, the number of concurrent runs and the threads per run.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import problems as problem_registry
import solvers as solver_registry
from bench import backends, plugins, provenance, results
from bench.harness import run, solver_config_for
from problems import values
from solvers.base import check_applicable, not_applicable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUDGET_KEYS = values.BUDGET_KEYS
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
    "suite",
    "image_dir",
    "plugins",
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
    eval_every: int | None = None  # rows evaluated besides the log-spaced schedule (None: none)
    threads: int | None = None  # torch intra-op threads; recorded in the trace, not part of the run id
    #: the plug-ins each worker loads before resolving names (``bench.plugins``); those that provide this
    #: job's problem or solver enter the run id, so a changed plug-in runs again under --resume
    plugins: tuple[plugins.PluginSpec, ...] = ()
    command: str = ""  # the command line that asked for the run; in the trace, not in the run id
    run_id: str = field(init=False)

    def __post_init__(self) -> None:
        used = [
            f"{s.target}@{s.digest}"
            for s in self.plugins
            if f"solver:{self.solver}" in s.registers or f"problem:{self.problem}" in s.registers
        ]
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
            *([used] if used else []),  # built-in runs keep the ids they always had
        )


def check_budget(budget: object, where: str = "budget") -> dict[str, Any]:
    """Budgets of a sweep are positive: max_iters, max_ll_iters integers ≥ 1, max_time a finite number > 0
    (seconds); zero is refused, since a run that may do no work measures nothing (``problems.values``)."""
    return values.check_budget(budget, where)


def check_threads(value: object, where: str = "threads") -> int | None:
    return values.POSITIVE_INTEGER.check(where, value, optional=True)


def check_eval_every(value: object, where: str = "eval_every") -> int:
    return values.POSITIVE_INTEGER.check(where, value)


def check_seeds(value: object, where: str = "seeds") -> list[int]:
    return values.check_seeds(value, where)


_STRING_KEYS = ("out", "device", "dtype", "preset", "suite", "image_dir")


def parse_assignments(items: list[str] | None, what: str) -> dict[str, dict[str, Any]]:
    """'name.key=value' → {name: {key: value}} (values parsed as Python literals when possible)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"--{what} expects NAME.KEY=VALUE, got {item!r}")
        lhs, raw = item.split("=", 1)
        name, key = lhs.split(".", 1)
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        out.setdefault(name, {})[key] = value
    return out


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
    for key in ("threads", "jobs"):
        if key in cfg:
            check_threads(cfg[key], f"{path}: {key}")
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
    if "plugins" in cfg:
        entries = cfg["plugins"]
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ValueError(
                f"{path}: plugins must be a list of strings (.py paths or module names), got {entries!r}"
            )
        cfg["plugins"] = [str((path.parent / e).resolve()) if e.endswith(".py") else e for e in entries]
    slurm = cfg.get("slurm", {})
    if not isinstance(slurm, dict) or set(slurm) - set(backends.SLURM_KEYS):
        raise ValueError(f"{path}: [slurm] takes {', '.join(backends.SLURM_KEYS)}; got {slurm!r}")
    for key in ("backend", "scheduler"):
        if key in cfg and not isinstance(cfg[key], str):
            raise ValueError(f"{path}: {key} must be a string, got {cfg[key]!r}")
    return cfg


def expand(
    problems: Iterable[tuple[str, dict[str, Any]]],
    solvers: Iterable[tuple[str, dict[str, Any]]],
    seeds: Iterable[int],
    budget: dict[str, Any],
    device: str,
    dtype: str,
    eval_every: int | None = None,
    threads: int | None = None,
    plugin_specs: Iterable[plugins.PluginSpec] | None = None,
    skip_inapplicable: bool = False,
) -> list[Job]:
    """The job grid. Everything is validated here, before anything runs: names, parameter kinds and
    ranges (each distinct problem instance is built once, after a memory estimate), solver configs,
    budgets, device, dtype, eval_every and threads, and that each solver applies to each instance (a
    lower-level capability it requires, ``solvers.base.not_applicable``): an error, or with
    ``skip_inapplicable`` (``-s all``) the pair is left out with a message on stderr.

    Each job carries plain configurations: a problem's protocol (its ``preset``) is resolved here into the
    solver's config (``bench.harness.solver_config_for``; a protocol that cannot say how to run a solver
    fails here), and the plug-ins loaded (``plugin_specs``, default: the installed entry points and every
    plug-in loaded so far, ``bench.plugins.activate``) travel with every job."""
    specs = tuple(plugins.activate() if plugin_specs is None else plugin_specs)
    problems, solvers, seeds = list(problems), list(solvers), list(seeds)
    check_budget(budget)
    if eval_every is not None:
        check_eval_every(eval_every)
    check_threads(threads)
    check_seeds(seeds)
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
    applicable = set()  # (problem index, solver index)
    protocols, instances = [], []
    for i, (name, params) in enumerate(problems):
        # Range checks live in the problem constructors: build each instance once (no solver work),
        # so a bad value fails here and not after other runs have finished.
        built = problem_registry.make_problem(
            name, **{"seed": seeds[0], **params, "dtype": dtype, "device": device}
        )
        protocols.append(built.params.get("preset"))
        instances.append(built)
        for j, (sname, _) in enumerate(solvers):
            cls = solver_registry.solver_class(sname)
            why = not_applicable(cls, built)
            if skip_inapplicable and why is not None:
                print(f"adpbench: skipping {sname} on {name}: {why}", file=sys.stderr)
                continue
            check_applicable(cls, built)
            applicable.add((i, j))
    resolved = {
        (i, j): solver_config_for(solvers[j][0], protocols[i], solvers[j][1]) for i, j in sorted(applicable)
    }
    for (i, j), config in resolved.items():
        solver = solver_registry.make_solver(solvers[j][0], **config)  # the resolved config is valid too
        why = instances[i].config_refusal(dataclasses.asdict(solver))
        if why is not None:
            raise ValueError(f"solver {solvers[j][0]!r} on {problems[i][0]}: {why}")
    return [
        Job(
            pname,
            dict(pparams),
            sname,
            dict(resolved[i, j]),
            seed,
            dict(budget),
            device,
            dtype,
            eval_every,
            threads,
            plugins=specs,
        )
        for i, (pname, pparams) in enumerate(problems)
        for seed in seeds
        for j, (sname, sconfig) in enumerate(solvers)
        if (i, j) in applicable
    ]


def execute_job(
    job: Job,
    out_dir: str | Path,
    *,
    backend: str = "sequential",
    concurrent_jobs: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Run one job with its threads pinned and write its files atomically; return a summary of the run
    as a dict. Runs in whichever process the backend chose (the driver, a pool worker, a cluster node),
    and records in the trace how it ran: the backend and the number of runs at once."""
    plugins.ensure(job.plugins)  # before any name is resolved (a fresh worker has none of them)
    params = dict(job.problem_params)
    params.setdefault("seed", job.seed)
    res = run(
        job.solver,
        job.problem,
        problem_params=params,
        solver_config=job.solver_config,
        apply_protocol=False,  # the job's config is the protocol's, resolved by expand()
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
    if job.command:
        res.trace["command"] = job.command
    path = results.write_run(res, out_dir, job.run_id)
    results.clear_failure(out_dir, job.run_id)
    last = res.trace.iloc[-1]
    return {
        "run_id": job.run_id,
        "path": str(path),
        "status": res.status,
        "message": res.message,
        "upper_iters": int(last.iteration),
        "wall_time": float(last.wall_time),
        "upper_value": float(last.upper_value),
        "exact_upper_value": float(last.get("exact_upper_value", float("nan"))),
        "verdict": res.info.get("verdict", ""),
    }


def describe(summary: dict[str, Any]) -> str:
    """The log line of one finished run."""
    message = summary["message"].splitlines()[0] if summary["message"] else ""
    verdict = summary.get("verdict", "")
    exact = summary.get("exact_upper_value", float("nan"))
    return (
        f"{summary['status']}, {summary['upper_iters']} upper iterations, {summary['wall_time']:.2f} s, "
        f"upper value {summary['upper_value']:.6g}"
        + (f", exact {exact:.6g}" if exact == exact else "")
        + (f"; verdict {verdict}" if verdict else "")
        + (f" ({message})" if message else "")
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
    sweep and keeps every finished run. One progress bar for the sweep. Returns the run ids.

    With ``resume``, runs whose files pass the finished-run check are skipped; damaged ones run again."""
    execution = execution or backends.Execution()
    out_dir = Path(out_dir).resolve()  # workers may run elsewhere (a cluster node, another cwd)
    unique = list({job.run_id: job for job in jobs}.values())  # a run listed twice runs once
    done, damaged = results.scan(out_dir) if resume else ({}, {})
    todo = [job for job in unique if job.run_id not in done]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(unique), initial=len(unique) - len(todo), desc="sweep", unit="run")
    emit = log or (bar.write if bar is not None else print)
    wanted = {job.run_id for job in unique}
    for run_id, why in damaged.items():
        emit(f"{run_id}: damaged ({why}); " + ("it runs again" if run_id in wanted else "not in this sweep"))
    for job in unique:
        if job.run_id in done:
            emit(f"{job.problem}/{job.solver} seed={job.seed}: finished earlier, skipped (--resume)")
    failures = 0
    try:
        if todo:
            engine = backends.make_engine(
                execution,
                len(todo),
                folder=out_dir / "submitit",
                threads=max(job.threads or 1 for job in todo),
            )
            if engine.name != "sequential":  # concurrent runs must not each take every core
                default = backends.default_threads(execution, len(todo))
                todo = [job if job.threads else dataclasses.replace(job, threads=default) for job in todo]
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
                        emit(f"{tag}: {describe(outcome)}")
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(failed=failures)
    finally:
        if bar is not None:
            bar.close()
    if failures:
        emit(f"{failures} run(s) failed without a trace (runs/*{results.FAILURE_SUFFIX}); --resume reruns")
    return [job.run_id for job in jobs]
