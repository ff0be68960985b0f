"""Reference optima F* of problem instances that have no closed form (``problems/optima.json``).

An instance is keyed by its problem name and a hash of its recorded parameters (``problem.params``: every
parameter, seed included; the device is a run setting and never part of it, and the value is the one
computed in float64, so one entry serves every dtype). Each entry keeps the value, where the point came
from (the run that produced θ), and its certificate: ‖∇F‖ at that point by the reference API. Entries are
written by ``python -m bench.optima compute`` (a long, exactly evaluated MAID run; ``docs/evaluation.md``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

#: the committed table of reference optima
OPTIMA_FILE = Path(__file__).with_name("optima.json")
#: hex digits of the parameter hash in a key (64 bits: no collision among the instances anyone stores)
KEY_DIGITS = 16


def params_text(params: dict[str, Any]) -> str:
    """The canonical text of an instance's parameters (sorted keys; tuples as lists)."""
    return json.dumps(params, sort_keys=True, default=str)


def instance_key(problem_name: str, params: dict[str, Any]) -> str:
    """``<problem>:<first KEY_DIGITS hex digits of sha256(params_text)>``."""
    digest = hashlib.sha256(params_text(params).encode()).hexdigest()[:KEY_DIGITS]
    return f"{problem_name}:{digest}"


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> dict[str, dict[str, Any]]:
    return json.loads(Path(path).read_text())


def load(path: Path = OPTIMA_FILE) -> dict[str, dict[str, Any]]:
    """The table: key → {problem, params, value, source, grad_norm, ...} ({} when the file is absent)."""
    if not path.is_file():
        return {}
    return _load(str(path), path.stat().st_mtime)


def lookup(problem_name: str, params: dict[str, Any], path: Path = OPTIMA_FILE) -> dict[str, Any] | None:
    """The entry of one instance, or None when none is stored."""
    return load(path).get(instance_key(problem_name, params))


def store(problem_name: str, params: dict[str, Any], entry: dict[str, Any], path: Path = OPTIMA_FILE) -> str:
    """Add or replace an instance's entry (the file stays sorted by key); returns the key."""
    table = dict(load(path))
    key = instance_key(problem_name, params)
    table[key] = {"problem": problem_name, "params": json.loads(params_text(params)), **entry}
    path.write_text(json.dumps(dict(sorted(table.items())), indent=1, sort_keys=True) + "\n")
    _load.cache_clear()
    return key
