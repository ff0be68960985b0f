"""How far a solver's own upper values are from the harness's exact ones, and what exact evaluation costs.

    python -m studies.reported_vs_exact RESULTS_DIR [--out FILE.md]

Per solver, over every evaluated row of its runs in the folder: the largest |upper_value −
exact_upper_value| (the solver's estimate g(x̃, θ) + r(θ) at its inexact lower point against F(θ) by the
reference solve), the largest relative one |·| / |exact_upper_value|, and the row where it occurred; and
the evaluation's cost share Σ eval_time / (Σ solver time + Σ eval_time), with the solver time of each run
its final ``wall_time`` (cumulative) and eval_time summed over the rows evaluated.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from bench import results
from bench.report import markdown_table

COLUMNS = [
    "solver",
    "runs",
    "rows_evaluated",
    "max_abs_gap",
    "max_rel_gap",
    "at_iteration",
    "solver_seconds",
    "eval_seconds",
    "eval_share",
]


def compare(traces: pd.DataFrame) -> pd.DataFrame:
    """One row per solver (module docstring)."""
    if "exact_upper_value" not in traces:
        raise ValueError("these traces have no exact_upper_value column (written before exact evaluation)")
    rows = []
    for solver, tr in traces.groupby("solver", sort=True):
        evaluated = tr[tr.exact_upper_value.notna() & tr.upper_value.notna()]
        diff = (evaluated.upper_value - evaluated.exact_upper_value).abs()
        rel = diff / evaluated.exact_upper_value.abs()
        worst = evaluated.loc[diff.idxmax()] if len(diff) else None
        solver_seconds = float(tr.groupby("run_id").wall_time.max().sum())
        eval_seconds = float(tr.eval_time.fillna(0.0).sum())
        total = solver_seconds + eval_seconds
        rows.append(
            dict(
                solver=solver,
                runs=tr.run_id.nunique(),
                rows_evaluated=len(evaluated),
                max_abs_gap=float(diff.max()) if len(diff) else math.nan,
                max_rel_gap=float(rel.max()) if len(rel) else math.nan,
                at_iteration=int(worst.iteration) if worst is not None else -1,
                solver_seconds=solver_seconds,
                eval_seconds=eval_seconds,
                eval_share=eval_seconds / total if total > 0 else math.nan,
            )
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m studies.reported_vs_exact", description=__doc__.splitlines()[0]
    )
    parser.add_argument("dir", help="a results folder (holding runs/)")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    try:
        table = compare(results.load_traces(Path(args.dir)))
    except (ValueError, FileNotFoundError) as exc:
        print(f"reported_vs_exact: error: {exc}", file=sys.stderr)
        return 2
    text = "\n".join(
        [
            f"# Solver-reported vs exact upper values: {args.dir}",
            "",
            "`max_abs_gap` = max |upper_value − exact_upper_value| over the evaluated rows, `max_rel_gap` "
            "the same over |exact_upper_value|, `at_iteration` where the absolute one occurred; "
            "`eval_share` = Σ eval_time / (Σ solver time + Σ eval_time).",
            "",
            markdown_table(table, COLUMNS),
        ]
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
