"""Safe loading (no pickle), damaged files, resume, reports that never mix configurations,
threads, and figures (fixed colours, markers, no empty legend entries)."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import bench
from bench import cli, plots, report, results, sweep


def _run(args: list[str]) -> int:
    return cli.main(["run", "--no-progress", *args])


def _sweep(out: Path, solvers: str = "maid,ift", iters: str = "2") -> None:
    assert _run(["-p", "quadratic", "-s", solvers, "--max-iters", iters, "-o", str(out), "--no-report"]) == 0


class _Planted:
    """Unpickling this creates ``path``: the classic code-execution payload of a pickle."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# ---------------------------------------------------------------------------------- 1. no code from data
def test_report_never_unpickles_a_planted_file(tmp_path, capsys):
    out = tmp_path / "r"
    _sweep(out)
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Planted(marker))
    runs = results.runs_dir(out)
    victim = sorted(runs.glob("*maid*.npz"))[0]
    victim.write_bytes(payload)  # a finished run's arrays replaced by a pickle
    (runs / f"{victim.stem}.pt").write_bytes(payload)  # and the old format's file name
    (runs / "extra__run.pt").write_bytes(payload)
    # the pickle cannot run even when its checksum is forged to match
    side = runs / f"{victim.stem}.json"
    meta = json.loads(side.read_text())
    meta["sha256"][victim.name] = results._sha256(victim)
    side.write_text(json.dumps(meta))
    assert cli.main(["report", str(out)]) == 0
    err = capsys.readouterr().err
    assert not marker.exists()
    assert "damaged run" in err and "extra__run" in err  # named, skipped
    with pytest.warns(results.DamagedRunWarning, match="damaged arrays"):
        assert results.load_arrays(out, victim.stem) is None
    assert not marker.exists()
    summary = (out / "summary.md").read_text()
    assert "Damaged runs, skipped" in summary and "extra__run" in summary


def test_arrays_are_plain_npz_and_sidecar_holds_checksums(tmp_path):
    out = tmp_path / "r"
    _sweep(out, "maid")
    (run_id,) = results.finished_runs(out)
    runs = results.runs_dir(out)
    with np.load(runs / f"{run_id}.npz", allow_pickle=False) as data:
        assert set(data.files) == {"theta", "x"} and data["theta"].dtype == np.float64
    meta = json.loads((runs / f"{run_id}.json").read_text())
    assert meta["status"] == "budget" and set(meta["sha256"]) == {f"{run_id}.csv", f"{run_id}.npz"}
    assert not list(runs.glob("*.pt"))


def test_atomic_write_fsyncs_before_rename(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(results.os, "fsync", lambda fd: calls.append("fsync"))
    real_replace = results.os.replace
    monkeypatch.setattr(results.os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b)))
    results._atomic_write(tmp_path / "f.txt", lambda p: Path(p).write_text("x"))
    assert calls == ["fsync", "replace", "fsync"]  # the file, the rename, the folder
    assert (tmp_path / "f.txt").read_text() == "x"


# ---------------------------------------------------------------------------------- 6. damaged files
def test_truncated_trace_is_named_skipped_and_rerun_by_resume(tmp_path, capsys):
    out = tmp_path / "r"
    _sweep(out)
    runs = results.runs_dir(out)
    trace = sorted(runs.glob("*ift*.csv"))[0]
    text = trace.read_text()
    trace.write_text(text[: len(text) // 2])  # a crash or a copy cut it short
    assert results.finished_runs(out) == {p.stem for p in runs.glob("*maid*.csv")}
    assert cli.main(["report", str(out), "--no-figures"]) == 0
    err = capsys.readouterr().err
    assert re.search(rf"damaged run .*{trace.stem}.*checksum", err)
    table = pd.read_csv(out / "summary.csv")
    assert list(table.solver) == ["maid"]
    _run(["-p", "quadratic", "-s", "maid,ift", "--max-iters", "2", "-o", str(out), "--no-report", "--resume"])
    log = capsys.readouterr().out
    assert f"{trace.stem}: damaged" in log and "maid seed=0: finished earlier, skipped" in log
    assert len(results.finished_runs(out)) == 2


def test_run_without_sidecar_is_not_finished(tmp_path):
    """A crash after the trace but before the sidecar: the run is not finished, --resume reruns it."""
    out = tmp_path / "r"
    _sweep(out, "maid")
    (run_id,) = results.finished_runs(out)
    (results.runs_dir(out) / f"{run_id}.json").unlink()
    assert results.finished_runs(out) == set()
    _, damaged = results.scan(out)
    assert "no sidecar" in damaged[run_id]


def test_trace_without_final_status_is_damaged(tmp_path):
    out = tmp_path / "r"
    _sweep(out, "maid")
    (run_id,) = results.finished_runs(out)
    runs = results.runs_dir(out)
    trace = pd.read_csv(runs / f"{run_id}.csv")
    trace["status"] = "running"
    trace.to_csv(runs / f"{run_id}.csv", index=False)
    meta = json.loads((runs / f"{run_id}.json").read_text())
    meta["sha256"][f"{run_id}.csv"] = results._sha256(runs / f"{run_id}.csv")
    (runs / f"{run_id}.json").write_text(json.dumps(meta))
    assert "no final status row" in results.scan(out)[1][run_id]


# ---------------------------------------------------------------------------------- 4. no mixed configs
def test_mixed_folder_gives_one_row_per_configuration_and_a_note(tmp_path):
    out = tmp_path / "r"
    for iters in ("2", "6"):
        assert (
            _run(["-p", "tikhonov_adp", "-s", "maid", "--seed", "0,1", "--max-iters", iters, "-o", str(out)])
            == 0
        )
    table = pd.read_csv(out / "summary.csv")
    assert sorted(table.upper_iters) == [2, 6]  # never the median 4 of a mixed group
    assert sorted(table.runs) == [2, 2]
    assert sorted(table.config) == ["max_iters=2", "max_iters=6"]
    summary = (out / "summary.md").read_text()
    assert "this folder mixes configurations" in summary and "max_iters" in summary


def test_solver_config_and_threads_split_groups_too(tmp_path):
    out = tmp_path / "r"
    base = ["-p", "quadratic", "-s", "maid", "--max-iters", "2", "-o", str(out), "--no-report"]
    assert _run(base) == 0
    assert _run([*base, "--solver-param", "maid.eps0=0.01"]) == 0
    assert _run([*base, "--threads", "2"]) == 0  # same run id (threads is not in it): overwritten
    traces = results.load_traces(out)
    traces["case"] = "quadratic"
    labelled, differing = report.label_configs(traces)
    assert "maid.eps0" in differing
    assert len(set(labelled.config)) == 2
    assert set(traces.torch_threads) == {1, 2}


def test_single_configuration_has_no_note(tmp_path):
    out = tmp_path / "r"
    _sweep(out)
    assert cli.main(["report", str(out), "--no-figures"]) == 0
    summary = (out / "summary.md").read_text()
    assert "mixes configurations" not in summary and "| config |" not in summary


# ---------------------------------------------------------------------------------- 3. threads
def test_threads_set_per_run_recorded_and_restored():
    before = torch.get_num_threads()
    res = bench.run("maid", "quadratic", max_iters=2, threads=2)
    assert (res.trace.torch_threads == 2).all()
    assert torch.get_num_threads() == before


def test_cli_threads_default_and_toml_key(tmp_path):
    out = tmp_path / "r"
    _sweep(out, "maid")
    assert (results.load_traces(out).torch_threads == cli.DEFAULT_THREADS).all()
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        'threads = 2\n[budget]\nmax_iters = 1\n[[problems]]\nname = "quadratic"\n[[solvers]]\nname = "ift"\n'
    )
    out2 = tmp_path / "r2"
    assert _run(["-c", str(cfg), "-o", str(out2), "--no-report"]) == 0
    assert (results.load_traces(out2).torch_threads == 2).all()


def test_execute_job_writes_one_finished_run(tmp_path):
    (job,) = sweep.expand([("quadratic", {})], [("ift", {})], [0], {"max_iters": 2}, "cpu", "float64", 1, 2)
    assert job.threads == 2
    same = sweep.expand([("quadratic", {})], [("ift", {})], [0], {"max_iters": 2}, "cpu", "float64", 1, 1)[0]
    assert same.run_id == job.run_id  # threads is recorded, not part of the run id
    summary = sweep.execute_job(job, tmp_path)
    assert summary["status"] == "budget" and summary["upper_iters"] == 2
    assert results.finished_runs(tmp_path) == {job.run_id}


# ---------------------------------------------------------------------------------- 8. figures
def test_every_planned_solver_has_its_own_fixed_colour():
    names = ["maid", "maid_accel", "hoag", "ift", "neumann", "jfb", "trbp", "amigo", "f2sa", "lista"]
    colours = [plots.solver_colour(n) for n in names]
    assert len(set(colours)) == len(names)
    assert plots.solver_colour("unknown_solver") == plots.solver_colour("unknown_solver")


def _fake_trace(solver: str, run_id: str, values: list[float], status: str, seed: int = 0) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame(
        dict(
            run_id=run_id,
            case="p",
            solver=solver,
            seed=seed,
            iteration=range(n),
            wall_time=np.linspace(0.01, 1.0, n),
            ll_iters=np.arange(1, n + 1) * 10,
            upper_value=values,
            status=["running"] * (n - 1) + [status],
        )
    )


def test_convergence_marks_diverged_and_skips_runs_without_an_iteration(tmp_path):
    traces = pd.concat(
        [
            _fake_trace("maid", "a", [1.0, 0.5, 0.2], "converged"),
            _fake_trace("maid", "a2", [1.0, 0.4, 0.3], "converged", seed=1),
            _fake_trace("lista", "b", [1.0, 0.8, 50.0], "diverged"),
            _fake_trace("ift", "c", [1.0], "budget"),  # no completed upper iteration
        ],
        ignore_index=True,
    )
    legends = plots.convergence(traces, tmp_path / "c.png", {"p": 0.3})
    for labels in legends:
        assert "ift" not in labels  # no empty legend entry
        assert {"maid", "lista", "target", "diverged (run end)"} <= set(labels)
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_readable_log_ticks_inside_one_decade():
    plt, _ = plots._mpl()
    fig, ax = plt.subplots()
    ax.plot([1, 2], [5.3, 5.8])
    ax.set_yscale("log")
    plots.readable_log_axis(ax.yaxis, 5.3, 5.8)
    ax.set_ylim(5.3, 5.8)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    plt.close(fig)
    assert labels and all(re.fullmatch(r"\d+(\.\d+)?", t) for t in labels), labels
