"""`deblur2d` and `semiblind2d` — paper §4.2, colour-image (semi-blind) deblurring, SPEC §2.2–2.3 and §2.5.

    θ = b (3, k, k), a per-channel kernel;  K_b x = b ∗ x (``problems.conv2d``, torch's cross-correlation
    convention, FFT-based, boundary a parameter)
    lower   h(x, b) = ½‖K_b x − y‖² + α TV_γ(x) + (ζ/2)‖x‖²        (smooth; x₀ = y)
    upper   g(x, b) = s‖K_{b_A} x − y‖²  ("known")  or  s‖K_b x − y‖²  ("learned"),  s = ``ul_scale`` (½)
            r(b)    = (β/2)‖b − b_A‖²_{H¹}                          (squared, per channel)

Hypergradient (closed form, ``_hypergradient_from``): with G(u, v) := ∂_b⟨K_b u, v⟩ (one FFT
cross-correlation, ``Conv2D.kernel_grad``) and ⟨∇_x h(x, b), q⟩ = ⟨K_b x − y, K_b q⟩ + (terms free of b),

    −Jᵀq = −G(x, K_b q) − G(q, K_b x − y),  ∂_b g = 2s·G(x, K_b x − y) (learned),  ∇r = β(I − Δ)(b − b_A),

summed in the Fourier domain so the whole hypergradient costs 7 real FFTs.

Parameter sets (``preset``, ``problems/parameter_sets.py``; explicit parameters override): ``certified`` (the
default, sound) and ``authors`` (SPEC §2.5) with its ablation rows ``authors-fix-<deviation>``. The
problem records the name in ``params["preset"]``; ``protocols`` (one layer up) supplies the solver settings
for it, and ``bench`` consults ``protocols`` — this module knows no solver. The authors' deviations are
problem parameters, each on its own (``certified`` has them all off):

* ``ll_grad_tv_scale`` (1) — factor on the TV part of the lower gradient; ≠ 1 means the lower solver
  descends h with α·scale while the value / Hessian say α (authors: 0.01, α_eff = e⁻⁶). *Inconsistent.*
* ``adjoint_hessian`` ("descended") — CG uses the Hessian of the problem the lower solver descends, or of
  the written "objective" (authors). *Inconsistent* when the two differ.
* ``ll_step_rule`` ("bound") — lower step 1/L with the rigorous bound L of the descended problem, or
  "power": 10 power iterations (seeded start: deterministic) on the objective's Hessian at each solve's
  start point (authors; those Hessian-vector products are not counted, as in their code).
* ``ll_stop`` ("norm") — ‖∇h‖ ≤ μ ε, or "channel_mean": the mean over channels of per-channel ‖∇h‖ < ε.
* ``tv_double_count`` (False) — the authors' replicate-padded TV (``SmoothedTV``).
* ``h1_form`` ("squared") — or "authors": unsquared β‖b − b_A‖_H¹ with a mismatched gradient. *Inconsistent.*
* ``ul_scale`` (½) with ``upper_operator`` — the authors' g = ‖b ∗ x − y‖²/3 with the learned b. We keep
  ∂_b g in the hypergradient (their code omits it; SPEC §1).

With "power" or "channel_mean" the lower solve is ``_authors_fista`` (their iteration: the test on the
gradient at the extrapolated point, then the step is returned); otherwise ``problems.lower``.

Other choices where SPEC is silent (recorded in ``params``):

* boundary — ``"replicate"`` by default (the authors' ``padding_mode``); ``"periodic"``, ``"reflect"``,
  ``"zero"`` are available. Data are generated with the same operator as the model (as the authors did).
* μ — ``mu=None`` resolves to ζ when ζ > 0 (then ‖x − x̂‖ ≤ ‖∇h‖/ζ is a true bound) and otherwise to 1, the
  authors' effective choice: then "accuracy ε" means only ‖∇_x h‖ ≤ ε, not a certified distance. Momentum:
  the strongly-convex constant only when μ is a true bound (ζ > 0 and μ ≤ ζ), else FISTA's t_k rule.
* L = ‖K_b‖²-bound + α·scale·L_TV + ζ (``Conv2D.norm_bound``: exact for periodic, Collatz–Wielandt for
  replicate / reflect, cached per θ).
* metrics — PSNR and SSIM (scikit-image, ``data_range=1``, ``channel_axis``) of x clamped to [0, 1].
* image — a bundled scikit-image name or a path to your own file (``problems/images.py``).
* blur — the known kernel b_A (and b₀): ``"motion"``, the paper's diagonal, by default; a Gaussian or a
  linear motion at an angle by name (``problems/kernels.py``), inside the ``kernel_size`` support.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from problems import parameter_sets
from problems.base import BilevelProblem
from problems.conv2d import BOUNDARIES, Conv2D, conv2d, gaussian_kernel
from problems.images import RGB_IMAGES, as_size, load_rgb_image
from problems.kernels import blur_kernel
from problems.lower import LowerResult
from problems.precond2d import FourierPreconditioner, JacobiPreconditioner, tv_mean_curvature
from problems.regularisers import H1_FORMS, H1Penalty, SmoothedTV

__all__ = ["RGB_IMAGES", "Deblur2D", "SemiBlind2D", "load_rgb_image"]

#: iterations of the authors' power method for L (``ll_step_rule="power"``)
POWER_ITERS = 10
ADJOINT_HESSIANS = ("descended", "objective")
STEP_RULES = ("bound", "power")
STOP_RULES = ("norm", "channel_mean")
#: per-θ set-ups kept (θ, and the line-search trials around it)
SETUP_CACHE_SIZE = 4
#: relative loosening of ‖K_θ‖'s bound accepted to reuse a nearby kernel's (``kernel_norm_sq_bound``)
LIP_REUSE_SLACK = 1e-3
#: power iterations of a fresh ‖K_θ‖ bound: from the all-ones image, and warm-started at the last iterate
LIP_COLD_ITERS = 10
LIP_WARM_ITERS = 3


@dataclass
class _Setup:
    """Per-θ quantities (kernel FFT, −K_bᵀy), computed once per kernel so one lower iteration costs
    one rfft2/irfft2 pair (plus, for padded boundaries, the band correction of ``Conv2D.normal``) and
    the TV gradient."""

    key: Tensor
    version: int
    graph: bool
    op: Conv2D
    neg_kty: Tensor


class Deblur2D(BilevelProblem):
    """Motion deblurring of a colour image with a learned 3×k×k kernel (SPEC §2.2)."""

    name = "deblur2d"
    #: whose named parameter sets (``problems/parameter_sets.py``) a subclass uses
    parameter_family = "deblur2d"
    metric_names = ("psnr", "ssim")
    ul_convex_in_x = True
    ll_momentum = "fista"  # per instance: "strongly_convex" when μ = ζ > 0 is a true bound
    per_theta_caches = ("_setup_cache", "_lip_cache")

    def __init__(
        self,
        image: str = "astronaut",
        size: tuple[int, int] = (128, 128),
        seed: int = 0,
        alpha: float | None = None,
        beta: float | None = None,
        gamma: float = 0.01,
        boundary: str = "replicate",
        upper_operator: str | None = None,
        mu: float | None = None,
        zeta: float | None = None,
        noise: float = 5 / 255,
        step0: float = 1e-6,
        kernel_size: int = 5,
        blur: str = "motion",
        preset: str = "certified",
        ll_grad_tv_scale: float | None = None,
        adjoint_hessian: str | None = None,
        ll_step_rule: str | None = None,
        ll_stop: str | None = None,
        tv_double_count: bool | None = None,
        h1_form: str | None = None,
        ul_scale: float | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ):
        super().__init__(dtype=dtype, device=device)
        size = as_size(size)
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        explicit = dict(
            alpha=alpha,
            beta=beta,
            zeta=zeta,
            upper_operator=upper_operator,
            ll_grad_tv_scale=ll_grad_tv_scale,
            adjoint_hessian=adjoint_hessian,
            ll_step_rule=ll_step_rule,
            ll_stop=ll_stop,
            tv_double_count=tv_double_count,
            h1_form=h1_form,
            ul_scale=ul_scale,
        )
        resolved = parameter_sets.parameter_set(preset, self.parameter_family)
        self.tv_baseline_rule = dict(resolved.pop("tv_baseline"))
        resolved.update({k: v for k, v in explicit.items() if v is not None})
        r = resolved
        for key, valid in (
            ("upper_operator", ("known", "learned")),
            ("adjoint_hessian", ADJOINT_HESSIANS),
            ("ll_step_rule", STEP_RULES),
            ("ll_stop", STOP_RULES),
            ("h1_form", H1_FORMS),
        ):
            if r[key] not in valid:
                raise ValueError(f"{key} must be one of {valid}, got {r[key]!r}")
        alpha, beta, zeta = float(r["alpha"]), float(r["beta"]), float(r["zeta"])
        if mu is None:
            mu = zeta if zeta > 0 else 1.0
        scale, ul_scale = float(r["ll_grad_tv_scale"]), float(r["ul_scale"])
        if min(alpha, beta, zeta, noise) < 0 or min(gamma, mu, step0, scale, ul_scale) <= 0:
            raise ValueError(
                f"{self.name} needs alpha, beta, zeta, noise ≥ 0 and gamma, mu, step0, ll_grad_tv_scale, "
                f"ul_scale > 0; got alpha={alpha}, beta={beta}, zeta={zeta}, noise={noise}, gamma={gamma}, "
                f"mu={mu}, step0={step0}, ll_grad_tv_scale={scale}, ul_scale={ul_scale}"
            )
        self.params = dict(
            image=str(image),
            size=size,
            seed=seed,
            alpha=alpha,
            beta=beta,
            gamma=gamma,
            boundary=boundary,
            upper_operator=r["upper_operator"],
            mu=mu,
            zeta=zeta,
            noise=noise,
            step0=step0,
            kernel_size=kernel_size,
            preset=preset,
            ll_grad_tv_scale=scale,
            adjoint_hessian=r["adjoint_hessian"],
            ll_step_rule=r["ll_step_rule"],
            ll_stop=r["ll_stop"],
            tv_double_count=bool(r["tv_double_count"]),
            h1_form=r["h1_form"],
            ul_scale=ul_scale,
        )
        if blur != "motion":  # recorded when set: records of the paper's kernel stay as they were
            self.params["blur"] = blur
        self.preset = preset
        self.alpha, self.beta, self.gamma, self.zeta, self.mu = alpha, beta, gamma, zeta, float(mu)
        self.boundary, self.upper_operator, self.noise = boundary, r["upper_operator"], noise
        self.ul_scale = ul_scale
        self.ll_step_rule, self.ll_stop = r["ll_step_rule"], r["ll_stop"]
        # TV weights: of the problem the lower solver descends, of the written objective, of CG's Hessian
        self.alpha_descended = alpha * scale
        self.alpha_adjoint = alpha if r["adjoint_hessian"] == "objective" else self.alpha_descended
        #: the pieces that make the hypergradient belong to no objective (labelled, exempt from FD tests)
        self.inconsistencies = tuple(
            name
            for name, bad in (
                ("lower gradient ≠ objective's", scale != 1.0),
                ("adjoint Hessian ≠ descended problem's", self.alpha_adjoint != self.alpha_descended),
                ("H¹ gradient ≠ ∇r", r["h1_form"] == "authors" and beta > 0),
            )
            if bad
        )
        self._step0 = step0
        self.certified = zeta > 0 and mu <= zeta and r["ll_stop"] == "norm"  # ‖∇h‖/μ a true bound?
        self.mu_is_bound = zeta > 0 and mu <= zeta  # the reference API's condition (problems/base.py)
        self.ll_momentum = "strongly_convex" if self.certified else "fista"
        self.shape = size
        self.tv = SmoothedTV(gamma, double_count=bool(r["tv_double_count"]))

        # Data in float64 on the CPU from a fixed seed, then moved: identical across devices / dtypes.
        x_true = load_rgb_image(image, size)
        b_a = blur_kernel(blur, kernel_size, dtype=torch.float64)  # the known operator b_A, and b₀
        gen = torch.Generator().manual_seed(seed)
        blurred = self._blur_truth(x_true, b_a)
        y = (blurred + noise * torch.randn(x_true.shape, generator=gen, dtype=torch.float64)).clamp(0.0, 1.0)
        to = dict(dtype=dtype, device=self.device)
        self.x_true, self.y, self.b_A = x_true.to(**to), y.to(**to), b_a.to(**to)
        self.theta0 = self.b_A.clone()
        self.x0 = self.y.clone()
        self.h1 = H1Penalty(self.b_A, beta, r["h1_form"])
        self._op_A = Conv2D(self.b_A, size, boundary)
        self._neg_kty_A = -self._op_A.adjoint(self.y)
        self._lip_A = self._op_A.norm_bound() ** 2
        self._setup_cache: list[_Setup] = []
        self._lip_cache: tuple[Tensor, float, Tensor | None] | None = None

    def _blur_truth(self, x_true: Tensor, b_a: Tensor) -> Tensor:
        """b_A ∗ x† (overridden by semiblind2d)."""
        return conv2d(x_true, b_a, self.boundary)

    # ------------------------------------------------------------------ per-θ cache
    def _setup(self, theta: Tensor) -> _Setup:
        graph = torch.is_grad_enabled() and theta.requires_grad
        for c in self._setup_cache:  # a few recent kernels: MAID returns to θ after rejected trials
            if c.key is theta and c.version == theta._version and c.graph == graph:
                return c
        self.counters.setup_evals += 1  # kernel FFT and −K_bᵀy (docs/cost_model.md)
        op = Conv2D(theta, self.shape, self.boundary)
        setup = _Setup(theta, theta._version, graph, op, -op.adjoint(self.y))
        self._setup_cache = [setup, *self._setup_cache[: SETUP_CACHE_SIZE - 1]]
        return setup

    def kernel_norm_sq_bound(self, theta: Tensor) -> float:
        """A rigorous bound of ‖K_θ‖², cached by kernel value (LISTA passes fresh ``theta.detach()``s).

        Near a kernel b with a computed bound β ≥ ‖K_b‖ (a line-search trial b − t z), the triangle
        inequality gives ‖K_θ‖ ≤ β + ‖K_{θ−b}‖ ≤ β + (r + 1)·max_c ‖θ_c − b_c‖₁ (Young, and ‖P‖ ≤ r + 1:
        the padding copies a pixel at most r + 1 times per axis); used when that adds at most
        LIP_REUSE_SLACK·β. Otherwise the Collatz–Wielandt bound is recomputed, warm-started at the last
        power iterate (LIP_WARM_ITERS pairs instead of 10 from the all-ones image)."""
        theta = theta.detach()
        c = self._lip_cache
        near = math.inf  # the triangle-inequality bound from the cached kernel
        if c is not None and c[0].shape == theta.shape:
            if torch.equal(c[0], theta):
                return c[1] ** 2
            near = c[1] + (theta.shape[-1] // 2 + 1) * float((theta - c[0]).abs().sum((-2, -1)).max())
            if near <= (1.0 + LIP_REUSE_SLACK) * c[1]:
                return near**2
        self.counters.lipschitz_evals += 1  # power iterations of K_|b|ᵀK_|b| (docs/cost_model.md)
        setup = next((s for s in self._setup_cache if s.key is theta), None)
        op = setup.op if setup is not None else Conv2D(theta, self.shape, self.boundary)
        if c is not None and c[2] is not None and c[2].shape[-2:] == op.shape:
            value, w = op.norm_bound_from(c[2], LIP_WARM_ITERS)
            value = min(value, near)  # both are rigorous bounds
        else:
            value, w = op.norm_bound_from(None, LIP_COLD_ITERS)
        self._lip_cache = (theta.clone(), value, w)
        return value**2

    # ------------------------------------------------------------------ maths
    def _ll_grad(self, theta: Tensor, x: Tensor) -> Tensor:
        s = self._setup(theta)
        g = s.op.normal(x)
        if s.graph or (torch.is_grad_enabled() and x.requires_grad):
            g = g + s.neg_kty
            if self.alpha_descended:
                g = g + self.alpha_descended * self.tv.grad(x)
            return g + self.zeta * x if self.zeta else g
        g.add_(s.neg_kty)
        if self.alpha_descended:
            self.tv.add_grad(x, g, self.alpha_descended)
        if self.zeta:
            g.add_(x, alpha=self.zeta)
        return g

    def ll_lipschitz(self, theta: Tensor) -> float:
        """L of the problem the lower solver descends (TV weight α·``ll_grad_tv_scale``)."""
        return self.kernel_norm_sq_bound(theta) + self.alpha_descended * self.tv.lipschitz + self.zeta

    def ll_mu(self, theta: Tensor) -> float:
        return self.mu

    def lower_objective(self, theta: Tensor, x: Tensor) -> Tensor:
        """h(x, θ) with the objective's α (for diagnostics and tests)."""
        res = self._setup(theta).op.forward(x) - self.y
        out = 0.5 * (res * res).sum() + self.alpha * self.tv.value(x)
        return out + 0.5 * self.zeta * (x * x).sum() if self.zeta else out

    def ul_g(self, theta: Tensor, x: Tensor) -> Tensor:
        op = self._op_A if self.upper_operator == "known" else self._setup(theta).op
        res = op.forward(x) - self.y
        return self.ul_scale * (res * res).sum()

    def ul_reg(self, theta: Tensor) -> Tensor:
        return self.h1.value(theta)

    def ul_lipschitz_x(self, theta: Tensor) -> float:
        lip = self._lip_A if self.upper_operator == "known" else self.kernel_norm_sq_bound(theta)
        return 2.0 * self.ul_scale * lip

    @property
    def ul_step0(self) -> float:
        return self._step0

    # ------------------------------------------------------------------ closed forms
    def _hvp(self, theta: Tensor, x: Tensor, v: Tensor) -> Tensor:
        """H v for the adjoint: TV weight of the descended problem, or of the objective (authors)."""
        return self._hessian_vp(theta, x, v, self.alpha_adjoint)

    def _hessian_vp(self, theta: Tensor, x: Tensor, v: Tensor, alpha: float) -> Tensor:
        hv = self._setup(theta).op.normal(v)
        if alpha:
            hv = hv + alpha * self.tv.hvp(x, v)
        return hv + self.zeta * v if self.zeta else hv

    def _ul_grad_x(self, theta: Tensor, x: Tensor) -> Tensor:
        if self.upper_operator == "known":
            grad = self._op_A.normal(x) + self._neg_kty_A
        else:
            s = self._setup(theta)
            grad = s.op.normal(x) + s.neg_kty
        return grad if self.ul_scale == 0.5 else (2.0 * self.ul_scale) * grad

    def _ll_grad_jvp_theta(self, theta: Tensor, x: Tensor, v: Tensor) -> Tensor:
        """J v = ∂_b[K_bᵀ(K_b x − y)]·v = K_vᵀ(K_b x − y) + K_bᵀK_v x (one shared rfft2 of x)."""
        op = self._setup(theta).op
        self.counters.setup_evals += 1  # the direction's kernel FFT: a set-up's work (docs/cost_model.md)
        op_v = Conv2D(v, self.shape, self.boundary)
        xhat = op.fft_input(x)
        return op_v.adjoint(op.forward_from_fft(xhat) - self.y) + op.adjoint(op_v.forward_from_fft(xhat))

    def _hypergradient_from(self, theta: Tensor, x: Tensor, q: Tensor) -> Tensor:
        op = self._setup(theta).op
        n = op.fft_shape
        xhat, qhat = op.fft_input(x), op.fft_input(q)
        res = op.forward_from_fft(xhat) - self.y
        res_hat = torch.fft.rfft2(res, s=n).conj()
        kq_hat = torch.fft.rfft2(op.forward_from_fft(qhat), s=n).conj()
        # −Jᵀq = −G(x, K_b q) − G(q, K_b x − y);  ∂_b g = 2s·G(x, K_b x − y) for the learned operator
        spec = -(kq_hat * xhat) - res_hat * qhat
        if self.upper_operator == "learned":
            spec = spec + (2.0 * self.ul_scale) * res_hat * xhat
        grad = op.kernel_grad_from_spectrum(spec)
        return grad + self.h1.grad(theta) if self.beta else grad

    def adjoint_preconditioner(self, theta: Tensor, x: Tensor, kind: str) -> Callable[[Tensor], Tensor]:
        """M⁻¹ for M ≈ H of kind ``"fourier"`` or ``"jacobi"`` (``problems.precond2d``)."""
        if kind == "fourier":
            curvature = self.alpha * tv_mean_curvature(x, self.gamma) if self.alpha else 0.0
            return FourierPreconditioner(theta, self.shape, curvature, self.zeta)
        if kind == "jacobi":
            return JacobiPreconditioner(theta, x, self.alpha, self.gamma, self.zeta)
        raise ValueError(f"preconditioner must be 'fourier' or 'jacobi', got {kind!r}")

    # ------------------------------------------------------------------ lower solve
    def ll_solve(
        self, theta: Tensor, x: Tensor, eps: float, max_iters: int, step: float | None = None
    ) -> LowerResult:
        """Certified solve (``problems.lower``), or the authors' FISTA when their step / stop rule is on."""
        if self.ll_step_rule == "bound" and self.ll_stop == "norm":
            return super().ll_solve(theta, x, eps, max_iters, step)
        with torch.no_grad():
            return self._authors_fista(theta, x, eps, max_iters, step)

    def power_lipschitz(self, theta: Tensor, x: Tensor) -> float:
        """The authors' L: Rayleigh quotient after ``POWER_ITERS`` normalised power iterations on the
        Hessian of the objective (TV weight α) at x, from a start drawn from a generator seeded with the
        problem's seed (their start is unseeded: ±0.05 dB run to run). Not counted, as in their code."""
        gen = torch.Generator(device=self.device).manual_seed(int(self.params["seed"]))
        v = torch.randn(x.shape, generator=gen, dtype=self.dtype, device=self.device)
        for _ in range(POWER_ITERS):
            v = self._hessian_vp(theta, x, v, self.alpha)
            v = v / torch.linalg.vector_norm(v)
        return float(torch.vdot(self._hessian_vp(theta, x, v, self.alpha).flatten(), v.flatten()))

    def _authors_fista(
        self, theta: Tensor, x: Tensor, eps: float, max_iters: int, step: float | None
    ) -> LowerResult:
        """FISTA as the authors' ``hg.py`` runs it: t₁ = 1, step 1/L (``ll_step_rule``), and after each step
        the test stat(∇h(y)) < μ ε on the gradient just used (``ll_stop``); returns the step x_{k+1}.
        ``dist_bound`` is stat/μ — a certified distance only for "norm" with a true μ."""
        if step is None:
            lip = self.power_lipschitz(theta, x) if self.ll_step_rule == "power" else self.ll_lipschitz(theta)
            step = 1.0 / lip
        if not math.isfinite(step):
            return LowerResult(torch.full_like(x, math.nan), 0, math.inf, False)
        x_prev, y, t, stat = x, x, 1.0, math.inf
        for k in range(1, max_iters + 1):
            grad = self.ll_grad(theta, y)
            x_new = torch.add(y, grad, alpha=-step)
            t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
            y = x_new + ((t - 1.0) / t_next) * (x_new - x_prev)
            x_prev, t = x_new, t_next
            if self.ll_stop == "channel_mean":
                stat = float(torch.linalg.vector_norm(grad, dim=(-2, -1)).mean()) / self.mu
            else:
                stat = float(torch.linalg.vector_norm(grad)) / self.mu
            if stat < eps:
                return LowerResult(x_new, k, stat, True)
        return LowerResult(x_prev, max_iters, stat, False)

    # ------------------------------------------------------------------ evaluation (uncounted)
    def metrics(self, theta: Tensor, x: Tensor) -> dict[str, float]:
        """PSNR / SSIM of x clamped to [0, 1] against x† (scikit-image, data_range=1, channel_axis)."""
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        est = x.detach().clamp(0.0, 1.0).to("cpu", torch.float64).permute(1, 2, 0).numpy()
        ref = self.x_true.detach().to("cpu", torch.float64).permute(1, 2, 0).numpy()
        return {
            "psnr": float(peak_signal_noise_ratio(ref, est, data_range=1.0)),
            "ssim": float(structural_similarity(ref, est, data_range=1.0, channel_axis=-1)),
        }

    def blurry_metrics(self) -> dict[str, float]:
        """Metrics of the data y."""
        return self.metrics(self.theta0, self.y)

    def tv_baseline(
        self, tol: float | None = None, n_iters: int | None = None, max_iters: int = 1_000_000
    ) -> Tensor:
        """The smoothed-TV reconstruction x̂(b₀) (uncounted), with this instance's lower solver, from y:

        * ``tol``: until its stopping test holds at accuracy tol (a certified distance when μ is a true
          bound and the stop rule is "norm"; the ``certified`` baseline);
        * ``n_iters``: exactly that many lower-level iterations — the authors' "100 FISTA iterations".
        """
        if (tol is None) == (n_iters is None):
            raise ValueError("tv_baseline needs exactly one of tol, n_iters")
        if tol is not None:
            return self._reference_solve(
                self.theta0, tol, max_iters, below_floor=True
            )  # also when μ is nominal
        if n_iters < 1:
            raise ValueError(f"n_iters must be ≥ 1, got {n_iters}")
        with self.uncounted():
            return self.ll_solve(self.theta0, self.x0, 0.0, n_iters).x

    def tv_reference(self) -> Tensor:
        """The smoothed-TV baseline as this instance's parameter set defines it (``tv_baseline_rule``)."""
        return self.tv_baseline(**self.tv_baseline_rule)


class SemiBlind2D(Deblur2D):
    """Semi-blind deblurring (SPEC §2.3): y = clamp(G_σ ∗ (b_A ∗ x†) + noise, 0, 1), only b_A known.

    θ₀ = b_A (motion); the learned b − b_A should look Gaussian-like. ``upper_operator="learned"`` in every
    parameter set (with the known operator the upper level would keep pulling b back towards b_A).
    """

    name = "semiblind2d"
    parameter_family = "semiblind2d"

    def __init__(
        self,
        image: str = "astronaut",
        size: tuple[int, int] = (128, 128),
        seed: int = 0,
        alpha: float | None = None,
        beta: float | None = None,
        gamma: float = 0.01,
        boundary: str = "replicate",
        upper_operator: str | None = None,
        mu: float | None = None,
        zeta: float | None = None,
        noise: float = 5 / 255,
        step0: float = 1e-6,
        kernel_size: int = 5,
        blur: str = "motion",
        preset: str = "certified",
        ll_grad_tv_scale: float | None = None,
        adjoint_hessian: str | None = None,
        ll_step_rule: str | None = None,
        ll_stop: str | None = None,
        tv_double_count: bool | None = None,
        h1_form: str | None = None,
        ul_scale: float | None = None,
        sigma: float = 0.5,
        *,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ):
        self.sigma = sigma
        self.gaussian = gaussian_kernel(kernel_size, sigma, dtype=torch.float64)
        super().__init__(
            image=image,
            size=size,
            seed=seed,
            alpha=alpha,
            beta=beta,
            gamma=gamma,
            boundary=boundary,
            upper_operator=upper_operator,
            mu=mu,
            zeta=zeta,
            noise=noise,
            step0=step0,
            kernel_size=kernel_size,
            blur=blur,
            preset=preset,
            ll_grad_tv_scale=ll_grad_tv_scale,
            adjoint_hessian=adjoint_hessian,
            ll_step_rule=ll_step_rule,
            ll_stop=ll_stop,
            tv_double_count=tv_double_count,
            h1_form=h1_form,
            ul_scale=ul_scale,
            dtype=dtype,
            device=device,
        )
        self.params["sigma"] = sigma
        self.gaussian = self.gaussian.to(dtype=dtype, device=self.device)

    def _blur_truth(self, x_true: Tensor, b_a: Tensor) -> Tensor:
        return conv2d(conv2d(x_true, b_a, self.boundary), self.gaussian, self.boundary)
