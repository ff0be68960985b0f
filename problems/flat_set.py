"""The flat set of a TV solution and the subspace on which x̂(θ) is differentiable.

At the solution x̂ of min f(x) + α‖Dx‖ call a difference *flat* when it vanishes: for anisotropic TV an entry
(Dx̂)_e = 0 (an edge e of the pixel grid), for isotropic TV a pixel j with (Dx̂)_j = 0 ∈ ℝ² (both its
edges). With the flat edges S, the subspace V_S = {v : (Dv)_e = 0 for e ∈ S} is the set of images constant
on every connected component of the graph (pixels, S), and its orthogonal projector P averages over those
components.

Under strict complementarity (some optimal dual p̂ with ‖p̂_e‖ < α on the flat set) and with the non-flat
differences bounded away from 0, the same structure holds at every θ' near θ, so x̂ is locally the minimiser
of f + α Σ_{e∉S} |(Dv)_e| over V_S — smooth there — and the implicit function theorem on V_S gives

    dx̂/dθ = −(PĤP)⁺ P J,     ∇F = ∂_θ g − Jᵀq̂ + ∇r,     (PĤP) q̂ = P ∇_x g,  q̂ ∈ V_S,

with J = ∂_θ∇_x f and Ĥ = ∇²f + α D_{S^c}ᵀ W D_{S^c}: W = 0 for anisotropic TV (|d| is linear off 0), and the
curvature W_j = (I − n_j n_jᵀ)/|d_j|, n_j = d_j/|d_j|, of the Euclidean norm for isotropic TV.

Identification from a primal–dual point (x, p): the projection of the dual step is linearised at v = p + σDx
(the fixed-point form of its argument). An entry (pixel) is flat where v lies strictly inside the ball, |v|
< α — there the projection is the identity and p is free — and non-flat where it is clipped; an edge whose
two pixels the flat edges already join is flat too (the closure, ``identify``). For isotropic
TV the curvature is read off the same linearisation: at a fixed point |v_j| = α + σ|d_j| and n_j =
v_j/|v_j|, so W_j = σ(I − n_j n_jᵀ)/(|v_j| − α); with these weights the piggyback iteration and projected CG
(``problems.piggyback``) solve one and the same system.

What can be checked a posteriori: a non-flat claim is certified at a certified point (‖x − x̂‖ ≤ ε) when
|(Dx)_e| > √2·ε (anisotropic: a difference of two pixels moves by at most √2‖x − x̂‖) or |(Dx)_j| > √3·ε
(isotropic: the 2×3 pixel stencil has norm √3); then the sign (normal) is certified too. A flat claim cannot
be certified from (x, p) alone because the optimal dual need not be unique; ``problems.tv_reference``
verifies a whole structure exactly (a reduced solve and the KKT conditions), which the tests use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from problems.tv import TotalVariation, difference_mask, forward_differences, forward_differences_adjoint

#: how far a difference moves per unit of ‖x − x̂‖: √2 for an edge (two pixels), √3 for a pixel's 2-vector
SUPPORT_STENCIL_NORM = {"anisotropic": math.sqrt(2.0), "isotropic": math.sqrt(3.0)}


@dataclass
class FlatStructure:
    """The identified flat set (module docstring), its components and the pieces of Ĥ that depend on it."""

    tv: TotalVariation
    flat: Tensor  # bool (2, *shape): differences that vanish on V_S (every existing edge inside a component)
    free: Tensor  # bool (2, *shape): where a subgradient is free in B_α (flat edges; isotropic: flat pixels)
    labels: Tensor  # long (numel,): the connected component of each pixel
    sizes: Tensor  # (n_components,): pixels per component, in the image dtype
    arg: Tensor  # v = p + σDx, where the projection is linearised (``TotalVariation.project_jacobian``)
    found: Tensor  # bool (2, *shape): the existing entries found inside the ball (before the closure)
    weights: Tensor | None  # isotropic: σ/(|v| − α) on clipped pixels, 0 elsewhere; None for anisotropic
    normals: Tensor | None  # isotropic: v/|v| (2, *shape)

    @classmethod
    def identify(
        cls, tv: TotalVariation, x: Tensor, p: Tensor, sigma: float, previous: FlatStructure | None = None
    ) -> FlatStructure:
        """The structure of the primal–dual point (x, p) with dual step σ (module docstring).

        The edges found flat (|v| < α) define the components; every edge inside a component then vanishes on
        V_S too (the closure: a cycle closed by a clipped edge), so ``flat`` is that closure. ``previous``: a
        structure whose components are reused when the same edges are found (no new graph search)."""
        arg = p + sigma * forward_differences(x)
        shape = tuple(x.shape)
        exists = difference_mask(shape, device=x.device)
        mag = tv.magnitude(arg)
        inside = mag < tv.alpha
        found = exists & (inside.expand_as(exists) if tv.isotropic else inside)
        if previous is not None and torch.equal(found, previous.found):
            labels, sizes, flat, free = previous.labels, previous.sizes, previous.flat, previous.free
        else:
            labels, sizes = _components(found, x.dtype)
            grid = labels.reshape(shape)
            flat = torch.zeros_like(exists)
            flat[0, ..., :-1, :] = grid[..., :-1, :] == grid[..., 1:, :]
            flat[1, ..., :, :-1] = grid[..., :, :-1] == grid[..., :, 1:]
            flat &= exists
            free = flat
            if tv.isotropic:
                flat_pixels = (flat | ~exists).all(0)  # every existing difference of the pixel vanishes
                free = exists & flat_pixels.expand_as(exists)
        weights = normals = None
        if tv.isotropic:
            excess = torch.where(inside, torch.ones_like(mag), mag - tv.alpha)
            weights = torch.where(inside, torch.zeros_like(mag), sigma / excess)
            normals = arg / torch.where(inside, torch.ones_like(mag), mag)
        return cls(tv, flat, free, labels, sizes, arg, found, weights, normals)

    @property
    def n_components(self) -> int:
        return int(self.sizes.numel())

    def project(self, v: Tensor) -> Tensor:
        """P v: v averaged over each component (the orthogonal projector onto V_S)."""
        flat_v = v.reshape(-1)
        sums = flat_v.new_zeros(self.sizes.shape).index_add_(0, self.labels, flat_v)
        return (sums / self.sizes)[self.labels].reshape(v.shape)

    def curvature(self, v: Tensor) -> Tensor:
        """α D_{S^c}ᵀ W D_{S^c} v, the TV part of Ĥ (zero for anisotropic TV)."""
        if self.weights is None:
            return torch.zeros_like(v)
        e = forward_differences(v)
        tangent = e - self.normals * (self.normals * e).sum(0)
        return forward_differences_adjoint((self.tv.alpha * self.weights) * tangent)

    def constraint_violation(self, v: Tensor) -> Tensor:
        """‖(Dv)_S‖, 0 iff v ∈ V_S."""
        d = forward_differences(v)
        return torch.linalg.vector_norm(torch.where(self.flat, d, torch.zeros_like(d)))

    def same_as(self, other: FlatStructure) -> bool:
        """The same flat set and, for anisotropic TV, the same signs on the support (the discrete structure;
        the isotropic normals vary continuously)."""
        if not torch.equal(self.flat, other.flat):
            return False
        if self.tv.isotropic:
            return True
        support = difference_mask(tuple(self.flat.shape[1:]), device=self.flat.device) & ~self.flat
        return torch.equal(torch.sign(self.arg)[support], torch.sign(other.arg)[support])

    def support(self) -> Tensor:
        """Where the difference is non-zero on the structure: edges (2, *shape) for anisotropic TV, pixels
        (*shape) with a non-vanishing difference for isotropic TV."""
        exists = difference_mask(tuple(self.flat.shape[1:]), device=self.flat.device)
        edges = exists & ~self.flat
        return edges.any(0) if self.tv.isotropic else edges

    def uncertified_support(self, x: Tensor, eps: float) -> int:
        """Support entries (pixels) whose claim is *not* certified by ‖x − x̂‖ ≤ eps (module docstring)."""
        small = self.tv.magnitude(forward_differences(x)) <= SUPPORT_STENCIL_NORM[self.tv.kind] * eps
        return int((self.support() & small).sum())


def _components(flat: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Connected components of the pixel graph whose edges are the flat differences (SciPy, on the CPU)."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    shape = tuple(flat.shape[1:])
    n = math.prod(shape)
    index = np.arange(n).reshape(shape)
    mask = flat.detach().cpu().numpy()
    heads = [index[..., :-1, :][mask[0][..., :-1, :]], index[..., :, :-1][mask[1][..., :, :-1]]]
    tails = [index[..., 1:, :][mask[0][..., :-1, :]], index[..., :, 1:][mask[1][..., :, :-1]]]
    rows, cols = np.concatenate(heads), np.concatenate(tails)
    graph = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    labels_t = torch.as_tensor(labels, dtype=torch.long, device=flat.device)
    sizes = torch.bincount(labels_t, minlength=count).to(dtype)
    return labels_t, sizes
