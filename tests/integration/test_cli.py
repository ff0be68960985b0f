"""The command line and the run store: defaults, grids, resume, atomic writes, reports, bad input."""

from __future__ import annotations

import pandas as pd
import pytest

from bench import cli, results, sweep


def _run(args: list[str]) -> int:
    return cli.main(["run", "--no-progress", *args])


def test_run_writes_one_trace_per_run_and_a_report(tmp_path, capsys):
    out = tmp_path / "r"
    code = _run(
        ["-p", "tikhonov_adp", "-s", "maid,ift,lista", "--seed", "0,1", "--max-iters", "3", "-o", str(out)]
    )
    assert code == 0
    assert len(results.finished_runs(out)) == 6
    traces = results.load_traces(out)
    assert set(traces.solver) == {"maid", "ift", "lista"} and set(traces.seed) == {0, 1}
    assert (traces.groupby("run_id").iteration.max() == 3).all()
    summary = (out / "summary.md").read_text()
    assert "| tikhonov_adp | maid |" in summary
    assert (out / "convergence.png").stat().st_size > 1000
    table = pd.read_csv(out / "summary.csv")
    assert set(table.solver) == {"maid", "ift", "lista"}
    assert "time_to_target" in capsys.readouterr().out


def test_resume_skips_finished_runs(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["-p", "quadratic", "-s", "maid", "--max-iters", "2", "-o", str(out), "--no-report"]
    assert _run(args) == 0
    trace_file = next(results.runs_dir(out).glob("*.csv"))
    mtime = trace_file.stat().st_mtime_ns
    assert _run([*args, "--resume"]) == 0
    assert "skipped (--resume)" in capsys.readouterr().out
    assert trace_file.stat().st_mtime_ns == mtime


def test_interrupt_keeps_finished_runs(tmp_path, monkeypatch):
    out = tmp_path / "r"
    jobs = sweep.expand(
        [("quadratic", {})], [("maid", {}), ("ift", {})], [0], {"max_iters": 2}, "cpu", "float64"
    )
    original = sweep.run
    calls = {"n": 0}

    def interrupt_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(sweep, "run", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_jobs(jobs, out, progress=False, log=lambda _: None)
    assert results.finished_runs(out) == {jobs[0].run_id}
    assert not [p for p in results.runs_dir(out).iterdir() if p.name.startswith(".")]  # no temp files left


def test_toml_config_grid(tmp_path):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(
        "seeds = [0]\n[budget]\nmax_iters = 2\n"
        '[[problems]]\nname = "tikhonov_adp"\nparams = { beta = 0.1 }\n'
        '[[solvers]]\nname = "maid"\nconfig = { eps0 = 1e-2 }\n'
        '[[solvers]]\nname = "ift"\n'
    )
    out = tmp_path / "r"
    assert _run(["-c", str(cfg), "-o", str(out), "--no-report"]) == 0
    traces = results.load_traces(out)
    assert set(traces.solver) == {"maid", "ift"}
    assert traces.problem_params.str.contains('"beta": 0.1').all()
    assert traces[traces.solver == "maid"].solver_config.str.contains('"eps0": 0.01').all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "nope"], "valid problems: .*deconv1d"),
        (["-s", "nope"], "valid solvers: .*maid"),
        (["--param", "deconv1d.nope=1"], "valid: .*a1"),
        (["--solver-param", "maid.rho=2"], r"MAID.rho must be in \(0, 1\)"),
        (["--param", "nope"], "NAME.KEY=VALUE"),
        (["--device", "tpu"], "device must be"),
        pytest.param(
            ["--device", "cuda"],
            "CUDA is not available",
            marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="has CUDA"),
        ),
    ],
)
def test_bad_input_gives_clear_error(tmp_path, capsys, args, message):
    assert _run([*args, "--max-iters", "1", "-o", str(tmp_path / "r")]) == 2
    import re

    assert re.search(message, capsys.readouterr().err)


def test_bad_toml_key(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("seedz = [0]\n")
    assert _run(["-c", str(cfg), "-o", str(tmp_path / "r")]) == 2
    assert "unknown key(s) seedz" in capsys.readouterr().err


def test_list_shows_problems_and_solvers(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("deconv1d", "quadratic", "tikhonov_adp", "maid", "ift", "lista", "eps0"):
        assert name in out


def test_image_problem_report_has_quality_table_and_figures(tmp_path):
    out = tmp_path / "r"
    args = [
        "-p",
        "deblur2d",
        "--param",
        "deblur2d.size=(16, 16)",
        "--preset",
        "certified",
        "-s",
        "maid,lista",
    ]
    assert _run([*args, "--max-iters", "2", "-o", str(out)]) == 0
    quality = pd.read_csv(out / "quality.csv")
    assert set(quality.method) == {"blurry", "smoothed TV", "ADP-β lista", "ADP-β maid"}
    assert (quality.preset == "certified (sound)").all() and quality.psnr.notna().all()  # labelled
    assert (out / "deblur2d_astronaut_certified_seed0_images.png").exists()
    assert (out / "deblur2d_astronaut_certified_seed0_kernels.png").exists()
    assert "## Image quality" in (out / "summary.md").read_text()


def test_list_shows_protocols_with_inconsistencies_labelled(capsys):
    assert _run_list() == 0
    out = capsys.readouterr().out
    assert "authors [INCONSISTENT: grad-weight, adjoint, step, stop, caps, tv-boundary, h1, upper-g]" in out
    assert "certified (sound)" in out and "authors-fix-caps" in out
    # the settings are details on request (one line per protocol in the overview)
    assert _run_list("protocols", "authors") == 0
    assert "ll_max_iters=200" in capsys.readouterr().out


def _run_list(*args: str) -> int:
    from bench.cli import main

    return main(["list", *args])


def test_preset_needs_a_problem_with_presets(tmp_path, capsys):
    assert _run(["-p", "quadratic", "--preset", "paper", "--max-iters", "1", "-o", str(tmp_path / "r")]) == 2
    assert "none of the selected problems has presets" in capsys.readouterr().err
