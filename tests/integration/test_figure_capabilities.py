"""Figures by capability: a report draws what each problem declares it can show (``problems.FIGURES``),
not what a metric's name or an array's shape suggests."""

from __future__ import annotations

from pathlib import Path

import problems
from bench import cli, report
from problems.deblur2d import Deblur2D
from problems.validation import TikhonovADP


def _sweep(out: Path, *args: str) -> None:
    code = cli.main(
        ["run", "--no-progress", "--no-report", "-s", "ift", "--max-iters", "1", "-o", str(out), *args]
    )
    assert code == 0


def test_every_registered_problem_declares_known_capabilities():
    for name in problems.problem_names():
        assert problems.figures(name) <= set(problems.FIGURES), name
    assert problems.figures("quadratic") == frozenset()  # nothing to draw but the convergence curves


def test_signal_and_operator_figures_follow_the_declaration(tmp_path, monkeypatch):
    out = tmp_path / "r"
    _sweep(out, "-p", "tikhonov_adp,quadratic")
    report.write_report(out)
    assert (out / "tikhonov_adp_reconstructions.png").exists() and (
        out / "tikhonov_adp_operators.png"
    ).exists()
    assert not list(out.glob("quadratic_*.png"))
    for png in out.glob("tikhonov_adp_*.png"):
        png.unlink()
    monkeypatch.setattr(TikhonovADP, "figures", frozenset({problems.SIGNAL}))  # a signal, no operator
    report.write_report(out)
    assert (out / "tikhonov_adp_reconstructions.png").exists() and not (
        out / "tikhonov_adp_operators.png"
    ).exists()


def test_image_figures_without_a_kernel_capability(tmp_path, monkeypatch):
    out = tmp_path / "r"
    _sweep(out, "-p", "deblur2d", "--param", "deblur2d.size=(12, 12)")
    monkeypatch.setattr(Deblur2D, "figures", frozenset({problems.IMAGE}))
    text = report.write_report(out)
    assert "Image quality" in text
    assert list(out.glob("deblur2d_*_images.png")) and not list(out.glob("deblur2d_*_kernels.png"))
