"""Image quality of the 2D problems: metrics of a reconstruction and the baselines a report compares with.

* metrics — PSNR and SSIM (scikit-image, ``data_range=1``, ``channel_axis``) of x clamped to [0, 1] against
  the truth x†;
* blurry — the metrics of the data y;
* smoothed TV — x̂(b₀), the lower problem at the initial kernel b₀ = b_A (the TV reconstruction with the
  known kernel), computed with the instance's own lower solver from y: to an accuracy ``tol`` or for a fixed
  number of iterations (the authors' "100 FISTA iterations"), as the parameter set's ``tv_baseline`` rule
  says. Uncounted: evaluation is never charged to a solver.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor


class ImageQuality:
    """Metrics and baselines of an image problem (a mixin of ``Deblur2D``: it needs ``x_true``, ``y``,
    ``theta0``, ``x0``, ``tv_baseline_rule`` and the lower solver of ``BilevelProblem``)."""

    x_true: Tensor
    y: Tensor
    theta0: Tensor
    x0: Tensor
    tv_baseline_rule: dict

    @property
    def tv_baseline_label(self) -> str:
        """How tables and figures name ``tv_reference``: "TV" when the lower level is TV itself (a problem
        with a ``tv_lower``), else "smoothed TV"."""
        return "TV" if getattr(self, "tv_lower", None) is not None else "smoothed TV"

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
        cap = getattr(self, "baseline_max_iters", None)
        if tol is not None and cap is not None:  # a lower level that may not certify tol in reach (TV)
            with self.uncounted():  # type: ignore[attr-defined]
                res = self.ll_solve(self.theta0, self.x0, tol, cap)  # type: ignore[attr-defined]
            if not res.converged:
                warnings.warn(
                    f"{self.name}: the TV baseline stopped at its cap of {cap} iterations with certified "  # type: ignore[attr-defined]
                    f"‖x − x̂‖ ≤ {res.dist_bound:.3g} > {tol:g}; its PSNR / SSIM are of that point",
                    stacklevel=2,
                )
            return res.x
        if tol is not None:  # also when μ is nominal: the floor-accurate point is accepted
            return self._reference_solve(self.theta0, tol, max_iters, below_floor=True)  # type: ignore[attr-defined]
        if n_iters < 1:
            raise ValueError(f"n_iters must be ≥ 1, got {n_iters}")
        with self.uncounted():  # type: ignore[attr-defined]
            return self.ll_solve(self.theta0, self.x0, 0.0, n_iters).x  # type: ignore[attr-defined]

    def tv_reference(self) -> Tensor:
        """The smoothed-TV baseline as this instance's parameter set defines it (``tv_baseline_rule``)."""
        return self.tv_baseline(**self.tv_baseline_rule)
