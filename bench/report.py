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
from bench import plugins, results, verdicts

SUMMARY_FILE = "summary.md"
SUMMARY_CSV = "summary.csv"
HTML_FILE = "report.html"  # the interactive page (bench/html_report.py), beside summary.md
TARGETS_CSV = "targets.csv"
#: the summary table's time-to-target where F* is known and the problem publishes no level: two digits of
#: F₀ − F* closed, which the solvers' default tolerances resolve on every problem here (the section "Time to
#: targets" gives each relative gap)
HEADLINE_REL_GAP = 1e-2


def value_column(trace: pd.DataFrame) -> str:
    """The column a run's values are read from: the harness's ``exact_upper_value`` where it evaluated,
    the solver's own ``upper_value`` only for traces written before exact evaluation existed (never for a
    run the harness chose not to evaluate: its values stay empty)."""
    if "exact_upper_value" in trace and (
        trace["exact_upper_value"].notna().any() or verdicts.not_evaluated(trace)
    ):
        return "exact_upper_value"
    return "upper_value"


def default_target(problem: str, traces: pd.DataFrame) -> float:
    """The problem's reference target if it has one for this instance (deconv1d: 0.0102, the authors'
    published value for the paper's setting, docs/results.md); where F* is known, the value
    F* + HEADLINE_REL_GAP·(F₀ − F*); otherwise the largest best exact value over runs, i.e. a value every
    run reached."""
    target = verdicts.value_target(problem, traces.problem_params.iloc[0])
    if target is not None:
        return float(target)
    if "suboptimality" in traces and traces["suboptimality"].notna().any():
        known = traces.dropna(subset=["suboptimality", "exact_upper_value"]).sort_values("iteration")
        f_star = float((known.exact_upper_value - known.suboptimality).median())
        f0 = float(known.groupby("run_id").exact_upper_value.first().median())
        return f_star + HEADLINE_REL_GAP * (f0 - f_star)
    return float(traces.groupby("run_id")[value_column(traces)].min().max())


def case_label(problem: str, params_json: str) -> str:
    """One problem instance's label in tables and plots: the problem, plus image and preset if any."""
    params = json.loads(params_json)
    return "/".join([problem] + [str(params[k]) for k in ("image", "preset") if k in params])


#: problem parameters a case label never spells out: the image and preset are in it already, and the seed
#: draws the data — the seeds of one setting are the repeats its medians are over
CASE_QUIET = {"seed", "image", "preset"}


def case_labels(traces: pd.DataFrame) -> pd.Series:
    """Per row, its case: ``case_label``, plus ``name=value`` for each parameter (``CASE_QUIET`` aside) that
    differs among the folder's runs of the same problem — a suite's noise levels or blurs are different
    instances, and a row, a target or a median never mixes them."""
    firsts = traces.groupby("run_id", sort=False)[["problem", "problem_params"]].first()
    out: dict[str, str] = {}
    for problem, group in firsts.groupby("problem", sort=False):
        params = {run_id: json.loads(text) for run_id, text in group.problem_params.items()}
        keys = sorted({k for p in params.values() for k in p} - CASE_QUIET)
        differing = [
            k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in params.values()}) > 1
        ]
        for run_id, p in params.items():
            extra = [f"{k}={_short(p.get(k))}" for k in differing]
            out[run_id] = "/".join([case_label(problem, group.problem_params[run_id]), *extra])
    return traces.run_id.map(out)


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _first_reach(trace: pd.DataFrame, target: float) -> pd.Series | None:
    """The first row whose exact value (``value_column``) is ≤ target, or None."""
    return verdicts.first_reach(trace, value_column(trace), target)


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
    """One row per run: final state, work and time to reach the problem's target, from the harness's exact
    values; the solver's own final value and status beside the harness's verdict (``bench.verdicts``)."""
    rows = []
    judged = verdicts.run_verdicts(traces).set_index("run_id")
    for run_id, tr in traces.groupby("run_id", sort=False):
        tr = tr.sort_values(["iteration", "wall_time"])
        last = tr.iloc[-1]
        problem = last.problem
        target = targets[last.case]
        hit = None if last.status in verdicts.FAILED else _first_reach(tr, target)
        exact = tr[value_column(tr)].dropna()
        judge = judged.loc[run_id]
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
            verdict=judge.verdict,
            contradicted=bool(judge.contradicted),
            gap_source=judge.gap_source,
            upper_iters=int(last.iteration),
            wall_time=float(last.wall_time),
            eval_time=float(tr["eval_time"].sum()) if "eval_time" in tr else math.nan,
            ll_iters=int(last.ll_iters),
            cg_iters=int(last.cg_iters),
            final_exact_upper_value=float(exact.iloc[-1]) if len(exact) else math.nan,
            final_upper_value=float(last.upper_value),
            final_rel_gap=judge.final_gap,
            best_rel_gap=judge.best_gap,
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
    labels = ("run_id", "case", "config", "setting", "problem", "solver", "seed", "status", "verdict")
    labels += ("contradicted", "gap_source")
    numeric = [c for c in runs.columns if c not in labels]
    grouped = runs.groupby(["case", "setting", "config", "problem", "solver"], sort=False)
    table = grouped[numeric].median()
    table["runs"] = grouped.size()
    # runs that reached the case's target; none where no run had a target (e.g. none was evaluated): a run
    # nobody judged neither reached nor missed it
    table["reached"] = grouped[["target", "time_to_target"]].apply(
        lambda g: int(g.time_to_target.notna().sum()) if g.target.notna().any() else math.nan
    )
    table["status"] = grouped.status.agg(lambda s: ",".join(sorted(set(s))))
    if "verdict" in runs:
        table["verdict"] = grouped[["verdict", "contradicted"]].apply(_verdict_cell)
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


def _verdict_cell(group: pd.DataFrame) -> str:
    """The verdicts of a configuration's runs; a claim the exact values contradict in bold."""
    texts = {}
    for text, bad in zip(group.verdict, group.contradicted, strict=True):
        texts[text] = texts.get(text, False) or bool(bad)
    return ",".join(f"**{t}**" if bad else t for t, bad in sorted(texts.items()))


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
    "noise",
    "blur",
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
    "verdict",
    "upper_iters",
    "wall_time",
    "ll_iters",
    "cg_iters",
    "final_exact_upper_value",
    "final_upper_value",
    "best_rel_gap",
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
    html: bool = True,
) -> str:
    """Write summary.md, summary.csv, figures and (``html``) report.html into out_dir; return the markdown
    text. Damaged runs are named through ``warn`` and in the summary, and skipped. ``reference_solver``: the
    denominator of the aggregates' time ratios (``bench/profiles.py``)."""
    out_dir = Path(out_dir)
    damaged: list[str] = []

    def note(text: str) -> None:
        damaged.append(text)
        warn(text)

    traces = results.load_traces(out_dir, warn=note)
    traces["case"] = case_labels(traces)
    traces, differing = label_configs(traces)
    targets = {}
    for case, tr in traces.groupby("case", sort=False):
        targets[case] = target if target is not None else default_target(tr.problem.iloc[0], tr)
    runs = per_run(traces, targets)
    table = summarize(runs)
    judged = targets_table(traces)  # what the aggregates read; None in a build without verdicts
    if judged is not None:
        judged.to_csv(out_dir / TARGETS_CSV, index=False)
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
        "Medians over the seeds of one configuration (`runs`: how many). Every value is the harness's own "
        "exact evaluation F(θ_k) = g(x̂(θ_k), θ_k) + r(θ_k) (`docs/evaluation.md`), never the solver's: "
        "`final_exact_upper_value` is F at the last iterate, `final_upper_value` the solver's own estimate "
        "there, `best_rel_gap` the smallest (F − F*)/(F₀ − F*). `status`: what the solver's run ended with; "
        "`verdict`: the harness's judgement from the exact values (in **bold**: a claim of convergence the "
        "exact values contradict). Times are solver seconds (evaluation excluded); `upper_iters`: completed "
        "upper iterations; `time_to_target`: first evaluated iteration whose exact value ≤ target; "
        "`time_vs_maid`: ratio of times to target.",
        "",
        markdown_table(table, columns + metric_cols),
        "",
        *_contradictions(runs),
        *_unevaluated_note(traces),
        *_targets_section(traces),
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
    names: list[str] = []
    if figures:
        from bench import plots

        names = plots.make_figures(traces, runs, out_dir)
        if image_problems:
            names += images2d.figures(img[img.case.isin(plots.figure_cases(img.case))], runs, out_dir)
        names += aggregate[1] if aggregate is not None else []
        parts += ["", "Figures: " + ", ".join(f"[{n}]({n})" for n in names)]
        shown, every = len(plots.figure_cases(traces.case)), traces.case.nunique()
        if shown < every:
            parts.append(
                f"\nPer-case figures (convergence, suboptimality, images) show {shown} of the {every} cases, "
                "taken in turn from each problem; the tables and the comparison across instances use all."
            )
    if html:
        from bench import html_report

        page = html_report.Page(
            title=f"adpbench report: {out_dir}",
            traces=traces,
            runs=runs,
            table=table,
            columns=columns + metric_cols,
            targets=targets_table(traces),
            figures=names,
            notes=[p for p in parts[2:] if p.startswith("**Note")]
            + [f"Damaged run, skipped: {d}" for d in damaged]
            + [n for n in _unevaluated_note(traces) if n],
            provenance=[_provenance(traces), execution],
        )
        parts += ["", f"Interactive report: [{HTML_FILE}]({HTML_FILE})"]
        html_report.write(page, out_dir / HTML_FILE)
    text = "\n".join(parts) + "\n"
    (out_dir / SUMMARY_FILE).write_text(text)
    return text


def _contradictions(runs: pd.DataFrame) -> list[str]:
    """A paragraph naming every run whose solver claimed convergence the exact values contradict."""
    bad = runs[runs.contradicted] if "contradicted" in runs else runs.iloc[:0]
    if bad.empty:
        return []
    loosest = verdicts.target_text(verdicts.REL_GAP_TARGETS[0])
    lines = [
        f"**Claims the exact values contradict ({len(bad)} run(s))**: the solver stopped itself (status) "
        f"while the exact rel_gap stayed above the loosest target {loosest}:",
        "",
    ]
    for _, r in bad.iterrows():
        lines.append(
            f"- {r.run_id}: status {r.status}, own final value {_fmt(r.final_upper_value)}, exact "
            f"{_fmt(r.final_exact_upper_value)}, rel_gap {_fmt(r.final_rel_gap)}"
        )
    return [*lines, ""]


def _unevaluated_note(traces: pd.DataFrame) -> list[str]:
    """Which cases the harness did not evaluate exactly (their verdict is ``not evaluated``): they are left
    out of the targets and the comparison across instances, and the report says why."""
    skipped = [
        case
        for case, tr in traces.groupby("case", sort=False)
        if all(verdicts.not_evaluated(run) for _, run in tr.groupby("run_id", sort=False))
    ]
    if not skipped:
        return []
    return [
        f"**Not evaluated exactly** ({', '.join(skipped)}): the problem says an exact evaluation of these "
        "instances is out of reach (`evaluation_unavailable`, `docs/evaluation.md`), so the harness computed "
        "no exact values for their runs; they are left out of the targets and of the comparison across "
        "instances. Their costs and metrics in the summary are still the harness's own.",
        "",
    ]


def _targets_section(traces: pd.DataFrame) -> list[str]:
    """Median solver seconds to each target (runs that reached it / runs), from ``bench.verdicts``'s
    targets table (written to targets.csv beside the summary by ``write_report``)."""
    table = verdicts.targets_table(traces)
    if table.empty:
        return []
    table = table.assign(
        label=[
            f"{k} ≤ {verdicts.target_text(t)}" for k, t in zip(table.target_kind, table.target, strict=True)
        ]
    )
    labels = list(dict.fromkeys(table.label))
    lines = [
        "## Time to targets (exact values)",
        "",
        "Median solver seconds to the first evaluated iteration at or below each target, over the runs "
        "that reached it (reached / runs); `rel_gap` = (F − F*)/(F₀ − F*), `value` = F itself. Cost "
        "per target in lower iterations, HVPs and upper iterations: `targets.csv`.",
        "",
        "| case | solver | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for (case, solver), group in table.groupby(["case", "solver"], sort=False):
        cells = []
        for label in labels:
            sub = group[group.label == label]
            done = sub[sub.reached]
            med = float(done.time.median()) if len(done) else math.nan
            cells.append(f"{_fmt(med)} ({len(done)}/{len(sub)})")
        lines.append(f"| {case} | {solver} | " + " | ".join(cells) + " |")
    sources = table[table.target_kind == verdicts.REL_GAP].groupby("case").gap_source.first()
    lacking = [c for c, src in sources.items() if src != "reference optimum"]
    if lacking:
        lines += [
            "",
            f"No reference optimum for {', '.join(lacking)}: rel_gap there is measured against the lowest "
            "exact value of this folder's runs of the same instance (F* unknown; `docs/evaluation.md`).",
        ]
    return [*lines, ""]


def aggregates(
    traces: pd.DataFrame, out_dir: Path, reference_solver: str, figures: bool
) -> tuple[str, list[str]] | None:
    """Profiles, ECDFs and bootstrap intervals across instances (``bench/profiles.py``) from the targets
    table of the harness's exact values; None where this build has no targets table (``bench.verdicts``)."""
    table = targets_table(traces)
    if table is None:
        return None
    from bench import profiles

    return profiles.aggregate_section(table, out_dir, reference_solver=reference_solver, figures=figures)


def targets_table(traces: pd.DataFrame) -> pd.DataFrame | None:
    """One row per (run, target) from the harness's exact values, with each run's series configuration
    (``bench/profiles.py``); None where this build has no targets table (``bench.verdicts``)."""
    try:
        from bench import verdicts as judged
    except ImportError:
        return None
    from bench import profiles

    table = judged.targets_table(traces)
    # a series is a solver configuration: not the report's label, which also names problem parameters
    table["config"] = table.run_id.map(profiles.solver_config_labels(traces)).fillna("")
    return table


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


def _plugin_lines(traces: pd.DataFrame) -> list[str]:
    """Each plug-in the runs used: ``name (sha256 …)`` for a file, ``name version`` for a package."""
    seen: dict[str, str] = {}
    for text in set(traces.get("plugins", pd.Series(dtype=str)).dropna().astype(str)):
        try:
            entries = json.loads(text)
        except ValueError:
            continue
        for entry in entries:
            if "sha256" in entry:
                line = f"{entry['name']} (sha256 {str(entry['sha256'])[: plugins.SHORT_HASH]})"
            else:
                line = f"{entry['name']} {entry.get('version', '?')}"
            provides = ", ".join(entry.get("registers", []))
            seen[line] = f"{line}: {provides}" if provides else line
    return sorted(seen.values())


def _provenance(traces: pd.DataFrame) -> str:
    first = traces.iloc[0]
    used = _plugin_lines(traces)
    plugin_text = f"; plug-ins: {'; '.join(used)}" if used else ""
    budgets = sorted(set(traces.get("budget", pd.Series(["{}"])).astype(str)))
    threads = sorted(set(traces.get("torch_threads", pd.Series(["?"])).astype(str)))
    return (
        f"Provenance: torch {first.torch_version}, Python {first.python_version}, device "
        f"{', '.join(sorted(set(traces.device)))}, dtype {', '.join(sorted(set(traces.dtype)))}, "
        f"torch threads {', '.join(threads)}, "
        f"git {', '.join(sorted(set(traces.git_commit.astype(str))))}{plugin_text}; "
        f"budgets {', '.join(budgets)}; configs: "
        + "; ".join(
            f"{s}: {json.loads(c)}" for s, c in traces.groupby("solver").solver_config.first().items()
        )
    )


def best_so_far(values: np.ndarray) -> np.ndarray:
    return np.minimum.accumulate(values)
