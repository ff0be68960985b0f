"""The flat structure of a TV point (problems.flat_set): components, the projector onto V_S, its closure."""

from __future__ import annotations

import pytest
import torch

from problems.flat_set import FlatStructure
from problems.tv import TotalVariation, difference_mask, forward_differences

DT = torch.float64


def _piecewise_constant(kind: str) -> tuple[TotalVariation, torch.Tensor, torch.Tensor]:
    """Two channels of 6×7 blocks with a jump, and a dual inside B_α exactly on the zero differences."""
    tv = TotalVariation(0.5, kind)
    x = torch.zeros((2, 6, 7), dtype=DT)
    x[0, :, 4:] = 1.0
    x[1, 3:, :] = -2.0
    d = forward_differences(x)
    p = tv.project(1e6 * d)  # on the sphere where d ≠ 0 (clipped / rescaled), 0 where the image is flat
    return tv, x, p


@pytest.mark.parametrize("kind", ["anisotropic", "isotropic"])
def test_components_and_projector(kind: str) -> None:
    """Four constant blocks (two per channel) are four components; P is the orthogonal projector onto the
    images constant on them (idempotent, symmetric, fixes x); its range has no difference on the flat set."""
    tv, x, p = _piecewise_constant(kind)
    s = FlatStructure.identify(tv, x, p, sigma=0.1)
    assert s.n_components == 4 and int(s.sizes.sum()) == x.numel()
    gen = torch.Generator().manual_seed(0)
    u, v = torch.randn(x.shape, generator=gen, dtype=DT), torch.randn(x.shape, generator=gen, dtype=DT)
    assert (s.project(s.project(u)) - s.project(u)).abs().max() <= 1e-15
    assert float((s.project(u) * v).sum()) == pytest.approx(float((u * s.project(v)).sum()), rel=1e-13)
    assert torch.equal(s.project(x), x)
    assert float(s.constraint_violation(s.project(u))) <= 1e-14
    assert float(s.constraint_violation(u)) > 0.1
    assert s.same_as(FlatStructure.identify(tv, x, p, sigma=0.1))


def test_closure_of_a_cycle() -> None:
    """An edge whose two pixels are already joined by flat edges vanishes on V_S too, even when its own dual
    entry is clipped (a degenerate dual): the closure puts it in the flat set."""
    tv, x, p = _piecewise_constant("anisotropic")
    p[0, 0, 0, 0] = tv.alpha  # clip one edge inside the first block
    s = FlatStructure.identify(tv, x, p, sigma=0.1)
    assert not s.found[0, 0, 0, 0] and s.flat[0, 0, 0, 0]
    assert s.n_components == 4


def test_uncertified_support() -> None:
    """A support claim is certified when |Dx| > √2·ε (a difference moves by at most √2‖x − x̂‖)."""
    tv, x, p = _piecewise_constant("anisotropic")
    s = FlatStructure.identify(tv, x, p, sigma=0.1)
    support = int((difference_mask(tuple(x.shape)) & ~s.flat).sum())
    assert support > 0
    assert s.uncertified_support(x, 0.0) == 0
    assert s.uncertified_support(x, 0.99 / 2**0.5) == 0  # the jumps have size ≥ 1
    assert s.uncertified_support(x, 1.01 * 2 / 2**0.5) == support  # and ≤ 2
