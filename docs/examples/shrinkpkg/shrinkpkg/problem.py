"""`shrink` — learn per-coordinate ridge weights θ of a denoiser (a minimal problem plug-in).

    lower:  x̂(θ) = argmin_x h(x, θ),  h = ½‖x − y‖² + ½‖θ ⊙ x‖²   (x̂ = y / (1 + θ²))
    upper:  F(θ) = ½‖x̂(θ) − x†‖²

∇ₓh is (1 + θ²)-Lipschitz in x and h is (1 + min θ²)-strongly convex; the base class turns ``_ll_grad`` and
``ul_g`` into the counted oracles (H v, ∇ₓg and the hypergradient by autograd).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from problems import BilevelProblem
from problems.params import ProblemParams, param


@dataclass(frozen=True)
class ShrinkParams(ProblemParams):
    problem: ClassVar[str] = "shrink"

    n: int = param(20, "dimension of x and θ", ge=1)
    noise: float = param(0.3, "standard deviation of the noise on y", ge=0)
    seed: int = param(0, "seed of the data")


class Shrink(BilevelProblem):
    """h(x, θ) = ½‖x − y‖² + ½‖θ ⊙ x‖²,  F(θ) = ½‖x̂(θ) − x†‖²."""

    name = "shrink"
    Params = ShrinkParams
    ll_momentum = "strongly_convex"

    def __init__(self, **params):
        super().__init__(**params)
        gen = torch.Generator().manual_seed(self.config.seed)
        x_true = torch.randn(self.config.n, generator=gen, dtype=torch.float64)
        y = x_true + self.config.noise * torch.randn(self.config.n, generator=gen, dtype=torch.float64)
        self.x_true, self.y = x_true.to(self.dtype), y.to(self.dtype)
        self.theta0 = torch.ones(self.config.n, dtype=self.dtype)
        self.x0 = torch.zeros(self.config.n, dtype=self.dtype)

    def _ll_grad(self, theta, x):
        return x - self.y + theta**2 * x

    def ll_lipschitz(self, theta):
        return 1.0 + float(theta.max() ** 2)

    def ll_mu(self, theta):
        return 1.0 + float(theta.min() ** 2)

    def ul_g(self, theta, x):
        return 0.5 * torch.sum((x - self.x_true) ** 2)

    def ul_lipschitz_x(self, theta):
        return 1.0

    @property
    def ul_step0(self):
        return 0.5  # 1/L of F on this family (a safe fixed upper step)
