"""Non-smooth total variation of images (..., H, W): forward differences, the two TV norms, their dual balls.

Differences (the convention of ``problems.regularisers``: forward, Neumann boundary, per channel)

    (Dx)[0, ..., i, j] = x[..., i+1, j] − x[..., i, j]   for i < H − 1,  0 on the last row,
    (Dx)[1, ..., i, j] = x[..., i, j+1] − x[..., i, j]   for j < W − 1,  0 on the last column,

so Dx has shape (2, ..., H, W) and the two structural zeros (last row of component 0, last column of
component 1) are kept as entries that D never fills and Dᵀ never reads. Dᵀp = −div p (the adjoint, tested).
A 1D signal is an image with H = 1 (component 0 is then structurally zero everywhere).

Norm: ‖DᵀD‖ = ‖D₁ᵀD₁‖ + ‖D₂ᵀD₂‖ (a Kronecker sum), and the Neumann difference matrix of n points has
‖D₁ᵀD₁‖ = 2 − 2cos(π(n − 1)/n) = 4 sin²(π(n − 1)/(2n)) < 4, hence

    ‖D‖² = 4 sin²(π(H − 1)/(2H)) + 4 sin²(π(W − 1)/(2W)) ≤ 8        (exact; ``difference_norm_sq``).

TV norms ‖Dx‖ (``kind``), summed over channels and pixels, and their dual norms ‖p‖*:

* ``"anisotropic"`` ℓ¹: Σ |(Dx)[0]| + |(Dx)[1]|;              dual ℓ^∞: max over entries of |p|;
* ``"isotropic"`` ℓ²,¹: Σ √((Dx)[0]² + (Dx)[1]²) (per pixel);  dual ℓ²,^∞: max over pixels of |p_pixel|₂.

α‖·‖ is the support function of the dual ball B_α = {p : ‖p‖* ≤ α}: α‖d‖ = max_{p ∈ B_α} ⟨p, d⟩, so for p ∈
B_α the complementarity c(d, p) = α‖d‖ − ⟨p, d⟩ is ≥ 0 and vanishes iff p ∈ α∂‖·‖(d).
``TotalVariation.project`` is the Euclidean projection onto B_α (clipping, or pixelwise rescaling);
``project_jacobian`` its derivative, used to differentiate the primal–dual iteration
(``problems.piggyback``): at an argument v

* anisotropic: 1 where |v| < α (unclipped), 0 where clipped;
* isotropic: I where |v_pixel| < α, (α/|v|)(I − n nᵀ) with n = v/|v| where rescaled.

The projection is not differentiable on the sphere |v| = α itself (a null set that the iterates avoid in
practice; the Jacobian used there is the outer one, as for any kink, and the structure checks of
``problems.flat_set`` flag it).

``SmoothedTV`` (``problems.regularisers``) is the anisotropic norm with |d| replaced by √(d² + γ²) (γ per
difference, boundary zeros included): 0 ≤ TV_γ − TV ≤ γ·m, m = the number of difference entries, the fact
behind the γ → 0 convergence in ``docs/nonsmooth_tv.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

TV_KINDS = ("anisotropic", "isotropic")
#: a dual pixel with |p| ≥ α(1 − SPHERE_ULPS·u) lies on the sphere (rescaled by the projection; u: roundoff)
SPHERE_ULPS = 8.0
#: ‖D‖² ≤ 4 per image axis (the bound quoted in the literature; ``difference_norm_sq`` is exact and smaller)
DIFF_NORM_SQ_BOUND = 8.0


def forward_differences(x: Tensor) -> Tensor:
    """Dx (2, ..., H, W) of x (..., H, W): the forward differences of the module docstring."""
    return torch.stack((F.pad(torch.diff(x, dim=-2), (0, 0, 0, 1)), F.pad(torch.diff(x, dim=-1), (0, 1))))


def forward_differences_adjoint(p: Tensor) -> Tensor:
    """Dᵀp (..., H, W) of p (2, ..., H, W); the structural-zero entries of p are ignored."""
    rows, cols = p[0][..., :-1, :], p[1][..., :, :-1]
    return F.pad(rows, (0, 0, 1, 0)) - F.pad(rows, (0, 0, 0, 1)) + F.pad(cols, (1, 0)) - F.pad(cols, (0, 1))


def difference_mask(shape: tuple[int, ...], device: torch.device | str = "cpu") -> Tensor:
    """Boolean (2, *shape): True where a difference exists (False on the structural zeros)."""
    mask = torch.ones((2, *shape), dtype=torch.bool, device=device)
    mask[0, ..., -1, :] = False
    mask[1, ..., :, -1] = False
    return mask


def difference_norm_sq(height: int, width: int) -> float:
    """‖D‖² = 4 sin²(π(H−1)/(2H)) + 4 sin²(π(W−1)/(2W)) (exact, module docstring) ≤ ``DIFF_NORM_SQ_BOUND``."""

    def axis(n: int) -> float:
        return 4.0 * math.sin(math.pi * (n - 1) / (2 * n)) ** 2

    return axis(int(height)) + axis(int(width))


@dataclass(frozen=True)
class TotalVariation:
    """α·TV(x) = α‖Dx‖ of ``kind`` ("anisotropic" or "isotropic") and its dual ball B_α (module docstring)."""

    alpha: float
    kind: str = "anisotropic"

    kinds: ClassVar[tuple[str, ...]] = TV_KINDS

    def __post_init__(self) -> None:
        if self.kind not in TV_KINDS:
            raise ValueError(f"TV kind must be one of {TV_KINDS}, got {self.kind!r}")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ValueError(f"TV weight alpha must be a finite number > 0, got {self.alpha!r}")

    @property
    def isotropic(self) -> bool:
        return self.kind == "isotropic"

    # -- norms of difference fields d = Dx (2, ..., H, W)
    def magnitude(self, d: Tensor) -> Tensor:
        """Entrywise |d| (anisotropic), or pixelwise |d_pixel|₂ (isotropic; shape without the leading 2)."""
        return torch.sqrt(d[0] * d[0] + d[1] * d[1]) if self.isotropic else d.abs()

    def norm(self, d: Tensor) -> Tensor:
        """‖d‖ (ℓ¹ or ℓ²,¹), a 0-d tensor."""
        return self.magnitude(d).sum()

    def dual_norm(self, p: Tensor) -> Tensor:
        """‖p‖* (ℓ^∞ or ℓ²,^∞), a 0-d tensor."""
        return self.magnitude(p).max()

    def value(self, x: Tensor) -> Tensor:
        """α‖Dx‖ (differentiable away from the kinks)."""
        return self.alpha * self.norm(forward_differences(x))

    # -- the dual ball
    def project(self, v: Tensor) -> Tensor:
        """Euclidean projection of v (2, ..., H, W) onto B_α = {‖p‖* ≤ α}; keeps zero entries zero."""
        if self.isotropic:
            return v / torch.clamp(self.magnitude(v) / self.alpha, min=1.0)
        return v.clamp(-self.alpha, self.alpha)

    def project_jacobian(self, v: Tensor, w: Tensor) -> Tensor:
        """(∂Π(v)) w: the derivative of ``project`` at v applied to w (symmetric, so also its transpose)."""
        if not self.isotropic:
            return torch.where(v.abs() < self.alpha, w, torch.zeros_like(w))
        mag = self.magnitude(v)
        outside = mag >= self.alpha
        safe = torch.where(outside, mag, torch.ones_like(mag))
        n = v / safe
        radial = (n * w).sum(0)
        tangent = (self.alpha / safe) * (w - n * radial)
        return torch.where(outside, tangent, w)

    def complementarity(self, d: Tensor, p: Tensor) -> Tensor:
        """c(d, p) = α‖d‖ − ⟨p, d⟩ (≥ 0 for p ∈ B_α), a 0-d tensor, summed term by term and without
        cancellation where p is on the boundary of the ball: there the rounding error of α|d| − ⟨p, d⟩
        (≈ u·α|d|) would enter the distance bound as √(u·α·TV/μ).

        * anisotropic: where the projection clipped p to ±α the terms α|d| ∓ αd are exact zeros;
        * isotropic: where p was rescaled, p is α·n_p (n_p = p/|p|, |p| = α up to rounding) and the term is
          α|d|(1 − n_p·n_d) = ½α|d|·‖n_p − n_d‖², n_d = d/|d|, accurate to relative rounding."""
        if not self.isotropic:
            return (self.alpha * d.abs() - p * d).sum()
        mag_d, mag_p = self.magnitude(d), self.magnitude(p)
        on_sphere = mag_p >= self.alpha * (1.0 - SPHERE_ULPS * torch.finfo(p.dtype).eps)
        n_p = p / torch.where(mag_p > 0, mag_p, torch.ones_like(mag_p))
        n_d = d / torch.where(mag_d > 0, mag_d, torch.ones_like(mag_d))
        on_terms = 0.5 * self.alpha * mag_d * ((n_p - n_d) ** 2).sum(0)
        return torch.where(on_sphere, on_terms, self.alpha * mag_d - (p * d).sum(0)).sum()
