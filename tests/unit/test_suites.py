"""Suites as data (bench/suites.py): expansion, de-duplication, bad axes, image folders, size and cost."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench import evaluation, suites
from bench.suites import Grid, Suite

BUDGET = {"max_iters": 1, "max_ll_iters": 100}


def _suite(*grids: Grid, solvers=("maid", "ift")) -> Suite:
    return Suite("test", "a test suite", grids, solvers)


def test_axes_are_crossed_and_seeds_multiply_the_instances() -> None:
    grid = Grid(
        "deconv1d", axes={"noise": (0.005, 0.01), "sigma": (3.0, 5.0, 7.0)}, seeds=(0, 1), budget=BUDGET
    )
    suite = _suite(grid)
    settings = [params for _, params in suite.instances()]
    assert settings == [{"noise": n, "sigma": s} for n in (0.005, 0.01) for s in (3.0, 5.0, 7.0)]
    assert suite.size() == dict(settings=6, instances=12, solvers=2, runs=24)
    jobs = suite.jobs()
    assert len(jobs) == 24 and len({job.run_id for job in jobs}) == 24
    assert {(j.problem_params["noise"], j.problem_params["sigma"], j.seed) for j in jobs} == {
        (n, s, seed) for n in (0.005, 0.01) for s in (3.0, 5.0, 7.0) for seed in (0, 1)
    }


def test_an_axis_of_tables_sets_parameters_together() -> None:
    blurs = ({"blur": "motion", "kernel_size": 5}, {"blur": "line:9:30", "kernel_size": 9})
    grid = Grid("deblur2d", axes={"blur": blurs, "noise": (0.02,)}, fixed={"size": (8, 8)}, budget=BUDGET)
    settings = [params for _, params in _suite(grid).instances()]
    assert settings == [{"size": (8, 8), **b, "noise": 0.02} for b in blurs]
    jobs = _suite(grid, solvers=("maid",)).jobs()
    assert [j.problem_params["kernel_size"] for j in jobs] == [5, 9]


def test_duplicates_run_once() -> None:
    grid = Grid("deconv1d", axes={"noise": (0.005, 0.005, 0.01)}, budget=BUDGET)
    suite = _suite(grid, grid, solvers=("maid", "maid"))
    assert suite.size() == dict(settings=2, instances=2, solvers=1, runs=2)  # twice on one axis, the same
    # grid twice, the same solver twice
    jobs = suite.jobs()
    assert len(jobs) == 2 and len({j.run_id for j in jobs}) == 2  # and the solver listed twice


@pytest.mark.parametrize(
    "grid, fragment",
    [
        (
            Grid("deconv1d", axes={"nosie": (0.1,)}, budget=BUDGET),
            "axis 'nosie' is not a parameter; valid: n,",
        ),
        (Grid("deconv1d", axes={"noise": ("loud",)}, budget=BUDGET), "axis 'noise': deconv1d.noise must be"),
        (Grid("deconv1d", axes={"noise": ()}, budget=BUDGET), "axis 'noise' needs a non-empty list"),
        (Grid("deconv1d", axes={"seed": (1, 2)}, budget=BUDGET), "axis 'seed' is set by the grid's seeds"),
        (
            Grid("deconv1d", axes={"b": ({"sigmaa": 1.0},)}, budget=BUDGET),
            "axis 'b' sets 'sigmaa', which is not a parameter",
        ),
        (Grid("deconv1d", axes={"noise": (0.1,)}, fixed={"noise": 0.2}, budget=BUDGET), "also fixes"),
        (Grid("deblur2d", axes={"blur": ("blurry",)}, budget=BUDGET), "axis 'blur': blur 'blurry'"),
        (Grid("deblur2d", axes={"blur": ("line:9:0",)}, budget=BUDGET), "needs kernel_size ≥ 9, got 5"),
        (Grid("deconv1dd", budget=BUDGET), "unknown problem 'deconv1dd'"),
        (Grid("deconv1d", budget={"max_iters": 5}), "needs max_time or max_ll_iters"),
    ],
)
def test_a_bad_axis_is_one_line_naming_it_before_anything_is_built(
    grid: Grid, fragment: str, monkeypatch
) -> None:
    import problems

    def no_build(*args, **kwargs):
        raise AssertionError("an instance was built before the suite was checked")

    monkeypatch.setattr(problems, "make_problem", no_build)
    with pytest.raises(ValueError) as info:
        _suite(grid).jobs()
    text = str(info.value)
    assert text.startswith("suite 'test'") and fragment in text and "\n" not in text


def test_an_unknown_solver_or_suite_is_one_line() -> None:
    with pytest.raises(ValueError, match="suite 'test': unknown solver 'maiid'"):
        _suite(Grid("deconv1d", budget=BUDGET), solvers=("maiid",)).check()
    with pytest.raises(ValueError, match="unknown suite 'quik'; valid suites: quick, standard, paper"):
        suites.get("quik")


def _write_images(folder, names) -> None:
    rng = np.random.default_rng(0)
    for name in names:
        pixels = (rng.random((12, 10, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name)


def test_an_image_dir_suite_runs_the_image_problems_over_the_folder_sorted(tmp_path) -> None:
    _write_images(tmp_path, ["b.png", "a.JPG", "c.tiff"])
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    _write_images(tmp_path / "sub", ["d.png"])  # sub-folders are not read
    suite = suites.get("quick", image_dir=tmp_path)
    images = [str((tmp_path / n).resolve()) for n in ("a.JPG", "b.png", "c.tiff")]
    for grid in suite.grids:
        if grid.problem == "deconv1d":
            assert "image" not in grid.axes
        else:
            assert list(grid.axes["image"]) == images and "image" not in grid.fixed
    jobs = suite.jobs(solvers=[("maid", {})])
    images_run = sorted({j.problem_params["image"] for j in jobs if j.problem != "deconv1d"})
    assert images_run == images
    assert suite.size()["settings"] == 2 + 2 * 3 * 2  # deconv1d noise levels; 2 problems × 3 images × 2 blurs


def test_an_image_dir_without_images_is_one_line(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no image"):
        suites.get("quick", image_dir=tmp_path)
    with pytest.raises(ValueError, match="is not a folder"):
        suites.get("quick", image_dir=tmp_path / "missing")
    with pytest.raises(ValueError, match="has no image problems"):
        _write_images(tmp_path, ["a.png"])
        _suite(Grid("deconv1d", budget=BUDGET)).with_image_dir(tmp_path)


def test_shipped_suites_check_and_have_their_size_and_cost() -> None:
    assert suites.names() == ["quick", "standard", "paper"]
    for name in suites.names():
        suite = suites.get(name)
        suite.check()
        text = suite.summary
        size = suite.size()
        assert text.startswith(suite.description) and f"= {size['runs']} runs" in text and "--jobs 2" in text
        assert "\n" not in text
        details = suite.describe()
        assert details.startswith(f"{name}: ") and f"= {size['runs']} runs" in details
        assert all(f"  {grid.problem}: " in details for grid in suite.grids)
        cost = suite.estimate(jobs=2)
        assert 0 < cost["report"] < cost["wall"] < cost["total"] < float("inf")
    standard = suites.get("standard")
    # deconv1d: 2 noise levels × 3 widths × 5 draws; 2D: 2 problems × 5 photos × 2 noise levels × 3 blurs
    assert standard.size() == dict(settings=66, instances=90, solvers=5, runs=450)
    assert standard.estimate(jobs=2)["wall"] <= 2 * 3600  # the README's headline fits 2 h on 2 cores
    assert suites.get("quick").estimate(jobs=2)["wall"] <= 5 * 60


def test_cost_model_arithmetic() -> None:
    costs = suites.UnitCosts(deconv1d_iter=1e-5, pixel_iter=1e-7, iter_overhead=1e-4)
    assert costs.lower_iteration("deconv1d", {}) == pytest.approx(1e-5)
    assert costs.lower_iteration("deconv1d", {"n": 400}) == pytest.approx(4e-5)
    assert costs.lower_iteration("deblur2d", {"size": (100, 50)}) == pytest.approx(1e-7 * 5000 + 1e-4)
    w_lista, per_upper = suites.WORK_PER_LL_ITER["lista"], suites.LL_PER_UPPER["deconv1d"]["lista"]
    # the lower-level cap binds: 1000 lower iterations × c_i × LISTA's work per lower iteration
    assert suites.run_seconds({"max_ll_iters": 1000, "max_time": 60.0}, 1e-3, "lista") == pytest.approx(
        1000 * 1e-3 * w_lista
    )
    assert suites.run_seconds({"max_ll_iters": 1000, "max_time": 2.0}, 1e-3, "lista") == pytest.approx(2.0)
    # the solver's own iteration budget binds: IFT's 7 500 upper iterations × its lower iterations each
    ift = suites.LL_PER_UPPER["deconv1d"]["ift"]
    assert 7500 * ift < 250_000
    assert suites.upper_iterations({"max_ll_iters": 250_000}, 1e-5, "ift", "deconv1d") == 7500
    assert suites.run_seconds({"max_ll_iters": 250_000}, 1e-5, "ift") == pytest.approx(
        7500 * ift * 1e-5 * suites.WORK_PER_LL_ITER["ift"]
    )
    # evaluations: the harness's rows — the log-spaced ones, every eval_every-th and the last
    k = 1000 // per_upper
    rows = len({j for j in range(k + 1) if j % 2 == 0 or evaluation.on_log_schedule(j)} | {k})
    assert suites.evaluated_rows(k, 2) == rows
    expected = rows * suites.EVAL_LL_PER_EVAL["deconv1d"] * 1e-3 * suites.EVAL_ITER_FACTOR
    assert suites.evaluation_seconds({"max_ll_iters": 1000}, 1e-3, "lista", "deconv1d", 2) == pytest.approx(
        expected
    )
    grid = Grid("deconv1d", seeds=(0, 1), budget={"max_ll_iters": 1000})
    cost = _suite(grid, solvers=("lista",)).estimate(costs, jobs=2)
    solver = 2 * 1000 * 1e-5 * w_lista
    eval_s = (
        2 * (1000 // per_upper + 1) * suites.EVAL_LL_PER_EVAL["deconv1d"] * 1e-5 * suites.EVAL_ITER_FACTOR
    )
    assert cost["solver"] == pytest.approx(solver) and cost["evaluation"] == pytest.approx(eval_s)
    assert cost["report"] == 2 * suites.REPORT_FIGURE_S
    assert cost["wall"] == pytest.approx((solver + eval_s) / 2 + cost["report"])


def test_eval_work_sets_each_solver_evaluation_interval() -> None:
    grid = Grid("deblur2d", fixed={"size": (8, 8)}, budget=BUDGET, eval_work=80)
    per_upper = suites.LL_PER_UPPER["2d"]
    assert grid.eval_every_for("ift") == round(80 / per_upper["ift"]) == 4
    assert grid.eval_every_for("maid") == 1  # an iteration longer than the interval: each is evaluated
    assert Grid("deconv1d", budget=BUDGET, eval_every=3).eval_every_for("ift") == 3
    jobs = _suite(grid, solvers=("maid", "ift")).jobs()
    assert {j.solver: j.eval_every for j in jobs} == {"maid": 1, "ift": 4}
    assert {j.eval_every for j in _suite(grid, solvers=("maid", "ift")).jobs(eval_every=2)} == {2}


def test_estimates_print_before_anything_runs(capsys) -> None:
    assert suites.main(["quick"]) == 0
    out = capsys.readouterr().out
    assert "unit costs (defaults" in out and out.count("quick:") == 1 and "of run time" in out
