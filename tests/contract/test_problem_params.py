"""Problem parameters as frozen dataclasses: one declaration drives the signature, ``params``, validation,
the memory estimate and the listings, for every registered problem."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import problems
from problems.deblur2d import Deblur2DParams, SemiBlind2DParams
from problems.parameter_sets import BASELINE_TOL
from problems.params import IMAGE_COPIES, MATRIX_COPIES, RUN_SETTINGS

ALL_PROBLEMS = problems.problem_names()


@pytest.mark.parametrize("name", ALL_PROBLEMS)
def test_one_declaration_drives_signature_record_and_listing(name, small_problem):
    cls = problems.problem_class(name)
    fields = [f.name for f in dataclasses.fields(cls.Params)]
    assert cls.Params.problem == name
    assert list(inspect.signature(cls).parameters) == [*fields, *RUN_SETTINGS]
    assert list(problems.problem_parameters(name)) == [*fields, *RUN_SETTINGS]
    specs = problems.parameter_spec(name)
    assert [s.name for s in specs] == fields and all(s.doc and s.kind for s in specs)
    p = small_problem(name)
    assert list(p.params) == fields  # the record: every parameter, as resolved
    assert all(v is not None for k, v in p.params.items() if k != "preset")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.config.seed = 1  # type: ignore[misc]


def test_semiblind2d_extends_deblur2d_parameters():
    assert issubclass(SemiBlind2DParams, Deblur2DParams)
    extra = {f.name for f in dataclasses.fields(SemiBlind2DParams)} - {
        f.name for f in dataclasses.fields(Deblur2DParams)
    }
    assert extra == {"sigma"}


def test_tikhonov_conv2d_states_its_settings_instead_of_a_preset():
    p = problems.make_problem("tikhonov_conv2d")
    assert "preset" not in p.params and p.preset is None
    assert p.tv_baseline_rule == {"tol": BASELINE_TOL}
    assert (p.ll_step_rule, p.ll_stop, p.boundary, p.alpha, p.mu, p.zeta) == (
        "bound",
        "norm",
        "periodic",
        0.0,
        0.05,
        0.05,
    )
    assert p.certified and not p.inconsistencies


def test_deblur2d_without_a_named_set_needs_every_setting():
    with pytest.raises(
        ValueError, match=r"deblur2d with preset=None needs alpha, beta, zeta, upper_operator"
    ):
        problems.make_problem("deblur2d", size=(8, 8), preset=None)


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("deconv1d", {"sigma": 0.0}, r"^deconv1d needs n ≥ 2, sigma > 0, noise ≥ 0, a1 ≥ 0, a2 > 0 \(strong"),
        ("deblur2d", {"tv_double_count": 1}, r"deblur2d\.tv_double_count must be true or false"),
        ("deblur2d", {"boundary": "mirror"}, r"deblur2d\.boundary must be one of 'periodic', 'replicate'"),
        ("deblur2d", {"kernel_size": 4}, r"deblur2d\.kernel_size must be odd, got 4"),
        ("semiblind2d", {"sigma": -1.0}, r"semiblind2d needs .*sigma > 0; got .*sigma=-1\.0"),
        ("tikhonov_conv2d", {"alpha": 0.0}, r"tikhonov_conv2d needs .*alpha > 0 \(strong convexity\)"),
    ],
)
def test_validation_comes_from_the_declaration(name, params, match):
    with pytest.raises(ValueError, match=match) as err:
        problems.make_problem(name, **params)
    assert "\n" not in str(err.value)


def test_memory_estimate_comes_from_the_declaration():
    assert problems.memory_estimate("deconv1d", {"n": 100}) == MATRIX_COPIES * 100**2 * 8
    assert problems.memory_estimate("quadratic", {"m1": 40, "dtype": "float32"}) == MATRIX_COPIES * 40**2 * 4
    assert problems.memory_estimate("deblur2d", {"size": (20, 30)}) == IMAGE_COPIES * 3 * 600 * 8
    assert problems.memory_estimate("tikhonov_conv2d", {"size": 10}) == IMAGE_COPIES * 3 * 100 * 8


def test_a_registered_problem_declares_its_parameters():
    class Undeclared(problems.BilevelProblem):
        name = "undeclared"

    with pytest.raises(ValueError, match=r"must declare its parameters: Params = a frozen dataclass"):
        problems.register_problem(Undeclared)
    assert "undeclared" not in problems.problem_names()
