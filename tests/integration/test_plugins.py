"""Plug-ins: a solver from a plain file, a problem from an installed package's entry point; found at CLI
and sweep start, refused in one line when they clash or fail, carried to every worker (hash-checked) and
named in every trace and report."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from bench import backends, cli, plugins, report, results, sweep

#: the plug-ins of docs/extending.md: a solver in a plain file, a problem in a package with an entry point
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
SOLVER_FILE = (EXAMPLES / "my_solver.py").read_text()
PROBLEM_MODULE = (EXAMPLES / "shrinkpkg" / "shrinkpkg" / "problem.py").read_text()


def _package(root: Path, version: str = "0.3") -> Path:
    """A throwaway installed distribution: ``shrinkpkg`` with its ``.dist-info`` (entry point ``shrink``),
    under ``root`` (which importlib.metadata scans once it is on sys.path)."""
    (root / "shrinkpkg").mkdir(parents=True)
    (root / "shrinkpkg" / "__init__.py").write_text("")
    (root / "shrinkpkg" / "problem.py").write_text(PROBLEM_MODULE)
    info = root / f"shrinkpkg-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: shrinkpkg\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[adpbench.problems]\nshrink = shrinkpkg.problem:Shrink\n")
    return root


@pytest.fixture(autouse=True)
def _unload():
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def solver_file(tmp_path) -> Path:
    path = tmp_path / "my_solver.py"
    path.write_text(SOLVER_FILE)
    return path


@pytest.fixture
def installed(tmp_path, monkeypatch) -> Path:
    site = _package(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    return site


def _err(capsys) -> str:
    return capsys.readouterr().err.strip()


def test_a_file_plugin_is_listed_and_an_entry_point_is_found(solver_file, installed, capsys):
    assert cli.main(["list", "solvers", "--plugin", str(solver_file)]) == 0
    assert "my_solver" in capsys.readouterr().out
    assert cli.main(["list", "problems", "shrink"]) == 0  # the entry point, with no flag at all
    assert "n = 20" in capsys.readouterr().out
    (entry,) = [s for s in plugins.loaded() if s.kind == "entry_point"]
    assert entry.digest == "0.3" and entry.registers == ("problem:shrink",)


def test_nothing_is_loaded_at_import_time():
    import importlib

    importlib.reload(plugins)
    assert plugins.loaded() == ()


@pytest.mark.parametrize(
    "source, message",
    [
        (
            SOLVER_FILE.replace('"my_solver"', '"maid"'),
            "solver name 'maid' is already registered by a built-in",
        ),
        ("import no_such_module_here\n", "cannot import it: ModuleNotFoundError: No module named"),
        ("x = 1\n", "registers no solver or problem"),
    ],
)
def test_a_bad_plugin_is_one_line_naming_it(tmp_path, capsys, source, message):
    bad = tmp_path / "bad_plugin.py"
    bad.write_text(source)
    out = tmp_path / "out"
    assert cli.main(["run", "--no-progress", "--plugin", str(bad), "-p", "quadratic", "-o", str(out)]) == 2
    err = _err(capsys)
    assert err.startswith("adpbench: error: plug-in bad_plugin.py: ") and message in err and "\n" not in err
    assert not out.exists()  # before any run


def test_two_plugins_with_one_name_clash_naming_the_first(tmp_path, solver_file, capsys):
    twin = tmp_path / "twin.py"
    twin.write_text(SOLVER_FILE)
    assert cli.main(["list", "--plugin", str(solver_file), "--plugin", str(twin)]) == 2
    err = _err(capsys)
    assert "plug-in twin.py: solver name 'my_solver' is already registered by plug-in my_solver.py" in err
    assert "choose a name not in: amigo, f2sa" in err


def test_missing_file_and_module_are_one_line(capsys):
    assert cli.main(["list", "--plugin", "nowhere/my.py"]) == 2
    assert "plug-in nowhere/my.py: no such file" in _err(capsys)
    assert cli.main(["check-solver", "x", "--plugin", "no_such_plugin_module"]) == 2
    assert "plug-in no_such_plugin_module: no module of that name" in _err(capsys)


def test_toml_plugins_are_relative_to_the_file(tmp_path, solver_file):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(
        textwrap.dedent(
            """
            plugins = ["my_solver.py"]
            seeds = [0]
            [budget]
            max_iters = 2
            [[problems]]
            name = "quadratic"
            [[solvers]]
            name = "my_solver"
            """
        )
    )
    out = tmp_path / "out"
    assert cli.main(["run", "--no-progress", "--no-report", "-c", str(cfg), "-o", str(out)]) == 0
    (record,) = json.loads(results.load_traces(out).plugins.iloc[0])
    assert record["name"] == "my_solver.py" and record["sha256"] == plugins.file_digest(solver_file)


def test_a_protocol_without_settings_for_a_plugin_solver_fails_before_any_run(tmp_path, solver_file, capsys):
    out = tmp_path / "out"
    args = ["run", "--no-progress", "--plugin", str(solver_file), "-p", "deblur2d", "-s", "my_solver"]
    assert cli.main([*args, "--param", "deblur2d.size=(16,16)", "-o", str(out)]) == 2
    err = _err(capsys)
    assert "protocol 'certified' has no settings for solver 'my_solver', whose field(s) tol" in err
    assert not out.exists()
    # given explicitly, the field is the user's decision: the sweep expands (the lower caps still apply)
    jobs = sweep.expand(
        [("deblur2d", {"size": (16, 16), "preset": "authors"})],
        [("my_solver", {"tol": 1e-3})],
        [0],
        {"max_iters": 1},
        "cpu",
        "float64",
    )
    assert jobs[0].solver_config == {"tol": 1e-3}


def test_the_protocol_is_resolved_into_the_job(tmp_path):
    (job,) = sweep.expand(
        [("deblur2d", {"size": (16, 16), "preset": "authors"})],
        [("ift", {"eps": 0.5})],
        [0],
        {},
        "cpu",
        "float64",
    )
    assert job.solver_config == {"eps": 0.5, "ll_max_iters": 200, "cg_tol": 1e-6, "cg_max_iters": 200}


def test_a_file_changed_after_the_sweep_started_fails_its_worker_run(tmp_path, solver_file):
    plugins.activate([str(solver_file)])
    jobs = sweep.expand([("quadratic", {})], [("my_solver", {})], [0, 1], {"max_iters": 2}, "cpu", "float64")
    solver_file.write_text(SOLVER_FILE + "\n# edited\n")
    out = tmp_path / "out"
    sweep.run_jobs(jobs, out, progress=False, log=lambda _: None, execution=backends.Execution(jobs=2))
    reasons = [r["reason"] for r in results.failed_runs(out).values()]
    assert len(reasons) == 2 and all("plug-in my_solver.py: sha256" in r for r in reasons)
    assert all("changed since; rerun the sweep" in r for r in reasons)


def _engines() -> dict[str, backends.Execution]:
    runs = {"sequential": backends.Execution(), "local": backends.Execution(jobs=2)}
    try:
        import dask.distributed  # noqa: F401  (the dask extra)

        runs["dask"] = backends.Execution(backend="dask", jobs=2)
    except ImportError:
        pass
    try:
        import submitit  # noqa: F401  (the slurm extra)

        runs["submitit"] = backends.Execution(backend="submitit", jobs=2, submitit_cluster="local")
    except ImportError:
        pass
    return runs


#: how and where a run executed, not what it computed (studies/trace_compare leaves the same out; the
#: checkout may be committed to while the engines run)
EXECUTION_COLUMNS = ["wall_time", "eval_time", "backend", "concurrent_jobs", "git_commit"]


def test_plugins_give_the_same_traces_on_every_engine(tmp_path, solver_file, installed):
    plugins.activate([str(solver_file)])
    jobs = sweep.expand(
        [("shrink", {}), ("deconv1d", {"n": 40})],
        [("maid", {}), ("my_solver", {})],
        [0],
        {"max_iters": 15},
        "cpu",
        "float64",
        threads=1,
    )
    traces = {}
    for name, execution in _engines().items():
        out = tmp_path / name
        sweep.run_jobs(jobs, out, progress=False, log=lambda _: None, execution=execution)
        assert results.finished_runs(out) == {job.run_id for job in jobs}, results.failed_runs(out)
        frame = results.load_traces(out).sort_values(["run_id", "iteration"]).reset_index(drop=True)
        assert set(frame.backend) == {name}
        names = {e["name"] for text in set(frame.plugins) for e in json.loads(text)}
        assert names == {"my_solver.py", "shrinkpkg:shrink"}
        traces[name] = frame.drop(columns=EXECUTION_COLUMNS)
        if name == "sequential":
            assert "plug-ins: my_solver.py (sha256 " in report.write_report(out, figures=False)
    for name, frame in traces.items():
        diff = frame.compare(traces["sequential"])
        assert diff.empty, (
            f"{name} differs from sequential in {sorted(set(diff.columns.get_level_values(0)))}"
        )
