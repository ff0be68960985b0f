"""The one lower-level loop (``problems.lower.iterate``): solves, unrollings and the authors' variant are
the same steps with another stopping test."""

from __future__ import annotations

import math

import pytest
import torch

import problems
from problems.authors2d import authors_fista
from problems.lower import FixedSteps, iterate, momentum_coefficients, prox_gradient_solve

BASE_UNROLLING = [n for n in problems.problem_names() if n != "deconv1d"]  # deconv1d: closed-form backward


@pytest.mark.parametrize("name", BASE_UNROLLING)
def test_unrolling_is_the_solve_to_the_last_bit(name, small_problem):
    p = small_problem(name)
    with torch.no_grad():
        unrolled = p.ll_unrolled(p.theta0, p.x0, 9, None)
        solved = prox_gradient_solve(p, p.theta0, p.x0, 0.0, 9, None, p.ll_momentum)
    assert solved.iters == 9 and torch.equal(unrolled, solved.x)


def _reference_authors_fista(p, theta, x, eps, max_iters):
    """The authors' iteration written out (their hg.py): extrapolate, then test the gradient just used."""
    step = 1.0 / p.power_lipschitz(theta, x)
    x_prev, y, t = x, x, 1.0
    for k in range(1, max_iters + 1):
        grad = p._ll_grad(theta, y)
        x_new = y - step * grad
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        y = x_new + ((t - 1.0) / t_next) * (x_new - x_prev)
        x_prev, t = x_new, t_next
        stat = float(torch.linalg.vector_norm(grad, dim=(-2, -1)).mean()) / p.mu
        if stat < eps:
            return x_new, k
    return x_prev, max_iters


@pytest.mark.parametrize("eps", [0.1, 0.0])
def test_authors_variant_is_their_fista(eps):
    p = problems.make_problem("deblur2d", size=(16, 16), preset="authors")
    assert (p.ll_step_rule, p.ll_stop) == ("power", "channel_mean")
    with torch.no_grad():
        ref, k_ref = _reference_authors_fista(p, p.theta0, p.x0, eps, 60)
        res = authors_fista(p, p.theta0, p.x0, eps, 60, None)
    assert res.iters == k_ref and res.converged == (eps > 0)
    assert float((res.x - ref).abs().max()) <= 1e-12 * float(ref.abs().max())
    assert p.counters.ll_iters == k_ref


def test_fixed_steps_run_every_step_and_momentum_rules_are_named():
    calls = []

    def step(y):
        calls.append(y)
        return y + 1.0, None

    out = iterate(step, torch.zeros(3), momentum_coefficients("fista", 4.0, 1.0), FixedSteps(), 5)
    assert len(calls) == 5 and out.iters == 5 and not out.converged
    assert momentum_coefficients("none", 4.0, 1.0) is None
    assert next(momentum_coefficients("strongly_convex", 4.0, 1.0)) == pytest.approx(1.0 / 3.0)
    with pytest.raises(ValueError, match="momentum must be one of none, fista, strongly_convex"):
        momentum_coefficients("nesterov", 4.0, 1.0)
