"""Figures of a report (seaborn/matplotlib, Agg backend; nothing is drawn at import time)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

import problems as problem_registry
from bench import results


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


def _on_grid(traces: pd.DataFrame, x: str, n: int = 200) -> pd.DataFrame:
    """Each run's upper value on a common log-spaced grid of x (last value at or before x), so
    medians and bands over seeds compare like with like."""
    out = []
    for (problem, solver), group in traces.groupby(["case", "solver"], sort=False):
        xs = group[x].to_numpy(dtype=float)
        lo, hi = max(xs[xs > 0].min(), 1e-6), xs.max()
        grid = np.geomspace(lo, hi, n) if hi > lo else np.array([hi])
        for run_id, tr in group.groupby("run_id"):
            tx = tr[x].to_numpy(dtype=float)
            ty = tr.upper_value.to_numpy(dtype=float)
            idx = np.searchsorted(tx, grid, side="right") - 1
            keep = (idx >= 0) & (grid <= tx.max())
            out.append(
                pd.DataFrame(
                    {
                        "problem": problem,
                        "solver": solver,
                        "run_id": run_id,
                        x: grid[keep],
                        "upper_value": ty[idx[keep]],
                    }
                )
            )
    return pd.concat(out, ignore_index=True)


def convergence(traces: pd.DataFrame, path: Path, targets: dict[str, float] | None = None) -> None:
    """Upper value vs solver time and vs lower-level iterations, one row per problem instance."""
    plt, sns = _mpl()
    cases = list(traces.case.unique())
    fig, axes = plt.subplots(len(cases), 2, figsize=(10, 3.4 * len(cases)), squeeze=False)
    for row, case in enumerate(cases):
        tr = traces[traces.case == case]
        for col, (x, label) in enumerate(
            (("wall_time", "solver time [s]"), ("ll_iters", "lower-level iterations"))
        ):
            ax = axes[row, col]
            data = _on_grid(tr, x)
            sns.lineplot(
                data=data, x=x, y="upper_value", hue="solver", estimator="median", errorbar=("pi", 100), ax=ax
            )
            ax.set(xscale="log", yscale="log", xlabel=label, ylabel="upper value g + r", title=case)
            if targets and case in targets:
                ax.axhline(targets[case], color="k", ls=":", lw=1, label="target")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _problem_of(trace_row: pd.Series):
    params = json.loads(trace_row.problem_params)
    params["device"] = "cpu"
    return problem_registry.make_problem(trace_row.problem, **params)


def reconstructions_1d(traces: pd.DataFrame, runs: pd.DataFrame, out_dir: Path, problem: str) -> list[str]:
    """Reconstruction vs truth and the learned operator θ − θ₀, first seed of each solver."""
    plt, _ = _mpl()
    sel = runs[runs.problem == problem].sort_values("seed").groupby("solver", sort=False).first()
    if sel.empty:
        return []
    first = traces[traces.run_id == sel.run_id.iloc[0]].iloc[0]
    prob = _problem_of(first)
    t = getattr(prob, "t", None)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    grid = t.numpy() if t is not None else np.arange(prob.x0.numel())
    ax.plot(grid, prob.x_true.cpu().numpy(), "k-", lw=2, label="truth x†")
    ax.plot(grid, prob.y.cpu().numpy(), color="0.6", lw=1, label="data y")
    loaded = {}
    for solver, row in sel.iterrows():
        arrays = results.load_arrays(out_dir, row.run_id)
        if arrays is None:
            continue
        loaded[solver] = arrays
        ax.plot(
            grid,
            arrays["x"].numpy(),
            lw=1.2,
            label=f"{solver} (rel. error {row.get('rel_error', np.nan):.3f})",
        )
    ax.set(title=f"{problem}: reconstructions", xlabel="t")
    ax.legend(fontsize=7)
    fig.tight_layout()
    names = [f"{problem}_reconstructions.png"]
    fig.savefig(out_dir / names[0], dpi=130)
    plt.close(fig)
    if loaded:
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


def make_figures(traces: pd.DataFrame, runs: pd.DataFrame, out_dir: Path) -> list[str]:
    targets = dict(runs.groupby("case").target.first())
    names = ["convergence.png"]
    convergence(traces, out_dir / names[0], targets)
    for problem in traces.problem.unique():
        if traces[traces.problem == problem].iloc[0].get("problem") and _is_1d(runs, out_dir, problem):
            names += reconstructions_1d(traces, runs, out_dir, problem)
    return names


def _is_1d(runs: pd.DataFrame, out_dir: Path, problem: str) -> bool:
    run_id = runs[runs.problem == problem].run_id.iloc[0]
    arrays = results.load_arrays(out_dir, run_id)
    return arrays is not None and arrays["x"].ndim == 1
