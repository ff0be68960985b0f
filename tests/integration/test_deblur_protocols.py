"""The 2D protocols on small instances: what the PSNR orderings are, and MAID's certified
decrease on the image problems.

Measured here (32×32 astronaut, seed 0): with α = 100·e⁻⁶ descended consistently (``authors-fix-grad-weight``,
the old ``paper`` preset) the TV over-smooths (TV < blurry). Under ``authors`` blurry < TV(100 iterations) <
ADP-β by MAID holds, but the TV given as many lower iterations as the MAID run used matches ADP-β (the
control of docs/maths.md §6): the gain is early stopping. Under ``certified`` blurry < TV by ~5 dB and ADP-β
ends within 0.02 dB of TV.
"""

from __future__ import annotations

import pytest
import torch

import bench
import problems

PROBLEMS = ("deblur2d", "semiblind2d")


def _psnrs(name: str, preset: str, max_iters: int) -> tuple[float, float, float, object, int]:
    p = problems.make_problem(name, size=(32, 32), preset=preset)
    tv = p.metrics(p.theta0, p.tv_reference())["psnr"]
    res = bench.run("maid", p, max_iters=max_iters)
    return p.blurry_metrics()["psnr"], tv, float(res.trace.psnr.iloc[-1]), p, int(res.trace.ll_iters.iloc[-1])


@pytest.mark.parametrize("name", PROBLEMS)
def test_alpha_objective_solved_consistently_oversmooths(name: str) -> None:
    p = problems.make_problem(name, size=(32, 32), preset="authors-fix-grad-weight")
    tv = p.metrics(p.theta0, p.tv_reference())["psnr"]
    assert tv < p.blurry_metrics()["psnr"] - 1.0  # α = 100·e⁻⁶ really descended over-smooths


@pytest.mark.parametrize("name", PROBLEMS)
def test_authors_gain_is_early_stopping(name: str) -> None:
    blurry, tv, adp, p, n_ll = _psnrs(name, "authors", 2)
    assert blurry + 1.0 < tv < adp - 0.5  # the paper's ordering reproduces under their protocol
    tv_same_work = p.metrics(p.theta0, p.tv_baseline(n_iters=n_ll))["psnr"]
    assert tv_same_work > adp - 0.1  # ... and TV with ADP's lower iterations matches ADP


@pytest.mark.parametrize("name", PROBLEMS)
def test_certified_preset_tv_beats_blurry_adp_matches_tv(name: str) -> None:
    blurry, tv, adp, _, _ = _psnrs(name, "certified", 30)
    assert tv > blurry + 2.0
    assert adp > tv - 0.1 and adp < tv + 0.1


@pytest.mark.parametrize("name", PROBLEMS)
def test_maid_accepted_steps_decrease_true_objective_2d(name: str) -> None:
    """Certified preset: μ = ζ is a true bound, so every accepted step must decrease F (solved to 1e-10).
    α₀ = 1e-3 instead of the authors' 1e-6: at 16×16 their step is too small for any step to be certified
    before ε < tol (MAID then stops at θ₀, which is a valid but empty outcome)."""
    p = problems.make_problem(name, size=(16, 16), preset="certified", step0=1e-3)
    solver = bench.make_solver_for("maid", p)
    state = solver.init(p)
    f_prev = p.upper_objective(state.theta, 1e-10)
    accepted = 0
    for _ in range(12):
        state = solver.update(p, state)
        if state.accepted:
            accepted += 1
            f_new = p.upper_objective(state.theta, 1e-10)
            assert f_new < f_prev, f"accepted step increased F: {f_prev!r} → {f_new!r}"
            f_prev = f_new
        if state.converged:
            break
    assert accepted >= 3
    assert not torch.equal(state.theta, p.theta0)
