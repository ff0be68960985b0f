"""Run storage: one tidy trace file per finished run, written atomically (a crash loses no finished run).

Layout of an output folder:  runs/<run_id>.csv (or .parquet when pyarrow is installed) — the trace;
runs/<run_id>.pt — final θ and x (for figures). The trace is written last, so its presence marks a
finished run (``--resume`` skips those). A run that produced no trace because its worker died or it
could not start has runs/<run_id>.failed.json instead (status ``error``, the reason); ``--resume``
runs it again, and its trace replaces the record.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import torch

from bench.harness import RunResult

TRACE_SUFFIXES = (".parquet", ".csv")
FAILURE_SUFFIX = ".failed.json"


def _parquet_available() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def runs_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "runs"


def write_run(result: RunResult, out_dir: str | Path, run_id: str) -> Path:
    """Write the final arrays, then the trace (atomically); return the trace path."""
    folder = runs_dir(out_dir)
    arrays = {
        "theta": result.theta.cpu(),
        "x": result.x.cpu(),
        "status": result.status,
        "message": result.message,
    }
    _atomic_write(folder / f"{run_id}.pt", lambda p: torch.save(arrays, p))
    trace = result.trace.assign(run_id=run_id)
    if _parquet_available():
        path = folder / f"{run_id}.parquet"
        _atomic_write(path, lambda p: trace.to_parquet(p, index=False))
    else:
        path = folder / f"{run_id}.csv"
        _atomic_write(path, lambda p: trace.to_csv(p, index=False))
    return path


def finished_runs(out_dir: str | Path) -> set[str]:
    folder = runs_dir(out_dir)
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.iterdir() if p.suffix in TRACE_SUFFIXES and not p.name.startswith(".")}


def write_failure(out_dir: str | Path, run_id: str, record: dict) -> Path:
    """Record (atomically) that ``run_id`` ended without a trace, with ``record["reason"]``."""
    path = runs_dir(out_dir) / f"{run_id}{FAILURE_SUFFIX}"
    text = json.dumps({"run_id": run_id, "status": "error", **record}, indent=1, sort_keys=True)
    _atomic_write(path, lambda p: Path(p).write_text(text))
    return path


def clear_failure(out_dir: str | Path, run_id: str) -> None:
    """Drop a failure record once the run has a trace."""
    (runs_dir(out_dir) / f"{run_id}{FAILURE_SUFFIX}").unlink(missing_ok=True)


def failed_runs(out_dir: str | Path) -> dict[str, dict]:
    """Failure records of runs that still have no trace: run id → record."""
    folder = runs_dir(out_dir)
    if not folder.is_dir():
        return {}
    finished = finished_runs(out_dir)
    records = {}
    for path in sorted(folder.glob(f"*{FAILURE_SUFFIX}")):
        run_id = path.name[: -len(FAILURE_SUFFIX)]
        if run_id not in finished and not path.name.startswith("."):
            records[run_id] = json.loads(path.read_text())
    return records


def load_traces(out_dir: str | Path) -> pd.DataFrame:
    """All finished traces of a folder, concatenated (one row per upper iteration per run)."""
    folder = runs_dir(out_dir)
    frames = []
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        if path.name.startswith("."):
            continue
        if path.suffix == ".csv":
            frames.append(pd.read_csv(path))
        elif path.suffix == ".parquet":
            frames.append(pd.read_parquet(path))
    if not frames:
        raise FileNotFoundError(f"no finished runs under {folder}")
    return pd.concat(frames, ignore_index=True)


def load_arrays(out_dir: str | Path, run_id: str) -> dict | None:
    path = runs_dir(out_dir) / f"{run_id}.pt"
    return torch.load(path, weights_only=False) if path.exists() else None
