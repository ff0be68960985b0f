"""Shared test helpers: the repository root on sys.path, and small instances of every problem."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: image-sized problems (those with a ``size`` parameter) are built this small in generic tests
SMALL_SIZE = (16, 16)


def small_params(name: str) -> dict[str, object]:
    """Parameters that keep a registered problem's instance small enough for a CPU unit test."""
    import problems

    return {"size": SMALL_SIZE} if "size" in problems.list_problems()[name] else {}


@pytest.fixture
def small_problem():
    """``small_problem(name, **params)``: ``make_problem`` with :func:`small_params` as defaults."""
    import problems

    def build(name: str, **params: object):
        return problems.make_problem(name, **{**small_params(name), **params})

    return build
