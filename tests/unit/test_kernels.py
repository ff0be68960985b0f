"""Blur kernels by name (problems/kernels.py) and the 2D problems' ``blur`` parameter."""

from __future__ import annotations

import math

import pytest
import torch

import problems
from problems.conv2d import conv2d, gaussian_kernel, motion_kernel
from problems.kernels import blur_kernel, line_kernel, parse_blur, required_support

DT = torch.float64
SPECS = [("motion", 5), ("gaussian:1.0", 5), ("gaussian:0.7", 7), ("line:9:30", 9), ("line:4.5:100", 5)]


@pytest.mark.parametrize("spec, k", SPECS)
def test_every_blur_is_a_normalised_non_negative_half_turn_symmetric_kernel(spec: str, k: int) -> None:
    kern = blur_kernel(spec, k)
    assert kern.shape == (3, k, k) and kern.dtype == DT
    assert (kern >= 0).all()
    assert torch.allclose(kern.sum((-2, -1)), torch.ones(3, dtype=DT), atol=1e-14)
    # symmetric under a half turn: cross-correlation and convolution give the same blur
    assert torch.allclose(kern, kern.flip(-2, -1), atol=1e-14)
    assert torch.equal(kern[0], kern[2])


def test_named_blurs_reproduce_the_existing_kernels() -> None:
    assert torch.equal(blur_kernel("motion", 5), motion_kernel(5))
    assert torch.equal(blur_kernel("gaussian:0.5", 5), gaussian_kernel(5, 0.5))
    # the paper's diagonal is a line of length 5√2 at −45° (top left to bottom right)
    assert torch.allclose(line_kernel(5 * math.sqrt(2), -45, 5), motion_kernel(5), atol=1e-12)


def test_line_kernel_weights_are_the_segment_length_in_each_pixel() -> None:
    box = line_kernel(5, 0, 7)[0]  # horizontal: the box 1/5 on the five middle pixels of the middle row
    expected = torch.zeros(7, 7, dtype=DT)
    expected[3, 1:6] = 0.2
    assert torch.allclose(box, expected, atol=1e-14)
    vertical = line_kernel(3, 90, 3)[0]
    assert torch.allclose(vertical, torch.tensor([[0, 1, 0]] * 3, dtype=DT) / 3, atol=1e-14)
    # length 2 horizontal, centred: half a pixel on each side of the centre pixel, i.e. 1/4, 1/2, 1/4
    assert torch.allclose(line_kernel(2, 0, 3)[0, 1], torch.tensor([0.25, 0.5, 0.25], dtype=DT), atol=1e-14)


def test_required_support() -> None:
    assert required_support("motion") == 1
    assert required_support("gaussian:1.0") == 5  # ±2.5σ
    assert required_support("line:9:30") == 9  # 9·cos 30° = 7.8 → 8 → odd 9
    assert required_support("line:5:0") == 5


@pytest.mark.parametrize(
    "spec, k, fragment",
    [
        ("gauss:1", 5, "unknown kind 'gauss'"),
        ("gaussian", 5, "gaussian takes 1 number"),
        ("gaussian:-1", 5, "sigma must be > 0"),
        ("line:9", 9, "line takes 2 number"),
        ("line:nine:30", 9, "must be numbers"),
        ("line:9:30", 5, "needs kernel_size ≥ 9"),
        ("gaussian:2.0", 5, "needs kernel_size ≥ 11"),
    ],
)
def test_bad_blur_is_one_line_naming_the_forms(spec: str, k: int, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        blur_kernel(spec, k)
    text = str(info.value)
    assert fragment in text and "\n" not in text
    with pytest.raises(ValueError, match="blur"):  # the problem refuses it when it is built
        problems.make_problem("deblur2d", size=(12, 12), blur=spec, kernel_size=k)


def test_parse_blur() -> None:
    assert parse_blur("motion") == ("motion", ())
    assert parse_blur("line:9:30") == ("line", (9.0, 30.0))
    with pytest.raises(ValueError, match="must be a string"):
        parse_blur(5)


@pytest.mark.parametrize("name", ["deblur2d", "semiblind2d"])
def test_blur_parameter_sets_the_known_operator_and_the_data(name: str) -> None:
    p = problems.make_problem(name, size=(12, 12), blur="line:5:30", kernel_size=5, noise=0.0)
    kern = blur_kernel("line:5:30", 5)
    assert torch.equal(p.b_A, kern) and torch.equal(p.theta0, kern)
    assert p.params["blur"] == "line:5:30"
    blurred = conv2d(p.x_true, kern, p.boundary)
    if name == "semiblind2d":
        blurred = conv2d(blurred, p.gaussian, p.boundary)
    assert torch.allclose(p.y, blurred.clamp(0.0, 1.0), atol=1e-14)
    # the record holds every field as resolved: the default names the paper's kernel
    assert problems.make_problem(name, size=(8, 8)).params["blur"] == "motion"


def test_hypergradient_with_a_line_blur_matches_finite_differences() -> None:
    p = problems.make_problem(
        "deblur2d", size=(12, 12), blur="line:5:30", alpha=0.01, gamma=0.1, zeta=0.1, beta=0.5
    )
    gen = torch.Generator().manual_seed(0)
    theta = p.theta0 + 0.01 * torch.randn(p.theta0.shape, generator=gen, dtype=DT)
    direction = torch.randn(theta.shape, generator=torch.Generator().manual_seed(1), dtype=DT)
    direction /= direction.norm()
    h = 1e-5
    analytic = float((p.hypergradient(theta, tol=1e-12) * direction).sum())
    fd = (
        p.upper_objective(theta + h * direction, tol=1e-12)
        - p.upper_objective(theta - h * direction, tol=1e-12)
    ) / (2 * h)
    assert abs(analytic - fd) <= 1e-6 * abs(fd), (analytic, fd)
