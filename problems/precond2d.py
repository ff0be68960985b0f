"""Preconditioners of the 2D adjoint system H q = ∇ₓg, ``"fourier"`` and ``"jacobi"`` (one factory below).

``"fourier"`` — diagonal in Fourier space:

    H = K_bᵀK_b + α∇²TV_γ(x) + ζI  ≈  M = F⁻¹ diag(|B̂|² + c·(|D̂₁|² + |D̂₂|²) + ζ) F,

F the 2D DFT on an N₁×N₂ grid (N ≥ H, W, 2·3·5-smooth), B̂ the kernel's transform there (periodic
wrap), |D̂ᵢ(ω)|² = 2 − 2cos ωᵢ the symbol of a periodic forward difference, and c = α·mean φ''(Dx), the
TV Hessian's curvature weight φ'' = γ²/(d² + γ²)^{3/2} averaged over all differences of x (replacing the
spatially varying weight by its mean is what makes M diagonal). The boundary (replicate vs periodic)
and the varying weight are what M leaves out. Applied as v ↦ E F⁻¹ diag(1/m) F Eᵀ v with Eᵀ the zero
extension to the grid and E the crop: symmetric positive definite for any m > 0 (E has full row rank),
so CG stays CG. One rfft2/irfft2 pair per application.

``"jacobi"`` — M = diag(H) with the TV part exact and K_bᵀK_b's diagonal taken as its interior value
Σ_{p,q} b[c, p, q]² per channel (exact away from the border of width k//2); one multiply per
application. It keeps the spatially varying TV weight that the Fourier preconditioner averages out.

Measured (``studies/speed_vs_past.py``, 400×300 coffee at θ₀, δ = 1e-6): CG steps ``certified`` (x at
ε = 1e-2) 119 (none) / 84 (fourier) / 93 (jacobi); ``authors`` (x at ε = 1e-3, ≤ 200 iterations, CG on the
α = 0.248 Hessian) 842 / 694 / 359. The TV Hessian's weight φ'' varies by orders of magnitude between
flat regions and edges, which no Fourier-diagonal M represents, so the Fourier preconditioner saves
15–30 % of the steps here, not several-fold.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from problems.conv2d import good_fft_size, kernel_fft


class FourierPreconditioner:
    """v ↦ M⁻¹v for the M of the module docstring."""

    def __init__(self, kernel: Tensor, shape: tuple[int, int], tv_weight: float, zeta: float):
        if tv_weight < 0 or zeta < 0:
            raise ValueError(f"tv_weight and zeta must be ≥ 0, got {tv_weight}, {zeta}")
        h, w = shape
        self.shape = (h, w)
        self.grid = (good_fft_size(h), good_fft_size(w))
        n1, n2 = self.grid
        with torch.no_grad():
            khat = kernel_fft(kernel.detach(), self.grid, "periodic")
            real = khat.real.dtype
            w1 = 2.0 * math.pi * torch.arange(n1, dtype=real, device=khat.device) / n1
            w2 = 2.0 * math.pi * torch.arange(n2 // 2 + 1, dtype=real, device=khat.device) / n2
            lap = (2.0 - 2.0 * torch.cos(w1))[:, None] + (2.0 - 2.0 * torch.cos(w2))[None, :]
            m = khat.real**2 + khat.imag**2 + tv_weight * lap + zeta
            # m > 0 keeps M positive definite where the kernel's spectrum vanishes and ζ = 0
            floor = torch.finfo(real).eps * float(m.max())
            self.inv_symbol = 1.0 / m.clamp_min(floor)

    def __call__(self, v: Tensor) -> Tensor:
        h, w = self.shape
        vhat = torch.fft.rfft2(v, s=self.grid)
        return torch.fft.irfft2(vhat * self.inv_symbol, s=self.grid)[..., :h, :w]


def tv_mean_curvature(x: Tensor, gamma: float) -> float:
    """mean φ''(Dx) = mean γ²/(d² + γ²)^{3/2} over the interior forward differences d of x."""
    g2 = float(gamma) ** 2
    with torch.no_grad():
        d1, d2 = x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]
        total = sum((g2 * (d * d + g2).pow(-1.5)).sum() for d in (d1, d2))
        return float(total) / (d1.numel() + d2.numel())


class JacobiPreconditioner:
    """v ↦ v / diag(H), diag(H) = Σ b² + α·(Σ of φ''(Dx) over the differences touching a pixel) + ζ."""

    def __init__(self, kernel: Tensor, x: Tensor, alpha: float, gamma: float, zeta: float):
        g2 = float(gamma) ** 2
        with torch.no_grad():
            diag = (kernel.detach() ** 2).sum((-2, -1))[:, None, None].expand(x.shape).clone()
            if alpha:
                for dim in (-2, -1):
                    n = x.shape[dim]
                    d = x.narrow(dim, 1, n - 1) - x.narrow(dim, 0, n - 1)
                    w = (d * d).add_(g2).pow_(-1.5).mul_(alpha * g2)
                    diag.narrow(dim, 1, n - 1).add_(w)
                    diag.narrow(dim, 0, n - 1).add_(w)
            diag.add_(zeta)
            self.inv_diag = 1.0 / diag.clamp_min(torch.finfo(diag.dtype).eps * float(diag.max()))

    def __call__(self, v: Tensor) -> Tensor:
        return v * self.inv_diag


PRECONDITIONERS = ("fourier", "jacobi")


def adjoint_preconditioner(
    kind: str, kernel: Tensor, x: Tensor, shape: tuple[int, int], alpha: float, gamma: float, zeta: float
) -> Callable[[Tensor], Tensor]:
    """v ↦ M⁻¹v for M ≈ H = K_bᵀK_b + α∇²TV_γ(x) + ζI of the named kind (module docstring)."""
    if kind == "fourier":
        curvature = alpha * tv_mean_curvature(x, gamma) if alpha else 0.0
        return FourierPreconditioner(kernel, shape, curvature, zeta)
    if kind == "jacobi":
        return JacobiPreconditioner(kernel, x, alpha, gamma, zeta)
    raise ValueError(f"preconditioner must be 'fourier' or 'jacobi', got {kind!r}")
