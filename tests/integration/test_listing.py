"""`adpbench list`: one line per entry, details on request, one-line errors naming the valid values."""

from __future__ import annotations

import pytest

import problems
import solvers
from bench import listing
from bench.cli import main


def test_overview_has_one_line_per_entry(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in [*problems.list_problems(), *solvers.solver_names()]:
        assert sum(line.split()[:1] == [name] for line in lines) == 1, name
    assert len(lines) < 60


@pytest.mark.parametrize("kind", ["problems", "solvers"])
def test_detail_lists_every_field_with_its_default(kind, capsys):
    name = listing.names_of(kind)[0]
    assert main(["list", kind, name]) == 0
    out = capsys.readouterr().out
    fields = problems.problem_parameters(name) if kind == "problems" else solvers.solver_parameters(name)
    for key, value in fields.items():
        assert f"  {key} = {value!r}" in out


@pytest.mark.parametrize(
    "args, valid",
    [
        (["nope"], "problems, solvers, protocols"),
        (["solvers", "nope"], "maid"),
        (["protocols", "x"], "preset"),
    ],
)
def test_unknown_kind_or_name_is_a_one_line_error(args, valid, capsys):
    assert main(["list", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and valid in err
