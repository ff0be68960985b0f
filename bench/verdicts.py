"""Verdicts and targets from the harness's exact values (``bench/evaluation.py``), never from a solver's
own ``upper_value`` or ``converged`` (``docs/evaluation.md``).

Targets: relative gaps rel_gap = (F − F*)/(F₀ − F*) ≤ τ for τ in ``REL_GAP_TARGETS``, plus a problem's
published absolute level (``report_target``, deconv1d's ½‖Ax − y‖² = 0.0102) on ``exact_upper_value``.
A run *reaches* a target at its first evaluated row at or below it; the cost to a target is that row's
solver time, lower iterations, HVPs (CG steps) and upper iterations. A run that errored or diverged
reaches nothing (its earlier values were on the way to a failure).

The run's verdict (trace column and sidecar field ``verdict``), in this order:

* ``error`` / ``diverged``: the harness's status;
* ``reached τ``: the tightest relative target the exact values reached (e.g. ``reached 1e-4``);
* ``stopped_early``: the solver's own rule fired (status converged or stalled) while rel_gap stayed above
  the loosest target — a claim the exact values contradict;
* ``budget``: a budget ran out before the loosest target;
* ``no reference optimum``: the instance has no F*, so no gap can be judged (the report then measures
  gaps against the best exact value in its folder, ``targets_table``).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

import problems as problem_registry

#: relative-gap targets, loosest first
REL_GAP_TARGETS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-6)
#: target kinds of the targets table: a relative gap, or an absolute exact upper value
REL_GAP, VALUE = "rel_gap", "value"
#: statuses that mean the solver's own stopping rule fired
SELF_STOPPED = ("converged", "stalled")
FAILED = ("error", "diverged")
#: instance parameters that do not change which setting it is: the seed draws the data; dtype and device
#: are how it runs
PER_DRAW = {"seed", "dtype", "device"}
#: what a run's verdict is when the instance has no F*
NO_OPTIMUM = "no reference optimum"
#: the verdict of a run the harness did not evaluate (the problem's ``evaluation_unavailable``)
NOT_EVALUATED = "not evaluated"
#: how a report marks a verdict judged without F*: against the folder's best exact value, or (traces
#: written before exact evaluation) against the solver's own values
GAP_NOTES = {"best in folder": "vs folder best", "solver's own value": "solver's own values"}
#: columns of the targets table (``bench/profiles.py`` reads them)
TABLE_COLUMNS = (
    "run_id",
    "case",
    "instance",
    "problem",
    "solver",
    "config",
    "seed",
    "target",
    "target_kind",
    "reached",
    "time",
    "ll_iters",
    "cg_iters",
    "work",
    "upper_iters",
    "gap_source",
)


def target_text(tau: float) -> str:
    """1e-4 for 0.0001 (a power of ten as its exponent), otherwise the shortest %g."""
    exponent = math.log10(tau)
    if abs(exponent - round(exponent)) < 1e-9:
        return f"1e{round(exponent)}"
    return f"{tau:g}"


def reached_text(tau: float) -> str:
    return f"reached {target_text(tau)}"


def tightest_reached(rel_gaps: pd.Series, targets: tuple[float, ...] = REL_GAP_TARGETS) -> float | None:
    """The smallest τ with min rel_gap ≤ τ (None when none, or no gap is known)."""
    known = pd.to_numeric(rel_gaps, errors="coerce").dropna()
    if known.empty:
        return None
    best = float(known.min())
    hit = [tau for tau in targets if best <= tau]
    return min(hit) if hit else None


def verdict(rel_gaps: pd.Series, status: str, targets: tuple[float, ...] = REL_GAP_TARGETS) -> str:
    """The verdict of a run from its rel_gap column and its final status (module docstring)."""
    if status in FAILED:
        return status
    tau = tightest_reached(rel_gaps, targets)
    if tau is not None:
        return reached_text(tau)
    if pd.to_numeric(rel_gaps, errors="coerce").dropna().empty:
        return "budget" if status == "budget" else NO_OPTIMUM
    return "stopped_early" if status in SELF_STOPPED else "budget"


def harness_verdict(trace: pd.DataFrame, status: str) -> str:
    """The verdict the harness records for a finished run's trace."""
    gaps = trace["rel_gap"] if "rel_gap" in trace else pd.Series(dtype=float)
    return verdict(gaps, status)


def contradicted(status: str, verdict_text: str) -> bool:
    """The solver claims convergence, the exact values say it stopped above the loosest target."""
    return status in SELF_STOPPED and verdict_text.split(" (")[0] == "stopped_early"


# ----------------------------------------------------------------------------------------- targets
def instance_of(problem: str, params_json: str) -> str:
    """An instance's label: the problem and its parameters (the seed included: it draws the data)."""
    return f"{problem}:{params_json}"


def value_target(problem: str, params_json: str | None = None) -> float | None:
    """A problem's published absolute level (``report_target``), if any — and, given an instance's
    parameters, only when they are the problem's defaults (any seed): the level was published for that
    setting, and another noise level or blur moves the optimum below or far above it."""
    target = getattr(problem_registry.problem_class(problem), "report_target", None)
    if target is None:
        return None
    if params_json is not None:
        params = json.loads(params_json)
        defaults = problem_registry.problem_parameters(problem)
        for key, default in defaults.items():
            if key in PER_DRAW or key not in params:
                continue
            if params[key] != json.loads(json.dumps(default, default=str)):  # tuples as lists, 5 == 5.0
                return None
    return float(target)


def not_evaluated(trace: pd.DataFrame) -> bool:
    """The harness recorded that it did not evaluate this run (``NOT_EVALUATED``): its exact columns are
    empty on purpose, and nothing, the solver's own values included, stands in for them."""
    return "verdict" in trace and bool((trace["verdict"] == NOT_EVALUATED).any())


def with_gaps(traces: pd.DataFrame) -> pd.DataFrame:
    """The traces with ``gap`` (rel_gap where the harness knew F*, else the gap against the best exact
    value over the folder's runs of the same instance, relative to each run's F₀) and ``gap_source``
    ("reference optimum" / "best in folder" / "none"); traces without exact values fall back to the
    solver's own upper_value, labelled "solver's own value"."""
    traces = traces.copy()
    if "instance" not in traces:
        traces["instance"] = [
            instance_of(p, j) for p, j in zip(traces.problem, traces.problem_params, strict=True)
        ]
    if "rel_gap" not in traces:
        traces["rel_gap"] = math.nan
    if "exact_upper_value" not in traces:
        traces["exact_upper_value"] = math.nan
    traces["gap"] = pd.to_numeric(traces["rel_gap"], errors="coerce")
    traces["gap_source"] = np.where(traces["gap"].notna(), "reference optimum", "none")
    known = traces.groupby("run_id")["gap"].transform(lambda s: s.notna().any())
    skipped = traces.groupby("run_id", sort=False, group_keys=False).apply(
        lambda tr: pd.Series(not_evaluated(tr), index=tr.index)
    )
    for _, group in traces[~known & ~skipped.reindex(traces.index, fill_value=False)].groupby(
        "instance", sort=False
    ):
        exact = group["exact_upper_value"].notna().any()
        value_col = "exact_upper_value" if exact else "upper_value"
        values = pd.to_numeric(group[value_col], errors="coerce")
        # the best value of the runs that ended well: a failed run's values prove nothing
        ended = group.groupby("run_id").status.transform("last")
        values = values[~ended.isin(FAILED)].dropna()
        if values.empty:
            continue
        best = float(values.min())
        for _, run in group.groupby("run_id", sort=False):
            run_values = pd.to_numeric(run[value_col], errors="coerce")
            f0 = run_values.dropna().iloc[0] if run_values.notna().any() else math.nan
            span = f0 - best
            gap = (run_values - best) / span if span > 0 else run_values * math.nan
            traces.loc[run.index, "gap"] = gap
            traces.loc[run.index, "gap_source"] = "best in folder" if exact else "solver's own value"
    return traces


def first_reach(trace: pd.DataFrame, column: str, target: float) -> pd.Series | None:
    """The first row (by iteration) whose ``column`` is ≤ target, or None."""
    values = pd.to_numeric(trace[column], errors="coerce")
    hit = trace[values <= target]
    return None if hit.empty else hit.iloc[0]


def run_targets(trace: pd.DataFrame) -> list[tuple[str, float, str]]:
    """(kind, target, column) of one run: the relative gaps, then the problem's absolute level."""
    out = [(REL_GAP, tau, "gap") for tau in REL_GAP_TARGETS]
    level = value_target(str(trace.problem.iloc[0]), str(trace.problem_params.iloc[0]))
    if level is not None:
        column = "exact_upper_value" if trace["exact_upper_value"].notna().any() else "upper_value"
        out.append((VALUE, level, column))
    return out


def targets_table(traces: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, target): reached, and the cost to it — ``time`` (solver seconds), ``ll_iters``,
    ``cg_iters``, ``work`` (their sum), ``upper_iters`` — ``inf`` where not reached (never, or the run
    errored or diverged). Costs are read at the first evaluated row at or below the target. A run the
    harness did not evaluate (``not_evaluated``) has no rows: it neither reached nor missed a target, and
    counting it as unsolved would rank its solver on values nobody computed."""
    if "exact_upper_value" not in traces:
        traces = traces.assign(exact_upper_value=math.nan)
    traces = with_gaps(traces)
    rows = []
    for run_id, tr in traces.groupby("run_id", sort=False):
        if not_evaluated(tr):
            continue
        tr = tr.sort_values(["iteration", "wall_time"], kind="stable")
        last = tr.iloc[-1]
        failed = last.status in FAILED
        for kind, target, column in run_targets(tr):
            hit = None if failed else first_reach(tr, column, target)
            cost = {k: math.inf for k in ("time", "ll_iters", "cg_iters", "upper_iters")}
            if hit is not None:
                cost = dict(
                    time=float(hit.wall_time),
                    ll_iters=float(hit.ll_iters),
                    cg_iters=float(hit.cg_iters),
                    upper_iters=float(hit.iteration),
                )
            rows.append(
                dict(
                    run_id=run_id,
                    case=last.get("case", last.problem),
                    instance=last.instance,
                    problem=last.problem,
                    solver=last.solver,
                    config=last.get("config", ""),
                    seed=int(last.seed),
                    target=float(target),
                    target_kind=kind,
                    reached=hit is not None,
                    work=cost["ll_iters"] + cost["cg_iters"],
                    gap_source=last.gap_source if kind == REL_GAP else "exact value",
                    **cost,
                )
            )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def run_verdicts(traces: pd.DataFrame) -> pd.DataFrame:
    """Per run: the solver's ``status``, the harness's ``verdict`` (recorded, or recomputed from the exact
    values for traces written before verdicts existed; with the folder's best value as F* where the
    instance has none, marked "(vs folder best)"), the best gap reached and whether the verdict
    contradicts the solver's claim."""
    traces = with_gaps(traces)
    rows = []
    for run_id, tr in traces.groupby("run_id", sort=False):
        tr = tr.sort_values(["iteration", "wall_time"], kind="stable")
        last = tr.iloc[-1]
        recorded = last.get("verdict")
        text = verdict(tr["gap"], str(last.status))
        if recorded == NOT_EVALUATED:
            text = recorded  # nothing stands in for the exact values the harness did not compute
        elif last.gap_source == "reference optimum" and isinstance(recorded, str):
            text = recorded  # the harness's own, from F*
        elif last.gap_source in GAP_NOTES and text not in FAILED:
            text = f"{text} ({GAP_NOTES[last.gap_source]})"
        final_gap = pd.to_numeric(tr["gap"], errors="coerce").dropna()
        rows.append(
            dict(
                run_id=run_id,
                status=last.status,
                verdict=text,
                gap_source=last.gap_source,
                best_gap=float(final_gap.min()) if len(final_gap) else math.nan,
                final_gap=float(final_gap.iloc[-1]) if len(final_gap) else math.nan,
                contradicted=contradicted(str(last.status), text),
            )
        )
    return pd.DataFrame(rows)
