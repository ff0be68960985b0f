"""pytest-benchmark micro-benchmarks of the hypergradient kernels and one upper iteration per solver.

The kernels are ``studies.microbench``'s (shared with the asv suite). pyproject's ``--benchmark-disable``
makes each run once, as a smoke test with assertions, in an ordinary ``pytest`` run. To measure:

    python -m pytest tests/regression/test_benchmarks.py --benchmark-enable --benchmark-only \
        --benchmark-json=/tmp/bench.json

(``--benchmark-enable`` is needed: it overrides the ``--benchmark-disable`` from addopts.) Problem
construction and warm-up (``microbench.prepare``) happen outside the timed calls; on CUDA each kernel
synchronises before returning, so the clock reads finished work.
"""

from __future__ import annotations

import math

import pytest
import torch

from studies import microbench as mb

needs_2d = pytest.mark.skipif(not mb.has_2d(), reason="deblur2d is not registered (problems.list_problems())")
CASES = [
    pytest.param("deconv1d", id="deconv1d"),
    pytest.param(f"deblur2d-{mb.SIZES_2D[0]}", id=f"deblur2d-{mb.SIZES_2D[0]}", marks=needs_2d),
]
DEVICES = [pytest.param("cpu", id="cpu")] + [
    pytest.param("cuda", id="cuda", marks=pytest.mark.gpu) for d in mb.devices() if d == "cuda"
]
ROUNDS = {"deconv1d": 30}  # pedantic rounds of one upper iteration; 2D cases: 3


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


@pytest.fixture(autouse=True)
def _one_thread_when_disabled(benchmark):
    """Smoke mode (``--benchmark-disable``): one torch thread. Two threads on a 2-core machine shared with
    other processes made one 2D LISTA iteration 40× slower here (docs/profiling.md); when measuring, the
    thread count is torch's default (set it with ``OMP_NUM_THREADS``)."""
    if benchmark.disabled:
        with mb.single_thread():
            yield
    else:
        yield


@pytest.fixture(params=CASES)
def case(request):
    return request.param


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture
def prep(case, device, benchmark):
    benchmark.group = f"{case}/{device}"
    benchmark.extra_info["torch_threads"] = torch.get_num_threads()
    return mb.prepare(case, device)


def test_ll_iteration(benchmark, prep):
    x = benchmark(mb.ll_iteration, prep)
    assert x.shape == prep.x.shape and _finite(x)


def test_hvp(benchmark, prep):
    hv = benchmark(mb.hvp, prep)
    assert hv.shape == prep.v.shape and _finite(hv)
    assert float(torch.vdot(prep.v.flatten(), hv.flatten())) > 0  # H is positive definite


def test_cg_solve(benchmark, prep):
    q, residual = benchmark(mb.cg_solve, prep)
    assert q.shape == prep.x.shape and _finite(q)
    assert residual <= prep.delta


def test_hypergradient(benchmark, prep):
    z = benchmark(mb.hypergradient, prep)
    assert z.shape == prep.theta.shape and _finite(z)
    assert float(torch.linalg.vector_norm(z)) > 0


def test_inexact_hypergradient(benchmark, prep):
    z = benchmark(mb.inexact_hypergradient, prep)
    assert z.shape == prep.theta.shape and _finite(z)
    # x̃ is already ε₀-accurate, so Algorithm 1 reproduces the prepared hypergradient closely
    ref = mb.hypergradient(prep)
    assert float(torch.linalg.vector_norm(z - ref)) <= 0.1 * float(torch.linalg.vector_norm(ref))


@pytest.mark.parametrize("solver", mb.SOLVER_NAMES)
def test_upper_iteration(benchmark, case, device, solver):
    benchmark.group = f"{case}/{device}/upper_iteration"
    benchmark.extra_info["torch_threads"] = torch.get_num_threads()
    ps = mb.prepare_solver(case, solver, device)

    def fresh():  # LISTA's update consumes its state's graph: a fresh state per round, untimed
        return (ps, ps.fresh_state()), {}

    state = benchmark.pedantic(mb.upper_iteration, setup=fresh, rounds=ROUNDS.get(case, 3), iterations=1)
    assert math.isfinite(state.upper_value) and _finite(state.theta)
    assert state.theta.shape == ps.state.theta.shape
    if solver == "maid":  # either a certified step was accepted, or MAID asked for more accuracy
        assert state.accepted or state.eps < ps.state.eps
    else:  # IFT and LISTA always step
        assert not torch.equal(state.theta, ps.state.theta)
