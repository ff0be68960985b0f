"""2D operators: FFT convolution (every boundary), its adjoint, kernel gradient and norm bounds; TV_γ; H¹."""

from __future__ import annotations

import pytest
import torch

from problems.conv2d import (
    BOUNDARIES,
    Conv2D,
    conv2d,
    conv2d_adjoint,
    conv2d_direct,
    conv2d_kernel_grad,
    gaussian_kernel,
    good_fft_size,
    motion_kernel,
    pad,
    pad_adjoint,
)
from problems.regularisers import H1Penalty, SmoothedTV

# torch.func's import path calls the deprecated torch.jit.script (torch's own warning, not ours)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

DT = torch.float64
SHAPES = [(16, 16), (24, 20)]


def _kernels() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return {
        "motion": motion_kernel(),
        "gaussian": gaussian_kernel(),
        "random": torch.randn(3, 5, 5, generator=gen, dtype=DT),
    }


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum())


def _dense(op: Conv2D) -> torch.Tensor:
    n = 3 * op.shape[0] * op.shape[1]
    eye = torch.eye(n, dtype=DT).reshape(n, 3, *op.shape)
    return op.forward(eye).reshape(n, n).T  # batched: leading dimensions broadcast


# ---------------------------------------------------------------------------------------------- kernels
def test_kernels() -> None:
    m = motion_kernel()
    assert m.shape == (3, 5, 5)
    assert torch.allclose(m[0], torch.eye(5, dtype=DT) / 5) and torch.equal(m[0], m[2])
    g = gaussian_kernel(5, 0.5)
    assert torch.allclose(g.sum((1, 2)), torch.ones(3, dtype=DT), atol=1e-15)
    assert torch.equal(g[0], g[0].T) and torch.equal(g[0], g[0].flip(0)) and g[0].argmax() == 12
    with pytest.raises(ValueError):
        motion_kernel(4)
    assert [good_fft_size(n) for n in (404, 304, 20, 1)] == [405, 320, 20, 1]


# ---------------------------------------------------------------------------------------------- convolution
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("kernel", ["motion", "gaussian", "random"])
@pytest.mark.parametrize("shape", SHAPES)
def test_conv_matches_torch_and_adjoint(boundary: str, kernel: str, shape: tuple[int, int]) -> None:
    b = _kernels()[kernel]
    x, v = _rand(3, *shape, seed=1), _rand(3, *shape, seed=2)
    op = Conv2D(b, shape, boundary)
    kx = op.forward(x)
    # torch's depthwise conv2d on the padded image (cross-correlation, "same" size)
    assert (kx - conv2d_direct(x, b, boundary)).abs().max() <= 1e-12
    assert torch.allclose(conv2d(x, b, boundary), kx, rtol=0, atol=1e-14)
    # adjointness ⟨Kx, v⟩ = ⟨x, Kᵀv⟩, and Kᵀ = the autograd vjp of the direct convolution
    ktv = op.adjoint(v)
    assert abs(_dot(kx, v) - _dot(x, ktv)) <= 1e-12 * max(1.0, abs(_dot(kx, v)))
    xx = x.clone().requires_grad_(True)
    (vjp,) = torch.autograd.grad(conv2d_direct(xx, b, boundary), xx, v)
    assert (vjp - ktv).abs().max() <= 1e-12
    assert torch.allclose(conv2d_adjoint(v, b, boundary), ktv, rtol=0, atol=1e-14)
    assert (op.normal(x) - op.adjoint(kx)).abs().max() <= 1e-12
    # kernel gradient ∂_b⟨K_b x, v⟩ against autograd of the direct convolution
    bb = b.clone().requires_grad_(True)
    (gb,) = torch.autograd.grad((conv2d_direct(x, bb, boundary) * v).sum(), bb)
    assert (op.kernel_grad(x, v) - gb).abs().max() <= 1e-12
    assert (conv2d_kernel_grad(x, v, 5, boundary) - gb).abs().max() <= 1e-12


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_operator_contract(boundary: str) -> None:
    """Registry-driven contract over BOUNDARIES: pad/pad-adjoint, linearity, the norm bound is rigorous
    (≥ the exact ‖K‖₂ of the dense matrix) and tight for non-negative kernels."""
    shape = (8, 7)
    x, w = _rand(3, *shape, seed=4), _rand(3, 12, 11, seed=5)
    if boundary != "periodic":
        xx = x.clone().requires_grad_(True)
        (vjp,) = torch.autograd.grad(pad(xx, 2, boundary), xx, w)
        assert (pad_adjoint(w, 2, boundary, shape) - vjp).abs().max() <= 1e-13
    for name, b in _kernels().items():
        op = Conv2D(b, shape, boundary)
        a = _dense(op)
        exact = float(torch.linalg.matrix_norm(a, 2))
        bound = op.norm_bound()
        assert bound >= exact * (1 - 1e-12), (name, bound, exact)
        if name != "random" and boundary in ("periodic", "replicate", "reflect"):
            assert bound <= 1.01 * exact, (name, bound, exact)
        if boundary == "periodic":
            assert bound == pytest.approx(exact, rel=1e-12)
        y = _rand(3, *shape, seed=6)
        assert torch.allclose(op.forward(2 * x - y), 2 * op.forward(x) - op.forward(y), atol=1e-13)


def test_periodic_grid_smaller_than_kernel() -> None:
    x, v = _rand(3, 3, 4, seed=7), _rand(3, 3, 4, seed=8)
    b = _kernels()["random"]
    op = Conv2D(b, (3, 4), "periodic")
    assert (op.forward(x) - conv2d_direct(x, b, "periodic")).abs().max() <= 1e-12
    assert abs(_dot(op.forward(x), v) - _dot(x, op.adjoint(v))) <= 1e-12


def test_float32_and_kernel_autograd() -> None:
    b, x = gaussian_kernel(), _rand(3, 16, 16, seed=9)
    op32 = Conv2D(b.float(), (16, 16), "replicate")
    out32 = op32.forward(x.float())
    assert out32.dtype == torch.float32
    assert (out32.double() - conv2d(x, b)).abs().max() <= 1e-5
    # the cached kernel FFT keeps its graph: d/db of ⟨K_b x, v⟩ through the FFT path
    v = _rand(3, 16, 16, seed=10)
    bb = b.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((Conv2D(bb, (16, 16), "replicate").forward(x) * v).sum(), bb)
    assert (g - conv2d_kernel_grad(x, v, 5)).abs().max() <= 1e-12


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="boundary"):
        Conv2D(motion_kernel(), (8, 8), "mirror")
    with pytest.raises(ValueError, match="reflect"):
        pad(_rand(3, 2, 2), 2, "reflect")


# ---------------------------------------------------------------------------------------------- TV, H¹
def test_tv_value_grad_hvp() -> None:
    gamma = 0.05
    tv = SmoothedTV(gamma)
    x, v = torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(11), dtype=DT), _rand(3, 12, 10)
    d1, d2 = torch.zeros_like(x), torch.zeros_like(x)
    d1[:, :-1] = x[:, 1:] - x[:, :-1]
    d2[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    explicit = ((d1**2 + gamma**2).sqrt() + (d2**2 + gamma**2).sqrt()).sum()
    assert float(tv.value(x)) == pytest.approx(float(explicit), rel=1e-14)
    grad_ag = torch.func.grad(tv.value)(x)
    assert (tv.grad(x) - grad_ag).abs().max() <= 1e-12
    _, hvp_ag = torch.func.jvp(torch.func.grad(tv.value), (x,), (v,))
    assert (tv.hvp(x, v) - hvp_ag).abs().max() <= 1e-10
    out = _rand(3, 12, 10, seed=12)
    assert torch.allclose(tv.add_grad(x, out.clone(), 0.3), out + 0.3 * grad_ag, atol=1e-13)
    # the closed forms also run under autograd (LISTA differentiates through them)
    xx = x.clone().requires_grad_(True)
    (g2,) = torch.autograd.grad((tv.grad(xx) * v).sum(), xx)
    assert (g2 - tv.hvp(x, v)).abs().max() <= 1e-10
    # ‖∇²TV_γ‖ ≤ 8/γ: power iteration on the Hessian at a rough point
    z = _rand(3, 12, 10, seed=13)
    for _ in range(200):
        z = tv.hvp(0.01 * x, z)
        z = z / z.norm()
    assert float((z * tv.hvp(0.01 * x, z)).sum()) <= tv.lipschitz


def test_tv_hvp_curvature_cache_follows_x() -> None:
    """The cached weights φ''(D x) are reused only for the same, unmodified x."""
    tv = SmoothedTV(0.05)
    x, v = _rand(3, 9, 8, seed=21), _rand(3, 9, 8, seed=22)
    first = tv.hvp(x, v)
    assert torch.equal(tv.hvp(x, v), first)  # from the cache
    x.mul_(3.0)  # in place: the version changes
    fresh = SmoothedTV(0.05).hvp(x, v)
    assert torch.equal(tv.hvp(x, v), fresh) and not torch.allclose(fresh, first)
    assert torch.equal(tv.hvp(x.clone(), v), fresh)  # another tensor with the same values


@pytest.mark.parametrize("boundary", ["replicate", "reflect", "zero"])
@pytest.mark.parametrize("shape", [(16, 16), (11, 7), (5, 9), (4, 30)])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_fused_normal_equals_adjoint_of_forward(boundary: str, shape: tuple[int, int], k: int) -> None:
    """KᵀK in one FFT pair plus the band correction = Kᵀ(K x), values and both autograd gradients;
    shapes with 2r ≥ min(H, W) take the two-pair path."""
    if boundary == "reflect" and min(shape) <= k // 2:
        pytest.skip("reflect needs H, W > r")
    b = _rand(3, k, k, seed=23).requires_grad_(True)
    x, v = _rand(3, *shape, seed=24).requires_grad_(True), _rand(3, *shape, seed=25)
    op = Conv2D(b, shape, boundary)
    assert op._fused == (2 * (k // 2) < min(shape))
    fused, reference = op.normal(x), op.adjoint(op.forward(x))
    scale = max(1.0, float(reference.detach().abs().max()))
    assert (fused - reference).abs().max() <= 1e-12 * scale
    g_fused = torch.autograd.grad((fused * v).sum(), (b, x), retain_graph=True)  # op.khat is shared
    g_ref = torch.autograd.grad((reference * v).sum(), (b, x))
    for a, c in zip(g_fused, g_ref, strict=True):
        assert (a - c).abs().max() <= 1e-11 * max(1.0, float(c.detach().abs().max()))
    with torch.no_grad():  # the in-place path
        assert (op.normal(x) - reference).abs().max() <= 1e-12 * scale


def test_h1_penalty() -> None:
    ref, b = motion_kernel(), motion_kernel() + 0.1 * _rand(3, 5, 5, seed=14)
    h1 = H1Penalty(ref, beta=0.7)
    d = b - ref
    explicit = (d**2).sum() + ((d[:, 1:] - d[:, :-1]) ** 2).sum() + ((d[:, :, 1:] - d[:, :, :-1]) ** 2).sum()
    assert float(h1.value(b)) == pytest.approx(0.35 * float(explicit), rel=1e-14)
    assert (h1.grad(b) - torch.func.grad(h1.value)(b)).abs().max() <= 1e-14
    # β(I − Δ) with the 2D Neumann Laplacian, checked on one channel as a dense matrix
    k = 5
    lap1 = torch.diag(torch.full((k,), 2.0, dtype=DT)) - torch.diag(torch.ones(k - 1, dtype=DT), 1)
    lap1 = lap1 - torch.diag(torch.ones(k - 1, dtype=DT), -1)
    lap1[0, 0] = lap1[-1, -1] = 1.0  # −Δ₁ Neumann
    eye = torch.eye(k, dtype=DT)
    op = torch.kron(eye, eye) + torch.kron(lap1, eye) + torch.kron(eye, lap1)
    assert torch.allclose(h1.grad(b)[0].flatten(), 0.7 * op @ d[0].flatten(), atol=1e-14)
