"""Compare the traces of two results folders run by run: every column but timing and provenance must be
bit-identical (a refactor that claims "behaviour unchanged", or two engines that claim the same runs).

    python -m studies.trace_compare BEFORE_DIR AFTER_DIR [--ignore COL ...] [--new-param KEY=JSON ...]

Runs are matched by (problem, solver, seed, problem parameters, solver configuration); columns present in
only one folder are listed (new columns are allowed, missing ones are not) and the columns common to both
are compared exactly (NaN equals NaN). Exit status 1 when any run or shared column differs.
``--new-param KEY=JSON``: a problem parameter added since BEFORE, at its default (JSON) value; AFTER's runs
that record exactly that value are matched as if they did not record it (a new option, default unchanged).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench import results

#: columns that may differ between two runs of the same computation: clocks and where/how it ran
TIMING_AND_PROVENANCE = (
    "wall_time",
    "eval_time",
    "git_commit",
    "torch_version",
    "python_version",
    "torch_threads",
    "backend",
    "concurrent_jobs",
    "run_id",
    "plugins",
)
KEY = ("problem", "solver", "seed", "problem_params", "solver_config")


def _without(params: str, new: dict[str, object]) -> str:
    """The recorded parameters (JSON) without the new ones that hold their default value."""
    values = json.loads(params)
    kept = {k: v for k, v in values.items() if not (k in new and v == new[k])}
    return json.dumps(kept, sort_keys=True) if len(kept) < len(values) else params


def _by_key(folder: Path, new_params: dict[str, object] | None = None) -> dict[tuple, pd.DataFrame]:
    traces = results.load_traces(folder)
    if new_params:
        traces["problem_params"] = [_without(p, new_params) for p in traces["problem_params"]]
    return {key: tr.reset_index(drop=True) for key, tr in traces.groupby(list(KEY), sort=True)}


def _equal(a: pd.Series, b: pd.Series) -> bool:
    if len(a) != len(b):
        return False
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
        x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
        return bool(np.array_equal(x, y, equal_nan=True))
    return bool((a.astype(str).to_numpy() == b.astype(str).to_numpy()).all())


def compare(
    before: Path, after: Path, ignore: tuple[str, ...] = (), new_params: dict[str, object] | None = None
) -> list[str]:
    """The differences found (empty: identical up to timing and provenance)."""
    old, new = _by_key(before), _by_key(after, new_params)
    problems = []
    for key in sorted(set(old) ^ set(new), key=str):
        where = "before only" if key in old else "after only"
        problems.append(f"run {key[:3]} ({where})")
    skip = set(TIMING_AND_PROVENANCE) | set(ignore)
    for key in sorted(set(old) & set(new), key=str):
        a, b = old[key], new[key]
        missing = sorted(set(a.columns) - set(b.columns) - skip)
        if missing:
            problems.append(f"run {key[:3]}: columns missing after: {', '.join(missing)}")
        if len(a) != len(b):
            problems.append(f"run {key[:3]}: {len(a)} rows before, {len(b)} after")
            continue
        differ = [c for c in sorted(set(a.columns) & set(b.columns) - skip) if not _equal(a[c], b[c])]
        problems += [f"run {key[:3]}: column {col} differs" for col in differ]
        threads = [sorted(set(t.get("torch_threads", pd.Series(dtype=int)).astype(str))) for t in (a, b)]
        if differ and threads[0] != threads[1]:
            problems.append(
                f"run {key[:3]}: torch threads {'/'.join(threads[0])} before, {'/'.join(threads[1])} after — "
                "reductions depend on the thread count; compare runs made with the same --threads"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--ignore", action="append", default=[], help="another column to leave out")
    parser.add_argument(
        "--new-param", action="append", default=[], metavar="KEY=JSON", help="a new parameter at its default"
    )
    args = parser.parse_args(argv)
    new_params = {}
    for item in args.new_param:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--new-param takes KEY=JSON, got {item!r}")
        new_params[key] = json.loads(value)
    diffs = compare(args.before, args.after, tuple(args.ignore), new_params)
    n = len(_by_key(args.before))
    if diffs:
        print(f"{len(diffs)} difference(s) over {n} run(s):")
        print("\n".join(f"  {d}" for d in diffs))
        return 1
    print(f"identical: {n} run(s), every column but timing and provenance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
