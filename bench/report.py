"""Turn a folder of runs into a markdown summary table and PNG figures (`adpbench report DIR`).

Runs are grouped by their full configuration (problem parameters but the seed, solver config, budget,
dtype, device, torch threads): medians and bands are taken only over the seeds of one configuration. A
folder that mixes configurations gets one row per configuration, labelled by the settings that differ,
and a note saying so. Damaged runs are named and skipped.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

import problems as problem_registry
from bench import results

SUMMARY_FILE = "summary.md"
SUMMARY_CSV = "summary.csv"


def default_target(problem: str, traces: pd.DataFrame) -> float:
    """The problem's reference target if it has one (deconv1d: 0.0102, SPEC §5), otherwise the
    largest best-value over runs, i.e. a value every run reached."""
    cls = problem_registry.problem_class(problem)
    target = getattr(cls, "report_target", None)
    if target is not None:
        return float(target)
    return float(traces.groupby("run_id").upper_value.min().max())


def case_label(problem: str, params_json: str) -> str:
    """One problem instance's label in tables and plots: the problem, plus image and preset if any."""
    params = json.loads(params_json)
    return "/".join([problem] + [str(params[k]) for k in ("image", "preset") if k in params])


def _first_reach(trace: pd.DataFrame, target: float) -> pd.Series | None:
    hit = trace[trace.upper_value <= target]
    return None if hit.empty else hit.iloc[0]


_BUDGET_KEYS = ("max_iters", "max_time", "max_ll_iters")


def _flat_config(row: pd.Series) -> dict[str, object]:
    """A run's configuration as flat key → value: shared settings by name, solver fields as solver.field."""
    params = json.loads(row.problem_params)
    params.pop("seed", None)
    budget = json.loads(row.budget) if isinstance(row.get("budget"), str) else {}
    flat: dict[str, object] = {k: json.dumps(v) for k, v in params.items()}
    flat.update({k: json.dumps(budget.get(k)) for k in _BUDGET_KEYS})
    flat.update(dtype=str(row.dtype), device=str(row.device), threads=str(row.get("torch_threads")))
    config = json.loads(row.solver_config)
    flat.update({f"{row.solver}.{k}": json.dumps(v) for k, v in config.items()})
    return flat


def label_configs(traces: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Add ``config`` (the full configuration's settings that differ within the case, "" if none) and
    ``setting`` (the same, solver fields left out) to every row; return the differing keys."""
    firsts = traces.groupby("run_id", sort=False).first()
    flats = {run_id: _flat_config(row) for run_id, row in firsts.iterrows()}
    config, setting, differing_all = {}, {}, []
    for _, group in firsts.groupby("case", sort=False):
        values: dict[str, set] = {}
        for run_id in group.index:
            for key, value in flats[run_id].items():
                values.setdefault(key, set()).add(value)
        for run_id in group.index:  # a shared setting some runs record and others leave at its default
            for key in values:
                if "." not in key and key not in flats[run_id]:
                    values[key].add(None)
        # a solver field differs when runs of that solver disagree; shared settings when any runs do
        differing = sorted(k for k, v in values.items() if len(v) > 1)
        differing_all += [k for k in differing if k not in differing_all]
        for run_id in group.index:
            flat = flats[run_id]
            parts = [f"{k}={flat[k]}" for k in differing if k in flat]
            config[run_id] = ", ".join(p.split(".", 1)[1] if "." in p.split("=")[0] else p for p in parts)
            setting[run_id] = ", ".join(p for p in parts if "." not in p.split("=")[0])
    traces = traces.assign(config=traces.run_id.map(config), setting=traces.run_id.map(setting))
    return traces, differing_all


def per_run(traces: pd.DataFrame, targets: dict[str, float]) -> pd.DataFrame:
    """One row per run: final state, work and time to reach the problem's target."""
    rows = []
    for run_id, tr in traces.groupby("run_id", sort=False):
        tr = tr.sort_values(["iteration", "wall_time"])
        last = tr.iloc[-1]
        problem = last.problem
        target = targets[last.case]
        hit = _first_reach(tr, target)
        metric_names = problem_registry.problem_class(problem).metric_names
        row = dict(
            run_id=run_id,
            case=last.case,
            config=last.get("config", ""),
            setting=last.get("setting", ""),
            problem=problem,
            solver=last.solver,
            seed=int(last.seed),
            status=last.status,
            upper_iters=int(last.iteration),
            wall_time=float(last.wall_time),
            ll_iters=int(last.ll_iters),
            cg_iters=int(last.cg_iters),
            final_upper_value=float(last.upper_value),
            target=target,
            time_to_target=math.nan if hit is None else float(hit.wall_time),
            ll_iters_to_target=math.nan if hit is None else float(hit.ll_iters),
            iters_to_target=math.nan if hit is None else float(hit.iteration),
        )
        for name in metric_names:
            valid = tr[name].dropna()
            row[name] = float(valid.iloc[-1]) if len(valid) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame, reference_solver: str = "maid") -> pd.DataFrame:
    """Median over the seeds of one configuration per (case, configuration, solver), with time-to-target
    ratios against MAID under the same shared setting (problem, budget, dtype, device, threads)."""
    runs = runs.copy()
    for key in ("config", "setting"):
        if key not in runs:
            runs[key] = ""
    labels = ("run_id", "case", "config", "setting", "problem", "solver", "seed", "status")
    numeric = [c for c in runs.columns if c not in labels]
    grouped = runs.groupby(["case", "setting", "config", "problem", "solver"], sort=False)
    table = grouped[numeric].median()
    table["runs"] = grouped.size()
    table["reached"] = grouped.time_to_target.apply(lambda s: int(s.notna().sum()))
    table["status"] = grouped.status.agg(lambda s: ",".join(sorted(set(s))))
    table = table.reset_index()
    ratios = []
    for _, row in table.iterrows():
        ref = table[
            (table.case == row.case) & (table.setting == row.setting) & (table.solver == reference_solver)
        ]
        ref_time = float(ref.time_to_target.iloc[0]) if len(ref) == 1 else math.nan
        ratios.append(row.time_to_target / ref_time if ref_time > 0 else math.nan)
    table[f"time_vs_{reference_solver}"] = ratios
    return table


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def markdown_table(table: pd.DataFrame, columns: list[str]) -> str:
    cols = [c for c in columns if c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines)


QUALITY_COLUMNS = [
    "problem",
    "image",
    "preset",
    "seed",
    "size",
    "method",
    "psnr",
    "ssim",
    "status",
    "upper_iters",
    "wall_time",
    "kernel_change",
]

TABLE_COLUMNS = [
    "case",
    "solver",
    "config",
    "runs",
    "status",
    "upper_iters",
    "wall_time",
    "ll_iters",
    "cg_iters",
    "final_upper_value",
    "target",
    "reached",
    "time_to_target",
    "iters_to_target",
    "ll_iters_to_target",
    "time_vs_maid",
]


def _warn(text: str) -> None:
    print(f"adpbench: warning: {text}", file=sys.stderr)


def write_report(
    out_dir: str | Path,
    target: float | None = None,
    figures: bool = True,
    warn: Callable[[str], None] = _warn,
    reference_solver: str = "maid",
) -> str:
    """Write summary.md, summary.csv and figures into out_dir; return the markdown text. Damaged runs are
    named through ``warn`` and in the summary, and skipped. ``reference_solver``: the denominator of the
    aggregates' time ratios (``bench/profiles.py``)."""
    out_dir = Path(out_dir)
    damaged: list[str] = []

    def note(text: str) -> None:
        damaged.append(text)
        warn(text)

    traces = results.load_traces(out_dir, warn=note)
    traces["case"] = [case_label(p, j) for p, j in zip(traces.problem, traces.problem_params, strict=True)]
    traces, differing = label_configs(traces)
    targets = {}
    for case, tr in traces.groupby("case", sort=False):
        targets[case] = target if target is not None else default_target(tr.problem.iloc[0], tr)
    runs = per_run(traces, targets)
    table = summarize(runs)
    metric_cols = sorted(
        {m for p in set(traces.problem) for m in problem_registry.problem_class(p).metric_names}
    )
    table.to_csv(out_dir / SUMMARY_CSV, index=False)
    columns = TABLE_COLUMNS if differing else [c for c in TABLE_COLUMNS if c != "config"]
    parts = [f"# adpbench report: {out_dir}", ""]
    if differing:
        parts += [
            f"**Note: this folder mixes configurations** (they differ in {', '.join(differing)}): one row "
            "per configuration, labelled in `config`; medians are over the seeds of one configuration only.",
            "",
        ]
    execution, mixed = concurrency_note(traces)
    if mixed:
        parts += [execution, ""]
    if damaged:
        parts += ["**Damaged runs, skipped:**", "", *[f"- {d}" for d in damaged], ""]
    parts += [
        "Medians over the seeds of one configuration (`runs`: how many). Times are solver seconds "
        "(evaluation excluded); `upper_iters`: completed upper iterations; `time_to_target`: first upper "
        "iteration whose upper value ≤ target; `time_vs_maid`: ratio of times to target.",
        "",
        markdown_table(table, columns + metric_cols),
        "",
        _provenance(traces),
    ]
    if not mixed:
        parts += ["", execution]
    failed = results.failed_runs(out_dir, finished=set(traces.run_id))
    if failed:
        parts += [
            "",
            f"## Failed runs ({len(failed)}, no trace; `adpbench run ... --resume` runs them again)",
            "",
            "| run | reason |",
            "|---|---|",
            *(f"| {rid} | {r.get('reason', '').splitlines()[0]} |" for rid, r in failed.items()),
        ]
    image_problems = [p for p in set(traces.problem) if problem_registry.IMAGE in problem_registry.figures(p)]
    if image_problems:
        from bench import images2d

        img = traces[traces.problem.isin(image_problems)]
        quality = images2d.quality_table(img, runs, out_dir)
        quality.to_csv(out_dir / "quality.csv", index=False)
        parts += [
            "",
            "## Image quality (PSNR dB / SSIM of the final reconstruction; blurry = data y; smoothed TV = "
            "the preset's baseline with b₀, TV = the same with TV itself, regulariser=tv)",
            "",
            markdown_table(quality, QUALITY_COLUMNS),
        ]
    aggregate = aggregates(traces, out_dir, reference_solver, figures)
    if aggregate is not None:
        parts += ["", aggregate[0]]
    if figures:
        from bench import plots

        names = plots.make_figures(traces, runs, out_dir)
        if image_problems:
            names += images2d.figures(img, runs, out_dir)
        names += aggregate[1] if aggregate is not None else []
        parts += ["", "Figures: " + ", ".join(f"[{n}]({n})" for n in names)]
    text = "\n".join(parts) + "\n"
    (out_dir / SUMMARY_FILE).write_text(text)
    return text


def aggregates(
    traces: pd.DataFrame, out_dir: Path, reference_solver: str, figures: bool
) -> tuple[str, list[str]] | None:
    """Profiles, ECDFs and bootstrap intervals across instances (``bench/profiles.py``) from the targets
    table of the harness's exact values; None where this build has no targets table (``bench.verdicts``)."""
    try:
        from bench import verdicts
    except ImportError:
        return None
    from bench import profiles

    table = verdicts.targets_table(traces)
    # a series is a solver configuration: not the report's label, which also names problem parameters
    table["config"] = table.run_id.map(profiles.solver_config_labels(traces)).fillna("")
    return profiles.aggregate_section(table, out_dir, reference_solver=reference_solver, figures=figures)


def execution_by_run(traces: pd.DataFrame) -> pd.Series:
    """Per run: how it executed, e.g. 'local, 2 at once × 1 thread(s)' ('unknown' before backends)."""

    def label(row: pd.Series) -> str:
        if pd.isna(row.get("backend")):
            return "unknown"
        return f"{row.backend}, {int(row.concurrent_jobs)} at once × {int(row.torch_threads)} thread(s)"

    return traces.groupby("run_id", sort=False).first().apply(label, axis=1)


def concurrency_note(traces: pd.DataFrame) -> tuple[str, bool]:
    """Say how the runs executed, and warn when runs compared with each other (one case) ran under
    different concurrency (runs at once × threads per run): their wall times are then not comparable.
    Returns (text, whether such runs are mixed)."""
    kinds = execution_by_run(traces)
    cases = traces.groupby("run_id", sort=False)["case"].first() if "case" in traces else None
    mixed = [] if cases is None else [c for c, k in kinds.groupby(cases, sort=False) if k.nunique() > 1]
    if cases is None and kinds.nunique() > 1:
        mixed = ["all"]
    summary = "; ".join(f"{kind}: {n} run(s)" for kind, n in kinds.value_counts().items())
    if not mixed:
        return f"Execution: {summary}.", False
    text = (
        f"**Note: runs compared in this table ran under different concurrency** (case(s) "
        f"{', '.join(mixed)}; {summary}); their wall times are not comparable."
    )
    return text, True


def _provenance(traces: pd.DataFrame) -> str:
    first = traces.iloc[0]
    budgets = sorted(set(traces.get("budget", pd.Series(["{}"])).astype(str)))
    threads = sorted(set(traces.get("torch_threads", pd.Series(["?"])).astype(str)))
    return (
        f"Provenance: torch {first.torch_version}, Python {first.python_version}, device "
        f"{', '.join(sorted(set(traces.device)))}, dtype {', '.join(sorted(set(traces.dtype)))}, "
        f"torch threads {', '.join(threads)}, "
        f"git {', '.join(sorted(set(traces.git_commit.astype(str))))}; budgets {', '.join(budgets)}; "
        f"configs: "
        + "; ".join(
            f"{s}: {json.loads(c)}" for s, c in traces.groupby("solver").solver_config.first().items()
        )
    )


def best_so_far(values: np.ndarray) -> np.ndarray:
    return np.minimum.accumulate(values)
