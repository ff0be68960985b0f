"""Blur kernels of the 2D problems, named by a short string (the ``blur`` problem parameter).

A blur is given as text so that it fits a TOML sweep, a suite axis and a trace record alike:

* ``"motion"`` — the paper's diagonal motion blur: 1/k on the main diagonal of the k×k support
  (``problems.conv2d.motion_kernel``; with k = 5 the paper's 5×5 kernel);
* ``"gaussian:SIGMA"`` — a normalised isotropic Gaussian exp(−(p² + q²)/(2σ²)) sampled on the k×k support,
  σ in pixels (``problems.conv2d.gaussian_kernel``);
* ``"line:LENGTH:ANGLE"`` — linear motion: a segment of LENGTH pixels centred on the support's centre, at
  ANGLE degrees anticlockwise from the horizontal (x to the right, y up; −45 is the paper's diagonal
  from top left to bottom right). Pixel (i, j) gets the length of the segment inside its unit square,
  divided by LENGTH, so the weights sum to 1; a horizontal line of odd integer length L is the box 1/L
  on L pixels, and ``line:7.0710678:-45`` on a 5×5 support is ``motion`` (exact clipping, no sampling).

k is the problem's ``kernel_size`` (odd), which is also the support of the learned kernel θ; the blur must
fit inside it (a one-line ``ValueError`` says which size it needs). Every kernel is the same for the three
colour channels, non-negative and sums to 1. Line and Gaussian kernels are symmetric under a half turn,
so torch's cross-correlation convention and a convolution give the same blur.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from problems.conv2d import gaussian_kernel, motion_kernel

BLUR_FORMS = ("motion", "gaussian:SIGMA", "line:LENGTH:ANGLE")
#: how far a Gaussian must fit inside the support: its ±TRUNCATION_SIGMAS·σ box (beyond it < 1.2 % of the
#: mass of a 1D Gaussian is cut off at 2.5σ, and the kernel is renormalised anyway)
TRUNCATION_SIGMAS = 2.5
#: slack on the "segment inside the support" test, so that e.g. a 5-pixel diagonal fits a 5×5 support
FIT_SLACK = 1e-9


def _bad(spec: object, why: str) -> ValueError:
    return ValueError(f"blur {spec!r}: {why}; valid forms: {', '.join(BLUR_FORMS)}")


def parse_blur(spec: object) -> tuple[str, tuple[float, ...]]:
    """(kind, numbers) of a blur string; a one-line ValueError naming the valid forms otherwise."""
    if not isinstance(spec, str):
        raise _bad(spec, "must be a string")
    kind, *fields = spec.strip().split(":")
    arity = {"motion": 0, "gaussian": 1, "line": 2}
    if kind not in arity:
        raise _bad(spec, f"unknown kind {kind!r}")
    if len(fields) != arity[kind]:
        raise _bad(spec, f"{kind} takes {arity[kind]} number(s)")
    try:
        numbers = tuple(float(f) for f in fields)
    except ValueError:
        raise _bad(spec, "the fields after the kind must be numbers") from None
    if not all(math.isfinite(v) for v in numbers):
        raise _bad(spec, "the numbers must be finite")
    if kind == "gaussian" and numbers[0] <= 0:
        raise _bad(spec, "sigma must be > 0")
    if kind == "line" and numbers[0] <= 0:
        raise _bad(spec, "length must be > 0")
    return kind, numbers


def required_support(spec: str) -> int:
    """The smallest odd kernel size the blur fits in."""
    kind, numbers = parse_blur(spec)
    if kind == "motion":
        return 1
    if kind == "gaussian":
        extent = 2 * TRUNCATION_SIGMAS * numbers[0]
    else:
        length, angle = numbers[0], math.radians(numbers[1])
        extent = length * max(abs(math.cos(angle)), abs(math.sin(angle)))
    size = max(1, math.ceil(extent - FIT_SLACK))
    return size if size % 2 else size + 1


def line_kernel(
    length: float,
    angle_deg: float,
    k: int,
    channels: int = 3,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Linear motion blur (see the module docstring): exact segment length in each pixel / ``length``."""
    if k < 1 or k % 2 == 0:
        raise ValueError(f"kernel size must be odd and ≥ 1, got {k}")
    r = k // 2
    angle = math.radians(angle_deg)
    dx, dy = length * math.cos(angle), length * math.sin(angle)
    x0, y0 = -dx / 2, -dy / 2  # the segment P(t) = (x0, y0) + t (dx, dy), t ∈ [0, 1]
    weights = torch.zeros(k, k, dtype=torch.float64)
    for i in range(k):  # row i is y = r − i (y up); column j is x = j − r
        for j in range(k):
            lo, hi = 0.0, 1.0  # Liang–Barsky clipping of t to the pixel's square
            for start, step, centre in ((x0, dx, j - r), (y0, dy, r - i)):
                if abs(step) < 1e-15:
                    if abs(start - centre) > 0.5:
                        lo, hi = 1.0, 0.0
                    continue
                t1, t2 = sorted(((centre - 0.5 - start) / step, (centre + 0.5 - start) / step))
                lo, hi = max(lo, t1), min(hi, t2)
            if hi > lo:
                weights[i, j] = hi - lo  # a share of the segment: the total over pixels is 1
    total = float(weights.sum())
    if total < 1.0 - 1e-9:
        raise ValueError(
            f"line of length {length:g} at {angle_deg:g}° does not fit a {k}×{k} kernel "
            f"(it needs kernel_size ≥ {required_support(f'line:{length}:{angle_deg}')})"
        )
    weights = (weights / total).to(dtype=dtype, device=device)
    return weights.expand(channels, k, k).clone()


def blur_kernel(
    spec: str,
    k: int,
    channels: int = 3,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> Tensor:
    """The (channels, k, k) kernel of a blur string; a one-line ValueError when it is malformed or does not
    fit the k×k support."""
    kind, numbers = parse_blur(spec)
    need = required_support(spec)
    if k < need:
        raise ValueError(f"blur {spec!r} needs kernel_size ≥ {need}, got {k}")
    if kind == "motion":
        return motion_kernel(k, channels, dtype=dtype, device=device)
    if kind == "gaussian":
        return gaussian_kernel(k, numbers[0], channels, dtype=dtype, device=device)
    return line_kernel(numbers[0], numbers[1], k, channels, dtype=dtype, device=device)
