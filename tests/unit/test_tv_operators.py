"""Non-smooth TV pieces (problems.tv): D and Dᵀ, ‖D‖², the norms, the dual ball and its projection."""

from __future__ import annotations

import math

import pytest
import torch

from problems.regularisers import SmoothedTV
from problems.tv import (
    DIFF_NORM_SQ_BOUND,
    TotalVariation,
    difference_mask,
    difference_norm_sq,
    forward_differences,
    forward_differences_adjoint,
)

DT = torch.float64
SHAPES = [(1, 1, 17), (3, 8, 8), (2, 5, 7), (1, 16, 16)]  # a 1D signal (H = 1) and images
KINDS = ["anisotropic", "isotropic"]


def _rand(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


@pytest.mark.parametrize("shape", SHAPES)
def test_difference_adjointness(shape: tuple[int, ...]) -> None:
    """⟨Dx, p⟩ = ⟨x, Dᵀp⟩ for random x and p (p also on the structural zeros, which Dᵀ must ignore)."""
    x, p = _rand(shape, 0), _rand((2, *shape), 1)
    lhs = float((forward_differences(x) * p).sum())
    rhs = float((x * forward_differences_adjoint(p)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)
    assert not forward_differences(x)[~difference_mask(shape)].any()  # D never fills the structural zeros


@pytest.mark.parametrize("shape", SHAPES)
def test_difference_convention_matches_smoothed_tv(shape: tuple[int, ...]) -> None:
    """Same differences as problems.regularisers: 0 ≤ TV_γ − TV − γ·(#boundary zeros) ≤ γ·(#differences)."""
    x, gamma = _rand(shape, 2), 1e-3
    tv = TotalVariation(1.0, "anisotropic").value(x)
    exists = difference_mask(shape)
    gap = float(SmoothedTV(gamma).value(x) - tv) - gamma * int((~exists).sum())
    assert 0.0 <= gap <= gamma * int(exists.sum())


@pytest.mark.parametrize("shape", [(1, 1, 9), (1, 4, 4), (1, 3, 6), (1, 2, 2)])
def test_difference_norm_is_exact(shape: tuple[int, ...]) -> None:
    """‖D‖² from the closed form equals the largest eigenvalue of the dense DᵀD, and is ≤ 8."""
    n = math.prod(shape)
    eye = torch.eye(n, dtype=DT).reshape(n, *shape)
    dense = torch.stack([forward_differences(e).flatten() for e in eye], dim=1)  # columns D e_i
    exact = float(torch.linalg.matrix_norm(dense, 2) ** 2)
    assert difference_norm_sq(*shape[-2:]) == pytest.approx(exact, rel=1e-12)
    assert difference_norm_sq(*shape[-2:]) <= DIFF_NORM_SQ_BOUND


@pytest.mark.parametrize("kind", KINDS)
def test_projection_onto_the_dual_ball(kind: str) -> None:
    """Π lands in B_α, is idempotent, satisfies ⟨v − Πv, q − Πv⟩ ≤ 0 for q ∈ B_α, and keeps zeros."""
    tv, shape = TotalVariation(0.3, kind), (3, 6, 5)
    v = _rand((2, *shape), 3)
    v[~difference_mask(shape)] = 0.0
    pv = tv.project(v)
    assert float(tv.dual_norm(pv)) <= tv.alpha * (1 + 1e-15)
    assert torch.equal(tv.project(pv), pv) or (tv.project(pv) - pv).abs().max() <= 1e-16
    assert not pv[~difference_mask(shape)].any()
    for seed in range(5):
        q = tv.project(_rand((2, *shape), 10 + seed))
        assert float(((v - pv) * (q - pv)).sum()) <= 1e-12


@pytest.mark.parametrize("kind", KINDS)
def test_norm_is_the_support_function_of_the_ball(kind: str) -> None:
    """α‖d‖ = max over B_α of ⟨p, d⟩: c(d, p) ≥ 0 on the ball, = 0 at the maximiser, and ⟨p, d⟩ ≤ ‖p‖*‖d‖."""
    tv, shape = TotalVariation(0.2, kind), (2, 7, 6)
    d = forward_differences(_rand(shape, 4))
    maximiser = tv.project(1e6 * d)  # α·sign(d), or α·d/|d| pixelwise
    assert float(tv.complementarity(d, maximiser)) == pytest.approx(0.0, abs=1e-12)
    assert float((maximiser * d).sum()) == pytest.approx(tv.alpha * float(tv.norm(d)), rel=1e-12)
    for seed in range(5):
        p = tv.project(_rand((2, *shape), 20 + seed))
        assert float(tv.complementarity(d, p)) >= 0.0
        assert float((p * d).sum()) <= float(tv.dual_norm(p) * tv.norm(d)) + 1e-12


@pytest.mark.parametrize("kind", KINDS)
def test_projection_jacobian_matches_autograd(kind: str) -> None:
    """project_jacobian(v, w) = (∂Π(v)) w against autograd's ∂Π(v)ᵀw (∂Π is symmetric), v off |v| = α."""
    tv, shape = TotalVariation(0.5, kind), (2, 5, 6)
    v, w = _rand((2, *shape), 5).requires_grad_(True), _rand((2, *shape), 6)
    assert (tv.magnitude(v) - tv.alpha).abs().min() > 0  # Π is differentiable at v
    (vjp,) = torch.autograd.grad((tv.project(v) * w).sum(), v)
    assert (tv.project_jacobian(v.detach(), w) - vjp).abs().max() <= 1e-13


def test_isotropic_complementarity_has_no_cancellation() -> None:
    """On the sphere the isotropic c is computed as ½α|d|‖n_p − n_d‖²: exact zeros where p = α d/|d|, where
    the plain α|d| − ⟨p, d⟩ would leave rounding of order u·α·TV (whose square root would enter the bound)."""
    tv = TotalVariation(0.7, "isotropic")
    d = forward_differences(_rand((3, 9, 9), 7))
    p = tv.project(d * 1e3)
    assert float(tv.complementarity(d, p)) <= 1e-25


@pytest.mark.parametrize(
    "alpha, kind", [(0.0, "anisotropic"), (-1.0, "isotropic"), (math.inf, "isotropic"), (1.0, "l1")]
)
def test_bad_tv_parameters(alpha: float, kind: str) -> None:
    with pytest.raises(ValueError, match="alpha|kind"):
        TotalVariation(alpha, kind)
