"""Sweep backends: the same runs whichever engine executes them, faults that lose one run only,
Ctrl-C that keeps finished runs, and the execution recorded in traces and reports."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from bench import backends, cli, report, results, sweep

#: how a run executed (its two clocks, where and how many at once), not what it computed
TIMING_COLUMNS = ["wall_time", "eval_time", "backend", "concurrent_jobs"]


def _grid(threads: int | None = 1, **budget) -> list[sweep.Job]:
    """Four tiny runs: a closed-form problem and a 16×16 2D deblurring, two solvers each."""
    return sweep.expand(
        [("quadratic", {}), ("deblur2d", {"size": (16, 16), "preset": "certified"})],
        [("maid", {}), ("ift", {})],
        [0],
        budget or {"max_iters": 2},
        "cpu",
        "float64",
        threads=threads,
    )


def _traces(out) -> pd.DataFrame:
    return results.load_traces(out).sort_values(["run_id", "iteration"]).reset_index(drop=True)


def _quiet(_: str) -> None:
    pass


def test_backends_give_the_same_runs_and_traces(tmp_path):
    jobs = _grid()
    runs = {"sequential": backends.Execution(), "local": backends.Execution(jobs=2)}
    try:
        import dask.distributed  # noqa: F401  (the dask extra; installed in CI)

        runs["dask"] = backends.Execution(backend="dask", jobs=2)
    except ImportError:
        pass
    traces = {}
    for name, execution in runs.items():
        sweep.run_jobs(jobs, tmp_path / name, progress=False, log=_quiet, execution=execution)
        assert results.finished_runs(tmp_path / name) == {job.run_id for job in jobs}
        traces[name] = _traces(tmp_path / name)
        assert set(traces[name].backend) == {name}
        assert set(traces[name].concurrent_jobs) == {1 if name == "sequential" else 2}
        assert set(traces[name].torch_threads) == {1}
    reference = traces["sequential"].drop(columns=TIMING_COLUMNS)
    for name in set(runs) - {"sequential"}:
        pd.testing.assert_frame_equal(traces[name].drop(columns=TIMING_COLUMNS), reference)


def test_submitit_local_executor_completes(tmp_path):
    pytest.importorskip("submitit")
    jobs = _grid()[:2]  # the quadratic runs
    execution = backends.Execution(backend="submitit", jobs=2, submitit_cluster="local")
    sweep.run_jobs(jobs, tmp_path / "r", progress=False, log=_quiet, execution=execution)
    assert results.finished_runs(tmp_path / "r") == {job.run_id for job in jobs}
    traces = _traces(tmp_path / "r")
    assert set(traces.backend) == {"submitit"} and set(traces.concurrent_jobs) == {2}
    assert (traces.groupby("run_id").iteration.max() == 2).all()


def _pool_workers() -> list[multiprocessing.Process]:
    return multiprocessing.active_children()


def test_killed_worker_loses_only_its_run_which_resume_reruns(tmp_path):
    out = tmp_path / "r"
    # Four runs of ≈2 s solver time on two workers: each worker is busy for several seconds.
    jobs = sweep.expand(
        [("deconv1d", {})],
        [("ift", {}), ("lista", {})],
        [0, 1],
        {"max_time": 2.0},
        "cpu",
        "float64",
        threads=1,
    )
    lines: list[str] = []
    sweep_thread = threading.Thread(
        target=sweep.run_jobs,
        args=(jobs, out),
        kwargs=dict(progress=False, log=lines.append, execution=backends.Execution(jobs=2)),
    )
    sweep_thread.start()
    deadline = time.monotonic() + 120
    while len(_pool_workers()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = _pool_workers()[0]
    time.sleep(1.0)  # into its first run
    os.kill(victim.pid, signal.SIGKILL)
    sweep_thread.join(timeout=300)
    assert not sweep_thread.is_alive()

    failed = results.failed_runs(out)
    assert len(failed) == 1
    (record,) = failed.values()
    assert record["status"] == "error" and f"worker process {victim.pid}" in record["reason"]
    assert "SIGKILL" in record["reason"]
    assert results.finished_runs(out) == {job.run_id for job in jobs} - set(failed)  # the sweep went on
    assert any("error, no trace" in line for line in lines)
    assert "Failed runs (1" in report.write_report(out, figures=False)

    sweep.run_jobs(
        jobs, out, resume=True, progress=False, log=lines.append, execution=backends.Execution(jobs=2)
    )
    assert results.finished_runs(out) == {job.run_id for job in jobs}
    assert results.failed_runs(out) == {}
    assert not list(results.runs_dir(out).glob(f"*{results.FAILURE_SUFFIX}"))


def test_ctrl_c_stops_workers_and_keeps_finished_runs(tmp_path):
    out = tmp_path / "r"
    jobs = _grid(threads=None, max_iters=3)  # no threads given: the pool's default, cores ÷ 2

    def interrupt_after_first(_: str) -> None:
        raise KeyboardInterrupt  # what Ctrl-C does while the driver reports the first finished run

    with pytest.raises(KeyboardInterrupt):
        sweep.run_jobs(
            jobs, out, progress=False, log=interrupt_after_first, execution=backends.Execution(jobs=2)
        )
    finished = results.finished_runs(out)
    assert 1 <= len(finished) < len(jobs)
    assert not _pool_workers()  # running runs stopped, pending ones never started
    assert not [p for p in results.runs_dir(out).iterdir() if p.name.startswith(".")]  # no half-written file
    for run_id in finished:
        assert results.load_arrays(out, run_id) is not None
    expected = backends.default_threads(backends.Execution(jobs=2), len(jobs))
    assert set(results.load_traces(out).torch_threads) == {expected}


def test_run_that_cannot_start_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    out = tmp_path / "r"
    jobs = _grid()[:2]
    original = sweep.run

    def fail_first(solver, problem, **kwargs):
        if solver == "maid":
            raise MemoryError("cannot allocate")
        return original(solver, problem, **kwargs)

    monkeypatch.setattr(sweep, "run", fail_first)
    sweep.run_jobs(jobs, out, progress=False, log=_quiet)
    assert results.finished_runs(out) == {jobs[1].run_id}
    assert results.failed_runs(out)[jobs[0].run_id]["reason"] == "MemoryError: cannot allocate"


def test_report_warns_when_compared_runs_ran_under_different_concurrency(tmp_path):
    out = tmp_path / "r"
    maid, ift = _grid()[:2]
    sweep.execute_job(maid, out)
    sweep.execute_job(ift, out, backend="local", concurrent_jobs=2)
    text = report.write_report(out, figures=False)
    assert "ran under different concurrency" in text
    assert "local, 2 at once × 1 thread(s): 1 run(s)" in text
    assert "sequential, 1 at once × 1 thread(s): 1 run(s)" in text

    alone = tmp_path / "alone"
    sweep.execute_job(maid, alone)
    text = report.write_report(alone, figures=False)
    assert "different concurrency" not in text and "Execution: sequential, 1 at once × 1 thread(s)" in text


def test_threads_pin_torch_and_stay_out_of_the_run_id():
    one, two = _grid(threads=1)[0], _grid(threads=2)[0]
    assert one.run_id == two.run_id
    import torch

    before = torch.get_num_threads()
    try:
        res = sweep.run("maid", "quadratic", max_iters=1, threads=1)
        assert set(res.trace.torch_threads) == {1}
    finally:
        torch.set_num_threads(before)


def test_default_threads_divide_the_cores_between_concurrent_runs(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = backends.usable_cores()
    assert backends.thread_budget() == cores
    assert backends.default_threads(backends.Execution(), 12) == cores
    assert backends.default_threads(backends.Execution(jobs=2), 12) == max(1, cores // 2)
    assert backends.default_threads(backends.Execution(jobs=64), 12) == max(1, cores // 12)
    slurm = backends.SlurmOptions(cpus_per_task=4)
    assert backends.default_threads(backends.Execution(backend="submitit", slurm=slurm), 12) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert backends.default_threads(backends.Execution(), 12) == 1


def test_toml_keys_and_cli_flags_set_the_backend(tmp_path, capsys):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(
        'jobs = 2\nthreads = 1\nbackend = "local"\nseeds = [0, 1]\n[budget]\nmax_iters = 2\n'
        '[[problems]]\nname = "quadratic"\n[[solvers]]\nname = "maid"\n'
    )
    out = tmp_path / "r"
    assert cli.main(["run", "--no-progress", "--no-report", "-c", str(cfg), "-o", str(out)]) == 0
    assert "backend local, up to 2 at once × 1 torch thread(s) per run" in capsys.readouterr().out
    traces = results.load_traces(out)
    assert set(traces.backend) == {"local"} and set(traces.concurrent_jobs) == {2}
    assert set(traces.torch_threads) == {1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs", "0"], "argument --jobs/-j: must be an integer ≥ 1"),
        (["--backend", "nope"], "argument --backend: invalid choice: 'nope'"),
        (["--scheduler", "tcp://x:1"], "needs backend 'dask'"),
        (["--slurm-partition", "gpu"], "SLURM options need backend 'submitit'"),
        (
            ["--backend", "submitit", "--slurm-time-min", "0"],
            "argument --slurm-time-min: must be an integer ≥ 1",
        ),
        (["--backend", "submitit", "--slurm-gpus-per-node", "-1"], "gpus_per_node must be an integer ≥ 0"),
    ],
)
def test_bad_backend_options_give_one_line_errors(tmp_path, capsys, args, message):
    try:
        code = cli.main(
            ["run", "--no-progress", "-p", "quadratic", "--max-iters", "1", "-o", str(tmp_path), *args]
        )
    except SystemExit as exc:  # argparse's own (one-line) errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # nothing ran


@pytest.mark.parametrize(
    ("slurm", "message"),
    [
        ('queue = "x"', "[slurm] takes partition, time_min"),
        ("partition = 5", "slurm partition must be a string, got 5"),
        ("array_parallelism = 0", "slurm array_parallelism must be an integer ≥ 1, got 0"),
    ],
)
def test_bad_slurm_table_in_toml(tmp_path, capsys, slurm, message):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(f'backend = "submitit"\n[slurm]\n{slurm}\n')
    assert cli.main(["run", "-c", str(cfg), "-o", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def _descendants(pid: int) -> set[int]:
    """Processes below ``pid`` (Linux /proc), e.g. a driver's fork server and its pool workers."""
    parents = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            parents[int(status.parent.name)] = int(fields["PPid"])
        except (OSError, KeyError, ValueError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="walks /proc (Linux)")
def test_sweep_killed_with_sigkill_leaves_no_workers_and_resume_completes_it(tmp_path):
    out = tmp_path / "r"
    args = [
        "run",
        "-p",
        "deconv1d",
        "-s",
        "ift,lista",
        "--seed",
        "0,1",
        "--max-time",
        "1.5",
        "--threads",
        "1",
    ]
    args += ["--jobs", "2", "-o", str(out), "--no-report", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    driver = subprocess.Popen([sys.executable, "-m", "bench.cli", *args], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not results.runs_dir(out).is_dir() or not list(results.runs_dir(out).glob("*.json")):
        assert time.monotonic() < deadline and driver.poll() is None  # until the first run is finished
        time.sleep(0.05)
    below = _descendants(driver.pid)
    driver.kill()  # kill -9, mid-sweep: 2 of 4 runs still running or pending
    driver.wait()
    assert below, "the driver had no worker processes"
    while any(_alive(pid) for pid in below):  # workers and the fork server leave with the driver
        assert time.monotonic() < deadline, [pid for pid in below if _alive(pid)]
        time.sleep(0.1)
    assert 1 <= len(results.finished_runs(out)) < 4

    assert subprocess.run([sys.executable, "-m", "bench.cli", *args, "--resume"], env=env).returncode == 0
    good, damaged = results.scan(out)
    assert len(good) == 4 and not damaged and not results.failed_runs(out)
    assert results.load_traces(out).run_id.nunique() == 4
