"""Parameters of the 2D deblurring problems, and how a named parameter set fills them in.

``BlurredImageParams`` — the data every 2D problem is built from: a colour image x† resized to ``size``,
blurred by the known kernel b_A (k×k, per channel; the paper's diagonal motion blur by default, others by
name: ``problems/kernels.py``), plus Gaussian noise from ``seed``, clipped to
[0, 1] (``problems/data2d.py``).

``Deblur2DParams`` — the model of ``deblur2d`` (and, extended by σ, ``semiblind2d``). The parameters a named
set decides (α, β, ζ, the upper operator and the authors' deviations, ``PRESET_FIELDS``) default to None,
"the preset's value": ``deblur_settings()`` fills them in from ``problems/parameter_sets.py`` (explicit
values win) and resolves μ. ``preset=None`` is "no named set": every one of them must then be given, and
the smoothed-TV baseline is solved to the certified tolerance (``tikhonov_conv2d`` builds its model so).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from problems import parameter_sets
from problems.conv2d import BOUNDARIES
from problems.images import as_size
from problems.kernels import blur_kernel
from problems.params import ProblemParams, image_bytes, param
from problems.regularisers import H1_FORMS

ADJOINT_HESSIANS = ("descended", "objective")
STEP_RULES = ("bound", "power")
STOP_RULES = ("norm", "channel_mean")
#: the lower-level regulariser: TV_γ (smooth, the paper's), or TV itself (isotropic ℓ²,¹ / anisotropic ℓ¹),
#: non-smooth, solved by the certified primal–dual method (docs/nonsmooth_tv.md)
REGULARISERS = ("smoothed_tv", "tv", "tv_aniso")
#: the TV kind (``problems.tv.TV_KINDS``) of each non-smooth regulariser
TV_KIND_OF = {"tv": "isotropic", "tv_aniso": "anisotropic"}
#: adjoint of the non-smooth lower level: piggyback on the primal–dual iteration, or CG on V_S
TV_ADJOINTS = ("piggyback", "projected_cg")
UPPER_OPERATORS = ("known", "learned")
PRESET = "the preset's value"
#: the parameters a named set decides (None: take the set's value)
PRESET_FIELDS = (
    "alpha",
    "beta",
    "zeta",
    "upper_operator",
    "ll_grad_tv_scale",
    "adjoint_hessian",
    "ll_step_rule",
    "ll_stop",
    "tv_double_count",
    "h1_form",
    "ul_scale",
)
#: the smoothed-TV baseline without a named set (``preset=None``): the certified one
DEFAULT_TV_BASELINE = {"tol": parameter_sets.BASELINE_TOL}


@dataclass(frozen=True)
class BlurredImageParams(ProblemParams):
    """The data of a 2D problem: y = clamp(blur(x†) + noise·N(0, I), 0, 1), θ₀ = b_A."""

    image: str = param("astronaut", "a bundled scikit-image colour image or the path of your own file")
    size: tuple[int, int] = param((128, 128), "(H, W) the image is resized to", convert=as_size)
    seed: int = param(0, "seed of the noise draw")
    noise: float = param(5 / 255, "standard deviation of the noise on y", ge=0)
    step0: float = param(1e-6, "initial upper-level step shared by every solver", gt=0)
    kernel_size: int = param(5, "k of the k×k kernels (odd)", ge=1)
    blur: str = param("motion", "the known kernel b_A (and b₀): motion | gaussian:SIGMA | line:LENGTH:ANGLE")

    def check(self) -> None:
        if self.kernel_size % 2 == 0:
            raise ValueError(f"{self.problem}.kernel_size must be odd, got {self.kernel_size}")
        blur_kernel(self.blur, self.kernel_size)  # one line naming the valid forms, or the size it needs

    def memory_bytes(self, itemsize: int) -> int:
        return image_bytes(self.size, itemsize)


@dataclass(frozen=True)
class Deblur2DParams(BlurredImageParams):
    """h(x, b) = ½‖K_b x − y‖² + α TV_γ(x) + (ζ/2)‖x‖²;  F(b) = s‖K x̂ − y‖² + (β/2)‖b − b_A‖²_{H¹}."""

    problem: ClassVar[str] = "deblur2d"

    alpha: float | None = param(None, "TV weight α of the lower level", ge=0, none_means=PRESET)
    beta: float | None = param(None, "H¹ weight β of the kernel penalty r(b)", ge=0, none_means=PRESET)
    gamma: float = param(0.01, "smoothing γ of TV_γ", gt=0)
    boundary: str = param("replicate", "boundary rule of the convolution K_b", choices=BOUNDARIES)
    upper_operator: str | None = param(
        None, "g measures the data fit with the known b_A or the learned b", choices=UPPER_OPERATORS,
        none_means=PRESET,
    )  # fmt: skip
    mu: float | None = param(
        None, "μ of the certificate ‖x − x̂‖ ≤ ‖∇h‖/μ", gt=0, none_means="ζ when ζ > 0, else 1 (nominal)"
    )
    zeta: float | None = param(
        None, "weight ζ of (ζ/2)‖x‖²: μ = ζ is then a true strong-convexity bound", ge=0, none_means=PRESET
    )
    preset: str | None = param(
        "certified",
        "named parameter set: certified | authors | authors-fix-<deviation>[+...]",
        none_means="no named set (every preset-decided parameter given)",
    )
    ll_grad_tv_scale: float | None = param(
        None, "factor on the TV part of the lower gradient (authors: 0.01)", gt=0, none_means=PRESET
    )
    adjoint_hessian: str | None = param(
        None, "CG's Hessian: of the descended problem or of the written objective", choices=ADJOINT_HESSIANS,
        none_means=PRESET,
    )  # fmt: skip
    ll_step_rule: str | None = param(
        None, "lower step 1/L: the rigorous bound, or the authors' power method", choices=STEP_RULES,
        none_means=PRESET,
    )  # fmt: skip
    ll_stop: str | None = param(
        None, "lower stop: ‖∇h‖ ≤ μ ε, or the authors' channel mean", choices=STOP_RULES, none_means=PRESET
    )
    tv_double_count: bool | None = param(None, "the authors' replicate-padded TV", none_means=PRESET)
    h1_form: str | None = param(
        None, "r(b) squared (sound) or the authors' unsquared form", choices=H1_FORMS, none_means=PRESET
    )
    ul_scale: float | None = param(None, "s in g = s‖K x − y‖² (authors: 1/3)", gt=0, none_means=PRESET)
    regulariser: str = param(
        "smoothed_tv",
        "lower-level regulariser: smoothed_tv (α TV_γ) | tv (α TV, isotropic) | tv_aniso (α TV, anisotropic)",
        choices=REGULARISERS,
    )
    tv_adjoint: str = param(
        "piggyback", "adjoint of the tv / tv_aniso lower level: piggyback | projected_cg", choices=TV_ADJOINTS
    )

    def check(self) -> None:
        super().check()
        if self.preset is not None:
            parameter_sets.parse_name(self.preset)  # one line naming the valid names
        if self.regulariser in TV_KIND_OF:
            if self.mu is None or any(getattr(self, k) is None for k in PRESET_FIELDS):
                self.deblur_settings()  # the filled-in copy runs this check itself
            else:
                self._check_nonsmooth(self)

    def _check_nonsmooth(self, s: Deblur2DParams) -> None:
        """TV itself needs a true μ = ζ > 0 (the duality-gap certificate divides by it), α > 0, and the sound
        settings (the authors' deviations concern the smooth solver's steps, stop and Hessian)."""
        where = f"{self.problem}.regulariser={self.regulariser}"
        if not s.zeta > 0:
            raise ValueError(f"{where} needs zeta > 0 (μ = ζ certifies the lower solve), got zeta={s.zeta:g}")
        if not s.alpha > 0:
            raise ValueError(f"{where} needs alpha > 0 (else use regulariser=smoothed_tv), got {s.alpha:g}")
        if s.mu > s.zeta:
            raise ValueError(f"{where} needs mu ≤ zeta (a true strong-convexity bound), got mu={s.mu:g}")
        deviations = {
            "ll_grad_tv_scale": (s.ll_grad_tv_scale, 1.0),
            "adjoint_hessian": (s.adjoint_hessian, "descended"),
            "ll_step_rule": (s.ll_step_rule, "bound"),
            "ll_stop": (s.ll_stop, "norm"),
            "tv_double_count": (s.tv_double_count, False),
        }
        bad = [f"{k}={v!r}" for k, (v, ok) in deviations.items() if v != ok]
        if bad:
            valid = ", ".join(f"{k}={ok!r}" for k, (_, ok) in deviations.items())
            raise ValueError(f"{where} takes the certified settings only ({valid}); got {', '.join(bad)}")

    def deblur_settings(self) -> tuple[Deblur2DParams, dict[str, Any]]:
        """(every parameter filled in, the smoothed-TV baseline rule) — see the module docstring."""
        if self.preset is None:
            base: dict[str, Any] = {}
            rule = dict(DEFAULT_TV_BASELINE)
        else:
            base = parameter_sets.parameter_set(self.preset, self.problem)
            rule = dict(base.pop("tv_baseline"))
        filled = {k: base.get(k) if getattr(self, k) is None else getattr(self, k) for k in PRESET_FIELDS}
        missing = [k for k, v in filled.items() if v is None]
        if missing:
            raise ValueError(f"{self.problem} with preset=None needs {', '.join(missing)} given explicitly")
        for key in ("alpha", "beta", "zeta", "ll_grad_tv_scale", "ul_scale"):
            filled[key] = float(filled[key])
        filled["tv_double_count"] = bool(filled["tv_double_count"])
        zeta = filled["zeta"]
        mu = (zeta if zeta > 0 else 1.0) if self.mu is None else self.mu
        return dataclasses.replace(self, **filled, mu=mu), rule

    def record(self) -> dict[str, Any]:
        return ProblemParams.record(self.deblur_settings()[0])

    @classmethod
    def named_settings(cls) -> dict[str, dict[str, Any]]:
        """What the two base parameter sets fill in (the ``authors-fix-<key>`` rows: docs/protocols.md)."""
        return {
            f"preset={name}": parameter_sets.parameter_set(name, cls.problem)
            for name in ("certified", "authors")
        }
