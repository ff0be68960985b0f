"""Protocols apply to any solver: what they fix about the lower level reaches every solver through the
problem, per-solver settings are resolved once into plain configurations, and a protocol that cannot say how
to run a solver fails in one line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

import problems
import protocols
from bench.harness import solver_config_for
from problems.parameter_sets import AUTHORS_CAP


def _far_start(p):
    return torch.zeros_like(p.x0)


def test_the_authors_caps_hold_for_any_solve_a_solver_asks_for():
    p = problems.make_problem("deblur2d", size=(16, 16), preset="authors")
    res = p.ll_solve(p.theta0, _far_start(p), 1e-14, 10 * AUTHORS_CAP)  # asks for far more than the cap
    assert res.iters == AUTHORS_CAP and not res.converged
    _, _ = p.adjoint_solve(p.theta0, res.x, 1e-30, 10 * AUTHORS_CAP)
    assert p.counters.cg_iters == AUTHORS_CAP


def test_sound_protocols_and_reference_solves_are_not_capped():
    p = problems.make_problem("deblur2d", size=(16, 16), preset="authors-fix-caps")
    res = p.ll_solve(p.theta0, _far_start(p), 1e-14, 2 * AUTHORS_CAP)
    assert res.iters > AUTHORS_CAP
    capped = problems.make_problem("deblur2d", size=(16, 16), preset="authors")
    with capped.uncounted():
        assert capped.ll_solve(capped.theta0, _far_start(capped), 1e-14, 2 * AUTHORS_CAP).iters > AUTHORS_CAP


@dataclass(frozen=True)
class _Plain:
    """A solver the protocols do not name, without any field they decide."""

    name: ClassVar[str] = "plain"
    step0: float = 1.0


@dataclass(frozen=True)
class _WithAccuracy:
    """A solver the protocols do not name, with a lower accuracy ε they decide for the solvers they name."""

    name: ClassVar[str] = "with_accuracy"
    eps: float = 1e-6
    ll_max_iters: int = 10**5
    protocol_settings: ClassVar[dict] = {"certified": {"eps": 1e-2}}


def test_resolution_names_what_is_missing():
    assert protocols.resolve("authors", "plain", ["step0"], {}) == {}
    with pytest.raises(ValueError, match=r"protocol 'authors' has no settings for solver 'x', whose field"):
        protocols.resolve("authors", "x", ["eps", "ll_max_iters"], {})
    # the caps reach it through the problem: they are not asked for
    assert protocols.resolve("authors", "x", ["ll_max_iters"], {}) == {}
    assert protocols.resolve("authors", "x", ["eps"], {"eps": 0.1}) == {"eps": 0.1}
    own = _WithAccuracy.protocol_settings
    assert protocols.resolve("certified", "with_accuracy", ["eps"], {}, own) == {"eps": 1e-2}
    assert "eps" in protocols.decided_fields("certified") and "ll_max_iters" not in protocols.decided_fields(
        "certified"
    )


def test_built_in_solvers_resolve_to_the_protocol_table():
    for name in ("maid", "ift", "lista"):
        assert solver_config_for(name, "authors", {}) == protocols.solver_settings("authors", name)
    assert solver_config_for("ift", None, {"eps": 0.5}) == {"eps": 0.5}
