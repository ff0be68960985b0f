"""The suite verdicts study on hand-built targets and quality tables with known answers."""

from __future__ import annotations

import math

import pandas as pd

from studies import standard_verdicts

INF = math.inf


def _targets(times: dict[str, list[float]], problem: str = "deconv1d") -> pd.DataFrame:
    """One rel_gap ≤ 0.01 target; times[solver][i] is the time on instance i (inf: not reached)."""
    rows = []
    for solver, per_instance in times.items():
        for i, t in enumerate(per_instance):
            reached = math.isfinite(t)
            rows.append(
                dict(run_id=f"{solver}{i}", problem=problem, instance=f"{problem}:{i}", seed=0, solver=solver,
                     config="", target=0.01, target_kind="rel_gap", reached=reached, time=t, ll_iters=t,
                     cg_iters=0.0, work=t)
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_winner_ratio_and_paper_claim(tmp_path) -> None:
    # MAID fastest everywhere; LISTA exactly 2× MAID (the paper's ratio), IFT 10× (a larger advantage)
    maid = [1.0, 2.0, 4.0, 0.5]
    _targets({"maid": maid, "ift": [10 * t for t in maid], "lista": [2 * t for t in maid]}).to_csv(
        tmp_path / "targets.csv", index=False
    )
    text = "\n".join(standard_verdicts.verdicts(tmp_path))
    row = next(line for line in text.splitlines() if line.startswith("| rel_gap ≤ 0.01 | 4 / 4 / ref."))
    assert "4 / 0 / 10 [10, 10] (4)" in row and "4 / 0 / 2 [2, 2] (4)" in row
    assert row.endswith("maid (4 of 4): lista 2 [2, 2] (4) |")
    claim = {line.split(" |")[0]: line for line in text.splitlines() if line.startswith(("| lista", "| ift"))}
    assert "2 [2, 2] (4) holds" in claim["| lista"] and "10 [10, 10] (4) larger" in claim["| ift"]


def test_unsolved_runs_count_as_not_solved(tmp_path) -> None:
    _targets({"maid": [1.0, INF], "ift": [3.0, 2.0], "lista": [INF, INF]}).to_csv(
        tmp_path / "targets.csv", index=False
    )
    row = next(line for line in standard_verdicts.verdicts(tmp_path) if line.startswith("| rel_gap ≤ 0.01"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["1 / 1 / ref.", "2 / 1 / 3 [3, 3] (1)", "0 / 0 / —"]


def test_quality_differences_and_tie_reading(tmp_path) -> None:
    _targets({"maid": [1.0, 1.0]}, problem="deblur2d").to_csv(tmp_path / "targets.csv", index=False)
    rows = []
    for i, (tv, adp) in enumerate([(25.0, 25.02), (30.0, 29.99), (20.0, 20.01)]):
        ident = dict(problem="deblur2d", instance=f"deblur2d:{i}")
        rows += [dict(**ident, method="blurry", psnr=tv - 4, ssim=0.5),
                 dict(**ident, method="smoothed TV", psnr=tv, ssim=0.8),
                 dict(**ident, method="ADP-β maid", psnr=adp, ssim=0.8)]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "quality.csv", index=False)
    line = next(x for x in standard_verdicts.verdicts(tmp_path) if x.startswith("| deblur2d | maid"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2] == "3" and cells[3].startswith("+0.007 [") and cells[3].endswith("-0.010 … +0.020")
    assert cells[-1] == "tie"
    assert standard_verdicts._reading(-0.002, -0.001) == "tie (ADP-β lower)"
    assert standard_verdicts._reading(-1.5, -0.8) == "TV better"
    assert standard_verdicts._reading(0.2, 0.5) == "ADP-β better"
    assert standard_verdicts._reading(-0.3, 0.2) == "mixed"
