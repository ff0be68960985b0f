"""The maths half of the 2D protocols: named problem-parameter sets for ``deblur2d`` / ``semiblind2d``.

A protocol (``protocols/``, one layer up) pairs one of these sets with per-solver settings. This module holds
only what belongs to the problem — weights, discretisation, upper-level form, the lower solver's step and
stopping rule (the problem owns its lower solve) and how the smoothed-TV reference is computed — so that
``problems.make_problem("deblur2d", preset=NAME)`` builds the same instance with or without ``protocols``.

* ``authors`` — docs/maths.md §6, the authors' 2D code as it runs, its inconsistencies included (each is one
  ``Deviation`` below);
* ``certified`` — sound: one objective, μ = ζ a true strong-convexity bound, α and β from the grid searches
  (``studies/grid_search.py``, tables in ``results/grid_search/``);
* ``authors-fix-<key>`` — ``authors`` with one deviation removed (the ablation; ``protocols.ablation_path``
  also removes them cumulatively).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from problems.lower import LowerCaps

#: the authors' lower-level objective weight 100·e⁻⁶ (their ``param`` × TV weight e⁻⁶)
ALPHA_AUTHORS = 100.0 * math.exp(-6.0)
#: the factor their FISTA gradient puts on the TV part: ``regularizer(x)`` without ``param`` = 100
TV_GRAD_SCALE_AUTHORS = 0.01
#: their H¹ weight (``reg_param`` = 100) on the unsquared norm
BETA_AUTHORS = 100.0
#: the best fully solved smoothed-TV α (PSNR) on the 128×128 astronaut (``results/grid_search/alpha_*.md``)
ALPHA_CERTIFIED = 2e-3
#: H¹ weights of the squared penalty from the β grid search (``results/grid_search/beta_*_certified.md``)
BETA_CERTIFIED = {"deblur2d": 1e4, "semiblind2d": 1e2}
#: (ζ/2)‖x‖² makes μ = ζ a true strong-convexity bound, so ε is a certified distance ‖x − x̂‖ ≤ ε; it shifts
#: the TV reconstruction by < 0.01 dB at 128×128.
ZETA_CERTIFIED = 1e-3
#: certified accuracy of the ``tol`` smoothed-TV reference (‖x − x̂‖ ≤ 1e-4 when μ is a true bound)
BASELINE_TOL = 1e-4
#: with the authors' μ = 1 the stop is a gradient norm: the uncapped baseline stops at ‖∇h‖ ≤ 1e-3, IFT's
#: accuracy under their caps (1e-4 takes ~10× longer with their power-iteration step, for < 0.01 dB at 32×32)
BASELINE_TOL_UNCERTIFIED = 1e-3
#: the authors' cap on every lower solve and every CG solve (their ``caps`` deviation)
AUTHORS_CAP = 200
#: the authors' TV baseline: 100 of their FISTA iterations from y
BASELINE_ITERS_AUTHORS = 100

PROBLEMS = ("deblur2d", "semiblind2d")


@dataclass(frozen=True)
class Deviation:
    """One way the authors' code departs from a sound protocol, with the problem parameters that make it
    (``authors``) and that remove it (``fixed``); solver-level parts live in ``protocols``."""

    key: str
    what: str  # what the authors' code does
    authors: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    # the fixed values where they differ per problem
    fixed_by_problem: dict = field(default_factory=dict)


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        "grad-weight",
        "FISTA's gradient omits the factor 100 on TV: it descends α_eff = e⁻⁶, the objective says 100·e⁻⁶",
        authors={"ll_grad_tv_scale": TV_GRAD_SCALE_AUTHORS},
        fixed={"ll_grad_tv_scale": 1.0},  # descends the written objective, α = 0.248 (the old `paper` preset)
    ),
    Deviation(
        "adjoint",
        "CG solves with the Hessian of the α = 100·e⁻⁶ objective, not of the problem FISTA descends",
        authors={"adjoint_hessian": "objective"},
        fixed={"adjoint_hessian": "descended"},
    ),
    Deviation(
        "step",
        "FISTA step 1/L, L from 10 power iterations on the α = 100·e⁻⁶ Hessian at each solve's start",
        authors={"ll_step_rule": "power"},
        fixed={"ll_step_rule": "bound"},
    ),
    Deviation(
        "stop",
        "lower solves stop when the mean over channels of per-channel ‖∇h‖ < ε (μ = 1: not a distance)",
        authors={"ll_stop": "channel_mean"},
        fixed={"ll_stop": "norm"},
    ),
    Deviation(
        "caps",
        "lower solves and CG capped at 200 iterations; TV baseline = 100 FISTA iterations from y",
        authors={"tv_baseline": {"n_iters": BASELINE_ITERS_AUTHORS}},
        fixed={"tv_baseline": {"tol": BASELINE_TOL_UNCERTIFIED}},
    ),
    Deviation(
        "tv-boundary",
        "TV on a replicate-padded grid: the last row's horizontal, last column's vertical differences twice",
        authors={"tv_double_count": True},
        fixed={"tv_double_count": False},
    ),
    Deviation(
        "h1",
        "r = 100·‖b − b_A‖_H¹ unsquared, with the sum of three norms' gradients as its gradient (mismatched)",
        authors={"h1_form": "authors", "beta": BETA_AUTHORS},
        fixed={"h1_form": "squared", "beta": BETA_AUTHORS},
    ),
    Deviation(
        "upper-g",
        "g = ‖b ∗ x − y‖²/3 with the learned b (no ½; the known b_A in a sound deblur2d)",
        authors={"upper_operator": "learned", "ul_scale": 1.0 / 3.0},
        fixed={"ul_scale": 0.5},
        fixed_by_problem={
            "deblur2d": {"upper_operator": "known"},
            "semiblind2d": {"upper_operator": "learned"},
        },
    ),
)
DEVIATION_KEYS = tuple(d.key for d in DEVIATIONS)
#: deviations that make the hypergradient the gradient of no objective (exempt from the FD tests)
MISMATCHED = ("grad-weight", "adjoint", "h1")


def _authors(problem: str) -> dict:
    params: dict = {"alpha": ALPHA_AUTHORS, "zeta": 0.0}
    for d in DEVIATIONS:
        params.update(d.authors)
    return params


def _fix(params: dict, key: str, problem: str) -> dict:
    dev = DEVIATIONS[DEVIATION_KEYS.index(key)]
    return {**params, **dev.fixed, **dev.fixed_by_problem.get(problem, {})}


def _certified(problem: str) -> dict:
    params: dict = {"alpha": ALPHA_CERTIFIED, "beta": BETA_CERTIFIED[problem], "zeta": ZETA_CERTIFIED}
    for key in DEVIATION_KEYS:
        params = _fix(params, key, problem)
    params["beta"] = BETA_CERTIFIED[problem]  # the grid-searched β of the squared penalty
    params["tv_baseline"] = {"tol": BASELINE_TOL}  # a certified distance here (μ = ζ)
    return params


def fixed_name(keys: tuple[str, ...] | list[str]) -> str:
    """The name of ``authors`` with the given deviations removed (``authors-fix-a+b`` for several)."""
    bad = [k for k in keys if k not in DEVIATION_KEYS]
    if bad:
        raise ValueError(f"unknown deviation(s) {', '.join(bad)}; valid: {', '.join(DEVIATION_KEYS)}")
    return "authors" if not keys else "authors-fix-" + "+".join(k for k in DEVIATION_KEYS if k in keys)


def parse_name(name: str) -> tuple[str, tuple[str, ...]]:
    """(base, removed deviations) of a parameter-set name; a ValueError naming the valid ones otherwise."""
    if name in ("authors", "certified"):
        return name, ()
    if name.startswith("authors-fix-"):
        keys = tuple(name[len("authors-fix-") :].split("+"))
        if keys and all(k in DEVIATION_KEYS for k in keys) and len(set(keys)) == len(keys):
            return "authors", keys
    raise ValueError(
        f"preset must be 'certified', 'authors' or 'authors-fix-<deviation>[+<deviation>...]' "
        f"(deviations: {', '.join(DEVIATION_KEYS)}), got {name!r}"
    )


def parameter_set(name: str, problem: str) -> dict:
    """Problem parameters (and ``tv_baseline``) of the named set for ``problem``."""
    if problem not in PROBLEMS:
        raise ValueError(f"parameter sets exist for {', '.join(PROBLEMS)}, not {problem!r}")
    base, removed = parse_name(name)
    if base == "certified":
        return _certified(problem)
    params = _authors(problem)
    for key in removed:
        params = _fix(params, key, problem)
    return params


def lower_caps(name: str | None) -> LowerCaps:
    """The caps a parameter set puts on every solver's lower and CG solves (through the problem): the
    authors' 200 while their ``caps`` deviation is kept, none otherwise (and without a named set)."""
    if name is None:
        return LowerCaps()
    base, removed = parse_name(name)
    if base == "authors" and "caps" not in removed:
        return LowerCaps(ll_max_iters=AUTHORS_CAP, cg_max_iters=AUTHORS_CAP)
    return LowerCaps()


def preset_names() -> tuple[str, ...]:
    """The named sets every protocol listing shows: authors, the single-deviation rows, certified."""
    return ("authors", *(fixed_name([k]) for k in DEVIATION_KEYS), "certified")
