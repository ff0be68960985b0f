"""Figures of a report (seaborn/matplotlib, Agg backend; nothing is drawn at import time)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

import problems as problem_registry
from bench import results

#: one fixed colour per solver in every figure (colour-blind-safe Okabe–Ito first, then tab10 shades),
#: covering the solver names planned so far; others get a fixed fallback by name.
SOLVER_COLOURS = {
    "maid": "#0072B2",
    "maid_accel": "#56B4E9",
    "ift": "#D55E00",
    "lista": "#009E73",
    "hoag": "#CC79A7",
    "neumann": "#E69F00",
    "jfb": "#8c564b",
    "trbp": "#7f7f7f",
    "amigo": "#bcbd22",
    "f2sa": "#9467bd",
}
_FALLBACK = ("#000000", "#17becf", "#e377c2", "#1f77b4", "#ff7f0e", "#2ca02c")
#: run ends shown with a marker: status → (marker, legend text)
END_MARKERS = {"diverged": ("X", "diverged (run end)"), "stalled": ("s", "stalled (run end)")}
_LINESTYLES = ("-", "--", ":", "-.")
SUBOPTIMALITY_FILE = "suboptimality.png"


def solver_colour(name: str) -> str:
    """The solver's fixed colour (a stable fallback, by name, for solvers outside the palette)."""
    if name in SOLVER_COLOURS:
        return SOLVER_COLOURS[name]
    return _FALLBACK[sum(name.encode()) % len(_FALLBACK)]


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


def _tick(value: float, _pos: object = None) -> str:
    """Plain tick labels on log axes (0.01, 0.5, 20, 1000, 1e+05) instead of 5×10⁰-style mathtext."""
    return f"{value:g}" if 1e-4 <= abs(value) < 1e5 else f"{value:.0e}"


def readable_log_axis(axis, lo: float, hi: float) -> None:
    """Log-axis ticks that always label the range: decades when it spans several, 1-2-5 steps when it
    spans about one, and plain numbers (with minor labels) when it spans less than a decade."""
    from matplotlib import ticker

    span = math.log10(hi / lo) if lo > 0 and hi > lo else 0.0
    if span >= 3:
        axis.set_major_locator(ticker.LogLocator(base=10, numticks=8))
        axis.set_minor_formatter(ticker.NullFormatter())
    elif span >= 1:
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(ticker.NullFormatter())
    else:
        axis.set_major_locator(ticker.LogLocator(base=10, subs=tuple(range(1, 10))))
        axis.set_minor_locator(ticker.LogLocator(base=10, subs=tuple(np.arange(1.0, 10.0, 0.1))))
        axis.set_minor_formatter(ticker.NullFormatter())
    axis.set_major_formatter(ticker.FuncFormatter(_tick))


def with_series(traces: pd.DataFrame) -> pd.DataFrame:
    """Add ``series``: the solver, plus its configuration label when the folder mixes configurations."""
    config = traces["config"].fillna("").astype(str) if "config" in traces else pd.Series("", traces.index)
    label = traces.solver.astype(str).where(config == "", traces.solver.astype(str) + " [" + config + "]")
    return traces.assign(series=label)


def _on_grid(
    traces: pd.DataFrame, x: str, n: int = 200, y: str = "upper_value"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per series (a solver in one configuration): the grid of x and each run's ``y`` on it (last value
    at or before x among the rows where y was evaluated; NaN past a run's end), so medians and bands
    compare like with like."""
    out = {}
    traces = traces[traces[y].notna()]
    for series, group in traces.groupby("series", sort=False):
        xs = group[x].to_numpy(dtype=float)
        pos = xs[xs > 0]
        if pos.size == 0:
            continue
        lo, hi = max(pos.min(), 1e-6), xs.max()
        grid = np.geomspace(lo, hi, n) if hi > lo else np.array([hi])
        curves = []
        for _, tr in group.groupby("run_id"):
            tx = tr[x].to_numpy(dtype=float)
            ty = tr[y].to_numpy(dtype=float)
            idx = np.searchsorted(tx, grid, side="right") - 1
            curve = np.where((idx >= 0) & (grid <= tx.max()), ty[np.clip(idx, 0, None)], np.nan)
            curves.append(curve)
        out[series] = (grid, np.array(curves))
    return out


def convergence(
    traces: pd.DataFrame,
    path: Path,
    targets: dict[str, float] | None = None,
    runs: pd.DataFrame | None = None,
) -> None:
    """The solver's own upper value vs solver time and vs lower-level iterations, one row per instance (the
    harness's exact values are in ``suboptimality``'s figure).

    Line: median over the seeds of one configuration; band: min–max over those seeds (only with several).
    Runs ending diverged or stalled get a marker at their last point; runs without a completed upper
    iteration have no curve and are listed under the panel instead of as an empty legend entry.
    Returns each panel's legend labels (row-major)."""
    plt, _ = _mpl()
    traces = with_series(traces)
    cases = list(traces.case.unique())
    completed = traces.groupby("run_id").iteration.max()
    fig, axes = plt.subplots(len(cases), 2, figsize=(10, 3.6 * len(cases) + 0.4), squeeze=False)
    many_seeds = False
    legends: list[list[str]] = []
    for row, case in enumerate(cases):
        tr = traces[traces.case == case]
        drawn = tr[tr.run_id.map(completed) > 0]
        empty = sorted(set(tr[tr.run_id.map(completed) == 0].series))
        styles: dict[str, str] = {}
        for col, (x, label) in enumerate(
            (("wall_time", "solver time [s]"), ("ll_iters", "lower-level iterations"))
        ):
            ax = axes[row, col]
            curves = _on_grid(drawn, x)
            ylo, yhi = math.inf, 0.0
            for series, (grid, values) in curves.items():
                solver = series.split(" [")[0]
                style = styles.setdefault(
                    series, _LINESTYLES[sum(s.startswith(solver + " [") for s in styles) % len(_LINESTYLES)]
                )
                # the median only where every seed still runs (no jump when one ends); the band beyond
                median = np.where(np.isnan(values).any(axis=0), np.nan, np.nanmedian(values, axis=0))
                colour = solver_colour(solver)
                ax.plot(grid, median, color=colour, ls=style, lw=1.4, label=series, drawstyle="steps-post")
                if values.shape[0] > 1:
                    many_seeds = True
                    ax.fill_between(
                        grid, np.nanmin(values, 0), np.nanmax(values, 0), color=colour, alpha=0.2, step="post"
                    )
                finite = values[np.isfinite(values) & (values > 0)]
                if finite.size:
                    ylo, yhi = min(ylo, finite.min()), max(yhi, finite.max())
            for status, (marker, text) in END_MARKERS.items():
                ends = drawn[(drawn.status == status)]
                if ends.empty:
                    continue
                last = ends.sort_values([x]).groupby("run_id").last()
                ax.scatter(
                    last[x].clip(lower=1e-6),
                    last.upper_value,
                    marker=marker,
                    s=40,
                    c=[solver_colour(s) for s in last.solver],
                    edgecolors="k",
                    zorder=5,
                    label=text,
                )
            if targets and case in targets and math.isfinite(targets[case]):  # NaN: a case not evaluated
                ax.axhline(targets[case], color="k", ls=":", lw=1, label="target")
                ylo, yhi = min(ylo, targets[case]), max(yhi, targets[case])
            ax.set(xscale="log", xlabel=label, ylabel="solver's own upper value g + r")
            ax.set_title(case, fontsize=9)
            if curves:
                xs_all = np.concatenate([g for g, _ in curves.values()])
                readable_log_axis(ax.xaxis, xs_all.min(), xs_all.max())
            if math.isfinite(ylo) and yhi > 0:
                ax.set_yscale("log")
                readable_log_axis(ax.yaxis, ylo, yhi)
            if empty:
                ax.text(
                    0.01,
                    0.01,
                    "no completed iteration: " + ", ".join(empty),
                    transform=ax.transAxes,
                    fontsize=7,
                    va="bottom",
                )
            labels = ax.get_legend_handles_labels()[1]
            legends.append(labels)
            if labels:
                ax.legend(fontsize=7)
    band = "band: min–max over seeds; " if many_seeds else ""
    fig.suptitle(
        f"Line: median over the seeds of one configuration; {band}markers: X diverged, square stalled",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return legends


#: the suboptimality figure's x axes: column → label
WORK_AXES = (
    ("wall_time", "solver time [s]"),
    ("ll_iters", "lower-level iterations"),
    ("cg_iters", "HVPs (CG steps)"),
)
#: how faint the solver's own estimate is drawn beside the harness's exact values
OWN_ALPHA = 0.3


def reference_values(traces: pd.DataFrame) -> dict[str, tuple[float, str]]:
    """Per case: the value suboptimality is measured from and what it is — F* where the harness knew it,
    else the lowest exact value of the case's runs ("best in folder")."""
    out = {}
    for case, tr in traces.groupby("case", sort=False):
        known = tr.dropna(subset=["suboptimality", "exact_upper_value"])
        if len(known):
            out[case] = (float((known.exact_upper_value - known.suboptimality).median()), "F*")
        elif tr.exact_upper_value.notna().any():
            out[case] = (float(tr.exact_upper_value.min()), "best exact value in this folder")
    return out


def suboptimality(traces: pd.DataFrame, path: Path) -> bool:
    """F(θ_k) − F* (the harness's exact values, log scale) against solver time, lower-level iterations and
    HVPs, one row per problem instance; the solver's own estimate upper_value − F* faintly beside it
    (dashed). Median over the seeds of one configuration. Returns False (no file) when no run has exact
    values."""
    if "exact_upper_value" not in traces or traces.exact_upper_value.isna().all():
        return False
    plt, _ = _mpl()
    refs = reference_values(traces)
    traces = with_series(traces[traces.case.isin(list(refs))])
    traces = traces.assign(
        _exact=traces.exact_upper_value - traces.case.map(lambda c: refs[c][0]),
        _own=traces.upper_value - traces.case.map(lambda c: refs[c][0]),
    )
    cases = list(refs)
    size = (15.5, 3.6 * len(cases) + 0.4)  # the width leaves room for each row's legend on the right
    fig, axes = plt.subplots(len(cases), len(WORK_AXES), figsize=size, squeeze=False)
    for row, case in enumerate(cases):
        tr = traces[traces.case == case]
        for col, (x, label) in enumerate(WORK_AXES):
            ax = axes[row, col]
            ylo, yhi = math.inf, 0.0
            for y, alpha, ls, own in (("_exact", 1.0, "-", False), ("_own", OWN_ALPHA, "--", True)):
                for series, (grid, values) in _on_grid(tr, x, y=y).items():
                    # the median only where every seed still runs (a grid point past every run's end is NaN)
                    median = np.full(values.shape[1], np.nan)
                    every = ~np.isnan(values).any(axis=0)
                    median[every] = np.median(values[:, every], axis=0)
                    median = np.where(median > 0, median, np.nan)  # log scale: at or below the reference
                    colour = solver_colour(series.split(" [")[0])
                    # one legend entry per solver (the title says what the faint dashed lines are)
                    text = "_nolegend_" if own else series
                    ax.plot(
                        grid,
                        median,
                        color=colour,
                        ls=ls,
                        lw=1.3,
                        alpha=alpha,
                        label=text,
                        drawstyle="steps-post",
                    )
                    finite = median[np.isfinite(median)]
                    if finite.size and not own:
                        ylo, yhi = min(ylo, finite.min()), max(yhi, finite.max())
            ax.set(xscale="log", xlabel=label, ylabel=f"F(θ) − {refs[case][1]}")
            ax.set_title(case, fontsize=9)
            if math.isfinite(ylo) and yhi > 0:
                ax.set_yscale("log")
                ax.set_ylim(ylo / 2, yhi * 2)
        # one legend per row, beside its last panel, over every solver drawn in any of the row's panels
        handles = {}
        for ax in axes[row]:
            for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(text, handle)
        if handles:
            axes[row, -1].legend(
                handles.values(), handles.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0)
            )
    fig.suptitle(
        "Suboptimality from the harness's exact evaluation (solid; median over seeds); the solver's own "
        "estimate faint and dashed",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _problem_of(trace_row: pd.Series):
    params = json.loads(trace_row.problem_params)
    params["device"] = "cpu"
    return problem_registry.make_problem(trace_row.problem, **params)


def reconstructions_1d(traces: pd.DataFrame, runs: pd.DataFrame, out_dir: Path, problem: str) -> list[str]:
    """Reconstruction vs truth (a problem that shows a signal) and the learned operator θ − θ₀ (one that
    shows an operator), first seed of each solver; nothing when no run kept its arrays."""
    plt, _ = _mpl()
    mine = runs[runs.problem == problem]
    mine = mine[mine.case == mine.case.iloc[0]] if len(mine) else mine  # one instance: the first case
    sel = mine.sort_values("seed").groupby("solver", sort=False).first()
    if sel.empty:
        return []
    loaded = {
        s: a for s, row in sel.iterrows() if (a := results.load_arrays(out_dir, row.run_id)) is not None
    }
    if not loaded:
        return []
    first = traces[traces.run_id == sel.run_id.iloc[0]].iloc[0]
    prob = _problem_of(first)
    t = getattr(prob, "t", None)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    grid = t.numpy() if t is not None else np.arange(prob.x0.numel())
    ax.plot(grid, prob.x_true.cpu().numpy(), "k-", lw=2, label="truth x†")
    ax.plot(grid, prob.y.cpu().numpy(), color="0.6", lw=1, label="data y")
    for solver, arrays in loaded.items():
        row = sel.loc[solver]
        ax.plot(
            grid,
            arrays["x"].numpy(),
            lw=1.2,
            color=solver_colour(solver),
            label=f"{solver} (rel. error {row.get('rel_error', np.nan):.3f})",
        )
    ax.set(title=f"{problem}: reconstructions", xlabel="t")
    ax.legend(fontsize=7)
    fig.tight_layout()
    names = [f"{problem}_reconstructions.png"]
    fig.savefig(out_dir / names[0], dpi=130)
    plt.close(fig)
    if problem_registry.OPERATOR in problem_registry.figures(problem):
        theta0 = prob.theta0.cpu().numpy()
        diffs = {s: a["theta"].numpy() - theta0 for s, a in loaded.items()}
        vmax = max(np.abs(d).max() for d in diffs.values()) or 1.0
        fig, axes = plt.subplots(1, len(diffs), figsize=(3.6 * len(diffs), 3.4), squeeze=False)
        for ax, (solver, d) in zip(axes[0], diffs.items(), strict=True):
            im = ax.imshow(d, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_title(f"{solver}: θ − θ₀", fontsize=9)
            ax.axis("off")
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
        names.append(f"{problem}_operators.png")
        fig.savefig(out_dir / names[-1], dpi=130)
        plt.close(fig)
    return names


#: case rows a per-case figure draws at most (3.6 in each): a suite's dozens of instances are compared by
#: the report's aggregates across instances; a figure many screens tall is not read
MAX_FIGURE_CASES = 12


def figure_cases(cases: pd.Series) -> list[str]:
    """The cases per-case figures draw: all of them up to MAX_FIGURE_CASES, else that many taken in turn
    from each problem (its first case, then its second, ...), so that every problem is shown."""
    order = list(dict.fromkeys(cases))
    if len(order) <= MAX_FIGURE_CASES:
        return order
    by_problem: dict[str, list[str]] = {}
    for case in order:
        by_problem.setdefault(case.split("/")[0], []).append(case)
    chosen: list[str] = []
    for rank in range(max(len(v) for v in by_problem.values())):
        chosen += [v[rank] for v in by_problem.values() if rank < len(v)]
    chosen = set(chosen[:MAX_FIGURE_CASES])
    return [case for case in order if case in chosen]


def make_figures(traces: pd.DataFrame, runs: pd.DataFrame, out_dir: Path) -> list[str]:
    targets = dict(runs.groupby("case").target.first())
    names = ["convergence.png"]
    traces_all, traces = traces, traces[traces.case.isin(figure_cases(traces.case))]
    convergence(traces, out_dir / names[0], targets)
    if suboptimality(traces, out_dir / SUBOPTIMALITY_FILE):
        names.append(SUBOPTIMALITY_FILE)
    for problem in traces_all.problem.unique():
        if problem_registry.SIGNAL in problem_registry.figures(problem):  # what the problem can show
            names += reconstructions_1d(traces_all, runs, out_dir, problem)
    return names
