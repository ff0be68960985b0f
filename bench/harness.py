"""The harness (benchopt's "plumbing"): loop, clock, budget, stopping, divergence and records.

Solvers advance one upper iteration per ``update``; the harness times only that call (with a CUDA
synchronise before every clock read), then reads counters from the problem and metrics from an
untimed evaluation. One trace row per upper iteration (row 0 = the initial state after ``init``).
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor

import problems as problem_registry
import solvers as solver_registry
from bench import provenance
from problems.base import BilevelProblem

#: a run's status: "converged" and "stalled" both mean the solver's stopping rule fired, "stalled" without
#: certified progress (e.g. MAID whose ε fell below its tolerance with no step accepted)
STATUSES = ("running", "converged", "stalled", "budget", "diverged", "error")


@dataclass
class RunResult:
    theta: Tensor
    x: Tensor
    trace: pd.DataFrame
    status: str
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def make_solver_for(name: str, problem: BilevelProblem, **config: Any) -> Any:
    """A solver with the problem family's defaults for it (e.g. the 2D MAID settings) under ``config``."""
    defaults = dict(getattr(problem, "solver_defaults", {}).get(name, {}))
    defaults.update(config)
    return solver_registry.make_solver(name, **defaults)


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


def _is_diverged(value: float, theta_norm: float, reference: tuple[float, float], factor: float) -> bool:
    """Non-finite, or the upper value or ‖θ‖ grew by ``factor`` over the start (F may stay bounded
    while θ explodes, e.g. on deconv1d where x̂ → 0 as ‖B‖ → ∞)."""
    if not (math.isfinite(value) and math.isfinite(theta_norm)):
        return True
    return value > factor * max(abs(reference[0]), 1.0) or theta_norm > factor * max(reference[1], 1.0)


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
    eval_every: int = 1,
    divergence_factor: float = 1e10,
    progress: bool = False,
    problem_params: dict[str, Any] | None = None,
    solver_config: dict[str, Any] | None = None,
) -> RunResult:
    """Run one solver on one problem until its stopping rule, a budget, divergence or an error.

    ``solver`` and ``problem`` are objects, or registry names (then built with ``problem_params``,
    ``solver_config``, ``seed``, ``device`` and ``dtype``). Budgets: upper iterations (default: the
    solver's paper setting), solver wall time in seconds, cumulative lower-level iterations.
    """
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
    if isinstance(solver, str):
        solver = make_solver_for(solver, problem, **(solver_config or {}))
    if max_iters is None:
        max_iters = solver.default_max_iters
    for name, value in (
        ("max_iters", max_iters),
        ("max_time", max_time),
        ("max_ll_iters", max_ll_iters),
    ):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be ≥ 0 or None, got {value}")
    if eval_every < 1:
        raise ValueError(f"eval_every must be ≥ 1, got {eval_every}")
    torch.manual_seed(seed)

    ident = provenance.identity(solver, problem, seed)
    problem.counters.reset()
    clock = _Clock(problem.device)
    rows: list[dict[str, Any]] = []
    state = None
    status, message = "running", ""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iters, desc=f"{problem.name}/{solver.name}", leave=False)

    def record(iteration: int) -> None:
        row: dict[str, Any] = dict(iteration=iteration, wall_time=clock.elapsed)
        row.update(problem.counters.snapshot())
        for key in (
            "upper_value",
            "hypergrad_norm",
            "step_size",
            "eps",
            "delta",
            "backtracks",
            "accepted",
        ):
            row[key] = getattr(state, key)
        row["status"] = "running"
        if iteration % eval_every == 0 or status != "running":
            with torch.no_grad(), problem.uncounted():
                row.update(problem.metrics(state.theta, state.x))
        rows.append(row)

    try:
        with clock:
            state = solver.init(problem)
        reference = (state.upper_value, float(torch.linalg.vector_norm(state.theta)))
        record(0)
        for k in range(1, max_iters + 1):
            if max_time is not None and clock.elapsed >= max_time:
                status = "budget"
                break
            if max_ll_iters is not None and problem.counters.ll_iters >= max_ll_iters:
                status = "budget"
                break
            with clock:
                state = solver.update(problem, state)
            theta_norm = float(torch.linalg.vector_norm(state.theta))
            if _is_diverged(state.upper_value, theta_norm, reference, divergence_factor):
                status, message = (
                    "diverged",
                    f"upper value {state.upper_value:.3g} at iteration {k}",
                )
            elif state.converged and state.stalled:
                status = "stalled"
                message = f"stopping rule fired without certified progress at iteration {k}"
            elif state.converged:
                status = "converged"
            record(k)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(F=f"{state.upper_value:.4g}", t=f"{clock.elapsed:.1f}s")
            if status != "running":
                break
        else:
            status = "budget"
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
        if any(name not in rows[-1] for name in problem.metric_names):
            with torch.no_grad(), problem.uncounted():
                rows[-1].update(problem.metrics(state.theta, state.x))
    trace = pd.DataFrame(rows)
    for name in problem.metric_names:
        if name not in trace:
            trace[name] = math.nan
    for key, value in ident.items():
        trace[key] = value
    return RunResult(
        theta=state.theta.detach(),
        x=state.x.detach(),
        trace=trace,
        status=status,
        message=message,
        info=ident,
    )
