"""Run storage: one tidy trace per finished run, written atomically and durably, loaded without pickle.

Layout of an output folder (``runs/``), per run id:

- ``<run_id>.csv`` (or ``.parquet`` when pyarrow is installed): the trace, one row per upper iteration;
- ``<run_id>.npz``: final θ and x as plain arrays (numpy, read with ``allow_pickle=False``);
- ``<run_id>.json``: status, message and the SHA-256 of the two files above, written last.

A run is *finished* when its sidecar parses, both checksums match and the trace's last row carries a final
status; anything else is *damaged* (``report`` names and skips it, ``--resume`` runs it again). Nothing
read from a results folder is ever unpickled: a shared folder cannot run code on the reader's machine.

A run that ended without a trace (its worker died, or it could not start) has ``<run_id>.failed``
instead: a JSON record with status ``error`` and the reason. ``--resume`` runs it again; its files
then replace the record.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.harness import FINAL_STATUSES, RunResult

TRACE_SUFFIXES = (".parquet", ".csv")
ARRAYS_SUFFIX = ".npz"
SIDECAR_SUFFIX = ".json"
FORMAT = 2  # sidecar format version; older folders (pickled .pt files) are reported as damaged


class DamagedRunWarning(UserWarning):
    """A run's files fail the finished-run check; the run is skipped."""


FAILURE_SUFFIX = ".failed"  # not a run file suffix: a failure record is never a damaged run


def _parquet_available() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write to a temporary file beside ``path``, flush and fsync it, rename it over ``path`` and fsync the
    folder: after a crash the path holds the old content or the whole new one, never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); platforms that cannot open a folder (Windows) skip it."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def runs_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "runs"


def write_run(result: RunResult, out_dir: str | Path, run_id: str) -> Path:
    """Write the arrays, then the trace, then the sidecar with their checksums; return the trace path."""
    folder = runs_dir(out_dir)
    arrays_path = folder / f"{run_id}{ARRAYS_SUFFIX}"
    theta = result.theta.detach().cpu().numpy()
    x = result.x.detach().cpu().numpy()

    def save_arrays(p: str) -> None:
        with open(p, "wb") as fh:
            np.savez(fh, theta=theta, x=x)

    _atomic_write(arrays_path, save_arrays)
    trace = result.trace.assign(run_id=run_id)
    if _parquet_available():
        trace_path = folder / f"{run_id}.parquet"
        _atomic_write(trace_path, lambda p: trace.to_parquet(p, index=False))
    else:
        trace_path = folder / f"{run_id}.csv"
        _atomic_write(trace_path, lambda p: trace.to_csv(p, index=False))
    sidecar = {
        "format": FORMAT,
        "run_id": run_id,
        "status": result.status,
        "message": result.message,
        "verdict": result.info.get("verdict"),
        "trace": trace_path.name,
        "arrays": arrays_path.name,
        "sha256": {trace_path.name: _sha256(trace_path), arrays_path.name: _sha256(arrays_path)},
    }
    text = json.dumps(sidecar, indent=1, sort_keys=True)
    _atomic_write(folder / f"{run_id}{SIDECAR_SUFFIX}", lambda p: Path(p).write_text(text))
    return trace_path


def _read_trace(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def check_run(out_dir: str | Path, run_id: str) -> tuple[pd.DataFrame | None, str]:
    """(trace, "") for a finished run, (None, why) for a damaged one."""
    folder = runs_dir(out_dir)
    side_path = folder / f"{run_id}{SIDECAR_SUFFIX}"
    if not side_path.is_file():
        if (folder / f"{run_id}.pt").exists():
            return None, "old pickle format (.pt), which is never loaded"
        return None, "no sidecar (<run_id>.json): the run did not finish"
    try:
        side = json.loads(side_path.read_text())
        if not isinstance(side, dict) or side.get("format") != FORMAT:
            return None, f"sidecar is not format {FORMAT}"
        sums = side["sha256"]
        names = (side["trace"], side["arrays"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        return None, f"sidecar unreadable ({type(exc).__name__})"
    for name in names:
        path = folder / str(name)
        if Path(str(name)).name != name or not path.is_file():
            return None, f"{name} missing"
        if _sha256(path) != sums.get(name):
            return None, f"{name} does not match its checksum (truncated or altered)"
    try:
        trace = _read_trace(folder / names[0])
    except Exception as exc:  # any parse failure means a damaged file, whatever the parser raises
        return None, f"{names[0]} unreadable ({type(exc).__name__})"
    if trace.empty or "status" not in trace or trace.status.iloc[-1] not in FINAL_STATUSES:
        return None, f"{names[0]} has no final status row"
    return trace, ""


def _candidate_ids(folder: Path) -> list[str]:
    """Every run id a folder mentions (sidecar, trace, arrays, or a legacy .pt), hidden temp files aside."""
    suffixes = (*TRACE_SUFFIXES, ARRAYS_SUFFIX, SIDECAR_SUFFIX, ".pt")
    return sorted({p.stem for p in folder.iterdir() if p.suffix in suffixes and not p.name.startswith(".")})


def scan(out_dir: str | Path) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """({run_id: trace} of finished runs, {file name: why} of damaged ones)."""
    folder = runs_dir(out_dir)
    good: dict[str, pd.DataFrame] = {}
    damaged: dict[str, str] = {}
    if not folder.is_dir():
        return good, damaged
    for run_id in _candidate_ids(folder):
        trace, why = check_run(out_dir, run_id)
        if trace is None:
            damaged[run_id] = why
        else:
            good[run_id] = trace
    return good, damaged


def finished_runs(out_dir: str | Path) -> set[str]:
    """Run ids whose files pass the finished-run check (``--resume`` skips only these)."""
    return set(scan(out_dir)[0])


def write_failure(out_dir: str | Path, run_id: str, record: dict) -> Path:
    """Record (atomically) that ``run_id`` ended without a trace, with ``record["reason"]``."""
    path = runs_dir(out_dir) / f"{run_id}{FAILURE_SUFFIX}"
    text = json.dumps({"run_id": run_id, "status": "error", **record}, indent=1, sort_keys=True)
    _atomic_write(path, lambda p: Path(p).write_text(text))
    return path


def clear_failure(out_dir: str | Path, run_id: str) -> None:
    """Drop a failure record once the run has a trace."""
    (runs_dir(out_dir) / f"{run_id}{FAILURE_SUFFIX}").unlink(missing_ok=True)


def failed_runs(out_dir: str | Path, finished: set[str] | None = None) -> dict[str, dict]:
    """Failure records of runs that still have no finished run: run id → record. ``finished``: the
    finished run ids when the caller has already scanned the folder."""
    folder = runs_dir(out_dir)
    if not folder.is_dir():
        return {}
    finished = finished_runs(out_dir) if finished is None else finished
    records = {}
    for path in sorted(folder.glob(f"*{FAILURE_SUFFIX}")):
        run_id = path.name[: -len(FAILURE_SUFFIX)]
        if run_id not in finished and not path.name.startswith("."):
            try:
                records[run_id] = json.loads(path.read_text())
            except (ValueError, OSError) as exc:
                records[run_id] = {"reason": f"failure record unreadable ({type(exc).__name__})"}
    return records


def load_traces(out_dir: str | Path, warn: Callable[[str], None] | None = None) -> pd.DataFrame:
    """All finished traces of a folder, concatenated; each damaged run is named (a warning, or ``warn``)
    and skipped."""
    folder = runs_dir(out_dir)
    good, damaged = scan(out_dir)
    for run_id, why in damaged.items():
        text = f"damaged run {folder / run_id}.*: {why}; skipped (rerun it with --resume)"
        if warn is None:
            warnings.warn(text, DamagedRunWarning, stacklevel=2)
        else:
            warn(text)
    if not good:
        raise FileNotFoundError(f"no finished runs under {folder}")
    return pd.concat(list(good.values()), ignore_index=True)


def load_arrays(out_dir: str | Path, run_id: str) -> dict[str, torch.Tensor] | None:
    """Final θ and x of a finished run (plain arrays, no pickle), or None when absent or damaged."""
    trace, _ = check_run(out_dir, run_id)
    if trace is None:
        return None
    path = runs_dir(out_dir) / f"{run_id}{ARRAYS_SUFFIX}"
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: torch.from_numpy(data[k].copy()) for k in ("theta", "x")}
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        # allow_pickle=False refuses object arrays and raw pickles: such a file is damaged, never run
        warnings.warn(f"damaged arrays {path}: {exc}; skipped", DamagedRunWarning, stacklevel=2)
        return None
