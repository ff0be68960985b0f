"""The report's section across instances: present exactly when the harness has a targets table."""

from __future__ import annotations

import json
import math
import sys
import types

import pandas as pd
import pytest

from bench import cli, profiles, report


def _targets(traces: pd.DataFrame) -> pd.DataFrame:
    """A stand-in targets table with the agreed columns: every run reaches one target at its last row."""
    rows = []
    for run_id, tr in traces.groupby("run_id", sort=False):
        last = tr.iloc[-1]
        rows.append(
            dict(run_id=run_id, case=last.case, instance=f"{last.problem}:{last.problem_params}",
                 problem=last.problem, solver=last.solver, config=last.get("config", ""), seed=int(last.seed),
                 target=0.5, target_kind="rel_gap", reached=True, time=float(last.wall_time) + 1e-9,
                 ll_iters=float(last.ll_iters), cg_iters=float(last.cg_iters),
                 work=float(last.ll_iters + last.cg_iters), upper_iters=float(last.iteration))
        )  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("agg")
    args = ["run", "--no-progress", "--no-report", "-p", "tikhonov_adp", "-s", "maid,ift", "--seed", "0,1"]
    assert cli.main([*args, "--max-iters", "3", "-o", str(out)]) == 0
    return out


def test_no_targets_table_no_section(folder, monkeypatch) -> None:
    import bench

    # a build without the targets table: `from bench import verdicts` raises ImportError
    monkeypatch.delattr(bench, "verdicts", raising=False)
    monkeypatch.setitem(sys.modules, "bench.verdicts", None)
    text = report.write_report(folder, figures=False)
    assert "Across instances" not in text


def test_section_with_the_targets_table(folder, monkeypatch) -> None:
    stub = types.ModuleType("bench.verdicts")
    stub.targets_table = _targets
    monkeypatch.setitem(sys.modules, "bench.verdicts", stub)
    text = report.write_report(folder, figures=False, reference_solver="ift")
    assert "## Across instances: performance profiles" in text
    assert "| maid | 2/2 |" in text  # two instances (seeds), both solved
    assert "**Time to target ÷ ift's**" in text and "| maid | " in text
    assert "profiles_" not in text.split("## Across instances")[1].split("\n\n")[-1]  # no figures asked for
    ratios = pd.read_csv(folder / "profiles_time_ratios.csv")
    assert set(ratios.series) == {"maid"} and set(ratios.reference) == {"ift"}
    row = ratios[ratios.target == "all"].iloc[0]
    assert row.pairs == 2 and row.lo <= row.geomean <= row.hi and math.isfinite(row.geomean)


def test_section_figures(folder, tmp_path) -> None:
    from bench import results

    traces = results.load_traces(folder)
    traces["case"] = traces.problem
    text, names = profiles.aggregate_section(
        _targets(traces), tmp_path, reference_solver="ift", n_resamples=200
    )
    assert names == list(profiles.FIGURES.values())
    for name in names:
        assert (tmp_path / name).stat().st_size > 1000 and f"]({name})" in text


def test_series_split_by_solver_config_not_by_protocol_defaults() -> None:
    traces = pd.DataFrame(
        dict(
            run_id=["a", "b", "c", "d"],
            solver=["maid", "maid", "maid", "ift"],
            problem=["deconv1d", "deconv1d", "deblur2d", "deconv1d"],
            solver_config=['{"eps0": 0.001}', '{"eps0": 0.01}', '{"eps0": 1.0}', '{"eps": 1e-4}'],
        )
    )
    labels = profiles.solver_config_labels(traces)
    assert labels.to_dict() == {"a": "eps0=0.001", "b": "eps0=0.01", "c": "", "d": ""}


def test_a_parameter_recorded_only_off_its_default_still_splits_configurations() -> None:
    # deblur2d records `blur` only when it is not the paper's motion kernel: the two runs differ
    common = dict(case="deblur2d/astronaut/certified", solver="maid", solver_config="{}", budget="{}",
                  dtype="float64", device="cpu", torch_threads=1)  # fmt: skip
    traces = pd.DataFrame(
        [
            dict(run_id="a", problem_params='{"image": "astronaut"}', **common),
            dict(run_id="b", problem_params='{"image": "astronaut", "blur": "gaussian:1.0"}', **common),
        ]
    )
    labelled, differing = report.label_configs(traces)
    assert differing == ["blur"]
    assert labelled.set_index("run_id").config.to_dict() == {"a": "", "b": 'blur="gaussian:1.0"'}


def test_image_figures_are_named_per_instance_and_safe_for_file_paths() -> None:
    from bench.images2d import figure_tag

    base = dict(image="astronaut", preset="certified", seed=0)
    assert figure_tag("deblur2d", base) == "deblur2d_astronaut_certified_seed0"  # the names of before
    assert figure_tag("deblur2d", {**base, "noise": 5 / 255, "kernel_size": 5}) == figure_tag(
        "deblur2d", base
    )
    own = {
        **base,
        "image": "/data/My photos/a b.png",
        "noise": 10 / 255,
        "blur": "line:9:30",
        "kernel_size": 9,
    }
    assert (
        figure_tag("deblur2d", own) == "deblur2d_a-b_certified_seed0_noise0.03922_blurline-9-30_kernel_size9"
    )


def test_cases_name_the_parameters_a_folder_varies_never_the_seed() -> None:
    params = [
        {"noise": 0.005, "sigma": 5.0, "seed": 0},
        {"noise": 0.005, "sigma": 5.0, "seed": 1},
        {"noise": 0.01, "sigma": 5.0, "seed": 0},
    ]
    traces = pd.DataFrame(
        [
            *(
                dict(run_id=f"r{i}", problem="deconv1d", problem_params=json.dumps(p))
                for i, p in enumerate(params)
            ),
            dict(run_id="q", problem="quadratic", problem_params='{"seed": 4}'),
        ]
    )
    assert report.case_labels(traces).tolist() == [
        "deconv1d/noise=0.005", "deconv1d/noise=0.005", "deconv1d/noise=0.01", "quadratic"
    ]  # fmt: skip


def test_per_case_figures_take_cases_in_turn_from_each_problem() -> None:
    from bench import plots

    few = pd.Series(["a/1", "a/2", "b/1"])
    assert plots.figure_cases(few) == ["a/1", "a/2", "b/1"]
    many = pd.Series([f"a/{i}" for i in range(10)] + [f"b/{i}" for i in range(10)] + ["c/0", "c/0"])
    chosen = plots.figure_cases(many)
    assert len(chosen) == plots.MAX_FIGURE_CASES
    assert chosen[-1] == "c/0" and chosen == sorted(chosen, key=list(dict.fromkeys(many)).index)
    counts = pd.Series([c.split("/")[0] for c in chosen]).value_counts().to_dict()
    assert counts == {"a": 6, "b": 5, "c": 1} or counts == {"a": 5, "b": 6, "c": 1}
