"""Benchmark kernels shared by the asv suite (``studies/asv``) and the pytest-benchmark tests.

A *case* names a problem instance: ``"deconv1d"`` (the paper's §4.1 defaults) or ``"deblur2d-<S>"`` (an S×S
``deblur2d``, only when that problem is registered). :func:`prepare` builds the instance once per
(case, device) and process, with MAID's state after ``init`` (x̃ at ε₀) and the adjoint q at δ₀ — the
point at which every kernel below is evaluated. Construction is never timed: asv calls :func:`prepare`
from ``setup`` and the pytest benchmarks outside the timed call.

Kernels (each returns what the caller asserts on):

* :func:`ll_iteration` — one lower-level (prox-)gradient iteration incl. its certificate;
* :func:`hvp` — one Hessian-vector product H v (counted oracle, active set applied);
* :func:`cg_solve` — one cold-started CG solve of H q = ∇_x g to MAID's δ₀ (≤ ``cg_max_iters``);
* :func:`hypergradient` — assembly z = ∂_θ g − Jᵀq + ∇r from (x̃, q) (Algorithm 1, step 3);
* :func:`inexact_hypergradient` — Algorithm 1 complete: warm lower solve to ε₀, warm CG to δ₀, assembly;
* :func:`upper_iteration` — one ``solver.update`` (MAID, IFT: from the fixed state after ``init``; LISTA:
  from a fresh ``init`` state, because its update consumes the autograd graph of the state).

GPU: every kernel ends with :func:`sync` (``torch.cuda.synchronize`` on CUDA, a no-op on the CPU) so a
clock read after it measures finished work; :func:`prepare` synchronises too, and warms each kernel up
once (CUDA context, cuBLAS/cuFFT plans, allocator) before anything is measured.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

import problems
from bench.harness import make_solver_for
from problems.base import BilevelProblem

#: image sizes of the 2D timing cases (only used when ``deblur2d`` is registered)
SIZES_2D = (64, 128)
SOLVER_NAMES = ("maid", "ift", "lista")


# ---------------------------------------------------------------------------------------------- cases
def has_problem(name: str) -> bool:
    return name in problems.list_problems()


def has_2d() -> bool:
    return has_problem("deblur2d")


def case_names(sizes: tuple[int, ...] = SIZES_2D) -> list[str]:
    """``deconv1d`` plus ``deblur2d-<S>`` for each size when ``deblur2d`` is registered."""
    return ["deconv1d"] + ([f"deblur2d-{s}" for s in sizes] if has_2d() else [])


def devices() -> list[str]:
    """``cpu``, plus ``cuda`` when a CUDA device is visible."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def image_size_params(problem: str, size: int) -> dict[str, Any]:
    """The constructor parameters that make ``problem`` an size×size image problem."""
    params = problems.problem_parameters(problem)
    if "size" in params:
        return {"size": (size, size)}
    if "height" in params and "width" in params:
        return {"height": size, "width": size}
    raise ValueError(f"{problem}: no 'size' (or 'height'/'width') parameter in {sorted(params)}")


def make_case(case: str, device: str = "cpu") -> BilevelProblem:
    """A fresh problem instance for ``case`` (see the module docstring) on ``device``."""
    name, _, size = case.partition("-")
    params: dict[str, Any] = {"device": device}
    if size:
        params.update(image_size_params(name, int(size)))
    return problems.make_problem(name, **params)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, restoring the previous setting after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def sync(device: torch.device | str) -> None:
    """Wait for queued CUDA work (call before reading a clock); no-op elsewhere."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device | str = "cpu") -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after one warm-up call (outside the
    measurement); queued CUDA work is waited for before every clock read."""
    fn()
    samples = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


# ------------------------------------------------------------------------------------------ prepared state
@dataclass
class Prepared:
    case: str
    problem: BilevelProblem
    maid: Any  # the MAID solver (the problem family's defaults)
    theta: Tensor  # θ₀
    x: Tensor  # x̃ after MAID's init (lower level at ε₀)
    q: Tensor  # adjoint at (θ₀, x̃), CG to δ₀
    eps: float
    delta: float
    v: Tensor  # a fixed direction for the Hessian-vector product (the right-hand side ∇_x g)

    @property
    def device(self) -> torch.device:
        return self.problem.device


@functools.cache
def prepare(case: str, device: str = "cpu") -> Prepared:
    """Build the case once per process (cached), evaluate every kernel once (warm-up), synchronise."""
    problem = make_case(case, device)
    maid = make_solver_for("maid", problem)
    state = maid.init(problem)
    theta, x = state.theta, state.x
    v = problem.adjoint_rhs(theta, x)
    # a relative 1e-3 adjoint: MAID's δ₀ = 1 can exceed ‖∇ₓg‖ (the 2D default, certified), giving q = 0
    # and a hypergradient kernel that multiplies zeros
    tol = min(state.delta, 1e-3 * float(torch.linalg.vector_norm(v)))
    q, _ = problem.adjoint_solve(theta, x, tol, maid.cg_max_iters)
    prep = Prepared(case, problem, maid, theta, x, q, state.eps, state.delta, v)
    for kernel in (ll_iteration, hvp, cg_solve, hypergradient, inexact_hypergradient):
        kernel(prep)
    sync(device)
    return prep


@dataclass
class PreparedSolver:
    case: str
    problem: BilevelProblem  # an instance of its own: solver iterations do not disturb the kernels' caches
    solver: Any
    state: Any  # the state after ``init``

    @property
    def device(self) -> torch.device:
        return self.problem.device

    def fresh_state(self) -> Any:
        """A state ``update`` may consume: LISTA's update backpropagates through (and frees) the graph
        held by its state, so it gets a new ``init`` state; MAID's and IFT's states are immutable."""
        if self.solver.name == "lista":
            state = self.solver.init(self.problem)
            sync(self.device)
            return state
        return self.state


@functools.cache
def prepare_solver(case: str, solver: str, device: str = "cpu") -> PreparedSolver:
    """The case with ``solver`` initialised (cached per process); one warm-up update already done."""
    problem = make_case(case, device)
    slv = make_solver_for(solver, problem)
    prep = PreparedSolver(case, problem, slv, slv.init(problem))
    upper_iteration(prep, prep.fresh_state())  # warm-up, outside any measurement
    sync(device)
    return prep


# ---------------------------------------------------------------------------------------------- kernels
def ll_iteration(prep: Prepared) -> Tensor:
    """One lower-level iteration from x̃ at θ₀ (ε = 0: the certificate never stops it early)."""
    res = prep.problem.ll_solve(prep.theta, prep.x, 0.0, 1, prep.maid.ll_step)
    sync(prep.device)
    return res.x


def hvp(prep: Prepared) -> Tensor:
    with torch.no_grad():
        out = prep.problem.hvp(prep.theta, prep.x, prep.v)
    sync(prep.device)
    return out


def cg_solve(prep: Prepared) -> tuple[Tensor, float]:
    """Cold-started CG to δ₀; returns (q, residual norm)."""
    out = prep.problem.adjoint_solve(prep.theta, prep.x, prep.delta, prep.maid.cg_max_iters)
    sync(prep.device)
    return out


def hypergradient(prep: Prepared) -> Tensor:
    out = prep.problem.hypergradient_from(prep.theta, prep.x, prep.q)
    sync(prep.device)
    return out


def inexact_hypergradient(prep: Prepared) -> Tensor:
    """MAID's Algorithm 1 at (ε₀, δ₀), warm-started from x̃ and q."""
    problem, maid = prep.problem, prep.maid
    res = problem.ll_solve(prep.theta, prep.x, prep.eps, maid.ll_max_iters, maid.ll_step)
    q, _ = problem.adjoint_solve(prep.theta, res.x, prep.delta, maid.cg_max_iters, prep.q)
    out = problem.hypergradient_from(prep.theta, res.x, q)
    sync(prep.device)
    return out


def upper_iteration(prep: PreparedSolver, state: Any) -> Any:
    """One upper iteration ``solver.update`` from ``state`` (take it from ``prep.fresh_state()``)."""
    out = prep.solver.update(prep.problem, state)
    sync(prep.device)
    return out


KERNELS: dict[str, Callable[[Prepared], Any]] = {
    "ll_iteration": ll_iteration,
    "hvp": hvp,
    "cg_solve": cg_solve,
    "hypergradient": hypergradient,
    "inexact_hypergradient": inexact_hypergradient,
}


# ---------------------------------------------------------------------------------------------- memory
def autograd_saved_bytes(fn: Callable[[], Any]) -> int:
    """Bytes of tensors saved for backward while ``fn`` runs (autograd graphs it builds: LISTA's
    unrolled network; IFT/MAID only build short-lived graphs inside oracles). Deterministic, unlike RSS."""
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total
