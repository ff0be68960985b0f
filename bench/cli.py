"""`adpbench` command line: run | report | list | check-solver."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import problems as problem_registry
import solvers as solver_registry
from bench import backends, listing, plugins, report, results, suites, sweep
from problems import values

DEFAULT_PROBLEMS = ["deconv1d"]
DEFAULT_SOLVERS = ["maid", "ift", "lista"]
#: default output folder: runs/<first problem>, ignored by git so a run never dirties the checkout
DEFAULT_OUT_ROOT = "runs"
DEFAULT_MAX_TIME = 20.0  # solver seconds per run: the default sweep takes about a minute on 2 cores
#: torch intra-op threads per run: one, so timings are sequential and comparable on a shared machine
#: (on a loaded 2-core machine two threads ran 6-40x slower than one)
DEFAULT_THREADS = 1


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): ``adpbench: error: ...``, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"adpbench: error: {message}\n")


def _number(kind: values.Interval):
    """An argparse type accepting what ``kind`` accepts (``problems.values``); argparse prefixes the flag."""

    def parse(text: str) -> int | float:
        try:
            return kind.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


_COUNT = _number(values.POSITIVE_INTEGER)  # iterations, threads, jobs, minutes
_SECONDS = _number(values.POSITIVE_NUMBER)
_VALUE = _number(values.ANY_NUMBER)


def _split(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [v for item in values for v in item.split(",") if v]


def _seeds(values: list[str]) -> list[int]:
    out = []
    for text in _split(values) or []:
        try:
            out.append(int(text))
        except ValueError:
            raise ValueError(f"--seed expects integers (comma-separated or repeated), got {text!r}") from None
    return out


def _activate(args: argparse.Namespace, cfg: dict[str, Any] | None = None) -> None:
    """Load the installed entry points, the TOML file's ``plugins`` and the ``--plugin`` values (before any
    name is resolved), then check --reference-solver against what is now registered."""
    plugins.activate([*(cfg or {}).get("plugins", []), *(args.plugin or [])])
    ref = getattr(args, "reference_solver", None)
    if ref is not None and ref not in solver_registry.solver_names():
        valid = ", ".join(solver_registry.solver_names())
        raise ValueError(f"--reference-solver: must be a registered solver ({valid}), got {ref!r}")


def cmd_run(args: argparse.Namespace) -> int:
    cfg = sweep.load_config(args.config) if args.config else {}
    _activate(args, cfg)
    budget = dict(cfg.get("budget", {}))
    for key in sweep.BUDGET_KEYS:
        if getattr(args, key) is not None:
            budget[key] = getattr(args, key)
    suite = _suite(args, cfg)
    if not budget and suite is None:  # a suite's grids carry their own budgets; flags override them
        budget["max_time"] = DEFAULT_MAX_TIME
    problem_params = sweep.parse_assignments(args.param, "param")
    solver_params = sweep.parse_assignments(args.solver_param, "solver-param")
    names = _split(args.problem)
    probs = (
        [(n, {}) for n in names]
        if names
        else [(e["name"], dict(e.get("params", {}))) for e in cfg.get("problems", [])]
        or ([] if suite else [(n, {}) for n in DEFAULT_PROBLEMS])
    )
    names = _split(args.solver)
    every = bool(names and "all" in names)  # `-s all` skips the solvers that do not apply to an instance
    if names and "all" in names:  # `-s all`: every registered solver, in registry order
        names = [n for n in names if n != "all"] + [
            n for n in solver_registry.solver_names() if n not in names
        ]
    solvs = (
        [(n, {}) for n in names]
        if names
        else [(e["name"], dict(e.get("config", {}))) for e in cfg.get("solvers", [])]
        or (suite.solver_configs() if suite else [(n, {}) for n in DEFAULT_SOLVERS])
    )
    preset = args.preset or cfg.get("preset")
    if preset is not None:
        with_presets = [n for n, _ in probs if "preset" in problem_registry.problem_parameters(n)]
        if not with_presets:
            raise ValueError(f"--preset {preset!r}: none of the selected problems has presets")
        for name, params in probs:
            if name in with_presets:
                params.setdefault("preset", preset)
    for name, params in probs:
        params.update(problem_params.get(name, {}))
    for name, config in solvs:
        config.update(solver_params.get(name, {}))
    unknown = sorted(set(problem_params) - {n for n, _ in probs}) + sorted(
        set(solver_params) - {n for n, _ in solvs}
    )
    if unknown:
        raise ValueError(
            f"--param/--solver-param name(s) {', '.join(unknown)} match no selected problem or solver"
        )
    seeds = _seeds(args.seed) if args.seed else list(cfg.get("seeds", [0]))
    first = f"suite-{suite.name}" if suite else probs[0][0] if probs else None
    out = Path(args.out or cfg.get("out", f"{DEFAULT_OUT_ROOT}/{first}" if first else DEFAULT_OUT_ROOT))
    execution = _execution(args, cfg)
    n_runs = len(probs) * len(solvs) * len(seeds)
    if suite is not None:  # seeds: the suite's, unless --seed / seeds = [...] replaces them
        seeds = _seeds(args.seed) if args.seed else cfg.get("seeds")
        n_runs = suite.size()["instances"] * len(solvs)
    threads = _first(args.threads, cfg.get("threads"))
    if threads is None:  # one run at a time: DEFAULT_THREADS; concurrent runs share the cores
        sequential = execution.backend == "local" and backends.concurrency(execution, n_runs) == 1
        threads = DEFAULT_THREADS if sequential else backends.default_threads(execution, n_runs)
    device, dtype = args.device or cfg.get("device", "cpu"), args.dtype or cfg.get("dtype", "float64")
    eval_every = args.eval_every if args.eval_every is not None else cfg.get("eval_every")
    if suite is not None:
        at_once = backends.concurrency(execution, n_runs)
        print(f"adpbench: {suite.name}: {suite.line(at_once)}")
        options = dict(device=device, dtype=dtype, threads=threads, solvers=solvs, seeds=seeds)
        jobs = suite.jobs(**options, budget=budget, eval_every=eval_every)
    else:
        jobs = sweep.expand(
            probs, solvs, seeds, budget, device, dtype, eval_every, threads, skip_inapplicable=every
        )
    command = getattr(args, "command_line", "")  # recorded in every trace (provenance)
    jobs = [dataclasses.replace(job, command=command) for job in jobs] if command else jobs
    at_once = backends.concurrency(execution, len(jobs))
    print(
        f"adpbench: {len(jobs)} run(s) → {out}/runs (budget {budget}; backend {execution.backend}, "
        f"up to {at_once} at once × {threads} torch thread(s) per run)"
    )
    sweep.run_jobs(jobs, out, resume=args.resume, progress=not args.no_progress, execution=execution)
    if not args.no_report:
        print()
        text = report.write_report(
            out, target=args.target, reference_solver=args.reference_solver, html=not args.no_html
        )
        print(text)
        print(
            f"report: {out / report.SUMMARY_FILE}" + ("" if args.no_html else f", {out / report.HTML_FILE}")
        )
    return 0


def _suite(args: argparse.Namespace, cfg: dict[str, Any]) -> suites.Suite | None:
    """The suite of --suite / ``suite = "NAME"``, which then sets the problems (None without one)."""
    name, image_dir = _first(args.suite, cfg.get("suite")), _first(args.image_dir, cfg.get("image_dir"))
    if name is None:
        if image_dir is not None:
            raise ValueError("--image-dir (TOML: image_dir) needs --suite NAME (TOML: suite)")
        return None
    given = [flag for flag, value in (("--problem", args.problem), ("--param", args.param)) if value]
    given += [f"{key} in {args.config}" for key in ("problems",) if key in cfg]
    if args.preset or "preset" in cfg:
        given.append("--preset (TOML: preset)")
    if given:
        raise ValueError(f"suite {name!r} sets the problems and their parameters; drop {', '.join(given)}")
    return suites.get(name, image_dir)


def _first(*values: Any) -> Any:
    """The first value that is not None (CLI flag, then TOML key)."""
    return next((v for v in values if v is not None), None)


def _execution(args: argparse.Namespace, cfg: dict[str, Any]) -> backends.Execution:
    """Backend options from the CLI, falling back on the TOML file's keys."""
    slurm_cfg = cfg.get("slurm", {})
    slurm = {
        key: _first(getattr(args, f"slurm_{key}"), slurm_cfg.get(key))
        for key in backends.SLURM_KEYS
        if _first(getattr(args, f"slurm_{key}"), slurm_cfg.get(key)) is not None
    }
    return backends.Execution(
        backend=_first(args.backend, cfg.get("backend"), "local"),
        jobs=_first(args.jobs, cfg.get("jobs")),
        scheduler=_first(args.scheduler, cfg.get("scheduler")),
        slurm=backends.SlurmOptions(**slurm),
    )


def cmd_report(args: argparse.Namespace) -> int:
    _activate(args)
    if not Path(args.dir).is_dir():
        raise ValueError(f"results folder {args.dir} does not exist (expected a folder holding runs/)")
    try:
        text = report.write_report(
            args.dir,
            target=args.target,
            figures=not args.no_figures,
            reference_solver=args.reference_solver,
            html=not args.no_html,
        )
    except ValueError as exc:
        hint = _missing_plugins(args.dir)
        raise ValueError(f"{exc}; {hint}" if hint else str(exc)) from None
    print(text)
    return 0


def _missing_plugins(folder: str) -> str:
    """What the runs' provenance says provides the problems and solvers not registered here ("" if none)."""
    try:
        traces = results.load_traces(folder, warn=lambda _: None)
    except (OSError, ValueError):
        return ""
    known = {"problem": set(problem_registry.problem_names()), "solver": set(solver_registry.solver_names())}
    wanted = {f"{k}:{n}" for k in known for n in set(traces[k].astype(str)) - known[k]}
    column = traces.get("plugins")
    recorded = set() if column is None else set(column.dropna().astype(str))
    found = set()
    for text in recorded:
        for entry in json.loads(text):
            if wanted & set(entry.get("registers", [])):
                found.add(entry["name"])
    return (
        f"the runs used plug-in(s) {', '.join(sorted(found))}: pass --plugin (or install them)"
        if found
        else ""
    )


def cmd_list(args: argparse.Namespace) -> int:
    _activate(args)
    print(listing.render(args.kind, args.name))
    return 0


def cmd_check_solver(args: argparse.Namespace) -> int:
    from bench import contract  # runs solvers: only this command needs it

    _activate(args)
    solver_registry.solver_class(args.name)  # one line naming the valid solvers
    checks = contract.check_solver(args.name)
    print(contract.render(args.name, checks))
    return 0 if all(c.passed for c in checks) else 1


def _plugin_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin",
        action="append",
        metavar="PATH.py|MODULE",
        help="load a solver or problem plug-in (a .py file or a module; repeatable; docs/extending.md)",
    )


def _reference_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reference-solver",
        default="maid",
        help="the solver the report's time ratios and their bootstrap intervals divide by (default maid)",
    )


def _html_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-html",
        action="store_true",
        help=f"no {report.HTML_FILE} (the interactive page beside summary.md; docs/reports.md)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="adpbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a sweep (default: deconv1d, maid/ift/lista, 20 s each) and report it")
    p.add_argument("--problem", "-p", action="append", help="problem name(s), comma-separated or repeated")
    p.add_argument(
        "--preset",
        help="2D protocol: certified (default) | authors | authors-fix-<deviation> (see adpbench list)",
    )
    p.add_argument(
        "--solver",
        "-s",
        action="append",
        help="solver name(s), comma-separated or repeated; `all` = every registered solver",
    )
    p.add_argument(
        "--suite",
        help=f"a named suite of instances, solvers, seeds and budgets: {', '.join(suites.names())} "
        "(adpbench list shows their sizes and costs; -s, --seed and budget flags override them)",
    )
    p.add_argument("--image-dir", help="with --suite: the 2D problems over this folder's PNG/JPEG/TIFF files")
    p.add_argument("--seed", action="append", help="seed(s), comma-separated or repeated (default 0)")
    p.add_argument("--param", action="append", metavar="PROBLEM.KEY=VALUE", help="problem parameter")
    p.add_argument("--solver-param", action="append", metavar="SOLVER.KEY=VALUE", help="solver config field")
    p.add_argument(
        "--max-iters",
        type=_COUNT,
        help="upper iterations per run (default: each solver's paper value)",
    )
    p.add_argument(
        "--max-time",
        type=_SECONDS,
        help=f"solver seconds per run (default {DEFAULT_MAX_TIME:g} s when no budget is given)",
    )
    p.add_argument("--max-ll-iters", type=_COUNT, help="lower-level iterations per run")
    p.add_argument(
        "--threads",
        type=_COUNT,
        help=f"torch intra-op threads per run (default {DEFAULT_THREADS}; with --jobs: cores ÷ runs at once)",
    )
    p.add_argument("--device", help="cpu (default) or cuda")
    p.add_argument("--dtype", choices=["float32", "float64"], help="default float64")
    p.add_argument(
        "--out", "-o", help=f"output folder (default {DEFAULT_OUT_ROOT}/<first problem>, ignored by git)"
    )
    p.add_argument("--config", "-c", help="TOML sweep file (see bench/sweep.py)")
    p.add_argument(
        "--resume", action="store_true", help="skip runs finished (and undamaged) in the output folder"
    )
    p.add_argument(
        "--eval-every",
        type=_COUNT,
        help="evaluate every N-th upper iteration besides the exact evaluation's log-spaced rows (default: "
        "none; every row on cheap problems; the problem's own metrics: every N-th, default every row; "
        "docs/evaluation.md)",
    )
    p.add_argument(
        "--target",
        type=_VALUE,
        help="upper value to time against (default: per problem)",
    )
    _reference_flag(p)
    p.add_argument("--no-report", action="store_true")
    _html_flag(p)
    p.add_argument("--no-progress", action="store_true")
    x = p.add_argument_group("execution (see README: running sweeps on many cores and on a cluster)")
    x.add_argument(
        "--jobs",
        "-j",
        type=_COUNT,
        help="runs at once (default 1; Dask local cluster: the cores)",
    )
    x.add_argument("--backend", choices=backends.BACKENDS, help="local (default) | dask | submitit")
    x.add_argument(
        "--scheduler", metavar="ADDRESS", help="dask: a running scheduler (default: local cluster)"
    )
    x.add_argument("--slurm-partition", help="submitit: SLURM partition")
    x.add_argument(
        "--slurm-time-min",
        type=_COUNT,
        help="submitit: time limit per run in minutes (default 60)",
    )
    x.add_argument(
        "--slurm-cpus-per-task",
        type=_COUNT,
        help="submitit: CPUs per run (default: --threads)",
    )
    x.add_argument("--slurm-gpus-per-node", type=int, help="submitit: GPUs per run (default 0)")
    x.add_argument(
        "--slurm-array-parallelism",
        type=_COUNT,
        help="submitit: runs at once (default --jobs)",
    )
    _plugin_flag(p)
    p.set_defaults(func=cmd_run)
    r = sub.add_parser(
        "report", help="write summary.md, summary.csv, figures and report.html for a results folder"
    )
    r.add_argument("dir")
    r.add_argument("--target", type=_VALUE)
    r.add_argument("--no-figures", action="store_true")
    _html_flag(r)
    _reference_flag(r)
    _plugin_flag(r)
    r.set_defaults(func=cmd_report)
    lst = sub.add_parser(
        "list", help="problems, solvers, protocols and suites, one line each; `list KIND NAME` for details"
    )
    lst.add_argument("kind", nargs="?", help=f"one of {', '.join(listing.KINDS)}")
    lst.add_argument("name", nargs="?", help="one entry, shown in full")
    _plugin_flag(lst)
    lst.set_defaults(func=cmd_list)
    c = sub.add_parser(
        "check-solver",
        help="check a solver against the harness's contract (counts, budgets, determinism, θ*, statuses)",
    )
    c.add_argument("name", help="a registered solver (a plug-in's too, with --plugin)")
    _plugin_flag(c)
    c.set_defaults(func=cmd_check_solver)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["adpbench", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"adpbench: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("adpbench: interrupted; finished runs are saved (use --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
