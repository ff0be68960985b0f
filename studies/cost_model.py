"""The cost model of the counters: what one unit of each counter costs, in seconds and in lower-level
iterations, measured side by side in one process (one torch thread, medians).

    python -m studies.cost_model [--repeats 15] [--out results/cost_model.md]

Per problem (deconv1d n = 200; deblur2d 128×128 with ζ = 1e-3, α = 2e-3, replicate boundary): one lower-level
iteration (``ll_iters``: a gradient / prox-gradient step with the solver's momentum), one unrolled step with
its graph (LISTA's forward through K = 50 steps less one set-up, divided by K), one unrolled step
back-propagated (``ll_backward_iters``: LISTA's backward through the K steps divided by K; it includes the
backward through the set-up, which a LISTA pass makes once), one CG step (``cg_iters``), one ∇_x g
(``ul_grad_evals``), one assembly of z (``hypergrad_evals``), one per-θ set-up
(``setup_evals``) and one Lipschitz bound (``lipschitz_evals``). Work of a run ≈ Σ counter × unit cost.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor

import problems
from problems.base import BilevelProblem
from problems.lower import prox_gradient_solve
from studies.microbench import median_seconds, single_thread

K_UNROLL = 50
LL_STEPS = 100


def unit_costs(p: BilevelProblem, repeats: int) -> dict[str, float]:
    """Seconds per unit of each counter on problem p at θ₀ (see the module docstring)."""
    theta, x0 = p.theta0, p.x0
    with torch.no_grad():
        x = prox_gradient_solve(p, theta, x0, 0.0, 20, None, p.ll_momentum).x  # a typical iterate

    def lower_steps() -> None:
        with torch.no_grad():
            prox_gradient_solve(p, theta, x, 0.0, LL_STEPS, None, p.ll_momentum)

    def unrolled_forward() -> tuple[Tensor, Tensor]:
        leaf = theta.clone().requires_grad_(True)  # a new θ object: the set-up is recomputed, as in LISTA
        with torch.enable_grad():
            out = p.upper_value_graph(leaf, p.ll_unrolled(leaf, x, K_UNROLL, None))
        return out, leaf

    def unrolled_backward() -> None:
        out, leaf = unrolled_forward()
        torch.autograd.grad(out, leaf)

    def setup() -> None:
        p._setup(theta.clone())  # a new θ object: the per-θ caches (keyed by identity) miss

    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    costs = {
        "ll_iters": median_seconds(lower_steps, repeats) / LL_STEPS,
        "cg_iters": median_seconds(lambda: p._hvp(theta, x, v), repeats),
        "setup_evals": median_seconds(setup, repeats),
        "ul_grad_evals": median_seconds(lambda: p._ul_grad_x(theta, x), repeats),
        "hypergrad_evals": median_seconds(lambda: p._hypergradient_from(theta, x, v), repeats),
    }
    forward = median_seconds(unrolled_forward, repeats)
    costs["ll_backward_iters"] = (median_seconds(unrolled_backward, repeats) - forward) / K_UNROLL
    costs["unrolled_forward_step"] = (forward - costs["setup_evals"]) / K_UNROLL
    if hasattr(p, "kernel_norm_sq_bound"):

        def lipschitz() -> None:
            p._lip_cache.clear()
            p.kernel_norm_sq_bound(theta)

        costs["lipschitz_evals"] = median_seconds(lipschitz, repeats)
    p.counters.reset()
    return costs


CASES = {
    "deconv1d": dict(),
    "deblur2d 128×128": dict(size=(128, 128), zeta=1e-3, alpha=2e-3),
}
ROWS = (
    ("ll_iters", "one lower-level iteration (forward, no graph)"),
    ("unrolled_forward_step", "one unrolled step with its graph (LISTA forward)"),
    ("ll_backward_iters", "one unrolled step back-propagated (LISTA backward)"),
    ("cg_iters", "one Hessian-vector product (CG step)"),
    ("ul_grad_evals", "one ∇_x g"),
    ("hypergrad_evals", "one hypergradient assembly z"),
    ("setup_evals", "one per-θ set-up"),
    ("lipschitz_evals", "one Lipschitz bound (10 power iterations)"),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("results/cost_model.md"))
    args = parser.parse_args(argv)
    with single_thread():
        measured = {
            case: unit_costs(problems.make_problem(case.split()[0], **params), args.repeats)
            for case, params in CASES.items()
        }
    lines = [
        "# Cost model of the counters",
        "",
        f"`python -m studies.cost_model --repeats {args.repeats}`: torch {torch.__version__}, float64, CPU,",
        "one torch thread, medians; the machine was shared with other jobs: read the ratios (×iter: in units",
        "of one lower-level iteration of the same problem, same process), not absolute times.",
        "",
        "| unit | " + " | ".join(f"{case} [µs] | ×iter" for case in measured) + " |",
        "|---|" + "---|---|" * len(measured),
    ]
    for key, label in ROWS:
        cells = []
        for costs in measured.values():
            if key in costs:
                cells += [f"{costs[key] * 1e6:.1f}", f"{costs[key] / costs['ll_iters']:.1f}"]
            else:
                cells += ["—", "—"]
        lines.append(f"| {label} (`{key}`) | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
