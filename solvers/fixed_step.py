"""The fixed-step rule θ_{k+1} = θ_k − α z_k and the hypergradient estimators it is composed with.

A fixed-step solver is an *estimator* of the hypergradient z ≈ ∇F(θ) (implicit differentiation, a Neumann
series, truncated back-propagation, unrolling, amortised inner steps, a value-function penalty: one file
each) times this *step rule*. Both are frozen-dataclass mixins that declare their own config fields; the
composition ``fixed_step_solver("IFT", "ift", ImplicitCG, …)`` (``solvers/__init__.py``), i.e. the class
``IFT(ImplicitCG, FixedStep)``, is a flat frozen dataclass whose fields are the step rule's ``step0``
followed by the estimator's. MAID, its variant ``maid_accel`` and HOAG choose their steps themselves and
are not compositions.

One upper iteration: the estimate made at θ_k (by the previous update, or by ``init`` at θ₀) gives z_k, the
step θ_{k+1} = θ_k − α z_k is taken, and the estimator runs at θ_{k+1}, warm-started from what it kept at
θ_k. An eager estimator stores z in the state; a lazy one (unrolling) keeps what it needs to compute z and
materialises it in :meth:`Estimator.hypergradient`, i.e. at the start of the next update.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor

from problems.base import BilevelProblem
from solvers.base import SolverState, check_range


@dataclass
class FixedStepState(SolverState):
    z: Tensor | None = None  # the hypergradient at theta for the next step (None: a lazy estimator's)


class Piece:
    """Root of the composable pieces: each piece's ``__post_init__`` validates its own fields and calls
    ``super().__post_init__()``, so a composition validates every field of every piece."""

    def __post_init__(self) -> None:
        pass


class Estimator(Piece):
    """A hypergradient estimator (mixed into a frozen dataclass that holds its config fields).

    ``estimate(problem, θ, last)`` does the oracle work at θ and returns the state's fields: ``theta``,
    ``x`` (the lower point the estimate used), ``upper_value`` (g(x, θ) + r(θ)), the estimate (``z`` for an
    eager estimator) and what the next estimate is warm-started from. ``last`` is the state at the previous
    θ (None at θ₀: start from ``problem.x0``)."""

    state_type: ClassVar[type[FixedStepState]] = FixedStepState
    #: lower-level capabilities the estimator uses (``solvers.base.Solver.requires``)
    requires: ClassVar[frozenset[str]] = frozenset()

    def estimate(self, problem: BilevelProblem, theta: Tensor, last: Any) -> dict[str, Any]:
        raise NotImplementedError

    def hypergradient(self, state: Any) -> Tensor:
        """z at ``state.theta``, materialised when the step needs it (an eager estimator stored it)."""
        return state.z


@dataclass(frozen=True)
class FixedStep(Piece):
    """θ ← θ − α z with a fixed α: ``step0``, or the problem's shared initial upper step. Composed with an
    :class:`Estimator` (its ``state_type``, ``estimate`` and ``hypergradient``)."""

    step0: float | None = None  # fixed upper step α (None: the problem's shared initial step)

    default_max_iters: ClassVar[int] = 7500

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "step0", 0, optional=True)

    def init(self, problem: BilevelProblem) -> FixedStepState:
        step = problem.ul_step0 if self.step0 is None else self.step0
        return self.state_type(**self.estimate(problem, problem.theta0, None), step_size=step)

    def update(self, problem: BilevelProblem, state: FixedStepState) -> FixedStepState:
        z = self.hypergradient(state)
        hypergrad_norm = float(torch.linalg.vector_norm(z))
        theta = state.theta - state.step_size * z
        return replace(state, **self.estimate(problem, theta, state), hypergrad_norm=hypergrad_norm)


def fixed_step_solver(
    cls_name: str,
    name: str,
    estimator: type[Estimator],
    summary: str,
    module: str = "solvers",
    **class_vars: Any,
) -> type:
    """The solver class ``estimator`` × :class:`FixedStep`: a frozen dataclass with the step rule's field and
    the estimator's, registered under ``name``. Assign it to ``cls_name`` in ``module`` (so that it pickles
    by name); ``class_vars`` overrides class attributes such as ``default_max_iters``."""
    summary = f"fixed step × {summary}"
    namespace = {"__module__": module, "__qualname__": cls_name, "__doc__": f"`{name}` — {summary}."}
    namespace.update(name=name, summary=summary)
    return dataclass(frozen=True)(type(cls_name, (estimator, FixedStep), {**namespace, **class_vars}))


def estimator_of(cls: type) -> type[Estimator] | None:
    """The estimator a fixed-step solver class is composed with (None for a solver with its own steps)."""
    if not issubclass(cls, FixedStep):
        return None
    return next(
        base for base in cls.__mro__ if issubclass(base, Estimator) and not issubclass(base, FixedStep)
    )
