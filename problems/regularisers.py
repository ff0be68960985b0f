"""Regularisers of the 2D problems, with closed-form derivatives.

Smoothed anisotropic total variation of a (C, H, W) image (lower level),

    TV_γ(x) = Σ_c Σ_{i,j} [ √((D₁x)² + γ²) + √((D₂x)² + γ²) ],

D₁ / D₂ forward differences along H / W with the Neumann boundary: (D₁x)[i, j] = x[i+1, j] − x[i, j] for
i < H − 1 and 0 on the last row (likewise D₂ on the last column); those zero differences contribute the
constant γ each. With φ(d) = √(d² + γ²), φ' = d/√(d² + γ²), φ'' = γ²/(d² + γ²)^{3/2} ≤ 1/γ:

    ∇TV_γ(x) = D₁ᵀφ'(D₁x) + D₂ᵀφ'(D₂x),    ∇²TV_γ(x) v = D₁ᵀ(φ''(D₁x)·D₁v) + D₂ᵀ(φ''(D₂x)·D₂v),

and ‖∇²TV_γ‖ ≤ (‖D₁‖² + ‖D₂‖²)/γ ≤ 8/γ (‖D_i‖² ≤ 4), the Lipschitz constant of ∇TV_γ used for L.
Closed form vs autograd, 3×400×300 float64, median of 60 calls on this project's CPU (2 cores, quiet /
1 thread): gradient 0.87 / 1.67 ms against 3.4 / 6.4 ms for autograd's backward of ``value``; Hessian-vector
product 1.5 / 2.9 ms against 17 / 22 ms for forward-over-reverse ``torch.func.jvp(torch.func.grad(value))``.
The closed forms are used; they work in place unless autograd has to record them (LISTA's unrolling).

Squared H¹ kernel penalty (upper level), per channel on the k×k kernel, forward differences (Neumann):

    r(b) = (β/2)‖b − b_A‖²_{H¹},  ‖d‖²_{H¹} = ‖d‖² + ‖D₁d‖² + ‖D₂d‖²,
    ∇r = β(I − Δ)(b − b_A),  Δ = −D₁ᵀD₁ − D₂ᵀD₂.
"""

from __future__ import annotations

import torch
from torch import Tensor


# ---------------------------------------------------------------------------------------------- differences
def _diff_t(p: Tensor, dim: int) -> Tensor:
    """Dᵀp for p = the H−1 (or W−1) interior forward differences along dim: (Dᵀp)[i] = p[i−1] − p[i]."""
    n = p.shape[dim] + 1
    shape = list(p.shape)
    shape[dim] = n
    out = p.new_zeros(shape)
    out.narrow(dim, 0, n - 1).sub_(p)
    out.narrow(dim, 1, n - 1).add_(p)
    return out


def _diffs(x: Tensor) -> tuple[Tensor, Tensor]:
    """Interior forward differences (D₁x without its zero last row, D₂x without its zero last column)."""
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def neg_laplacian(d: Tensor) -> Tensor:
    """−Δd = D₁ᵀD₁d + D₂ᵀD₂d (Neumann), over the last two dimensions."""
    d1, d2 = _diffs(d)
    return _diff_t(d1, -2) + _diff_t(d2, -1)


# ---------------------------------------------------------------------------------------------- smoothed TV
class SmoothedTV:
    """TV_γ of the module docstring: ``value``, ``grad``, ``hvp`` in closed form, ``lipschitz`` = 8/γ."""

    def __init__(self, gamma: float = 0.01):
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.gamma = float(gamma)
        self.gamma2 = float(gamma) ** 2

    @property
    def lipschitz(self) -> float:
        return 8.0 / self.gamma

    def value(self, x: Tensor) -> Tensor:
        """TV_γ(x), a 0-d tensor (differentiable; includes the γ of the zero boundary differences)."""
        d1, d2 = _diffs(x)
        n_zero = x.numel() // x.shape[-2] + x.numel() // x.shape[-1]  # zero last row + zero last column
        return (
            (d1 * d1 + self.gamma2).sqrt().sum() + (d2 * d2 + self.gamma2).sqrt().sum() + n_zero * self.gamma
        )

    def _phi_prime(self, d: Tensor) -> Tensor:
        """d / √(d² + γ²): in place (three passes) unless autograd must record it."""
        if _needs_graph(d):
            return d * torch.rsqrt(d * d + self.gamma2)
        return torch_addcmul_rsqrt(d, self.gamma2).mul_(d)

    def grad(self, x: Tensor) -> Tensor:
        """∇TV_γ(x) = D₁ᵀφ'(D₁x) + D₂ᵀφ'(D₂x)."""
        return self.add_grad(x, x.new_zeros(x.shape), 1.0)

    def add_grad(self, x: Tensor, out: Tensor, scale: float) -> Tensor:
        """out + scale·∇TV_γ(x), accumulated in place into ``out`` unless autograd must record it."""
        d1, d2 = _diffs(x)
        p1, p2 = self._phi_prime(d1), self._phi_prime(d2)
        if _needs_graph(x, out):
            return out + scale * (_diff_t(p1, -2) + _diff_t(p2, -1))
        out[..., :-1, :].sub_(p1, alpha=scale)
        out[..., 1:, :].add_(p1, alpha=scale)
        out[..., :, :-1].sub_(p2, alpha=scale)
        out[..., :, 1:].add_(p2, alpha=scale)
        return out

    def hvp(self, x: Tensor, v: Tensor) -> Tensor:
        """∇²TV_γ(x) v = Σ_i D_iᵀ(φ''(D_i x)·D_i v), φ'' = γ²/(d² + γ²)^{3/2}."""
        d1, d2 = _diffs(x)
        e1, e2 = _diffs(v)
        out = x.new_zeros(x.shape)
        for d, e, lo, hi in (
            (d1, e1, (..., slice(None, -1), slice(None)), (..., slice(1, None), slice(None))),
            (d2, e2, (..., slice(None), slice(None, -1)), (..., slice(None), slice(1, None))),
        ):
            if _needs_graph(d, e):
                p = self.gamma2 * torch.rsqrt(d * d + self.gamma2) ** 3 * e
            else:
                s = torch_addcmul_rsqrt(d, self.gamma2)  # (d² + γ²)^{-1/2}
                p = s.mul_(s * s).mul_(e).mul_(self.gamma2)  # γ² s³ · D v
            out[lo].sub_(p)
            out[hi].add_(p)
        return out


def _needs_graph(*ts: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in ts)


def torch_addcmul_rsqrt(d: Tensor, c: float) -> Tensor:
    """(d² + c)^{-1/2} in two passes (a fresh tensor)."""
    return (d * d).add_(c).rsqrt_()


# ---------------------------------------------------------------------------------------------- H¹ penalty
class H1Penalty:
    """r(b) = (β/2)‖b − b_ref‖²_{H¹} per channel on (C, k, k) kernels; ∇r = β(I − Δ)(b − b_ref)."""

    def __init__(self, reference: Tensor, beta: float):
        if beta < 0:
            raise ValueError(f"beta must be ≥ 0, got {beta}")
        self.reference = reference
        self.beta = float(beta)

    def value(self, b: Tensor) -> Tensor:
        d = b - self.reference
        d1, d2 = _diffs(d)
        return 0.5 * self.beta * ((d * d).sum() + (d1 * d1).sum() + (d2 * d2).sum())

    def grad(self, b: Tensor) -> Tensor:
        d = b - self.reference
        return self.beta * (d + neg_laplacian(d))

    @property
    def lipschitz(self) -> float:
        """‖β(I − Δ)‖ ≤ β(1 + 8)."""
        return 9.0 * self.beta
