"""`tikhonov_conv2d` — periodic-convolution Tikhonov ADP (SPEC §2.4), exact kernel hypergradients.

    θ = b (3, k, k);  lower  h(x, b) = ½‖K_b x − y‖² + (α/2)‖x‖²,  K_b periodic (circulant, FFT-diagonal)
    upper  g = ½‖K_{b_A} x − y‖² (known) or ½‖K_b x − y‖² (learned),  r = (β/2)‖b − b_A‖²_{H¹}

x̂(b) = F⁻¹[conj(B̂)Ŷ / (|B̂|² + α)] in closed form, so F(b) = g(x̂(b), b) + r(b) is an explicit, smooth
function of b and its gradient by automatic differentiation through that formula
(``closed_form_hypergradient``) is exact and independent of the implicit-function machinery (lower solver,
CG, ``_hypergradient_from``) it checks. μ = α and L = max|B̂|² + α are exact.

It is ``deblur2d`` with TV weight 0, ζ = α and the periodic boundary (so it shares every oracle).
"""

from __future__ import annotations

import torch
from torch import Tensor

from problems.conv2d import Conv2D
from problems.deblur2d import Deblur2D


class TikhonovConv2D(Deblur2D):
    """Kernel-learning Tikhonov ADP with periodic convolution; data from a small resized colour image."""

    name = "tikhonov_conv2d"
    metric_names = ("psnr", "ssim")
    solver_defaults = {}  # the 1D-style solver defaults apply

    def __init__(
        self,
        image: str = "astronaut",
        size: tuple[int, int] = (16, 16),
        seed: int = 0,
        alpha: float = 0.05,
        beta: float = 0.01,
        upper_operator: str = "known",
        noise: float = 5 / 255,
        step0: float = 1e-3,
        kernel_size: int = 5,
        *,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ):
        if alpha <= 0:
            raise ValueError(f"{self.name} needs alpha > 0 (strong convexity), got {alpha}")
        super().__init__(
            image=image,
            size=size,
            seed=seed,
            alpha=0.0,  # no TV
            beta=beta,
            gamma=1.0,  # unused
            boundary="periodic",
            upper_operator=upper_operator,
            mu=alpha,
            zeta=alpha,
            noise=noise,
            step0=step0,
            kernel_size=kernel_size,
            dtype=dtype,
            device=device,
        )
        self.params = dict(
            image=image,
            size=self.shape,
            seed=seed,
            alpha=alpha,
            beta=beta,
            upper_operator=upper_operator,
            noise=noise,
            step0=step0,
            kernel_size=kernel_size,
        )
        self.tikhonov_alpha = alpha

    def closed_form_solution(self, theta: Tensor) -> Tensor:
        """x̂(b) = F⁻¹[conj(B̂)Ŷ / (|B̂|² + α)] (differentiable in b)."""
        op = Conv2D(theta, self.shape, "periodic")
        yhat = torch.fft.rfft2(self.y)
        return torch.fft.irfft2(op.khat_conj * yhat / (op.khat_abs2 + self.tikhonov_alpha), s=self.shape)

    def closed_form_objective(self, theta: Tensor) -> float:
        theta = self._as_tensor(theta)
        with torch.no_grad():
            x = self.closed_form_solution(theta)
            return float(self.ul_g(theta, x) + self.ul_reg(theta))

    def closed_form_hypergradient(self, theta: Tensor) -> Tensor:
        """∇F(b) by reverse-mode differentiation of the closed-form F(b) (exact up to rounding)."""
        with torch.enable_grad():
            th = self._as_tensor(theta).requires_grad_(True)
            x = self.closed_form_solution(th)
            op_g = self._op_A if self.upper_operator == "known" else Conv2D(th, self.shape, "periodic")
            res = op_g.forward(x) - self.y
            value = 0.5 * (res * res).sum() + self.ul_reg(th)
            (grad,) = torch.autograd.grad(value, th)
        return grad
