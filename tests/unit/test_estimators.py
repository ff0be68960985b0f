"""Each hypergradient estimator on its own (the pieces the fixed-step solvers are composed of): exact in
its limit against the closed-form ∇F and central finite differences, the oracle work of one estimate, and
the lazy backward of unrolling. Table-driven over every estimator a registered solver is composed with."""

from __future__ import annotations

import pytest
import torch

import problems
import solvers
from solvers.amigo import Amortised
from solvers.f2sa import ValuePenalty
from solvers.ift import ImplicitCG
from solvers.lista import Unrolled
from solvers.neumann import JacobianFree, NeumannSeries
from solvers.trbp import TruncatedBackprop

PROBLEM = ("tikhonov_adp", {"n": 8})  # closed-form ∇F, μ/L large enough for short series
ESTIMATORS = sorted(
    {solvers.estimator_of(solvers.solver_class(n)) for n in solvers.solver_names()} - {None},
    key=lambda cls: cls.__name__,
)

#: estimator → (config making it exact in its limit, relative tolerance to ∇F); None: biased by design
LIMITS = {
    ImplicitCG: ({"eps": 1e-12, "cg_tol": 1e-12}, 1e-9),
    NeumannSeries: ({"eps": 1e-12, "n_terms": 5000}, 1e-9),
    TruncatedBackprop: ({"eps": 1e-12, "n_unroll": 5000}, 1e-9),
    Unrolled: ({"n_unroll": 5000}, 1e-9),
    Amortised: ({"ll_inner": 5000, "adjoint_inner": 5000}, 1e-9),
    # the penalty gradient is O(1/λ) off (Kwon et al., Lemma 3.1): 7.9e-5 measured at λ = 1e4
    ValuePenalty: ({"lam0": 1e4, "lam_max": 1e4, "eps0": 1e-12, "ll_max_iters": 100_000}, 2e-4),
    JacobianFree: None,  # q = λb, the K = 1 series: ``test_jacobian_free_is_the_one_term_series``
}
#: estimator → (config, counts of one estimate at θ₀ from x₀ and its hypergradient, as fixed by the method;
#: the step counts of solves to an accuracy depend on the data and are not pinned)
COSTS = {
    ImplicitCG: ({}, {"ul_evals": 1, "ul_grad_evals": 1, "hypergrad_evals": 1, "ll_backward_iters": 0}),
    NeumannSeries: ({"n_terms": 7}, {"cg_iters": 6, "ul_evals": 1, "ul_grad_evals": 1, "hypergrad_evals": 1}),
    JacobianFree: ({}, {"cg_iters": 0, "ul_evals": 1, "ul_grad_evals": 1, "hypergrad_evals": 1}),
    TruncatedBackprop: ({"n_unroll": 3}, {"cg_iters": 0, "ul_evals": 1, "ll_backward_iters": 3}),
    Unrolled: ({"n_unroll": 3}, {"ll_iters": 3, "cg_iters": 0, "ul_evals": 1, "ll_backward_iters": 3}),
    Amortised: (
        {"ll_inner": 4, "adjoint_inner": 3},
        {"ll_iters": 4, "cg_iters": 3, "ul_evals": 1, "ul_grad_evals": 1, "hypergrad_evals": 1},
    ),
    ValuePenalty: ({}, {"cg_iters": 0, "ul_evals": 1, "hypergrad_evals": 1}),
}


def _problem() -> problems.BilevelProblem:
    return problems.make_problem(PROBLEM[0], **PROBLEM[1])


def _estimate(estimator, problem) -> tuple[dict, torch.Tensor]:
    """One estimate at θ₀ from x₀ and its hypergradient (materialised, for a lazy estimator)."""
    fields = estimator.estimate(problem, problem.theta0, None)
    return fields, estimator.hypergradient(estimator.state_type(**fields))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def test_every_registered_estimator_is_in_the_tables():
    assert set(ESTIMATORS) <= set(LIMITS) & set(COSTS), set(ESTIMATORS) - set(LIMITS) - set(COSTS)


@pytest.mark.parametrize("cls", [c for c in ESTIMATORS if LIMITS[c]], ids=lambda c: c.__name__)
def test_estimator_is_exact_in_its_limit(cls):
    config, tol = LIMITS[cls]
    p = _problem()
    _, z = _estimate(cls(**config), p)
    assert _rel(z, p.closed_form_hypergradient(p.theta0)) <= tol
    # directional derivative against central differences of F (lower level solved to 1e-12)
    d = torch.randn(p.theta0.shape, generator=torch.Generator().manual_seed(3), dtype=p.theta0.dtype)
    t = 1e-5
    fd = (p.upper_objective(p.theta0 + t * d, 1e-12) - p.upper_objective(p.theta0 - t * d, 1e-12)) / (2 * t)
    assert float(torch.sum(z * d)) == pytest.approx(fd, rel=max(tol, 1e-6))


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_work_of_one_estimate(cls):
    config, expected = COSTS[cls]
    p = _problem()
    _estimate(cls(**config), p)
    counts = p.counters.snapshot()
    assert {k: counts[k] for k in expected} == expected


def test_jacobian_free_is_the_one_term_series():
    x_hat = (p := _problem()).solve_lower(p.theta0, 1e-12)
    jfb = JacobianFree().series_hypergradient(p, p.theta0, x_hat)
    assert torch.equal(jfb, NeumannSeries(n_terms=1).series_hypergradient(p, p.theta0, x_hat))


def test_unrolled_backward_runs_when_the_step_needs_it():
    """The forward keeps its graph; the K backward steps are counted when the hypergradient is asked for
    (at the next update), not when the estimate is made."""
    p, estimator = _problem(), Unrolled(n_unroll=4)
    fields = estimator.estimate(p, p.theta0, None)
    assert p.counters.ll_backward_iters == 0 and fields["objective"].requires_grad
    estimator.hypergradient(estimator.state_type(**fields))
    assert p.counters.ll_backward_iters == 4
