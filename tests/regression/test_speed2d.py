"""float32 end to end with an accuracy floor, host reads per solve, no repeated work in MAID,
CG preconditioners that leave the hypergradient unchanged, the tangent warm start (all CPU, fast)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.overrides import TorchFunctionMode

import bench
import problems
import solvers
from problems.linalg import conjugate_gradient
from problems.lower import FLOOR_FACTOR, LowerCaps, prox_gradient_solve

#: Tensor → host conversions: each one waits for the device
_READS = {"__float__", "__int__", "__bool__", "__index__", "item", "tolist", "numpy", "equal"}


class CountHostReads(TorchFunctionMode):
    """Counts every Tensor → Python read (each a host synchronisation on an accelerator)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in _READS:
            self.reads += 1
        return func(*args, **(kwargs or {}))


def _deblur(size=16, preset="certified", dtype=torch.float64, name="deblur2d"):
    return problems.make_problem(name, size=(size, size), preset=preset, dtype=dtype)


# ---------------------------------------------------------------------------------------------- float32
@pytest.mark.parametrize("name", ["deblur2d", "semiblind2d"])
@pytest.mark.parametrize("preset", ["authors", "certified"])
def test_float32_run_matches_float64_psnr(name, preset):
    """Every 2D protocol runs in float32 and ends within 0.05 dB PSNR of float64 (same instance)."""
    out = {}
    for dtype in ("float32", "float64"):
        res = bench.run(
            "maid", name, problem_params=dict(size=(16, 16), preset=preset), dtype=dtype, max_iters=2
        )
        assert res.x.dtype == getattr(torch, dtype) and res.theta.dtype == getattr(torch, dtype)
        out[dtype] = res.trace
    assert abs(out["float32"].psnr.iloc[-1] - out["float64"].psnr.iloc[-1]) < 0.05
    if preset == "authors":  # the authors' own FISTA loop (problems/deblur2d.py) has no floor
        return
    # the floor is recorded and scales with the dtype's machine epsilon
    f32, f64 = out["float32"].eps_floor.iloc[-1], out["float64"].eps_floor.iloc[-1]
    eps_ratio = torch.finfo(torch.float32).eps / torch.finfo(torch.float64).eps
    assert f32 / f64 == pytest.approx(eps_ratio, rel=0.2)


def test_float32_request_below_floor_is_clipped_not_stalled():
    """A request far below what float32 resolves stops at the floor (no 1 000-iteration stall window)."""
    p = _deblur(32, dtype=torch.float32)
    res = p.ll_solve(p.theta0, p.x0, 1e-12, 100_000)
    lip, mu = p.ll_lipschitz(p.theta0), p.ll_mu(p.theta0)
    floor = FLOOR_FACTOR * torch.finfo(torch.float32).eps * lip * float(p.x0.norm()) / mu
    assert floor <= res.eps_floor <= 1.1 * floor  # + the start's gradient norm, small at y
    assert res.converged and res.dist_bound <= res.eps_floor
    # a float64 solve to the same floor as a distance agrees: the float32 bound is a true bound
    ref = _deblur(32).ll_solve(p.theta0.double(), p.x0.double(), 1e-9, 100_000)
    assert float((res.x.double() - ref.x).norm()) <= res.dist_bound + ref.dist_bound


def test_float64_fista_is_not_stopped_while_converging():
    """FISTA's bound is not monotone; the old stall window stopped this solve at 1.67e-8."""
    p = _deblur(8, preset="authors")
    res = prox_gradient_solve(p, p.theta0, p.x0, 1e-10, 200_000, None, "fista")
    assert res.converged and res.dist_bound <= 1e-10 and res.iters > 1000
    assert res.eps_floor < 1e-10


# ---------------------------------------------------------------------------------------------- host reads
@pytest.mark.parametrize("k", [1, 8])
def test_lower_solve_reads_the_host_every_k_iterations(k):
    p = _deblur(16)
    p.ll_lipschitz(p.theta0)  # the per-θ set-up (cached) is not part of the loop

    def reads(n):
        p.counters.reset()
        with CountHostReads() as c:
            res = prox_gradient_solve(p, p.theta0, p.x0, 0.0, n, None, p.ll_momentum, check_every=k)
        assert res.iters == n and p.counters.ll_iters == n  # the counted work is the iterations run
        return c.reads

    n = 4 * k
    # checks at iteration 1 and every k-th: 1 + 4 reads for n = 4k (k = 1: one at each iteration)
    assert reads(n) - reads(1) == (n - 1 if k == 1 else 4)


@pytest.mark.parametrize("k", [1, 8])
def test_cg_reads_the_host_every_k_iterations(k):
    gen = torch.Generator().manual_seed(0)
    diag = torch.logspace(0, 6, 300, dtype=torch.float64)
    rhs = torch.randn(300, generator=gen, dtype=torch.float64)
    calls = []

    def matvec(v):
        calls.append(1)
        return diag * v

    def reads(n):
        calls.clear()
        with CountHostReads() as c:
            conjugate_gradient(matvec, rhs, None, 0.0, n, check_every=k)
        assert len(calls) == n
        return c.reads

    n = 4 * k
    assert reads(n) - reads(1) == (n - 1 if k == 1 else 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_lower_solve_syncs_on_cuda_only_at_checks():
    p = problems.make_problem("deblur2d", size=(16, 16), preset="certified", device="cuda")
    p.ll_lipschitz(p.theta0)
    k, n = 8, 32
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            prox_gradient_solve(p, p.theta0, p.x0, 0.0, n, None, p.ll_momentum, check_every=k)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(caught) <= 1 + n // k + 2  # the checks, plus the per-solve set-up reads


# ---------------------------------------------------------------------------------------------- MAID work
def test_maid_computes_ul_grad_once_per_point():
    """∇ₓg was computed twice per retry (the bound and the adjoint's right-hand side) and again
    at the start of the next update; now once per (θ, x) pair of tensors."""
    p = _deblur(16)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []  # the tensors themselves: ids stay unique
    original = p._ul_grad_x

    def spy(theta, x):
        seen.append((theta, x))
        return original(theta, x)

    p._ul_grad_x = spy
    solver = bench.harness.make_solver_for("maid", p)
    state = solver.init(p)
    for _ in range(3):
        seen.clear()
        state = solver.update(p, state)
        pairs = [(id(t), id(x)) for t, x in seen]
        assert len(pairs) == len(set(pairs)), "∇ₓg computed twice at one (θ, x)"
        assert len(seen) >= 1


@pytest.mark.parametrize("name", ["deconv1d", "deblur2d"])
def test_tangent_warm_start_keeps_the_iterates(name):
    """The tangent only changes where trial solves start: the same steps are accepted, values agree to ε."""
    kwargs = {} if name == "deconv1d" else dict(size=(16, 16), preset="certified")
    runs = {}
    for share in (None, 0.5):
        p = problems.make_problem(name, **kwargs)
        solver = bench.harness.make_solver_for("maid", p, tangent_share=share)
        res = bench.run(solver, p, max_iters=6)
        runs[share] = res.trace
    a, b = runs[None], runs[0.5]
    assert list(a.accepted) == list(b.accepted)
    assert b.upper_value.iloc[-1] == pytest.approx(a.upper_value.iloc[-1], rel=1e-4)
    if name == "deblur2d":
        assert b.ll_iters.iloc[-1] < a.ll_iters.iloc[-1]


@pytest.mark.parametrize("boundary", ["replicate", "periodic"])
def test_jvp_closed_form_matches_autograd(boundary):
    p = problems.make_problem("deblur2d", size=(10, 12), boundary=boundary, preset="certified")
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(p.x0.shape, generator=gen, dtype=torch.float64)
    v = torch.randn(p.theta0.shape, generator=gen, dtype=torch.float64)
    ref = problems.base.BilevelProblem._ll_grad_jvp_theta(p, p.theta0, x, v)
    assert torch.allclose(p._ll_grad_jvp_theta(p.theta0, x, v), ref, rtol=1e-10, atol=1e-12)


def test_jvp_closed_form_matches_autograd_deconv1d():
    p = problems.make_problem("deconv1d")
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(p.x0.shape, generator=gen, dtype=torch.float64)
    v = torch.randn(p.theta0.shape, generator=gen, dtype=torch.float64)
    ref = problems.base.BilevelProblem._ll_grad_jvp_theta(p, p.theta0, x, v)
    assert torch.allclose(p._ll_grad_jvp_theta(p.theta0, x, v), ref, rtol=1e-10, atol=1e-12)


def test_tangent_is_the_derivative_of_the_lower_solution():
    """w = −(dx̂/dθ)v from H w = J v, against central differences of x̂ (float64)."""
    p = _deblur(12)
    theta = p.theta0
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(1), dtype=theta.dtype)
    v = v / v.norm()
    x = p.solve_lower(theta, 1e-11)
    w, _ = p.tangent_solve(theta, x, v, 1e-12, 10_000)
    s = 1e-4
    xp, xm = p.solve_lower(theta + s * v, 1e-11), p.solve_lower(theta - s * v, 1e-11)
    fd = (xm - xp) / (2 * s)  # −dx̂/dθ·v
    assert float((w - fd).norm()) <= 1e-5 * float(fd.norm())


# ---------------------------------------------------------------------------------------------- PCG
@pytest.mark.parametrize("kind", ["fourier", "jacobi"])
def test_preconditioner_is_symmetric_positive_definite(kind):
    p = _deblur(12, preset="authors")
    x = p.y
    m_inv = p.adjoint_preconditioner(p.theta0, x, kind)
    gen = torch.Generator().manual_seed(0)
    u, v = (torch.randn(x.shape, generator=gen, dtype=x.dtype) for _ in range(2))
    assert float((m_inv(u) * v).sum()) == pytest.approx(float((u * m_inv(v)).sum()), rel=1e-10)
    assert float((m_inv(u) * u).sum()) > 0


@pytest.mark.parametrize("preset", ["authors", "certified"])
@pytest.mark.parametrize("kind", ["fourier", "jacobi"])
def test_preconditioned_hypergradient_unchanged(preset, kind):
    """PCG to the same residual gives the same hypergradient; on ``certified`` (μ certified, fast solves)
    it also matches central differences of F."""
    p = _deblur(10, preset=preset)
    # the protocol caps every counted CG solve (authors: 200 steps, what a solver gets); the two CG variants
    # are compared here solved to the same residual, so the cap is lifted on this instance
    p.lower_caps = LowerCaps()
    theta = p.theta0
    # authors: μ is nominal, so the reference API refuses a certified solve; any accurate point will do
    with p.uncounted():
        x = p.ll_solve(theta, p.x0, 1e-11 if preset == "certified" else 1e-6, 100_000).x
    zs, steps = {}, {}
    for pre in ("none", kind):
        p.counters.reset()
        q, _ = p.adjoint_solve(theta, x, 1e-12, 10_000, precondition=pre)
        steps[pre] = p.counters.cg_iters
        zs[pre] = p.hypergradient_from(theta, x, q)
    assert float((zs[kind] - zs["none"]).norm()) <= 1e-8 * float(zs["none"].norm())
    if preset == "certified":
        v = zs["none"] / zs["none"].norm()
        s = 1e-5
        fd = (p.upper_objective(theta + s * v, 1e-11) - p.upper_objective(theta - s * v, 1e-11)) / (2 * s)
        assert float((zs[kind] * v).sum()) == pytest.approx(fd, rel=1e-5)
    if kind == "jacobi" and preset == "authors":
        assert steps[kind] < steps["none"]


def test_unknown_preconditioner_is_a_clear_error():
    p = _deblur(8)
    with pytest.raises(ValueError, match="fourier.*jacobi"):
        p.adjoint_solve(p.theta0, p.x0, 1e-3, 10, precondition="ilu")
    p1 = problems.make_problem("deconv1d")
    with pytest.raises(ValueError, match="no adjoint preconditioner"):
        p1.adjoint_solve(p1.theta0, p1.x0, 1e-3, 10, precondition="jacobi")
    with pytest.raises(ValueError, match="tangent_share"):
        solvers.make_solver("maid", tangent_share=-1.0)
    assert math.isfinite(FLOOR_FACTOR)


def test_kernel_norm_bound_reused_along_a_path_stays_rigorous_and_tight():
    """The cached ‖K_θ‖ bound (triangle inequality / warm-started power iteration) along a line-search path
    is ≥ the true norm (power-iteration estimate from below) and within 2 % of a fresh bound, for kernel
    changes up to ~4 % in ℓ¹ (MAID's trials at 400×300 move the kernel by ≤ 3 %; a 20 % jump gives a
    bound ~11 % looser, still rigorous)."""
    from problems.conv2d import Conv2D, operator_norm_estimate

    p = _deblur(24)
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(p.theta0.shape, generator=gen, dtype=torch.float64)
    for t in (1e-5, 1e-4, 1e-3, 2e-3):
        theta = p.theta0 - t * z
        cached = p.kernel_norm_sq_bound(theta) ** 0.5
        op = Conv2D(theta, p.shape, p.boundary)
        assert cached >= operator_norm_estimate(op, iters=300)
        assert cached <= 1.02 * op.norm_bound()
