"""Interactive figures of the HTML report (Plotly): convergence curves with a choice of axes, and the
performance / data profiles and runtime ECDFs of ``bench/profiles.py`` (its tables, drawn as Plotly steps).

Convergence, per series (a solver in one configuration, as in ``bench/plots.py``): at each upper iteration
k, the line is the median over seeds of the chosen y and is drawn at the median over seeds of the chosen x;
the band is the min–max of y over the seeds still running at k. The median stops where the first seed ends
(no jump when one run ends), the band goes on. Rows a run did not evaluate (NaN) are bridged.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from bench import profiles
from bench.plots import solver_colour, with_series

#: x axes offered, in menu order: trace column → label (``work`` is added as ll_iters + cg_iters)
X_AXES = {
    "wall_time": "solver time [s]",
    "iteration": "upper iterations",
    "ll_iters": "lower-level iterations",
    "cg_iters": "Hessian-vector products (CG steps)",
    "work": "lower iterations + HVPs",
}
#: y axes offered when the traces have finite values there: the harness's exact values first
Y_AXES = {
    "suboptimality": "suboptimality F(θ) − F*",
    "rel_gap": "relative gap (F − F*) / (F₀ − F*)",
    "exact_upper_value": "exact upper value F(θ)",
    "upper_value": "solver's own upper value",
}
#: points per curve at most (geometrically spaced iterations): smooth on log axes, small pages
MAX_POINTS = 400
#: the band's opacity: the median lines of other series stay readable through it
BAND_ALPHA = 0.18
SCALES = {"log–log": ("log", "log"), "log y": ("linear", "log"), "linear": ("linear", "linear")}


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _kept_iterations(n: int) -> np.ndarray:
    """Row positions 0..n-1 to draw: all of them up to MAX_POINTS, else 0 and a geometric spread."""
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.unique(np.concatenate([[0], np.geomspace(1, n - 1, MAX_POINTS - 1).round().astype(int)]))


def _by_iteration(group: pd.DataFrame, column: str) -> pd.DataFrame:
    """Iterations × runs of one column (the last row where a run records an iteration twice)."""
    values = group.assign(value=pd.to_numeric(group[column], errors="coerce"))
    table = values.pivot_table(
        index="iteration", columns="run_id", values="value", aggfunc="last", dropna=False
    )
    return table.sort_index()


def _series_curves(group: pd.DataFrame, xs: list[str], ys: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Per axis column: 'x' (median over seeds) or 'median', 'lo', 'hi' (y over seeds) per iteration."""
    out: dict[str, dict[str, np.ndarray]] = {}
    keep = None
    for column in [*xs, *ys]:
        table = _by_iteration(group, column)
        keep = _kept_iterations(len(table)) if keep is None else keep
        values = table.to_numpy(dtype=float)[keep]
        finite = np.isfinite(values)
        # a run still runs up to its last finite row; the median stops where the first run ends
        last = np.where(finite.any(axis=0), len(values) - 1 - np.argmax(finite[::-1], axis=0), -1)
        every_runs = np.arange(len(values)) <= last.min(initial=len(values))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: not evaluated, bridged
            median = np.nanmedian(values, axis=1)
            out[column] = dict(
                x=median,
                median=np.where(every_runs, median, np.nan),
                lo=np.nanmin(values, axis=1),
                hi=np.nanmax(values, axis=1),
            )
    return out


def _clean(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def axes_present(traces: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The x and y columns this set of traces can show (y: with at least one finite value)."""
    xs = [c for c in X_AXES if c in traces]
    ys = [c for c in Y_AXES if c in traces and np.isfinite(pd.to_numeric(traces[c], errors="coerce")).any()]
    return xs, ys


def convergence(traces: pd.DataFrame, case: str) -> go.Figure:
    """One case's convergence figure with menus for the x axis, the y axis and the scales."""
    tr = with_series(traces[traces.case == case])
    if {"ll_iters", "cg_iters"} <= set(tr):
        tr = tr.assign(work=tr.ll_iters + tr.cg_iters)
    xs, ys = axes_present(tr)
    fig = go.Figure()
    slots: list[tuple[str, str]] = []  # per Plotly trace: (series, which) with which ∈ lo, hi, median
    curves = {s: _series_curves(g, xs, ys) for s, g in tr.groupby("series", sort=False)}
    for series, data in curves.items():
        colour = solver_colour(series.split(" [")[0])
        x0, y0 = data[xs[0]]["x"], data[ys[0]]
        common = dict(x=_clean(x0), legendgroup=series, connectgaps=True, hoverinfo="skip")
        fig.add_scatter(**common, y=_clean(y0["lo"]), mode="lines", line=dict(width=0), showlegend=False)
        fig.add_scatter(
            **common,
            y=_clean(y0["hi"]),
            mode="lines",
            line=dict(width=0),
            fill="tonexty",
            fillcolor=_rgba(colour, BAND_ALPHA),
            showlegend=False,
        )
        fig.add_scatter(
            x=_clean(x0),
            y=_clean(y0["median"]),
            name=series,
            legendgroup=series,
            mode="lines",
            connectgaps=True,
            line=dict(color=colour, width=2),
        )
        slots += [(series, "lo"), (series, "hi"), (series, "median")]

    def buttons(axis: str, options: dict[str, str], which: list[str], values) -> list[dict]:
        return [
            dict(
                label=f"{axis}: {options[c]}",
                method="update",
                args=[
                    {axis: [_clean(values(s, w, c)) for s, w in slots]},
                    {f"{axis}axis.title.text": options[c]},
                ],
            )
            for c in which
        ]

    scales = [
        dict(label=f"scales: {name}", method="relayout", args=[{"xaxis.type": sx, "yaxis.type": sy}])
        for name, (sx, sy) in SCALES.items()
    ]
    menus = [
        buttons("x", X_AXES, xs, lambda s, _w, c: curves[s][c]["x"]),
        buttons("y", Y_AXES, ys, lambda s, w, c: curves[s][c][w]),
        scales,
    ]
    fig.update_layout(
        xaxis=dict(type="log", title=X_AXES[xs[0]]),
        yaxis=dict(type="log", title=Y_AXES[ys[0]]),
        updatemenus=[
            dict(buttons=b, x=x, y=1.02, xanchor="left", yanchor="bottom", direction="down")
            for b, x in zip(menus, (0.0, 0.34, 0.68), strict=True)
        ],
        margin=dict(t=60),
        height=520,
        legend=dict(title="solver (click to toggle)"),
    )
    return fig


def _step_figure(title: str, panels: dict[str, pd.DataFrame], xlabel: str, ylabel: str, lo=None) -> go.Figure:
    """Per panel (a menu entry) and series: the step function "share of values ≤ x" (inf: not solved)."""
    fig = go.Figure()
    visible: list[str] = []
    for label, values in panels.items():
        arr = values.to_numpy(dtype=float)
        finite = arr[np.isfinite(arr) & (arr > 0)]
        left = lo if lo is not None else (finite.min() if finite.size else 1.0)
        right = max(finite.max() if finite.size else left, left) * profiles.PLATEAU
        for series in values.columns:
            xs, ys = profiles._step_curve(values[series].to_numpy(dtype=float), left, right)
            solved = int(np.isfinite(values[series]).sum())
            fig.add_scatter(
                x=xs.tolist(),
                y=ys.tolist(),
                name=f"{series} ({solved}/{len(values)})",
                mode="lines",
                line=dict(shape="hv", color=solver_colour(series.split(" [")[0])),
                visible=not visible or visible[0] == label,
            )
            visible.append(label)
    labels = list(panels)
    buttons = [
        dict(label=lab, method="update", args=[{"visible": [v == lab for v in visible]}, {"title.text": lab}])
        for lab in labels
    ]
    fig.update_layout(
        title=labels[0] if labels else title,
        xaxis=dict(type="log", title=xlabel),
        yaxis=dict(title=ylabel, range=[-0.02, 1.02]),
        updatemenus=[dict(buttons=buttons, x=0, y=1.18, xanchor="left", yanchor="top")],
        margin=dict(t=110),
        height=460,
    )
    return fig


def profile_figures(targets: pd.DataFrame) -> list[tuple[str, go.Figure]]:
    """(heading, figure) for the performance profiles, data profile and runtime ECDF of a targets table."""
    df = profiles.prepare(targets)
    if df.empty:
        return []
    targets_order = profiles.labels(df)

    def perf(measure: str) -> dict[str, pd.DataFrame]:
        return {
            f"{profiles.MEASURES[measure]}, {t}": profiles.performance_ratios(
                profiles.cost_matrix(df, t, measure)[0]
            )
            for t in targets_order
        }

    unit_cost = profiles.instance_unit_costs(df)
    data = {
        t: profiles.normalised_costs(profiles.cost_matrix(df, t, "time")[0], unit_cost) for t in targets_order
    }
    ecdf = {"all targets, solver seconds": profiles.all_pairs(df, "time")}
    ecdf["all targets, work"] = profiles.all_pairs(df, "work")
    share = "share of units"
    return [
        (
            "Performance profiles",
            _step_figure("", {**perf("time"), **perf("work")}, "a: within a × the best", share, 1.0),
        ),
        (
            "Data profiles",
            _step_figure("", data, "κ = solver seconds ÷ c_i (lower-iteration equivalents)", share),
        ),
        (
            "Runtime ECDF",
            _step_figure("", ecdf, "budget (solver seconds | work)", "share of (unit, target) pairs"),
        ),
    ]
