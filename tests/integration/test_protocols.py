"""Protocols: name and object paths agree or fail clearly on every protocol; the authors' TV
baseline reproduces the authors' reference figures (docs/maths.md §6); the authors' pieces (TV boundary
double count, unsquared H¹) are what their code computes; sound configurations keep exact
hypergradients, mismatched ones say so."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import bench
import problems
import protocols
import solvers
from problems.deblur2d import Deblur2D
from problems.regularisers import H1Penalty, SmoothedTV

DT = torch.float64
SOLVERS = ("maid", "ift", "lista")


@pytest.mark.parametrize("protocol", protocols.names())
def test_name_and_object_paths_agree_or_fail(protocol: str) -> None:
    """``bench.run(name, p)`` and ``bench.run(object, p)`` never silently differ: an object with the
    protocol's settings gives the identical trace, one with other settings fails naming the fields."""
    p = problems.make_problem("deblur2d", size=(8, 8), preset=protocol)
    for name in SOLVERS:
        # init only for MAID / IFT (it runs with the protocol's ε₀, accuracy and caps; an update costs up to
        # 20 capped solves under the authors' settings): the comparison is of settings, not of progress
        n = 1 if name == "lista" else 0
        by_name = bench.run(name, p, max_iters=n, eval_every=10**9)
        by_object = bench.run(bench.make_solver_for(name, p), p, max_iters=n, eval_every=10**9)
        cols = ["upper_value", "ll_iters", "cg_iters", "ul_evals", "hypergrad_norm"]
        assert by_name.trace[cols].equals(by_object.trace[cols])
        want = protocols.solver_settings(protocol, name)
        default = solvers.make_solver(name)
        conflicts = [k for k, v in want.items() if getattr(default, k) != v]
        if conflicts:
            with pytest.raises(ValueError, match=f"conflicts with protocol '{protocol}'") as err:
                bench.run(default, p, max_iters=1)
            assert all(k in str(err.value) for k in conflicts) and "\n" not in str(err.value)
        else:
            plain = bench.run(default, p, max_iters=n, eval_every=10**9)
            assert plain.trace[cols].equals(by_name.trace[cols])


def test_protocol_registry_and_labels() -> None:
    names = protocols.names()
    assert names[0] == "authors" and names[-1] == "certified" and len(names) == 2 + len(protocols.DEVIATIONS)
    for name in names:
        proto = protocols.get(name)
        for solver, config in proto.solvers.items():
            solvers.make_solver(solver, **config)  # valid configs
        assert ("INCONSISTENT" in proto.label) == bool(proto.mismatched)
    assert protocols.get("certified").sound and not protocols.get("authors").sound
    assert protocols.get("authors").mismatched == ("grad-weight", "adjoint", "h1")
    path = protocols.ablation_path()
    assert path[0] == "authors" and path[-1] == "certified" and len(path) == len(protocols.DEVIATIONS) + 1
    assert protocols.get(path[-2]).deviations == ("grad-weight",)
    assert protocols.get("authors-fix-caps").solvers["maid"]["ll_max_iters"] == 100_000
    with pytest.raises(ValueError, match="deviations: grad-weight"):
        protocols.get("paper")


@pytest.mark.parametrize(
    "image, blurry, tv",
    [("astronaut", 21.54, 24.21), ("coffee", 24.64, 27.26), ("chelsea", 27.15, 29.64)],
)
def test_authors_tv_baseline_reproduces_spec(image: str, blurry: float, tv: float) -> None:
    """The authors' 2D reference table (docs/protocols.md), 128×128 (float32, as the reference figures were
    taken): within 0.15 dB."""
    p = problems.make_problem("deblur2d", image=image, size=(128, 128), preset="authors", dtype="float32")
    assert abs(p.blurry_metrics()["psnr"] - blurry) < 0.01
    assert abs(p.metrics(p.theta0, p.tv_reference())["psnr"] - tv) < 0.15


def _authors_tv(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """The authors' TV (their TV.py, re-derived): replicate-pad one row and column, forward differences."""
    xp = F.pad(x[None], (0, 1, 0, 1), mode="replicate")[0]
    dx = xp[:, :, 1:] - xp[:, :, :-1]  # (H+1, W): the padded row repeats the last row's differences
    dy = xp[:, 1:, :] - xp[:, :-1, :]  # (H, W+1)
    return (dx * dx + gamma**2).sqrt().sum() + (dy * dy + gamma**2).sqrt().sum()


def test_tv_double_count_is_the_authors_discretisation() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 7, 9, generator=gen, dtype=DT)
    v = torch.randn(3, 7, 9, generator=gen, dtype=DT)
    tv = SmoothedTV(0.05, double_count=True)
    xr = x.clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(_authors_tv(xr, 0.05), xr, create_graph=True)
    (h_ref,) = torch.autograd.grad((g_ref * v).sum(), xr)
    torch.testing.assert_close(tv.grad(x), g_ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(tv.hvp(x, v), h_ref, rtol=1e-12, atol=1e-12)
    out = torch.ones_like(x)
    torch.testing.assert_close(tv.add_grad(x, out, 0.3), 1 + 0.3 * g_ref.detach(), rtol=1e-12, atol=1e-12)
    # the value differs from the authors' only by constants (their zero-padded entries)
    y = torch.rand(3, 7, 9, generator=gen, dtype=DT)
    diff = float(tv.value(x) - tv.value(y)) - float(_authors_tv(x, 0.05) - _authors_tv(y, 0.05))
    assert abs(diff) < 1e-10


def test_h1_authors_form_value_and_mismatched_gradient() -> None:
    gen = torch.Generator().manual_seed(1)
    ref = torch.rand(3, 5, 5, generator=gen, dtype=DT)
    b = ref + 0.1 * torch.randn(3, 5, 5, generator=gen, dtype=DT)
    pen = H1Penalty(ref, 100.0, "authors")
    d = b - ref
    parts = (d, d[:, 1:, :] - d[:, :-1, :], d[:, :, 1:] - d[:, :, :-1])
    assert float(pen.value(b)) == pytest.approx(100 * math.sqrt(sum(float((t * t).sum()) for t in parts)))
    br = b.clone().requires_grad_(True)
    dr = br - ref
    norms = [dr.norm(), (dr[:, 1:, :] - dr[:, :-1, :]).norm(), (dr[:, :, 1:] - dr[:, :, :-1]).norm()]
    (their,) = torch.autograd.grad(100 * sum(norms), br)  # their gradient: the three norms' gradients summed
    torch.testing.assert_close(pen.grad(b), their, rtol=1e-12, atol=1e-12)
    (true,) = torch.autograd.grad(pen.value(br), br)
    assert float((true - pen.grad(b)).norm()) > 0.1 * float(true.norm())  # mismatched, as labelled
    assert float(pen.grad(ref).norm()) == 0.0  # each norm's gradient is 0 at 0, as torch's norm backward
    r0 = ref.clone().requires_grad_(True)
    (g0,) = torch.autograd.grad(pen.value(r0), r0)  # LISTA differentiates the value: finite at d = 0
    assert torch.isfinite(g0).all()


SMALL = dict(size=(16, 16), alpha=0.01, gamma=0.1, zeta=0.1, beta=0.5)


def _fd_gap(p: Deblur2D, h: float = 1e-5) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(0)
    theta = p.theta0 + 0.01 * torch.randn(p.theta0.shape, generator=gen, dtype=DT)
    direction = torch.randn(theta.shape, generator=torch.Generator().manual_seed(1), dtype=DT)
    direction /= direction.norm()
    analytic = float((p.hypergradient(theta, tol=1e-12) * direction).sum())
    f_plus = p.upper_objective(theta + h * direction, 1e-12)
    fd = (f_plus - p.upper_objective(theta - h * direction, 1e-12)) / (2 * h)
    return analytic, fd


@pytest.mark.parametrize(
    "params",
    [
        dict(tv_double_count=True),  # the authors' boundary, consistently
        dict(upper_operator="learned", ul_scale=1 / 3),  # the authors' g, with ∂_b g kept
        dict(ll_step_rule="power"),  # the authors' step rule changes how x̂ is reached, not x̂
        dict(ll_stop="channel_mean"),  # ... and so does their stopping rule, at a tight tolerance
        dict(h1_form="squared", beta=100.0),
    ],
)
def test_sound_authors_pieces_keep_exact_hypergradients(params: dict) -> None:
    analytic, fd = _fd_gap(Deblur2D(**{**SMALL, **params}))
    assert abs(analytic - fd) <= 1e-6 * abs(fd), (analytic, fd)


@pytest.mark.parametrize(
    "params",
    [dict(ll_grad_tv_scale=0.01), dict(ll_grad_tv_scale=0.01, adjoint_hessian="objective")],
)
def test_mismatched_pieces_are_labelled(params: dict) -> None:
    """Exempt from the FD test, and say so: the problem lists its inconsistencies; with the adjoint of the
    objective (the authors') the hypergradient is off the FD value of the problem actually solved."""
    p = Deblur2D(**{**SMALL, **params})
    assert p.inconsistencies
    analytic, fd = _fd_gap(p)
    if params.get("adjoint_hessian") == "objective":
        assert abs(analytic - fd) > 1e-3 * abs(fd)
    else:  # the descended problem's own adjoint: exact for x̂ of the descended problem
        assert abs(analytic - fd) <= 1e-6 * abs(fd)


def test_authors_lower_solve_rules() -> None:
    p = Deblur2D(size=(24, 24), preset="authors")
    l1 = p.power_lipschitz(p.theta0, p.x0)
    assert l1 == p.power_lipschitz(p.theta0, p.x0)  # seeded: deterministic
    assert l1 > 10 * p.ll_lipschitz(
        p.theta0
    )  # the objective's Hessian: a step far below 1/L (docs/maths.md §6)
    res = p.ll_solve(p.theta0, p.x0, 0.5, 500)
    assert res.converged and res.dist_bound < 0.5 and res.iters == p.counters.ll_iters  # power HVPs uncounted
    # ‖∇h‖ ≥ mean_c ‖∇_c h‖, so the full-norm rule never stops earlier on the same iterates
    q = Deblur2D(size=(24, 24), preset="authors-fix-stop")
    assert q.ll_solve(q.theta0, q.x0, 0.5, 500).iters >= res.iters
