"""The harness (benchopt's "plumbing"): loop, clock, budget, stopping, divergence and records.

Solvers advance one upper iteration per ``update``; the harness times only that call (with a CUDA
synchronise before every clock read), then reads counters from the problem and metrics from an
untimed evaluation. One trace row per upper iteration (row 0 = the initial state after ``init``).

Budgets hold inside an iteration: around ``init`` and every ``update`` the harness arms the problem's
budget (:meth:`problems.base.BilevelProblem.budget`), so the counted oracle that would start past the time
deadline or the lower-level cap raises :class:`~problems.base.BudgetExhausted`. The run then ends with
status ``budget`` and one last row marked ``partial``: the last accepted θ and x, with the counters and
solver time of the unfinished iteration included (its ``iteration`` is the number of completed ones).

The figures a report publishes come from the harness's own exact evaluation (``bench/evaluation.py``:
F(θ_k) by the reference lower solve, its gap to F*, off the clock and uncounted) and the run's ``verdict``
from those values (``bench/verdicts.py``), beside the solver's own ``upper_value`` and ``status``.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor

import problems as problem_registry
import protocols
import solvers as solver_registry
from bench import evaluation, provenance, verdicts
from problems import values
from problems.base import BilevelProblem, BudgetExhausted
from solvers.base import SolverState, check_applicable

#: a run's status: "converged" and "stalled" both mean the solver's stopping rule fired, "stalled" without
#: certified progress (e.g. MAID whose ε fell below its tolerance with no step accepted)
STATUSES = ("running", "converged", "stalled", "budget", "diverged", "error")
#: statuses a finished run's last trace row can carry
FINAL_STATUSES = tuple(s for s in STATUSES if s != "running")


@dataclass
class RunResult:
    theta: Tensor
    x: Tensor
    trace: pd.DataFrame
    status: str
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def solver_config_for(name: str, protocol: Any, config: dict[str, Any]) -> dict[str, Any]:
    """The plain config of solver ``name`` under ``protocol`` (a problem's ``params["preset"]``; anything
    but a string: no protocol), ``config`` on top (``protocols.resolve``: a one-line ValueError when the
    protocol cannot say how to run this solver). A sweep resolves each job's config so, once, up front."""
    if not isinstance(protocol, str):
        return dict(config)
    cls = solver_registry.solver_class(name)
    fields = [f.name for f in dataclasses.fields(cls)]
    return protocols.resolve(protocol, name, fields, dict(config), getattr(cls, "protocol_settings", None))


def make_solver_for(name: str, problem: BilevelProblem, **config: Any) -> Any:
    """A solver with the settings of the problem's protocol (``protocols``; the problem records its name in
    ``params["preset"]``), then ``config`` on top. Problems without a protocol get the solver's defaults."""
    return solver_registry.make_solver(name, **solver_config_for(name, problem.params.get("preset"), config))


class _Clock:
    """Accumulates solver time only; synchronises CUDA before every read."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.elapsed = 0.0

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def __enter__(self) -> _Clock:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed += self._now() - self._start


def _divergence(value: float, theta_norm: float, reference: tuple[float, float], factor: float) -> str:
    """What diverged ("" if nothing): the upper value or ‖θ‖ is non-finite or grew by ``factor`` over
    the start (F may stay bounded while θ explodes, e.g. on deconv1d where x̂ → 0 as ‖B‖ → ∞)."""
    value_limit = factor * max(abs(reference[0]), 1.0)
    norm_limit = factor * max(reference[1], 1.0)
    if not math.isfinite(value):
        return f"upper value is {value}"
    if not math.isfinite(theta_norm):
        return f"‖θ‖ is {theta_norm} (upper value {value:.3g})"
    if value > value_limit:
        return f"upper value {value:.3g} > {factor:g} × max(|F(θ₀)|, 1) = {value_limit:.3g}"
    if theta_norm > norm_limit:
        return (
            f"‖θ‖ = {theta_norm:.3g} > {factor:g} × max(‖θ₀‖, 1) = {norm_limit:.3g} (upper value {value:.3g})"
        )
    return ""


def _check_budgets(max_iters: Any, max_time: Any, max_ll_iters: Any, eval_every: Any, threads: Any) -> None:
    """One-line ValueErrors for budgets and settings outside their ranges (NaN included), by the shared
    validators of ``problems.values`` (the Python API accepts a zero budget: only the initial state)."""
    budget = {"max_iters": max_iters, "max_time": max_time, "max_ll_iters": max_ll_iters}
    values.check_budget({k: v for k, v in budget.items() if v is not None}, allow_zero=True)
    # the evaluation schedule's own sentence (None: the log-spaced rows only)
    if eval_every is not None and not values.POSITIVE_INTEGER.accepts(eval_every):
        raise ValueError(f"eval_every must be ≥ 1 (an integer), got {eval_every!r}")
    values.POSITIVE_INTEGER.check("threads", threads, optional=True)


def run(
    solver: Any,
    problem: BilevelProblem | str,
    *,
    max_iters: int | None = None,
    max_time: float | None = None,
    max_ll_iters: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    seed: int = 0,
    eval_every: int | None = None,
    threads: int | None = None,
    divergence_factor: float = 1e10,
    progress: bool = False,
    problem_params: dict[str, Any] | None = None,
    solver_config: dict[str, Any] | None = None,
    exact: bool = True,
    apply_protocol: bool = True,
) -> RunResult:
    """Run one solver on one problem until its stopping rule, a budget, divergence or an error.

    ``solver`` and ``problem`` are objects, or registry names (then built with ``problem_params``,
    ``solver_config``, ``seed``, ``device`` and ``dtype``). Budgets: upper iterations (default: the
    solver's paper setting), solver wall time in seconds, cumulative lower-level iterations; time and
    lower-level budgets are checked inside the counted oracles, so a run overruns them by at most one
    oracle call (0 stops at the first one: the trace holds the initial point only). ``threads`` sets
    torch's intra-op threads for this run (restored afterwards; None keeps the current setting).
    ``exact``: the harness's exact evaluation (``bench/evaluation.py``; off the clock and uncounted, so
    False changes no count and no solver time, only leaves the exact columns NaN and the verdict unjudged).
    ``apply_protocol=False``: a solver name's ``solver_config`` is already resolved (a sweep's job, see
    :func:`solver_config_for`) and is used as it is.
    """
    _check_budgets(max_iters, max_time, max_ll_iters, eval_every, threads)
    if isinstance(problem, str):
        params = dict(problem_params or {})
        params.setdefault("seed", seed)
        if device is not None:
            params["device"] = device
        if dtype is not None:
            params["dtype"] = dtype
        problem = problem_registry.make_problem(problem, **params)
    elif device is not None and torch.device(device) != problem.device:
        raise ValueError(f"device={device!r} but the problem lives on {problem.device}")
    if isinstance(solver, str) and not apply_protocol:
        solver = solver_registry.make_solver(solver, **(solver_config or {}))
    elif isinstance(solver, str):
        solver = make_solver_for(solver, problem, **(solver_config or {}))
    else:
        protocols.check_solver(solver, problem)  # the object path must not silently differ from the name path
    check_applicable(type(solver), problem)  # a lower-level capability the solver needs and the problem lacks
    why = problem.config_refusal(dataclasses.asdict(solver))  # a setting this lower level cannot honour
    if why is not None:
        raise ValueError(f"solver {solver.name!r} on {problem.name}: {why}")
    if max_iters is None:
        max_iters = solver.default_max_iters
    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _loop(
            solver,
            problem,
            max_iters,
            max_time,
            max_ll_iters,
            seed,
            eval_every,
            divergence_factor,
            progress,
            exact=exact,
        )
    finally:
        torch.set_num_threads(saved_threads)


def _loop(
    solver: Any,
    problem: BilevelProblem,
    max_iters: int,
    max_time: float | None,
    max_ll_iters: int | None,
    seed: int,
    eval_every: int | None,
    divergence_factor: float,
    progress: bool,
    *,
    exact: bool = True,
) -> RunResult:
    torch.manual_seed(seed)
    ident = provenance.identity(solver, problem, seed)
    evaluator = evaluation.Evaluator(problem, eval_every, enabled=exact)
    problem.counters.reset()
    clock = _Clock(problem.device)
    rows: list[dict[str, Any]] = []
    state = None
    status, message = "running", ""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iters, desc=f"{problem.name}/{solver.name}", leave=False)

    def record(iteration: int, partial: bool = False) -> None:
        row: dict[str, Any] = dict(iteration=iteration, wall_time=clock.elapsed)
        row.update(problem.counters.snapshot())
        for key in (
            "upper_value",
            "hypergrad_norm",
            "step_size",
            "eps",
            "eps_floor",
            "delta",
            "backtracks",
            "accepted",
        ):
            row[key] = getattr(state, key)
        row["partial"] = partial
        row["status"] = "running"
        final = status != "running"
        due = final or evaluator.due(iteration)
        row.update(evaluator.evaluate(state.theta) if due else evaluation.nan_row())
        if iteration % (eval_every or 1) == 0 or final:  # the problem's own metrics are cheap
            with torch.no_grad(), problem.uncounted():
                row.update(problem.metrics(state.theta, state.x))
        rows.append(row)

    def armed():
        """The problem's budget for the next solver call: what is left of the solver time."""
        deadline = None if max_time is None else time.perf_counter() + (max_time - clock.elapsed)
        return problem.budget(deadline, max_ll_iters)

    completed = 0
    try:
        try:
            with armed(), clock:
                state = solver.init(problem)
        except BudgetExhausted as exc:
            # Cut inside init: the initial point, valued off the clock, is the last accepted iterate.
            with torch.no_grad(), problem.uncounted():
                value = problem.upper_value(problem.theta0, problem.x0)
            state = SolverState(theta=problem.theta0, x=problem.x0, upper_value=value, accepted=False)
            status, message = "budget", f"{exc} reached during init"
            record(0, partial=True)
        if status == "running":
            reference = (state.upper_value, float(torch.linalg.vector_norm(state.theta)))
            record(0)
        for k in range(1, max_iters + 1):
            if status != "running":
                break
            if max_time is not None and clock.elapsed >= max_time:
                status, message = "budget", "max_time"
                break
            if max_ll_iters is not None and problem.counters.ll_iters >= max_ll_iters:
                status, message = "budget", "max_ll_iters"
                break
            try:
                with armed(), clock:
                    new_state = solver.update(problem, state)
            except BudgetExhausted as exc:
                status, message = "budget", f"{exc} reached during upper iteration {k}"
                record(completed, partial=True)
                break
            state, completed = new_state, k
            theta_norm = float(torch.linalg.vector_norm(state.theta))
            what = _divergence(state.upper_value, theta_norm, reference, divergence_factor)
            if what:
                status, message = "diverged", f"{what} at iteration {k}"
            elif state.converged and state.stalled:
                status = "stalled"
                message = f"stopping rule fired without certified progress at iteration {k}"
            elif state.converged:
                status = "converged"
            record(k)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(F=f"{state.upper_value:.4g}", t=f"{clock.elapsed:.1f}s")
        else:
            if status == "running":
                status, message = "budget", "max_iters"
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a failing run is recorded, the sweep goes on
        status, message = "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
        if state is None:
            raise
        record(len(rows))
    finally:
        if bar is not None:
            bar.close()

    if rows:
        rows[-1]["status"] = status
        if math.isnan(rows[-1]["exact_upper_value"]) and math.isnan(rows[-1]["eval_time"]):
            rows[-1].update(evaluator.evaluate(state.theta))  # the last row is always evaluated
        if any(name not in rows[-1] for name in problem.metric_names):
            with torch.no_grad(), problem.uncounted():
                rows[-1].update(problem.metrics(state.theta, state.x))
    trace = pd.DataFrame(rows)
    for name in problem.metric_names:
        if name not in trace:
            trace[name] = math.nan
    for key, value in ident.items():
        trace[key] = value
    trace["verdict"] = verdict = (
        verdicts.harness_verdict(trace, status)
        if problem.evaluation_unavailable is None or status in verdicts.FAILED
        else verdicts.NOT_EVALUATED
    )
    ident = {**ident, "verdict": verdict}
    return RunResult(
        theta=state.theta.detach(),
        x=state.x.detach(),
        trace=trace,
        status=status,
        message=message,
        info=ident,
    )
