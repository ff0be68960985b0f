"""Data of the 2D problems: the truth x†, the known kernel b_A and the observation y.

    x† = the image resized to (H, W) in [0, 1] (``problems/images.py``)
    b_A = the named blur kernel, k×k (``problems/kernels.py``; the paper's diagonal motion by default)
    y  = clamp(blur(x†) + noise·n, 0, 1),   n ~ N(0, I) drawn from a generator seeded with ``seed``

``blur`` is b_A ∗ x† for ``deblur2d`` and G_σ ∗ (b_A ∗ x†) for ``semiblind2d``. Everything is computed in
float64 on the CPU from the fixed seed and only then moved to the problem's dtype and device, so an instance
holds the same data on every device and in either dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from problems.images import load_rgb_image
from problems.kernels import blur_kernel


@dataclass(frozen=True)
class ImageData:
    x_true: Tensor  # (3, H, W)
    y: Tensor  # (3, H, W)
    b_A: Tensor  # (3, k, k)


def blurred_image_data(
    image: str,
    size: tuple[int, int],
    seed: int,
    noise: float,
    kernel_size: int,
    kernel: str,
    blur: Callable[[Tensor, Tensor], Tensor],
    *,
    dtype: torch.dtype,
    device: torch.device,
) -> ImageData:
    """x†, y and b_A of the module docstring; ``kernel`` names b_A, ``blur(x†, b_A)`` is the forward model."""
    x_true = load_rgb_image(image, size)
    b_a = blur_kernel(kernel, kernel_size, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    blurred = blur(x_true, b_a)
    y = (blurred + noise * torch.randn(x_true.shape, generator=gen, dtype=torch.float64)).clamp(0.0, 1.0)
    to = dict(dtype=dtype, device=device)
    return ImageData(x_true.to(**to), y.to(**to), b_a.to(**to))
