"""Suites as data: named sets of problem instances, with the solvers, seeds and budgets they run.

A suite is a tuple of :class:`Grid` s (one problem each: fixed parameters crossed with axes, the seeds,
the budget and how often the harness evaluates) and a list of solvers. ``adpbench run --suite NAME``
(or ``suite = "NAME"`` in a TOML sweep) runs one; ``names()`` lists them and ``get(NAME)`` gives one with
its size and cost estimate (``Suite.summary``, ``Suite.describe()``) before anything runs.
``docs/suites.md`` says what each suite holds and why, and how its cost is estimated.

Expansion (``Suite.instances``, ``Suite.jobs``): the axes of a grid are crossed; an axis value that is a
table sets several parameters together (e.g. a blur and the kernel support it needs); an instance listed
twice (by two grids, or twice on one axis) runs once; every axis is checked — a registered parameter of
the problem, values of its kind — before any run, with a one-line error naming the suite, the problem and
the axis. ``image_dir`` (``Suite.with_image_dir``) replaces the image axis of every image problem with the
PNG / JPEG / TIFF files of a folder, sorted by name.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import problems as problem_registry
import solvers as solver_registry
from bench import evaluation, sweep
from problems import kernels

#: file suffixes an ``image_dir`` contributes (case-insensitive)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: parameters a suite cannot put on an axis: the seed is the grid's ``seeds``, dtype/device are run options
RESERVED = {"seed": "the grid's seeds", "dtype": "--dtype", "device": "--device"}

# ----------------------------------------------------------------------------------------- cost model
#: seconds of one deconv1d ISTA iteration at n = 200, one torch thread: the idle-machine profile in the
#: README ("Where the time goes": 16.0 µs); scaled by (n / 200)² (a dense n×n matvec per iteration)
DECONV1D_ITER_S = 16.0e-6
#: seconds per pixel (3 colour channels) of one 2D lower iteration, one torch thread: the idle-machine
#: 400×300 replicate-boundary figure of results/deblur2d_timing.md (6.70 ms with 2 threads), doubled
#: for one thread (no threading gain assumed: an upper bound), per pixel
PIXEL_ITER_S = 2 * 6.70e-3 / (400 * 300)
#: per-iteration cost that does not scale with the pixels (Python dispatch of some 30 tensor operations),
#: one 2D lower iteration: 25 deconv1d iterations' worth, the ratio ``measure_unit_costs`` found on the
#: shared machine (ratios survive load better than seconds), times DECONV1D_ITER_S
ITER_OVERHEAD_S = 25 * DECONV1D_ITER_S
#: seconds of one lower iteration of the small closed-form problems (quadratic, tikhonov_*): dispatch-bound
SMALL_ITER_S = 2.0e-5
#: all counted work of a run per lower-level iteration, in lower-iteration units (CG steps, set-ups,
#: Lipschitz bounds, unrolled backward passes): from the README's 1D profile (MAID 91 % of its time in
#: lower solves; IFT 56 % at 1.6× the iteration cost, its set-ups included; LISTA 41 % in the forward at
#: 1.5×) and the unit costs of results/cost_model.md (LISTA's backward step 2.3–3.8 iterations); 3 for
#: solvers without a profile (a conservative guess)
WORK_PER_LL_ITER = {"maid": 1.5, "maid_accel": 1.5, "ift": 3.0, "lista": 4.0}
WORK_PER_LL_ITER_DEFAULT = 3.0
#: lower-level iterations per upper iteration, by solver, on deconv1d and on the 2D problems at 128×128:
#: work counts of the committed full runs (results/deconv1d-all, 20 s; results/deblur2d-certified-all,
#: 30 s; IFT on deconv1d from its complete 7 500-iteration run, 216 700 lower iterations); 50 for others
LL_PER_UPPER = {
    "deconv1d": {"maid": 428, "maid_accel": 358, "ift": 29, "lista": 50, "hoag": 302, "amigo": 10,
                 "neumann": 43, "jfb": 94, "trbp": 76, "f2sa": 986},
    "2d": {"maid": 579, "maid_accel": 109, "ift": 20, "lista": 52, "hoag": 62, "amigo": 10, "neumann": 20,
           "jfb": 10, "trbp": 36, "f2sa": 417},
}  # fmt: skip
LL_PER_UPPER_DEFAULT = 50
#: lower-level iterations of one exact evaluation by the harness (its warm-started reference solve, off the
#: clock): work counts of the quick suite's evaluated rows (2026-12-04, after deconv1d's reference solve
#: took the strongly convex momentum), medians per solver 144–149 on deconv1d and 594–680 on the 2D
#: problems; the upper ends, rounded
EVAL_LL_PER_EVAL = {"deconv1d": 150, "2d": 700, "small": 20}
#: seconds of an evaluation's lower iteration per c_i: 0.4–1.9 in the quick suite (evaluation and solver
#: seconds per unit of work, same processes: a ratio, which survives the machine's load better than seconds)
EVAL_ITER_FACTOR = 1.5
#: lower iterations of the report's smoothed-TV baseline per 2D instance (the certified baseline to
#: ‖x − x̂‖ ≤ 1e-4 took 580 at 32×32 and 621 at 128×128 on astronaut: rounded up)
BASELINE_LL_ITERS = 1000
#: seconds of report figures per instance (convergence panels, the 2D image and kernel figures): assumed
REPORT_FIGURE_S = 3.0


@dataclass(frozen=True)
class UnitCosts:
    """Seconds of one lower-level iteration, one torch thread (the defaults: see the constants above;
    :func:`measure_unit_costs` measures them on this machine)."""

    deconv1d_iter: float = DECONV1D_ITER_S
    pixel_iter: float = PIXEL_ITER_S
    iter_overhead: float = ITER_OVERHEAD_S
    small_iter: float = SMALL_ITER_S

    def lower_iteration(self, problem: str, params: dict[str, Any]) -> float:
        """c_i: seconds of one lower-level iteration of the instance."""
        defaults = problem_registry.problem_parameters(problem)
        if "size" in defaults:
            h, w = _size(params.get("size", defaults["size"]))
            return self.pixel_iter * h * w + self.iter_overhead
        if problem == "deconv1d":
            n = int(params.get("n", defaults["n"]))
            return self.deconv1d_iter * (n / 200) ** 2
        return self.small_iter


def _size(size: object) -> tuple[int, int]:
    from problems.images import as_size

    return as_size(tuple(size) if isinstance(size, list) else size)


# ----------------------------------------------------------------------------------------- suites
@dataclass(frozen=True)
class Grid:
    """One problem's instances: ``fixed`` parameters crossed with ``axes`` (name → values; a value that is
    a table sets several parameters together and the name is then a label), each run at every seed of
    ``seeds`` (a problem's seed draws its data: noise draws), under ``budget`` (``max_iters``,
    ``max_time``, ``max_ll_iters``; at least one of the last two, so that a run is bounded)."""

    problem: str
    axes: dict[str, tuple] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    budget: dict[str, Any] = field(default_factory=dict)
    eval_every: int = 1
    #: evaluate about every this many lower-level iterations instead: per solver, eval_every =
    #: max(1, round(eval_work / LL_PER_UPPER)) — every solver's time to target is then resolved to about the
    #: same work, and a solver with cheap iterations does not pay an evaluation at each of them
    eval_work: int | None = None

    def eval_every_for(self, solver: str) -> int:
        """The evaluation interval (upper iterations) of this grid's runs of ``solver``."""
        if self.eval_work is None:
            return self.eval_every
        per_upper = LL_PER_UPPER.get(family(self.problem), {}).get(solver, LL_PER_UPPER_DEFAULT)
        return max(1, round(self.eval_work / per_upper))

    def settings(self) -> list[dict[str, Any]]:
        """The crossed parameter sets (before de-duplication), in axis order."""
        names = list(self.axes)
        out = []
        for combo in itertools.product(*(self.axes[n] for n in names)):
            params = dict(self.fixed)
            for name, value in zip(names, combo, strict=True):
                params.update(value if isinstance(value, dict) else {name: value})
            out.append(params)
        return out


@dataclass(frozen=True)
class Suite:
    name: str
    description: str  # one line
    grids: tuple[Grid, ...]
    solvers: tuple[str | tuple[str, dict[str, Any]], ...]

    # ------------------------------------------------------------------ expansion
    def solver_configs(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, config) of each distinct solver entry, in order (one listed twice runs once)."""
        entries = [(s, {}) if isinstance(s, str) else (s[0], dict(s[1])) for s in self.solvers]
        unique = {json.dumps(entry, sort_keys=True, default=str): entry for entry in entries}
        return list(unique.values())

    def check(self) -> None:
        """Every grid and axis, before anything is built: a one-line ValueError naming the suite, the
        problem and the axis at fault."""
        where = f"suite {self.name!r}"
        if not self.grids:
            raise ValueError(f"{where} has no problems")
        for name, config in self.solver_configs():
            try:
                solver_registry.make_solver(name, **config)
            except ValueError as exc:
                raise ValueError(f"{where}: {str(exc).splitlines()[0]}") from None
        for grid in self.grids:
            _check_grid(grid, where)
            defaults = problem_registry.problem_parameters(grid.problem)
            for params in grid.settings():  # a blur must fit the kernel support it is crossed with
                if "blur" in params:
                    need = kernels.required_support(params["blur"])
                    k = params.get("kernel_size", defaults.get("kernel_size"))
                    if isinstance(k, int) and k < need:
                        raise ValueError(
                            f"{where}, {grid.problem}: blur {params['blur']!r} needs kernel_size ≥ {need}, "
                            f"got {k} (set both on one axis, as a table)"
                        )

    def instances(self) -> list[tuple[Grid, dict[str, Any]]]:
        """(grid, parameters) of every distinct instance setting, in suite order; a setting produced twice
        (by two grids with the same seeds, budget and evaluation, or twice on one axis) appears once."""
        self.check()
        seen: set[str] = set()
        out = []
        for grid in self.grids:
            for params in grid.settings():
                key = json.dumps(
                    [grid.problem, params, grid.seeds, grid.budget, grid.eval_every, grid.eval_work],
                    sort_keys=True,
                    default=str,
                )
                if key not in seen:
                    seen.add(key)
                    out.append((grid, params))
        return out

    def size(self) -> dict[str, int]:
        """settings (parameter combinations), instances (settings × seeds), solvers and runs."""
        inst = self.instances()
        n_instances = sum(len(grid.seeds) for grid, _ in inst)
        n_solvers = len(self.solver_configs())
        return dict(
            settings=len(inst), instances=n_instances, solvers=n_solvers, runs=n_instances * n_solvers
        )

    def jobs(
        self,
        *,
        device: str = "cpu",
        dtype: str = "float64",
        threads: int | None = None,
        solvers: list[tuple[str, dict[str, Any]]] | None = None,
        seeds: list[int] | None = None,
        budget: dict[str, Any] | None = None,
        eval_every: int | None = None,
    ) -> list[sweep.Job]:
        """The runs, validated (``sweep.expand`` per grid: every instance is built once, no solver work)
        before any of them starts. ``solvers`` / ``seeds`` replace the suite's; ``budget`` keys override
        each grid's; ``eval_every`` replaces each grid's (and its per-solver ``eval_work`` intervals)."""
        solvs = solvers if solvers is not None else self.solver_configs()
        instances = self.instances()
        jobs: list[sweep.Job] = []
        for grid in self.grids:
            settings = [params for g, params in instances if g is grid]
            if not settings:
                continue
            by_interval: dict[int, list[tuple[str, dict[str, Any]]]] = {}
            for name, config in solvs:
                every = eval_every if eval_every is not None else grid.eval_every_for(name)
                by_interval.setdefault(every, []).append((name, config))
            for every, group in by_interval.items():
                jobs += sweep.expand(
                    [(grid.problem, params) for params in settings],
                    group,
                    seeds if seeds is not None else list(grid.seeds),
                    {**grid.budget, **(budget or {})},
                    device,
                    dtype,
                    every,
                    threads,
                )
        return list({job.run_id: job for job in jobs}.values())  # a run listed twice runs once

    def with_image_dir(self, image_dir: str | Path) -> Suite:
        """The suite with every image problem's image axis replaced by the folder's images (PNG, JPEG,
        TIFF; sorted by file name; absolute paths, so workers elsewhere find them)."""
        images = image_files(image_dir)
        grids = []
        for grid in self.grids:
            if "image" in problem_registry.problem_parameters(grid.problem):
                axes = {"image": tuple(images), **{k: v for k, v in grid.axes.items() if k != "image"}}
                fixed = {k: v for k, v in grid.fixed.items() if k != "image"}
                grid = dataclasses.replace(grid, axes=axes, fixed=fixed)
            grids.append(grid)
        if all(g is h for g, h in zip(grids, self.grids, strict=True)):
            raise ValueError(f"suite {self.name!r} has no image problems for image_dir {image_dir}")
        return dataclasses.replace(self, name=f"{self.name}+images", grids=tuple(grids))

    # ------------------------------------------------------------------ cost
    def estimate(self, unit_costs: UnitCosts | None = None, jobs: int = 1) -> dict[str, float]:
        """Estimated seconds (``docs/suites.md``): per run, its solver seconds (``run_seconds``) and the
        harness's evaluations (``evaluation_seconds``); per instance REPORT_FIGURE_S of report figures and,
        for a 2D one, the report's TV baseline, BASELINE_LL_ITERS · c_i. ``wall`` = the runs ÷ ``jobs`` runs
        at once (one thread each) + the report (one process)."""
        costs = unit_costs or UnitCosts()
        solver_s = eval_s = report_s = 0.0
        for grid, params in self.instances():
            c_i = costs.lower_iteration(grid.problem, params)
            for name, _ in self.solver_configs():
                solver_s += len(grid.seeds) * run_seconds(grid.budget, c_i, name, grid.problem)
                every = grid.eval_every_for(name)
                eval_s += len(grid.seeds) * evaluation_seconds(grid.budget, c_i, name, grid.problem, every)
            report_s += len(grid.seeds) * REPORT_FIGURE_S
            if family(grid.problem) == "2d":
                report_s += len(grid.seeds) * BASELINE_LL_ITERS * c_i
        runs_s = solver_s + eval_s
        return dict(
            solver=solver_s,
            evaluation=eval_s,
            report=report_s,
            total=runs_s + report_s,
            wall=runs_s / max(1, jobs) + report_s,
        )

    @property
    def summary(self) -> str:
        """One line for ``adpbench list``: what it is, its size and its estimated cost with --jobs 2."""
        return self.line()

    def line(self, jobs: int = 2, unit_costs: UnitCosts | None = None) -> str:
        """One line: what it is, its size and its estimated cost for ``jobs`` runs at once."""
        size = self.size()
        cost = self.estimate(unit_costs, jobs)
        seeds = sorted({len(grid.seeds) for grid in self.grids})
        seed_text = str(seeds[0]) if len(seeds) == 1 else "–".join(map(str, (seeds[0], seeds[-1])))
        return (
            f"{self.description} — {size['settings']} settings × {seed_text} seed(s) = "
            f"{size['instances']} instances × {size['solvers']} solvers = {size['runs']} runs; "
            f"≈ {_duration(cost['wall'])} with --jobs {jobs} (≈ {_duration(cost['total'])} of run time)"
        )

    def describe(self, jobs: int = 2, unit_costs: UnitCosts | None = None) -> str:
        """The suite in full (``adpbench list suites NAME``): its grids, solvers, size and cost estimate."""
        size = self.size()
        cost = self.estimate(unit_costs, jobs)
        instances = self.instances()
        out = [
            f"{self.name}: {self.description}",
            f"  size: {size['settings']} settings, {size['instances']} instances (settings × seeds) × "
            f"{size['solvers']} solvers = {size['runs']} runs",
            "  solvers: " + ", ".join(n + (f" {c}" if c else "") for n, c in self.solver_configs()),
        ]
        for grid in self.grids:
            n = sum(g is grid for g, _ in instances)
            out.append(f"  {grid.problem}: {n} settings × seeds {list(grid.seeds)}, budget {grid.budget}")
            out += [f"    fixed {k} = {v!r}" for k, v in grid.fixed.items()]
            out += [f"    axis {k}: " + ", ".join(map(repr, v)) for k, v in grid.axes.items()]
        out.append(
            f"  estimate (docs/suites.md): solver {_duration(cost['solver'])} + evaluation "
            f"{_duration(cost['evaluation'])} + report {_duration(cost['report'])} = "
            f"{_duration(cost['total'])} of run time; ≈ {_duration(cost['wall'])} with --jobs {jobs}"
        )
        return "\n".join(out)


def family(problem: str) -> str:
    """The cost tables' kind of problem: "2d" (an image problem), "deconv1d", or "small"."""
    if "size" in problem_registry.problem_parameters(problem):
        return "2d"
    return "deconv1d" if problem == "deconv1d" else "small"


def _work_factor(solver: str) -> float:
    return WORK_PER_LL_ITER.get(solver, WORK_PER_LL_ITER_DEFAULT)


def upper_iterations(budget: dict[str, Any], c_i: float, solver: str, problem: str) -> float:
    """Upper iterations a run may make: its iteration budget (default: the solver's own), or what its
    lower-level and time budgets allow at LL_PER_UPPER lower iterations each, whichever is smaller."""
    per_upper = LL_PER_UPPER.get(family(problem), {}).get(solver, LL_PER_UPPER_DEFAULT)
    limits = [float(budget.get("max_iters") or solver_registry.make_solver(solver).default_max_iters)]
    if "max_ll_iters" in budget:
        limits.append(budget["max_ll_iters"] / per_upper)
    if "max_time" in budget:
        limits.append(budget["max_time"] / (per_upper * c_i * _work_factor(solver)))
    return max(1.0, min(limits))


def run_seconds(budget: dict[str, Any], c_i: float, solver: str, problem: str = "deconv1d") -> float:
    """Solver seconds one run may take: its lower iterations (its upper iterations × LL_PER_UPPER, at most
    the lower-level budget) × c_i × the solver's work per lower iteration, at most max_time."""
    per_upper = LL_PER_UPPER.get(family(problem), {}).get(solver, LL_PER_UPPER_DEFAULT)
    ll_iters = upper_iterations(budget, c_i, solver, problem) * per_upper
    if "max_ll_iters" in budget:
        ll_iters = min(ll_iters, budget["max_ll_iters"])
    seconds = ll_iters * c_i * _work_factor(solver)
    return min(seconds, float(budget["max_time"])) if "max_time" in budget else seconds


def evaluation_seconds(
    budget: dict[str, Any], c_i: float, solver: str, problem: str, eval_every: int
) -> float:
    """Seconds of the harness's exact evaluations of one run (off its clock): the rows the harness evaluates
    (``evaluated_rows``) × EVAL_LL_PER_EVAL × c_i × EVAL_ITER_FACTOR."""
    rows = evaluated_rows(upper_iterations(budget, c_i, solver, problem), eval_every)
    return rows * EVAL_LL_PER_EVAL[family(problem)] * c_i * EVAL_ITER_FACTOR


def evaluated_rows(upper_iters: float, eval_every: int) -> int:
    """Rows 0..K (K = ``upper_iters``) the harness evaluates at interval ``eval_every``: those of its
    schedule (``bench.evaluation.scheduled``: the log-spaced rows, every ``eval_every``-th) and the last."""
    last = math.floor(upper_iters)
    rows = sum(evaluation.scheduled(k, eval_every, cheap=False) for k in range(last + 1))
    return rows + (not evaluation.scheduled(last, eval_every, cheap=False))


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unbounded"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _check_grid(grid: Grid, where: str) -> None:
    try:
        valid = problem_registry.problem_parameters(grid.problem)
    except ValueError as exc:  # an unknown problem: the message names the valid ones
        raise ValueError(f"{where}: {exc}") from None
    where = f"{where}, {grid.problem}"
    choices = ", ".join(k for k in valid if k not in RESERVED)
    if not grid.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in grid.seeds):
        raise ValueError(f"{where}: seeds must be a non-empty tuple of integers, got {grid.seeds!r}")
    sweep.check_budget(dict(grid.budget), f"{where}: budget")
    if "max_time" not in grid.budget and "max_ll_iters" not in grid.budget:
        raise ValueError(f"{where}: budget needs max_time or max_ll_iters, so that every run is bounded")
    sweep.check_eval_every(grid.eval_every, f"{where}: eval_every")

    def check_key(key: str, what: str) -> None:
        """``what``: how the message names the key ("axis 'noise'", "axis 'blur' sets 'kernel'", ...)."""
        if key in RESERVED:
            raise ValueError(f"{where}: {what} is set by {RESERVED[key]}, not as a parameter")
        if key not in valid:
            raise ValueError(f"{where}: {what} is not a parameter; valid: {choices}")

    for key in grid.fixed:
        check_key(key, f"fixed parameter {key!r}")
    _check_values(grid.problem, grid.fixed, where, "fixed parameters")
    for axis, values in grid.axes.items():
        if not isinstance(values, (tuple, list)) or not values:
            raise ValueError(f"{where}: axis {axis!r} needs a non-empty list of values, got {values!r}")
        for value in values:
            keys = list(value) if isinstance(value, dict) else [axis]
            for key in keys:
                check_key(
                    key, f"axis {axis!r} sets {key!r}, which" if isinstance(value, dict) else f"axis {key!r}"
                )
                if key in grid.fixed:
                    raise ValueError(f"{where}: axis {axis!r} sets {key!r}, which the grid also fixes")
            _check_values(
                grid.problem, value if isinstance(value, dict) else {axis: value}, where, f"axis {axis!r}"
            )


def _check_values(problem: str, params: dict[str, Any], where: str, what: str) -> None:
    """Kinds and names (``problems.check_params``), and the blur's form, which the problem itself checks only
    when it is built."""
    try:
        problem_registry.check_params(problem, dict(params))
        if "blur" in params:
            kernels.parse_blur(params["blur"])
    except ValueError as exc:
        raise ValueError(f"{where}: {what}: {str(exc).splitlines()[0]}") from None


def image_files(image_dir: str | Path) -> list[str]:
    """Every PNG / JPEG / TIFF file of the folder (not its sub-folders), sorted by name, as absolute paths."""
    folder = Path(image_dir).expanduser()
    if not folder.is_dir():
        raise ValueError(f"image_dir {image_dir} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image_dir {image_dir} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    return [str(p.resolve()) for p in files]


# ----------------------------------------------------------------------------------------- the suites
#: the paper's three solvers, and the two fastest of the field's to the target on the 2D certified study
#: (results/deblur2d-certified-all: amigo 2.7 s, maid_accel 2.9 s; hoag 3.0 s next)
PAPER_SOLVERS = ("maid", "ift", "lista")
STANDARD_SOLVERS = (*PAPER_SOLVERS, "maid_accel", "amigo")
#: bundled scikit-image colour photographs that suit deblurring (docs/suites.md says why these five)
PHOTOGRAPHS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")
#: blurs with the kernel support each needs: the paper's 5×5 diagonal motion, a Gaussian of σ = 1 pixel
#: (±2.5σ on 5×5), and a 9-pixel linear motion at 30° (9×9)
BLURS = (
    {"blur": "motion", "kernel_size": 5},
    {"blur": "gaussian:1.0", "kernel_size": 5},
    {"blur": "line:9:30", "kernel_size": 9},
)
#: the paper's 1D and 2D noise levels (σ = 0.005; 5/255), and twice each
NOISE_1D = (0.005, 0.01)
NOISE_2D = (5 / 255, 10 / 255)
#: deconv1d blur widths σ (samples) around the paper's 5
SIGMAS_1D = (3.0, 5.0, 7.0)


#: lower-level iterations between the harness's exact evaluations (``Grid.eval_work``): one evaluation costs
#: about EVAL_LL_PER_EVAL lower iterations, so evaluating IFT's or AMIGO's every cheap iteration would
#: cost 5–50× the run; at these intervals every solver's time to a target is read to within about this
#: much work (MAID's iterations are longer: each of them is evaluated)
EVAL_WORK_1D = 100
EVAL_WORK_2D = 80


def _image_grids(
    size: tuple[int, int], axes: dict[str, tuple], budget: dict[str, Any], **fixed: Any
) -> tuple:
    return tuple(
        Grid(
            problem,
            axes=dict(axes),
            fixed={"size": size, **fixed},
            budget=dict(budget),
            eval_work=EVAL_WORK_2D,
        )
        for problem in ("deblur2d", "semiblind2d")
    )


def _builtin() -> dict[str, Suite]:
    quick = Suite(
        "quick",
        "a first look and CI: deconv1d × 2 noise levels × 2 draws; the 2D problems at 32×32 on "
        "2 photos × 2 blurs",
        (
            Grid(
                "deconv1d",
                axes={"noise": NOISE_1D},
                seeds=(0, 1),
                budget={"max_ll_iters": 40_000, "max_time": 10.0},
                eval_work=EVAL_WORK_1D,
            ),
            *_image_grids(
                (32, 32),
                {"image": ("astronaut", "coffee"), "blur": BLURS[:2]},
                {"max_ll_iters": 1500, "max_time": 10.0},
                preset="certified",
            ),
        ),
        PAPER_SOLVERS,
    )
    standard = Suite(
        "standard",
        "the README's headline: deconv1d over draws, noise and blur widths; the 2D problems at 96×96 over "
        "5 photos × 2 noise levels × 3 blurs",
        (
            Grid(
                "deconv1d",
                axes={"noise": NOISE_1D, "sigma": SIGMAS_1D},
                seeds=(0, 1, 2, 3, 4),
                budget={"max_ll_iters": 250_000, "max_time": 30.0},
                eval_work=EVAL_WORK_1D,
            ),
            # 96×96 and 2 000 lower iterations: what the harness's exact evaluations leave of 2 hours
            *_image_grids(
                (96, 96),
                {"image": PHOTOGRAPHS, "noise": NOISE_2D, "blur": BLURS},
                {"max_ll_iters": 2000, "max_time": 120.0},
                preset="certified",
            ),
        ),
        STANDARD_SOLVERS,
    )
    paper = Suite(
        "paper",
        "the paper's settings: deconv1d as in §4.1, the 2D problems at 400×300 on the study's 3 photos under "
        "the authors' and the certified protocol",
        (
            # the paper's iteration budgets (300 / 7 500 / 4 000) bind: IFT's used 216 700 lower iterations
            Grid("deconv1d", budget={"max_ll_iters": 300_000, "max_time": 600.0}, eval_work=EVAL_WORK_1D),
            *_image_grids(
                (400, 300),
                {"image": ("astronaut", "coffee", "chelsea"), "preset": ("authors", "certified")},
                {"max_ll_iters": 10_000, "max_time": 1800.0},
            ),
        ),
        PAPER_SOLVERS,
    )
    return {s.name: s for s in (quick, standard, paper)}


def names() -> list[str]:
    """The shipped suites, cheapest first."""
    return list(_builtin())


def get(name: str, image_dir: str | Path | None = None) -> Suite:
    """A shipped suite by name (with its image axes replaced by ``image_dir``'s images when given)."""
    suites = _builtin()
    if not isinstance(name, str) or name not in suites:
        raise ValueError(f"unknown suite {name!r}; valid suites: {', '.join(suites)}")
    suite = suites[name]
    return suite.with_image_dir(image_dir) if image_dir is not None else suite


# ----------------------------------------------------------------------------------------- calibration
def measure_unit_costs(iters: int = 50, sizes: Iterable[int] = (48, 192)) -> UnitCosts:
    """Unit costs on this machine from tiny runs (one torch thread): ``iters`` lower iterations of
    deconv1d and of deblur2d at two sizes (a line through the two gives the per-pixel slope and the
    per-iteration overhead). A loaded machine gives loaded numbers: read them as such."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        per_iter = {}
        p1 = problem_registry.make_problem("deconv1d")
        d1 = _seconds_per_iter(p1, iters * 20)
        for n in sizes:
            p2 = problem_registry.make_problem("deblur2d", size=(n, n))
            per_iter[n * n] = _seconds_per_iter(p2, iters)
    finally:
        torch.set_num_threads(saved)
    (a, ta), (b, tb) = sorted(per_iter.items())[0], sorted(per_iter.items())[-1]
    slope = max((tb - ta) / (b - a), 0.0) if b > a else tb / b
    return UnitCosts(deconv1d_iter=d1, pixel_iter=slope, iter_overhead=max(ta - slope * a, 0.0))


def _seconds_per_iter(problem: Any, iters: int, repeats: int = 3) -> float:
    import torch

    with torch.no_grad():
        problem.ll_solve(problem.theta0, problem.x0, 0.0, 5)  # warm-up: caches, allocator
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            problem.ll_solve(problem.theta0, problem.x0, 0.0, iters)
            best = min(best, time.perf_counter() - start)
    return best / iters


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    """``python -m bench.suites [NAME ...] [--jobs J] [--measure]``: each suite's size and cost estimate
    (with this machine's unit costs when ``--measure``)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.suites", description=main.__doc__)
    ap.add_argument("names", nargs="*", help=f"suites (default: all of {', '.join(names())})")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")
    ap.add_argument("--measure", action="store_true", help="measure unit costs here first (tiny runs)")
    args = ap.parse_args(argv)
    costs = measure_unit_costs() if args.measure else UnitCosts()
    out(
        f"unit costs ({'measured here' if args.measure else 'defaults'}; one torch thread): deconv1d "
        f"{costs.deconv1d_iter * 1e6:.3g} µs per lower iteration; 2D {costs.pixel_iter * 1e9:.3g} ns per "
        f"pixel + {costs.iter_overhead * 1e6:.3g} µs per lower iteration"
    )
    try:
        for name in args.names or names():
            suite = get(name)
            cost = suite.estimate(costs, args.jobs)
            out(f"{name}: {suite.line(args.jobs, costs)}")
            out(
                f"  solver {_duration(cost['solver'])} + evaluation {_duration(cost['evaluation'])} + report "
                f"{_duration(cost['report'])} = {_duration(cost['total'])} of run time"
            )
    except ValueError as exc:
        print(f"bench.suites: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
