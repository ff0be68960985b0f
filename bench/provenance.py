"""Run identity: problem, solver, config, seed, device, dtype, versions, git commit (docs/maths.md §8)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from bench import plugins
from problems.base import BilevelProblem

_ROOT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.dtype):
        return str(value).replace("torch.", "")
    if isinstance(value, (torch.device, Path)):
        return str(value)
    return value


def identity(solver: Any, problem: BilevelProblem, seed: int) -> dict[str, Any]:
    config = {k: _jsonable(v) for k, v in dataclasses.asdict(solver).items()}
    params = {k: _jsonable(v) for k, v in problem.params.items()}
    return {
        "problem": problem.name,
        "solver": solver.name,
        "seed": seed,
        "device": str(problem.device),
        "dtype": str(problem.dtype).replace("torch.", ""),
        "solver_config": json.dumps(config, sort_keys=True),
        "problem_params": json.dumps(params, sort_keys=True),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python_version": platform.python_version(),
        "git_commit": git_commit(),
        "plugins": plugins.records(),  # name and version or file hash of each plug-in loaded here
    }


def run_id(problem: str, solver: str, seed: int, *parts: Any) -> str:
    """A stable file name for one run: readable prefix + hash of everything that defines it."""
    digest = hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{problem}__{solver}__seed{seed}__{digest}"
