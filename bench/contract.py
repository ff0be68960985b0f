"""The solver contract: what the harness relies on, checked on any solver (a built-in or a plug-in's).

``check_solver(cls_or_name) -> list[CheckResult]`` runs the solver a few times on the validation problem
``quadratic`` (closed-form x̂(θ), planted θ*; ``problems/validation.py``) with every oracle of the problem
instrumented, and checks:

* ``counts`` — the counters equal the real calls: each counter moved by exactly the number of times the
  maths behind it ran (∇_x f for ``ll_iters``, H v for ``cg_iters``, g for ``ul_evals``, ∇_x g for
  ``ul_grad_evals``, the hypergradient assembly for ``hypergrad_evals``), evaluation excluded;
* ``oracles`` — no oracle bypassed: no maths method called from outside a counted oracle, and no θ that
  moves while every counter stays at zero (a solver computing with the problem's tensors directly);
* ``budget`` — budgets hold inside an iteration: under a lower-level cap a few steps past what ``init``
  used, the run stops with status ``budget`` at or below the cap, and no oracle work goes on after an
  oracle said the budget is spent
  (a solver that catches :class:`~problems.base.BudgetExhausted` and carries on);
* ``time`` — under a tiny ``max_time`` the solver time stays within the time limit plus the longest single
  oracle call and ``TIME_SLACK_S``;
* ``determinism`` — two runs give the same trace, timing columns aside;
* ``theta_star`` — the solver, with its defaults, reaches θ* (relative error ``THETA_STAR_TOL``) within
  ``THETA_STAR_ITERS`` upper iterations;
* ``statuses`` — every row's status is one of the harness's, only the last is final, and it is not
  ``error``.

``assert_solver_contract`` raises an AssertionError listing the failed contracts (pytest-friendly);
``adpbench check-solver NAME [--plugin ...]`` prints the list and exits with status 1 on a failure.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

import problems as problem_registry
import solvers as solver_registry
from bench.harness import FINAL_STATUSES, STATUSES, RunResult, run
from problems.base import BilevelProblem, BudgetExhausted

#: the validation instance: cond(M) = 2 makes the fixed upper step 1/‖M‖² contract by 3/4 per iteration,
#: so every sound solver reaches θ* with its defaults in a few dozen iterations (n = 5: a run takes ms)
PROBLEM = "quadratic"
PROBLEM_PARAMS = {"n": 5, "m1": 8, "m2": 8, "cond": 2.0, "seed": 0}
#: relative error ‖θ − θ*‖/‖θ*‖ a solver must reach with its defaults: 1e-3 leaves room for the solvers
#: whose default lower accuracy ε biases the hypergradient (a fixed ε of 1e-6 biases θ by far less)
THETA_STAR_TOL = 1e-3
#: upper iterations allowed for that: 4× what the 3/4 contraction needs from ‖θ₀ − θ*‖ = 1
THETA_STAR_ITERS = 400
#: upper iterations of the counted runs (counts, oracles, determinism, statuses)
CHECK_ITERS = 20
#: the lower-level cap of the budget check: what the solver's init used plus this many steps, fewer than
#: one warm-started lower solve needs, so the cap falls inside the first upper iteration
LL_MARGIN = 2
#: the time limit of the time check, and the slack on top of the longest oracle call (the harness's own
#: bookkeeping and a loaded machine's scheduling; a solver that computes a second between oracles exceeds
#: it many times over)
TIME_LIMIT_S = 0.05
TIME_SLACK_S = 0.25
#: trace columns that differ between two runs of the same computation (clocks)
TIMING_COLUMNS = ("wall_time", "eval_time")

#: the counted oracles: public method → the maths method whose calls inside it are that counter's work
_LEAVES = {
    "ll_grad": ("_ll_grad", "ll_iters"),
    "ll_gap_grad_theta": ("_ll_grad", "ll_iters"),
    "hvp": ("_hvp", "cg_iters"),
    "upper_value": ("ul_g", "ul_evals"),
    "upper_value_graph": ("ul_g", "ul_evals"),
    "ul_grad_x": ("_ul_grad_x", "ul_grad_evals"),
    "adjoint_rhs": ("_ul_grad_x", "ul_grad_evals"),
    "hypergradient_from": ("_hypergradient_from", "hypergrad_evals"),
}
#: counted methods made of other oracles (their own maths, e.g. tangent_solve's right-hand side, is the
#: problem's business, not a bypass)
_CONTAINERS = ("ll_solve", "adjoint_solve", "tangent_solve", "ll_unrolled")
#: the maths methods a solver must reach only through the oracles
_MATHS = ("_ll_grad", "_hvp", "ul_g", "ul_reg", "_ul_grad_x", "_hypergradient_from", "_ll_grad_jvp_theta")
#: counter ↔ maths method for the counts check
_COUNTER_OF = {
    "ll_iters": "_ll_grad",
    "cg_iters": "_hvp",
    "ul_evals": "ul_g",
    "ul_grad_evals": "_ul_grad_x",
    "hypergrad_evals": "_hypergradient_from",
}


@dataclass(frozen=True)
class CheckResult:
    """One contract: its name, whether it held, and what was seen."""

    contract: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.contract:<12} {self.detail}"


class Probe:
    """Instruments one problem instance: counts each maths method's real calls by the innermost counted
    oracle they ran in, flags maths called from outside every oracle, times each oracle call and watches
    the harness's budget contexts for work done after an oracle raised BudgetExhausted."""

    def __init__(self, problem: BilevelProblem) -> None:
        self.problem = problem
        self.stack: list[str] = []
        self.evaluating = 0
        self.real = dict.fromkeys(_COUNTER_OF, 0)
        self.bypassed: dict[str, int] = {}
        self.longest_oracle_s = 0.0
        self.exhausted = False
        self.after_exhausted = 0  # oracle calls after one raised, inside the same solver call
        self.swallowed = 0  # solver calls that returned normally after an oracle raised
        for name in _LEAVES:
            self._wrap_oracle(name)
        for name in _CONTAINERS:
            self._wrap_container(name)
        for name in _MATHS:
            self._wrap_maths(name)
        self._wrap_contexts()

    def _wrap_oracle(self, name: str) -> None:
        original = getattr(self.problem, name)

        def oracle(*args: Any, **kwargs: Any) -> Any:
            if self.evaluating:
                return original(*args, **kwargs)
            if self.exhausted:
                self.after_exhausted += 1
            self.stack.append(name)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            except BudgetExhausted:
                self.exhausted = True
                raise
            finally:
                self.stack.pop()
                self.longest_oracle_s = max(self.longest_oracle_s, time.perf_counter() - start)

        setattr(self.problem, name, oracle)

    def _wrap_container(self, name: str) -> None:
        original = getattr(self.problem, name)

        def container(*args: Any, **kwargs: Any) -> Any:
            self.stack.append(name)
            try:
                return original(*args, **kwargs)
            finally:
                self.stack.pop()

        setattr(self.problem, name, container)

    def _wrap_maths(self, name: str) -> None:
        original = getattr(self.problem, name)
        counters = {c for c, m in _COUNTER_OF.items() if m == name}

        def maths(*args: Any, **kwargs: Any) -> Any:
            if not self.evaluating:
                if not self.stack:
                    self.bypassed[name] = self.bypassed.get(name, 0) + 1
                leaf = next((s for s in reversed(self.stack) if s in _LEAVES), None)
                for counter in counters:
                    # the leaf's own maths is its counter's work; maths inside another leaf is that
                    # leaf's (e.g. ∇_x f inside an autograd H v); maths outside any leaf is uncounted work
                    if (leaf is None and not self.stack) or (
                        leaf is not None and _LEAVES[leaf][1] == counter
                    ):
                        self.real[counter] += 1
            return original(*args, **kwargs)

        setattr(self.problem, name, maths)

    def _wrap_contexts(self) -> None:
        uncounted, budget = self.problem.uncounted, self.problem.budget

        @contextlib.contextmanager
        def evaluation() -> Iterator[None]:
            self.evaluating += 1
            try:
                with uncounted():
                    yield
            finally:
                self.evaluating -= 1

        @contextlib.contextmanager
        def armed(*args: Any, **kwargs: Any) -> Iterator[None]:
            with budget(*args, **kwargs):
                self.exhausted = False
                try:
                    yield
                except BudgetExhausted:
                    raise
                else:
                    if self.exhausted:
                        self.swallowed += 1
                finally:
                    self.exhausted = False

        self.problem.uncounted = evaluation
        self.problem.budget = armed


def _solver_factory(solver: type | str, config: dict[str, Any]) -> tuple[str, Callable[[], Any]]:
    cls = solver_registry.solver_class(solver) if isinstance(solver, str) else solver
    return str(getattr(cls, "name", cls.__name__)), lambda: cls(**config)


def _probed_run(make: Callable[[], Any], **budget: Any) -> tuple[RunResult, Probe, BilevelProblem]:
    problem = problem_registry.make_problem(PROBLEM, **PROBLEM_PARAMS)
    probe = Probe(problem)
    return run(make(), problem, seed=PROBLEM_PARAMS["seed"], **budget), probe, problem


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def _counts(result: RunResult, probe: Probe) -> CheckResult:
    last = result.trace.iloc[-1]
    wrong = [
        f"{c} {int(last[c])} counted, {probe.real[c]} real"
        for c in _COUNTER_OF
        if int(last[c]) != probe.real[c]
    ]
    shown = ", ".join(f"{c}={probe.real[c]}" for c in _COUNTER_OF if probe.real[c])
    if wrong:
        return CheckResult("counts", False, "counters differ from the real calls: " + "; ".join(wrong))
    return CheckResult("counts", True, f"counters equal the real calls ({shown or 'none'})")


def _oracles(result: RunResult, probe: Probe, problem: BilevelProblem) -> CheckResult:
    if probe.bypassed:
        calls = ", ".join(f"{k} ×{v}" for k, v in sorted(probe.bypassed.items()))
        return CheckResult("oracles", False, f"maths called outside the counted oracles: {calls}")
    last = result.trace.iloc[-1]
    counted = sum(int(last[c]) for c in problem.counters.snapshot())
    moved = not torch.equal(result.theta.to(problem.theta0.dtype), problem.theta0)
    if moved and counted == 0:
        return CheckResult(
            "oracles", False, "θ moved while every counter stayed at 0 (the problem's tensors used directly?)"
        )
    return CheckResult("oracles", True, "every maths call went through a counted oracle")


def _statuses(result: RunResult) -> CheckResult:
    column = list(result.trace["status"])
    bad = sorted({s for s in column if s not in STATUSES})
    if bad:
        return CheckResult(
            "statuses", False, f"unknown status(es) {', '.join(bad)}; valid: {', '.join(STATUSES)}"
        )
    if any(s != "running" for s in column[:-1]) or column[-1] not in FINAL_STATUSES:
        return CheckResult("statuses", False, f"only the last row may be final, got {column}")
    if column[-1] == "error" or result.status != column[-1]:
        return CheckResult(
            "statuses", False, f"run ended {result.status!r}: {result.message.splitlines()[:1]}"
        )
    return CheckResult("statuses", True, f"rows running, then {column[-1]!r}")


def _theta_star(make: Callable[[], Any]) -> CheckResult:
    result, _, problem = _probed_run(make, max_iters=THETA_STAR_ITERS)
    err = float(torch.linalg.vector_norm(result.theta - problem.theta_star) / problem.theta_star.norm())
    iters = len(result.trace) - 1
    ok = err <= THETA_STAR_TOL and result.status != "error"
    verb = "reached" if ok else "missed"
    return CheckResult(
        "theta_star",
        ok,
        f"{verb} θ*: relative error {err:.2e} (≤ {THETA_STAR_TOL:g} needed) after {iters} iterations, "
        f"status {result.status}",
    )


def _budget(make: Callable[[], Any], at_init: int) -> CheckResult:
    cap = at_init + LL_MARGIN
    result, probe, _ = _probed_run(make, max_iters=THETA_STAR_ITERS, max_ll_iters=cap)
    used = int(result.trace.iloc[-1]["ll_iters"])
    if probe.after_exhausted or probe.swallowed:
        return CheckResult(
            "budget",
            False,
            f"the budget was spent but the solver went on: {probe.after_exhausted} oracle call(s) after "
            f"BudgetExhausted, {probe.swallowed} iteration(s) returned as if complete (let it propagate)",
        )
    if used > cap or result.status != "budget":
        return CheckResult(
            "budget", False, f"max_ll_iters={cap}: {used} lower iterations, status {result.status!r}"
        )
    return CheckResult("budget", True, f"max_ll_iters={cap} held: {used} used, {result.message}")


def _time(make: Callable[[], Any]) -> CheckResult:
    result, probe, _ = _probed_run(make, max_iters=10**6, max_time=TIME_LIMIT_S)
    spent = float(result.trace.iloc[-1]["wall_time"])
    allowed = TIME_LIMIT_S + probe.longest_oracle_s + TIME_SLACK_S
    if spent > allowed:
        return CheckResult(
            "time",
            False,
            f"max_time={TIME_LIMIT_S:g} s: {spent:.3f} s of solver time (allowed {allowed:.3f} s: the "
            f"limit, the longest oracle call and {TIME_SLACK_S:g} s), status {result.status!r}",
        )
    return CheckResult("time", True, f"max_time={TIME_LIMIT_S:g} s held: {spent:.3f} s of solver time")


def _determinism(first: pd.DataFrame, make: Callable[[], Any]) -> CheckResult:
    second, _, _ = _probed_run(make, max_iters=CHECK_ITERS)
    a, b = (t.drop(columns=[c for c in TIMING_COLUMNS if c in t]) for t in (first, second.trace))
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        return CheckResult("determinism", False, f"traces of shapes {a.shape} and {b.shape}")
    differ = [c for c in a.columns if not a[c].astype(str).equals(b[c].astype(str))]
    if differ:
        return CheckResult("determinism", False, f"two runs differ in {', '.join(differ)}")
    return CheckResult("determinism", True, f"two runs gave the same {len(a)}-row trace (timing aside)")


def _guarded(contract: str, check: Callable[[], CheckResult]) -> CheckResult:
    try:
        return check()
    except Exception as exc:  # a contract that cannot even run fails, naming why
        return CheckResult(contract, False, f"raised {_first_line(exc)}")


def check_solver(solver: type | str, config: dict[str, Any] | None = None) -> list[CheckResult]:
    """Every contract of the module docstring on a solver class or registered name (``config``: fields
    set on top of its defaults). Returns one :class:`CheckResult` per contract, in order."""
    name, make = _solver_factory(solver, dict(config or {}))
    out: list[CheckResult] = []
    try:
        result, probe, problem = _probed_run(make, max_iters=CHECK_ITERS)
    except Exception as exc:
        reason = f"the solver could not run on {PROBLEM}: {_first_line(exc)}"
        return [CheckResult(c, False, reason) for c in CONTRACTS]
    out.append(_counts(result, probe))
    out.append(_oracles(result, probe, problem))
    at_init = int(result.trace.iloc[0]["ll_iters"])
    out.append(_guarded("budget", lambda: _budget(make, at_init)))
    out.append(_guarded("time", lambda: _time(make)))
    out.append(_guarded("determinism", lambda: _determinism(result.trace, make)))
    out.append(_guarded("theta_star", lambda: _theta_star(make)))
    out.append(_statuses(result))
    return out


#: the contracts, in the order :func:`check_solver` reports them
CONTRACTS = ("counts", "oracles", "budget", "time", "determinism", "theta_star", "statuses")


def render(name: str, checks: list[CheckResult]) -> str:
    """The readable pass/fail list ``adpbench check-solver`` prints."""
    failed = [c.contract for c in checks if not c.passed]
    head = f"solver {name!r} on {PROBLEM} {PROBLEM_PARAMS}:"
    tail = f"{len(checks) - len(failed)}/{len(checks)} contracts hold" + (
        f"; failed: {', '.join(failed)}" if failed else ""
    )
    return "\n".join([head, *(f"  {c.line()}" for c in checks), tail])


def assert_solver_contract(solver: type | str, config: dict[str, Any] | None = None) -> None:
    """pytest helper: an AssertionError listing every failed contract (nothing when all hold)."""
    checks = check_solver(solver, config)
    if not all(c.passed for c in checks):
        name = solver if isinstance(solver, str) else getattr(solver, "name", solver.__name__)
        raise AssertionError(render(str(name), checks))


__all__ = ["CONTRACTS", "CheckResult", "Probe", "assert_solver_contract", "check_solver", "render"]
