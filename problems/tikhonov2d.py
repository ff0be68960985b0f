"""`tikhonov_conv2d` — periodic-convolution Tikhonov ADP with exact kernel hypergradients.

    θ = b (3, k, k);  lower  h(x, b) = ½‖K_b x − y‖² + (α/2)‖x‖²,  K_b periodic (circulant, FFT-diagonal)
    upper  g = ½‖K_{b_A} x − y‖² (known) or ½‖K_b x − y‖² (learned),  r = (β/2)‖b − b_A‖²_{H¹}

x̂(b) = F⁻¹[conj(B̂)Ŷ / (|B̂|² + α)] in closed form, so F(b) = g(x̂(b), b) + r(b) is an explicit, smooth
function of b and its gradient by automatic differentiation through that formula
(``closed_form_hypergradient``) is exact and independent of the implicit-function machinery (lower solver,
CG, ``_hypergradient_from``) it checks. μ = α and L = max|B̂|² + α are exact.

It is ``deblur2d`` with TV weight 0, ζ = μ = α and the periodic boundary, so it shares every oracle. It
belongs to no named parameter set (no protocol applies to it: solvers run with their defaults) and states
every setting ``deblur2d`` would take from one (``deblur_settings``): one consistent objective (lower
gradient, adjoint Hessian and ∇r those of h and r), the certified step 1/L and stop ‖∇h‖ ≤ μ ε, g with
s = ½, the squared H¹ penalty; its smoothed-TV baseline (here the Tikhonov reconstruction with b_A) is
solved to the certified tolerance.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from problems.conv2d import Conv2D
from problems.deblur2d import Deblur2D
from problems.deblur2d_params import DEFAULT_TV_BASELINE, UPPER_OPERATORS, BlurredImageParams, Deblur2DParams
from problems.images import as_size
from problems.params import param


@dataclass(frozen=True)
class TikhonovConv2DParams(BlurredImageParams):
    """The data of ``deblur2d`` on a small image, the Tikhonov weight α and the H¹ weight β."""

    problem: ClassVar[str] = "tikhonov_conv2d"

    size: tuple[int, int] = param((16, 16), "(H, W) the image is resized to", convert=as_size)
    step0: float = param(1e-3, "initial upper-level step shared by every solver", gt=0)
    alpha: float = param(0.05, "Tikhonov weight α of (α/2)‖x‖² (= μ)", gt=0, why="strong convexity")
    beta: float = param(0.01, "H¹ weight β of the kernel penalty r(b)", ge=0)
    upper_operator: str = param(
        "known", "g measures the data fit with the known b_A or the learned b", choices=UPPER_OPERATORS
    )

    def deblur_settings(self) -> tuple[Deblur2DParams, dict[str, Any]]:
        """The ``deblur2d`` model this problem is (module docstring), and its baseline rule."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(BlurredImageParams)}
        model = Deblur2DParams(
            **fields,
            alpha=0.0,  # no TV
            beta=float(self.beta),
            gamma=1.0,  # TV's smoothing: unused with α = 0
            boundary="periodic",
            upper_operator=self.upper_operator,
            mu=self.alpha,
            zeta=float(self.alpha),
            preset=None,
            ll_grad_tv_scale=1.0,
            adjoint_hessian="descended",
            ll_step_rule="bound",
            ll_stop="norm",
            tv_double_count=False,
            h1_form="squared",
            ul_scale=0.5,
        )
        return model.deblur_settings()[0], dict(DEFAULT_TV_BASELINE)

    @classmethod
    def named_settings(cls) -> dict[str, dict[str, Any]]:
        """The deblur2d settings this problem fixes (module docstring)."""
        model, rule = cls().deblur_settings()
        fixed = ("alpha", "gamma", "boundary", "mu", "zeta", "ll_grad_tv_scale", "adjoint_hessian")
        fixed += ("ll_step_rule", "ll_stop", "tv_double_count", "h1_form", "ul_scale")
        shown = {k: getattr(model, k) for k in fixed}
        return {
            "fixed (deblur2d's model)": {
                **shown,
                "alpha": "0 (no TV)",
                "mu": "α",
                "zeta": "α",
                "tv_baseline": rule,
            }
        }


class TikhonovConv2D(Deblur2D):
    """Kernel-learning Tikhonov ADP with periodic convolution; data from a small resized colour image."""

    name = "tikhonov_conv2d"
    Params = TikhonovConv2DParams
    metric_names = ("psnr", "ssim")

    def __init__(self, **params: object):
        super().__init__(**params)
        self.tikhonov_alpha = self.config.alpha

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
