"""Comparison across instances: performance profiles, data profiles, runtime ECDFs and bootstrap intervals.

Everything here reads the *targets table* the harness derives from its own exact values
(``bench.verdicts.targets_table``, whose relative gaps are the traces' ``rel_gap`` where the harness knew F*,
and gaps to the folder's best exact value otherwise): one row per (run, target) with ``instance``, ``seed``,
``solver``, ``config``, ``target``, ``target_kind``, ``reached`` and the cost to the target — ``time`` (solver
seconds), ``ll_iters`` (lower-level iterations), ``work`` (lower-level iterations + Hessian-vector products) —
which is ``inf`` when the target was not reached (never, or the run failed, diverged or hit its budget first).
A *unit* is one (instance, seed); a *series* one solver in one configuration. Definitions
(``docs/suites.md``), for a target τ and the set S of series shown, t_{s,p} the cost of series s on unit p
(``inf`` when not solved; a unit without a run of s counts as not solved, never as missing):

* performance profile (Dolan & Moré 2002): ρ_s(a) = |{p : t_{s,p} ≤ a · min_{s'∈S} t_{s',p}}| / |P|, a ≥ 1;
  ρ_s(1) is the share of units where s is fastest (ties count for each), ρ_s(∞) the share it solves.
  Relative to S: adding a solver changes every curve.
* data profile (Moré & Wild 2009): d_s(κ) = |{p : t_{s,p} / c_p ≤ κ}| / |P| with c_p the unit's own cost of
  one lower-level iteration in the same measure: for ``work`` c_p = 1 (κ counts lower iterations and
  HVPs), for ``time`` c_p = the instance's measured seconds per unit of work (median over its runs of
  time ÷ work at the targets they reached), so κ reads "lower-iteration equivalents".
* runtime ECDF (COCO; Hansen et al. 2021): per series, the share of all (unit, target) pairs whose cost
  is ≤ b, against the budget b.
* time ratio to a reference solver: the geometric mean over the pairs where both solved of
  t_{s,p} / t_{ref,p}, with a percentile bootstrap interval that resamples instances, then seeds within
  each drawn instance, with replacement (``N_RESAMPLES`` resamples, fixed ``BOOTSTRAP_SEED``); the pairs
  where only one or neither solved are counted beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

import solvers as solver_registry

#: columns of the targets table these aggregates need
REQUIRED = ("instance", "seed", "solver", "target", "target_kind", "reached", "time", "ll_iters", "work")
#: cost measures: column → axis label
MEASURES = {
    "time": "solver seconds",
    "ll_iters": "lower-level iterations",
    "work": "lower-level iterations + HVPs",
}
#: bootstrap resamples (≥ 10 000 keeps the percentile end points stable to about ±1 % of the interval)
N_RESAMPLES = 10_000
#: the bootstrap's fixed seed: the same table gives the same interval on every machine
BOOTSTRAP_SEED = 20_250_216
CONFIDENCE = 0.95
UNIT = ["instance", "seed"]


# ----------------------------------------------------------------------------------------- the table
def solver_config_labels(traces: pd.DataFrame) -> pd.Series:
    """run_id → its series' configuration label: the ``solver_config`` fields that differ among the runs of
    the same solver on the same problem ("" when they agree). A protocol's per-problem settings (MAID's 1D
    and 2D defaults) do not split a series, nor do problem parameters: they make instances."""
    firsts = traces.groupby("run_id", sort=False)[["solver", "problem", "solver_config"]].first()
    out = {}
    for _, group in firsts.groupby(["solver", "problem"], sort=False):
        configs = {run_id: json.loads(text) for run_id, text in group.solver_config.items()}
        keys = sorted({k for c in configs.values() for k in c})
        values = {k: {json.dumps(c.get(k), sort_keys=True) for c in configs.values()} for k in keys}
        differing = [k for k in keys if len(values[k]) > 1]
        for run_id, config in configs.items():
            out[run_id] = ", ".join(f"{k}={json.dumps(config.get(k))}" for k in differing)
    return pd.Series(out, dtype=object)


def target_label(kind: str, target: float) -> str:
    return f"{kind} ≤ {target:g}"


def prepare(targets: pd.DataFrame) -> pd.DataFrame:
    """The table with ``series`` and ``label`` columns and every cost ``inf`` where the target was not
    reached (or the cost is missing): not solved, never missing. A one-line ValueError names missing
    columns."""
    missing = [c for c in REQUIRED if c not in targets.columns]
    if missing:
        raise ValueError(f"targets table lacks column(s) {', '.join(missing)}; needs {', '.join(REQUIRED)}")
    df = targets.copy()
    config = pd.Series("", index=df.index)
    if "config" in df:  # read back from a CSV, an all-empty column is float NaN
        config = df["config"].astype(object).fillna("").astype(str)
    solver = df.solver.astype(str)
    df["series"] = solver.where(config == "", solver + " [" + config + "]")
    df["label"] = [target_label(k, t) for k, t in zip(df.target_kind, df.target, strict=True)]
    rank = {name: i for i, name in enumerate(solver_registry.solver_names())}  # series in registry order
    df["_rank"] = solver.map(rank).fillna(len(rank))
    df = df.sort_values(["_rank", "series"], kind="stable").drop(columns="_rank")
    reached = df.reached.fillna(False).astype(bool)
    for column in MEASURES:
        cost = pd.to_numeric(df[column], errors="coerce").astype(float)
        df[column] = cost.where(reached & np.isfinite(cost), math.inf)
    return df


def labels(df: pd.DataFrame) -> list[str]:
    """Targets, easiest first: relative gaps from the loosest, then absolute values from the highest."""
    firsts = df.groupby("label", sort=False)[["target_kind", "target"]].first()
    order = sorted(firsts.index, key=lambda lab: (firsts.target_kind[lab] != "rel_gap", -firsts.target[lab]))
    return list(order)


def cost_matrix(df: pd.DataFrame, label: str, measure: str) -> tuple[pd.DataFrame, int]:
    """Units × series of the cost to one target (median over repeated runs), ``inf`` where not solved;
    a unit that has the target but no run of a series counts as not solved. Returns it and the number of
    such cells filled in."""
    sub = df[df.label == label]
    matrix = sub.pivot_table(index=UNIT, columns="series", values=measure, aggfunc="median")
    every = list(dict.fromkeys(df.series))
    matrix = matrix.reindex(columns=every)
    filled = int(matrix.isna().to_numpy().sum())
    return matrix.fillna(math.inf), filled


# ----------------------------------------------------------------------------------------- profiles
def performance_ratios(costs: pd.DataFrame) -> pd.DataFrame:
    """r_{s,p} = t_{s,p} / min_s t_{s,p}: 1 for the best (ties included; a cost of 0 ties only with 0),
    ``inf`` when s did not solve p or nobody did."""
    values = costs.to_numpy(dtype=float)
    best = values.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = values / best
    ratios = np.where(np.isfinite(values) & (values == best), 1.0, ratios)
    ratios = np.where(np.isfinite(values), ratios, math.inf)
    return pd.DataFrame(ratios, index=costs.index, columns=costs.columns)


def share_within(values: pd.DataFrame, xs: np.ndarray) -> pd.DataFrame:
    """For each x: per column, the share of rows with value ≤ x (index x)."""
    arr = values.to_numpy(dtype=float)
    out = (arr[None, :, :] <= np.asarray(xs, dtype=float)[:, None, None]).mean(axis=1)
    return pd.DataFrame(out, index=pd.Index(xs, name="x"), columns=values.columns)


def performance_profile(costs: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    """ρ_s(τ) for each τ ≥ 1."""
    return share_within(performance_ratios(costs), taus)


def instance_unit_costs(df: pd.DataFrame) -> pd.Series:
    """c_i in seconds per unit of work: per instance, the median over its reached (run, target) rows with
    work > 0 of time ÷ work; instances without one get the median over the others."""
    ok = df[np.isfinite(df.time) & np.isfinite(df.work) & (df.work > 0)]
    per = (ok.time / ok.work).groupby(ok.instance).median()
    every = pd.Index(df.instance.unique())
    fallback = float(per.median()) if len(per) else 1.0
    return per.reindex(every).fillna(fallback)


def normalised_costs(costs: pd.DataFrame, unit_cost: pd.Series) -> pd.DataFrame:
    """t_{s,p} / c_p (c_p from the unit's instance)."""
    c = unit_cost.reindex(costs.index.get_level_values("instance")).to_numpy(dtype=float)
    return costs.div(c, axis=0)


def data_profile(costs: pd.DataFrame, unit_cost: pd.Series | None, kappas: np.ndarray) -> pd.DataFrame:
    """d_s(κ): the share of units solved within κ units of their own lower-iteration cost (``unit_cost``
    None: the costs are already in lower iterations, c_p = 1)."""
    return share_within(costs if unit_cost is None else normalised_costs(costs, unit_cost), kappas)


def all_pairs(df: pd.DataFrame, measure: str, unit_cost: pd.Series | None = None) -> pd.DataFrame:
    """Every (unit, target) pair × series of the cost (optionally ÷ c_p), missing runs as ``inf``."""
    frames = []
    for label in labels(df):
        costs, _ = cost_matrix(df, label, measure)
        costs = costs if unit_cost is None else normalised_costs(costs, unit_cost)
        frames.append(costs.assign(label=label).set_index("label", append=True))
    return pd.concat(frames) if frames else pd.DataFrame()


def runtime_ecdf(df: pd.DataFrame, measure: str, budgets: np.ndarray) -> pd.DataFrame:
    """Per series, the share of all (unit, target) pairs reached within each budget."""
    return share_within(all_pairs(df, measure), budgets)


def solved_counts(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Series × target: the units solved; and per target, the units that have it."""
    rows = {}
    units = {}
    for label in labels(df):
        costs, _ = cost_matrix(df, label, "time")
        rows[label] = np.isfinite(costs).sum(axis=0)
        units[label] = len(costs)
    table = pd.DataFrame(rows)
    return table, pd.Series(units)


# ----------------------------------------------------------------------------------------- bootstrap
def bootstrap_mean(
    units: pd.DataFrame,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """Mean and its percentile bootstrap interval, resampling instances and then the seeds within each
    drawn instance, with replacement.

    ``units``: one row per (instance, seed) with ``sum`` (of the values it carries) and ``count`` (how
    many, ≥ 1). The statistic of a resample with weights w is Σ w·sum / Σ w·count. Drawing an instance c
    times and then m seeds from its m each time adds up to one multinomial draw of c·m seeds."""
    return _bootstrap(units, n_resamples, seed, confidence, transform=lambda v: v)


def bootstrap_geomean(
    units: pd.DataFrame,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """Geometric mean and its interval: as :func:`bootstrap_mean`, with ``sum`` holding sums of log ratios
    and the statistic exp(Σ w·sum / Σ w·count)."""
    return _bootstrap(units, n_resamples, seed, confidence, transform=np.exp)


def _bootstrap(
    units: pd.DataFrame, n_resamples: int, seed: int, confidence: float, transform: Callable
) -> tuple[float, float, float]:
    if units.empty:
        return math.nan, math.nan, math.nan
    point = transform(units["sum"].sum() / units["count"].sum())
    rng = np.random.default_rng(seed)
    groups = [g for _, g in units.groupby("instance", sort=True)]
    picks = rng.multinomial(len(groups), np.full(len(groups), 1.0 / len(groups)), size=n_resamples)
    num = np.zeros(n_resamples)
    den = np.zeros(n_resamples)
    for i, group in enumerate(groups):
        m = len(group)
        weights = rng.multinomial(picks[:, i] * m, np.full(m, 1.0 / m))  # (n_resamples, m)
        num += weights @ group["sum"].to_numpy(dtype=float)
        den += weights @ group["count"].to_numpy(dtype=float)
    stats = transform(num / den)
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(stats, [tail, 100 - tail])
    return float(point), float(lo), float(hi)


def time_ratios(
    df: pd.DataFrame,
    reference: str,
    measure: str = "time",
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Per series (the reference's own series left out) and per target, plus all targets pooled ("all"):
    the geometric mean of t_s / t_ref over the units where both solved, its bootstrap interval, and the
    counts of units where both, only s, only the reference, or neither solved."""
    rows = []
    ref_series = [s for s in dict.fromkeys(df.series) if s == reference or s.startswith(reference + " [")]
    if len(ref_series) != 1:
        return pd.DataFrame()
    ref = ref_series[0]
    per_target = {label: cost_matrix(df, label, measure)[0] for label in labels(df)}
    for series in dict.fromkeys(df.series):
        if series == ref:
            continue
        pooled = []
        for label, costs in [*per_target.items(), ("all", None)]:
            if costs is None:
                pairs = pd.concat(pooled) if pooled else pd.DataFrame(columns=["s", "r"])
            else:
                pairs = pd.DataFrame({"s": costs[series], "r": costs[ref]})
                pooled.append(pairs)
            s_ok, r_ok = np.isfinite(pairs.s), np.isfinite(pairs.r)
            both = pairs[s_ok & r_ok]
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.log(both.s.to_numpy(dtype=float) / both.r.to_numpy(dtype=float))
            logs = np.where((both.s == both.r).to_numpy(), 0.0, logs)  # 0 / 0: a tie
            finite = np.isfinite(logs)  # a cost of 0 on one side only (met at the start): no finite ratio
            index = both.index[finite]
            units = pd.DataFrame(
                {
                    "instance": index.get_level_values("instance"),
                    "seed": index.get_level_values("seed"),
                    "sum": logs[finite],
                    "count": 1.0,
                }
            )
            units = units.groupby(UNIT, as_index=False)[["sum", "count"]].sum()
            point, lo, hi = bootstrap_geomean(units, n_resamples, seed)
            rows.append(
                dict(
                    series=series,
                    reference=ref,
                    target=label,
                    geomean=point,
                    lo=lo,
                    hi=hi,
                    pairs=int(finite.sum()),
                    zero_cost=int((~finite).sum()),
                    only_series=int((s_ok & ~r_ok).sum()),
                    only_reference=int((~s_ok & r_ok).sum()),
                    neither=int((~s_ok & ~r_ok).sum()),
                )
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- figures
def _step_curve(values: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """x, y of the exact step function "share of values ≤ x" on [lo, hi] (values may hold inf)."""
    finite = np.sort(values[np.isfinite(values)])
    xs = np.concatenate([[lo], finite[(finite >= lo) & (finite <= hi)], [hi]])
    ys = np.searchsorted(finite, xs, side="right") / max(len(values), 1)
    return xs, ys


def _panels(
    curves: dict[str, pd.DataFrame],
    xlabel: str,
    ylabel: str,
    title: str,
    path: Path,
    base: int = 10,
    lo: float | None = None,
    cols: int = 3,
) -> None:
    """One panel per target; in each, per series, the step function "share ≤ x" of its column of values
    (``curves[label]``: rows = units or pairs, columns = series; inf = not solved)."""
    import textwrap

    from matplotlib import ticker

    from bench.plots import _mpl, _tick, readable_log_axis, solver_colour

    plt, _ = _mpl()
    n = len(curves)
    cols = min(n, cols)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows + 0.5), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (label, values) in zip(axes.flat, curves.items(), strict=False):
        arr = values.to_numpy(dtype=float)
        finite = arr[np.isfinite(arr) & (arr > 0)]
        left = lo if lo is not None else (finite.min() if finite.size else 1.0)
        right = max(finite.max() if finite.size else left, left) * PLATEAU  # room for ρ(∞)
        right = max(right, left * MIN_SPAN[base])  # ticks to read even when every cost is equal
        for series in values.columns:
            xs, ys = _step_curve(values[series].to_numpy(dtype=float), left, right)
            solved = int(np.isfinite(values[series]).sum())
            ax.plot(
                xs,
                ys,
                drawstyle="steps-post",
                color=solver_colour(series.split(" [")[0]),
                lw=1.5,
                label=f"{series} ({solved}/{len(values)})",
            )
        ax.set_xscale("log", base=base)
        if base == 10 and math.log10(right / left) >= DECADE_TICKS_FROM:
            ax.xaxis.set_major_locator(ticker.LogLocator(base=10, numticks=8))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(_tick))
            ax.xaxis.set_minor_locator(ticker.NullLocator())
        elif base == 10:
            readable_log_axis(ax.xaxis, left, right)
        else:
            ax.xaxis.set_major_locator(ticker.LogLocator(base=base, numticks=8))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _p: f"{v:g}"))
            ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.set(xlim=(left, right), ylim=(-0.02, 1.02), xlabel=xlabel, ylabel=ylabel)
        ax.set_title(f"{label} ({len(values)} {'units' if 'pairs' not in ylabel else 'pairs'})", fontsize=9)
        ax.legend(fontsize=7, loc="best", title="series (solved)", title_fontsize=7)
    fig.suptitle("\n".join(textwrap.wrap(title, 55 * cols)), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _forest(ratios: pd.DataFrame, reference: str, path: Path) -> None:
    """Geometric-mean time ratio to the reference with its bootstrap interval: one row per target, one
    marker per series."""
    from bench.plots import _mpl, readable_log_axis, solver_colour

    plt, _ = _mpl()
    shown = ratios[np.isfinite(ratios.geomean)]
    targets = list(dict.fromkeys(ratios.target))
    series = list(dict.fromkeys(ratios.series))
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.32 * len(targets) * max(len(series), 2)))
    step = 0.8 / max(len(series), 1)
    for j, name in enumerate(series):
        sub = shown[shown.series == name]
        ys = [targets.index(t) + (j - (len(series) - 1) / 2) * step for t in sub.target]
        colour = solver_colour(name.split(" [")[0])
        ax.errorbar(
            sub.geomean,
            ys,
            # clipped at 0: a degenerate interval (one pair) can sit a rounding error inside its estimate
            xerr=np.clip([sub.geomean - sub.lo, sub.hi - sub.geomean], 0.0, None),
            fmt="o",
            color=colour,
            ms=4,
            capsize=2,
            lw=1.2,
            label=name,
        )
    ax.axvline(1.0, color="k", lw=0.8, ls=":")
    ax.set_yticks(range(len(targets)), [t if t != "all" else "all targets" for t in targets])
    ax.invert_yaxis()
    values = np.concatenate([shown.lo.to_numpy(), shown.hi.to_numpy(), [1.0]])
    values = values[np.isfinite(values) & (values > 0)]
    ax.set_xscale("log")
    readable_log_axis(ax.xaxis, values.min() / 1.2, values.max() * 1.2)
    ax.set_xlim(values.min() / 1.2, values.max() * 1.2)
    ax.set_xlabel(
        f"time to target ÷ {reference}'s (geometric mean; bar: bootstrap {CONFIDENCE:.0%} interval)"
    )
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: the x axis of a profile runs this factor past the largest finite value, so the plateau ρ(∞) shows
PLATEAU = 1.6
#: the x axis spans at least this factor (log base → factor)
MIN_SPAN = {2: 4.0, 10: 10.0}
#: decade ticks (instead of 1-2-5 steps, which crowd) from this many decades of x range on
DECADE_TICKS_FROM = 1.5

FIGURES = {
    "performance_time": "profiles_performance_time.png",
    "performance_work": "profiles_performance_work.png",
    "data": "profiles_data.png",
    "ecdf": "profiles_runtime_ecdf.png",
    "ratios": "profiles_time_ratios.png",
}


def make_figures(df: pd.DataFrame, ratios: pd.DataFrame, reference: str, out_dir: Path) -> list[str]:
    """Every figure of the section into out_dir; returns the file names."""
    targets = labels(df)
    shown = ", ".join(dict.fromkeys(df.series))
    names = []

    def perf(measure: str) -> dict[str, pd.DataFrame]:
        return {
            f"{MEASURES[measure]}, {t}": performance_ratios(cost_matrix(df, t, measure)[0]) for t in targets
        }

    _panels(
        perf("time"),
        "a: within a × the best solver's time",
        "share of units",
        f"Performance profiles on solver time (relative to {shown})",
        out_dir / FIGURES["performance_time"],
        base=2,
        lo=1.0,
    )
    names.append(FIGURES["performance_time"])
    _panels(
        {**perf("ll_iters"), **perf("work")},
        "a: within a × the best solver's work",
        "share of units",
        f"Performance profiles on work: lower iterations, and lower iterations + HVPs (relative to {shown})",
        out_dir / FIGURES["performance_work"],
        base=2,
        lo=1.0,
        cols=len(targets) if len(targets) <= 4 else 3,  # one measure per row where the targets fit
    )
    names.append(FIGURES["performance_work"])
    unit_cost = instance_unit_costs(df)
    data = {t: normalised_costs(cost_matrix(df, t, "time")[0], unit_cost) for t in targets}
    _panels(
        data,
        "κ = solver seconds ÷ c_i (lower-iteration equivalents)",
        "share of units solved",
        "Data profiles: budget in units of each instance's own cost c_i of one lower iteration "
        "(its solver seconds per lower iteration or HVP, median over its runs)",
        out_dir / FIGURES["data"],
    )
    names.append(FIGURES["data"])
    _panels(
        {"all targets, solver seconds": all_pairs(df, "time"), "all targets, work": all_pairs(df, "work")},
        "budget b (solver seconds | lower iterations + HVPs)",
        "share of (unit, target) pairs",
        "Runtime ECDF over every (instance × seed, target) pair",
        out_dir / FIGURES["ecdf"],
    )
    names.append(FIGURES["ecdf"])
    if not ratios.empty and np.isfinite(ratios.geomean).any():
        _forest(ratios, reference, out_dir / FIGURES["ratios"])
        names.append(FIGURES["ratios"])
    return names


# ----------------------------------------------------------------------------------------- the report
def _fmt_ratio(row: pd.Series) -> str:
    others = f"{row.only_series}/{row.only_reference}/{row.neither}"
    if row.pairs == 0:
        return f"— (0; {others})"
    return f"{row.geomean:.3g} [{row.lo:.3g}, {row.hi:.3g}] ({row.pairs}; {others})"


def aggregate_section(
    targets: pd.DataFrame,
    out_dir: str | Path,
    reference_solver: str = "maid",
    figures: bool = True,
    n_resamples: int = N_RESAMPLES,
) -> tuple[str, list[str]]:
    """The report's section across instances (markdown) and its figure file names; writes
    ``profiles_solved.csv`` and ``profiles_time_ratios.csv`` (and the figures) into out_dir."""
    out_dir = Path(out_dir)
    head = "## Across instances: performance profiles, data profiles, runtime ECDFs"
    df = prepare(targets)
    if df.empty:
        return f"{head}\n\nNo targets were evaluated in these runs.", []
    targets_order = labels(df)
    series = list(dict.fromkeys(df.series))
    solved, units = solved_counts(df)
    filled = sum(cost_matrix(df, t, "time")[1] for t in targets_order)
    ratios = time_ratios(df, reference_solver, n_resamples=n_resamples)
    solved.to_csv(out_dir / "profiles_solved.csv")
    ratios.to_csv(out_dir / "profiles_time_ratios.csv", index=False)
    n_units = df.groupby(UNIT).ngroups
    parts = [
        head,
        "",
        f"From the harness's exact values: {df.run_id.nunique() if 'run_id' in df else len(df)} runs on "
        f"{df.instance.nunique()} instances ({n_units} instance × seed units), {len(targets_order)} targets; "
        f"solvers shown: {', '.join(series)} (profiles are relative to this set). A run that failed, "
        "diverged or hit its budget before a target counts as not solved there"
        + (f"; {filled} (unit, solver, target) cells had no run and count as not solved" if filled else "")
        + ". Definitions and how to read them: `docs/suites.md`.",
        "",
        "**Units solved per target** (solved / units that have the target):",
        "",
        "| solver | " + " | ".join(targets_order) + " |",
        "|---|" + "---|" * len(targets_order),
    ]
    for name in series:
        cells = [f"{int(solved.loc[name, t])}/{int(units[t])}" for t in targets_order]
        parts.append(f"| {name} | " + " | ".join(cells) + " |")
    parts.append("")
    if ratios.empty:
        parts.append(
            f"No time ratios: the reference solver {reference_solver!r} is not (once) among these runs."
        )
    else:
        columns = [*targets_order, "all"]
        parts += [
            f"**Time to target ÷ {reference_solver}'s**: geometric mean over the units where both solved, "
            f"[paired percentile bootstrap {CONFIDENCE:.0%} interval: {n_resamples} resamples of instances "
            f"and of seeds within them, seed {BOOTSTRAP_SEED}] (pairs; only the solver / only "
            f"{reference_solver} / neither solved). Below 1: faster than {reference_solver}.",
            "",
            "| solver | " + " | ".join("all targets" if c == "all" else c for c in columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for name in dict.fromkeys(ratios.series):
            sub = ratios[ratios.series == name].set_index("target")
            parts.append(f"| {name} | " + " | ".join(_fmt_ratio(sub.loc[c]) for c in columns) + " |")
        zero = int(ratios.zero_cost.sum())
        if zero:
            parts.append(
                f"\n{zero} pair(s) with a zero cost on one side only (met at the start) have no ratio."
            )
    names: list[str] = []
    if figures:
        names = make_figures(df, ratios, reference_solver, out_dir)
        parts += ["", *(f"![{n}]({n})" for n in names)]
    return "\n".join(parts), names
