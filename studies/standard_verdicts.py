"""Verdicts of a suite's run, per problem: who wins at which target and by how much, with intervals.

    python -m studies.standard_verdicts RESULTS_DIR [--reference maid] [--out FILE.md]

Reads what ``adpbench report`` wrote into RESULTS_DIR — ``targets.csv`` (one row per run and target, from
the harness's exact values) and, for image problems, ``quality.csv`` — and prints, per problem:

* per target, each solver's units solved, the units where it was fastest (ρ_s(1) of the performance
  profile, ties counted for each), and its time to target ÷ the reference solver's: the geometric mean over
  the units both solved with its paired bootstrap 95 % interval (``bench.profiles.time_ratios``);
* the winner — the solver fastest on the most units — and by how much: the runner-up's time ÷ the winner's,
  geometric mean and interval over the units both solved;
* on deconv1d, the paper's claim that MAID takes about ½ of LISTA's and ¼ of IFT's time, against the
  intervals of LISTA ÷ MAID and IFT ÷ MAID;
* on image problems, PSNR and SSIM of each solver's final ADP-β reconstruction minus the instance's TV
  baseline (the report's solved smoothed-TV reconstruction at θ₀): the mean over instances with a bootstrap
  interval (``bench.profiles.bootstrap_mean``), and the range.

Every figure is computed from the harness's own tables; nothing a solver reported enters.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench import profiles
from studies.publish import publish

#: the paper's 1D claim (deconvolution, §4.1): MAID's time to the target ÷ LISTA's ≈ ½, ÷ IFT's ≈ ¼, i.e.
#: LISTA ÷ MAID ≈ 2 and IFT ÷ MAID ≈ 4
PAPER_1D_RATIOS = {"lista": 2.0, "ift": 4.0}
#: |ΔPSNR| in dB below which an interval is read as a tie with the TV baseline: a tenth of a decibel is
#: below what one sees side by side, and below the spread of PSNR over noise draws (our choice, stated)
PSNR_TIE_DB = 0.1


def _ratio_cell(row: pd.Series | None) -> str:
    if row is None or row.pairs == 0:
        return "—"
    return f"{row.geomean:.3g} [{row.lo:.3g}, {row.hi:.3g}] ({row.pairs})"


def _ratios(df: pd.DataFrame, reference: str) -> dict[tuple[str, str], pd.Series]:
    table = profiles.time_ratios(df, reference)
    return {} if table.empty else {(r.series, r.target): r for _, r in table.iterrows()}


def target_section(problem: str, df: pd.DataFrame, reference: str) -> list[str]:
    """The per-target table and winner lines of one problem."""
    series = list(dict.fromkeys(df.series))
    ratios = _ratios(df, reference)
    lines = [
        f"### {problem}: {df.groupby(profiles.UNIT).ngroups} units (instance × seed), solvers "
        f"{', '.join(series)}",
        "",
        f"Cells: solved / fastest on / time ÷ {reference}'s, geometric mean [95 % bootstrap interval] (units "
        "where both solved). Winner: the solver fastest on the most units; beside it the rival with the "
        "smallest time ÷ the winner's over the units both solved (below 1: that rival is faster where both "
        "solved, but solved or won fewer units).",
        "",
        "| target | " + " | ".join(series) + " | winner: next best ÷ winner |",
        "|---|" + "---|" * (len(series) + 1),
    ]
    for label in profiles.labels(df):
        costs, _ = profiles.cost_matrix(df, label, "time")
        fastest = (profiles.performance_ratios(costs) == 1.0).sum(axis=0)
        solved = np.isfinite(costs).sum(axis=0)
        cells = []
        for s in series:
            ratio = "ref." if s == reference else _ratio_cell(ratios.get((s, label)))
            cells.append(f"{int(solved[s])} / {int(fastest[s])} / {ratio}")
        cells.append(_winner(df, costs, fastest, label))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _winner(df: pd.DataFrame, costs: pd.DataFrame, fastest: pd.Series, label: str) -> str:
    if int(fastest.max()) == 0:
        return "nobody solved it"
    winner = str(fastest.idxmax())
    against = _ratios(df[df.label == label], winner)
    rivals = [(s, r) for (s, t), r in against.items() if t == label and r.pairs > 0]
    if not rivals:
        return f"{winner} ({int(fastest[winner])} of {len(costs)}; no rival solved a unit it solved)"
    name, row = min(rivals, key=lambda item: item[1].geomean)
    return f"{winner} ({int(fastest[winner])} of {len(costs)}): {name} {_ratio_cell(row)}"


def paper_claim(df: pd.DataFrame, reference: str = "maid") -> list[str]:
    """The paper's 1D ratios against the intervals, per target and over all targets pooled."""
    ratios = _ratios(df, reference)
    lines = [
        "### The paper's 1D claim: MAID ≈ ½ LISTA's and ¼ IFT's time",
        "",
        "| solver ÷ maid | paper | " + " | ".join([*profiles.labels(df), "all targets"]) + " |",
        "|---|---|" + "---|" * (len(profiles.labels(df)) + 1),
    ]
    for solver, claimed in PAPER_1D_RATIOS.items():
        cells = []
        for label in [*profiles.labels(df), "all"]:
            row = ratios.get((solver, label))
            if row is None or row.pairs == 0:
                cells.append("—")
                continue
            reading = (
                "holds" if row.lo <= claimed <= row.hi else ("larger" if row.lo > claimed else "smaller")
            )
            cells.append(f"{_ratio_cell(row)} {reading}")
        lines.append(f"| {solver} | {claimed:g} | " + " | ".join(cells) + " |")
    lines += [
        "",
        '"holds": the interval contains the paper\'s ratio; "larger": MAID\'s advantage is larger than the '
        'paper\'s; "smaller": smaller.',
        "",
    ]
    return lines


def quality_section(quality: pd.DataFrame) -> list[str]:
    """ADP-β minus the TV baseline, per problem and solver: mean [interval], min … max, over instances."""
    lines = [
        "### Image quality: ADP-β minus the TV baseline (final reconstructions)",
        "",
        f"Mean over instances [95 % bootstrap interval], min … max. A tie: the PSNR interval inside "
        f"±{PSNR_TIE_DB:g} dB.",
        "",
        "| problem | solver | instances | ΔPSNR dB | ΔSSIM | reading |",
        "|---|---|---|---|---|---|",
    ]
    methods = quality.method.astype(str)
    baselines = quality[methods.str.contains("TV") & ~methods.str.startswith("ADP")]
    for problem, group in quality.groupby("problem", sort=False):
        base = baselines[baselines.problem == problem].set_index("instance")
        adp = group[group.method.astype(str).str.startswith("ADP-β")]
        for method, runs in adp.groupby("method", sort=False):
            runs = runs[runs.instance.isin(base.index)]
            d_psnr = runs.psnr.to_numpy() - base.loc[runs.instance, "psnr"].to_numpy()
            d_ssim = runs.ssim.to_numpy() - base.loc[runs.instance, "ssim"].to_numpy()
            cells = []
            intervals = []
            for values in (d_psnr, d_ssim):
                units = pd.DataFrame(dict(instance=runs.instance.to_numpy(), seed=0, sum=values, count=1.0))
                mean, lo, hi = profiles.bootstrap_mean(units)
                intervals.append((lo, hi))
                cells.append(f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}], {values.min():+.3f} … {values.max():+.3f}")
            reading = _reading(*intervals[0])  # read on PSNR
            solver = str(method).removeprefix("ADP-β ").strip()
            lines.append(f"| {problem} | {solver} | {len(runs)} | {cells[0]} | {cells[1]} | {reading} |")
    return [*lines, ""]


def _reading(lo: float, hi: float) -> str:
    """A tie when the interval lies within ±PSNR_TIE_DB (a difference too small to matter, whatever its
    sign); otherwise which side the interval is on, or "mixed" when it straddles 0."""
    if -PSNR_TIE_DB <= lo and hi <= PSNR_TIE_DB:
        return "tie (ADP-β lower)" if hi < 0 else "tie (ADP-β higher)" if lo > 0 else "tie"
    return "TV better" if hi < 0 else "ADP-β better" if lo > 0 else "mixed"


def verdicts(folder: str | Path, reference: str = "maid") -> list[str]:
    folder = Path(folder)
    targets_path = folder / "targets.csv"
    if not targets_path.is_file():
        raise ValueError(f"{folder} has no targets.csv: run `adpbench report {folder}` first")
    targets = pd.read_csv(targets_path)
    lines = [f"## Verdicts of {folder}", ""]
    for problem, sub in targets.groupby("problem", sort=False):
        df = profiles.prepare(sub)
        lines += target_section(str(problem), df, reference)
        if problem == "deconv1d" and set(PAPER_1D_RATIOS) <= set(df.series):
            lines += paper_claim(df, reference)
    quality_path = folder / "quality.csv"
    if quality_path.is_file():
        quality = pd.read_csv(quality_path)
        if "instance" in quality:
            lines += quality_section(quality)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m studies.standard_verdicts", description=__doc__.split("\n")[0]
    )
    ap.add_argument("folder", help="a report's folder (targets.csv, quality.csv)")
    ap.add_argument("--reference", default="maid", help="the solver time ratios divide by (default maid)")
    ap.add_argument("--out", default=None, help="also write the Markdown here (default FOLDER/verdicts.md)")
    args = ap.parse_args(argv)
    try:
        lines = verdicts(args.folder, args.reference)
    except ValueError as exc:
        print(f"standard_verdicts: error: {exc}", file=sys.stderr)
        return 2
    publish(lines, args.out or Path(args.folder) / "verdicts.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
