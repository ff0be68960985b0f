"""The 2D study: both image problems × bundled images × solvers under ``authors``,
``certified`` and the ablation rows (``protocols.ablation_rows``), with the controls of docs/maths.md §6
→ PSNR/SSIM.

    OMP_NUM_THREADS=1 python -m studies.study2d [--size 128|400x300] [--max-ll-iters 1500] [--max-time 25]
        [--out results/study2d] [--ablation-solvers maid] [--big 400x300]

For every (problem, image, protocol): blurry, the protocol's smoothed-TV baseline (``tv_reference``) and
ADP-β by each solver, run by name (the protocol's settings) under a work budget of lower-level iterations
(deterministic, so a shared machine changes times, not results) and a solver-time safeguard. Under
``authors`` two controls the paper lacks (docs/maths.md §6): the TV baseline as many lower iterations as the
MAID run used (same step rule, one solve from y), and the TV solved to convergence at α_eff = e⁻⁶ (step
1/L of that problem, ‖∇h‖ ≤ ``--control-tol`` or ``--control-iters``). Then the authors' and the certified
TV baselines at the paper's size (``--big``). Every finished row is appended to ``rows.csv`` at once and
skipped on a rerun (resume); ``summary.md`` is rewritten from all rows at the end (``--summary-only``).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

import torch

FIELDS = (
    "problem",
    "image",
    "size",
    "protocol",
    "method",
    "psnr",
    "ssim",
    "status",
    "upper_iters",
    "ll_iters",
    "cg_iters",
    "wall_time",
    "note",
)


def _done(path: Path) -> set[tuple[str, ...]]:
    if not path.exists():
        return set()
    with path.open() as f:
        return {tuple(r[k] for k in FIELDS[:5]) for r in csv.DictReader(f)}


def _append(path: Path, row: dict) -> None:
    """One row, in one write to a file opened for appending: several study processes (``--problems``
    split across cores) can share one rows.csv."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS)
    if not path.exists():
        try:
            with path.open("x", newline="") as f:  # exactly one process writes the header
                writer.writeheader()
                f.write(buf.getvalue())
        except FileExistsError:
            pass
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS)
    writer.writerow({k: row.get(k, "") for k in FIELDS})
    with path.open("a", newline="") as f:
        f.write(buf.getvalue())
    print(" | ".join(str(row.get(k, "")) for k in FIELDS), flush=True)


def _size_str(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _parse_size(text: str) -> tuple[int, int]:
    """ "128" → (128, 128); "400x300" → (400, 300)."""
    parts = text.lower().split("x")
    try:
        h, w = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except (ValueError, IndexError):
        raise SystemExit(f"--size must be N or HxW (e.g. 128 or 400x300), got {text!r}") from None
    if len(parts) > 2 or h < 8 or w < 8:
        raise SystemExit(f"--size must be N or HxW with H, W ≥ 8 (e.g. 128 or 400x300), got {text!r}")
    return h, w


#: extra problem parameters of every instance (``--param KEY=VALUE``, e.g. regulariser=tv: study_tv.py)
EXTRA_PARAMS: dict[str, object] = {}


def _parse_param(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as JSON when it parses (numbers, lists), else as a string."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--param takes KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _instance(problem: str, image: str, size: tuple[int, int], protocol: str):
    import problems

    return problems.make_problem(problem, image=image, size=size, preset=protocol, **EXTRA_PARAMS)


def run_grid(args: argparse.Namespace, out: Path) -> None:
    import bench
    import protocols

    rows_path = out / "rows.csv"
    done = _done(rows_path)
    size = _parse_size(args.size)
    protos = args.protocols.split(",") if args.protocols else protocols.ablation_rows()
    order = sorted(protos, key=lambda p: (p not in ("authors", "certified"), protos.index(p)))
    for protocol in order:
        solver_names = (
            args.solvers.split(",")
            if protocol in ("authors", "certified")
            else args.ablation_solvers.split(",")
        )
        for problem in args.problems.split(","):
            for image in args.images.split(","):
                key = (problem, image, _size_str(size), protocol)
                p = None
                for method in ("blurry", "TV"):
                    if key + (method,) in done:
                        continue
                    p = p or _instance(problem, image, size, protocol)
                    t0 = time.perf_counter()
                    x = p.y if method == "blurry" else p.tv_reference()
                    m = p.metrics(p.theta0, x)
                    note = "" if method == "blurry" else f"rule {p.tv_baseline_rule}"
                    _append(
                        rows_path,
                        dict(zip(FIELDS[:5], key + (method,), strict=True))
                        | dict(psnr=m["psnr"], ssim=m["ssim"], wall_time=time.perf_counter() - t0, note=note),
                    )
                for solver in solver_names:
                    method = f"ADP {solver}"
                    if key + (method,) in done:
                        continue
                    p = _instance(problem, image, size, protocol)
                    res = bench.run(
                        solver, p, max_ll_iters=args.max_ll_iters, max_time=args.max_time, eval_every=10**9
                    )
                    last = res.trace.iloc[-1]
                    _append(
                        rows_path,
                        dict(zip(FIELDS[:5], key + (method,), strict=True))
                        | dict(
                            psnr=float(last.psnr),
                            ssim=float(last.ssim),
                            status=res.status,
                            upper_iters=int(last.iteration),
                            ll_iters=int(last.ll_iters),
                            cg_iters=int(last.cg_iters),
                            wall_time=float(last.wall_time),
                            note=res.message.splitlines()[0] if res.message else "",
                        ),
                    )
                    if protocol == "authors" and solver == "maid":
                        _controls(args, rows_path, done, p, key, int(last.ll_iters))


def _controls(args, rows_path: Path, done: set, p, key: tuple, n_ll: int) -> None:
    """The controls the paper lacks (docs/maths.md §6) under ``authors``: TV with the ADP run's lower
    iterations, TV at α_eff solved."""
    import problems

    method = f"TV, {n_ll} iterations (as ADP maid)"
    if key + (method,) not in done and n_ll > 0:
        t0 = time.perf_counter()
        x = p.tv_baseline(n_iters=n_ll)
        m = p.metrics(p.theta0, x)
        _append(
            rows_path,
            dict(zip(FIELDS[:5], key + (method,), strict=True))
            | dict(psnr=m["psnr"], ssim=m["ssim"], ll_iters=n_ll, wall_time=time.perf_counter() - t0),
        )
    method = "TV at α_eff, solved"
    if key + (method,) in done:
        return
    # α_eff consistently: the authors' maths with the adjoint / step / stop deviations removed
    q = problems.make_problem(
        p.name,
        image=p.params["image"],
        size=p.params["size"],
        preset="authors-fix-adjoint+step+stop",
    )
    t0 = time.perf_counter()
    with q.uncounted():
        res = q.ll_solve(q.theta0, q.x0, args.control_tol, args.control_iters)
    m = q.metrics(q.theta0, res.x)
    _append(
        rows_path,
        dict(zip(FIELDS[:5], key + (method,), strict=True))
        | dict(
            psnr=m["psnr"],
            ssim=m["ssim"],
            ll_iters=res.iters,
            wall_time=time.perf_counter() - t0,
            note=f"‖∇h‖ = {res.dist_bound:.2e} (target {args.control_tol:g})",
        ),
    )


def run_big(args: argparse.Namespace, out: Path) -> None:
    """The authors' and the certified TV baselines at the paper's size."""
    rows_path = out / "rows.csv"
    done = _done(rows_path)
    h, w = (int(v) for v in args.big.split("x"))
    for protocol in args.big_protocols.split(","):
        for image in args.images.split(","):
            key = ("deblur2d", image, _size_str((h, w)), protocol)
            p = None
            for method in ("blurry", "TV"):
                if key + (method,) in done:
                    continue
                p = p or _instance("deblur2d", image, (h, w), protocol)
                t0 = time.perf_counter()
                x = p.y if method == "blurry" else p.tv_reference()
                m = p.metrics(p.theta0, x)
                _append(
                    rows_path,
                    dict(zip(FIELDS[:5], key + (method,), strict=True))
                    | dict(psnr=m["psnr"], ssim=m["ssim"], wall_time=time.perf_counter() - t0),
                )


SAME_WORK = "TV, as many iterations as ADP maid"


def _method_order(method: str) -> tuple[int, str]:
    rank = {"blurry": 0, "TV": 1, "ADP maid": 4, "ADP ift": 5, "ADP lista": 6}
    return rank.get(method, 2 if method.startswith("TV,") else 3), method


#: PSNR gaps within ± this many dB count as a tie in the ordering table
TIE_DB = 0.05


def ordering_table(rows) -> list[str]:
    """Per (size, protocol, problem, image): blurry, the protocol's TV and ADP-β PSNR per solver, and whether
    the paper's ordering blurry < TV < ADP-β holds for each solver (with the two gaps in dB)."""
    solvers = [m for m in ("ADP maid", "ADP ift", "ADP lista") if (rows.method == m).any()]
    head = "| size | protocol | problem | image | blurry | TV | " + " | ".join(solvers)
    head += " | " + " | ".join(f"ordering, {m.removeprefix('ADP ')}" for m in solvers) + " |"
    lines = [
        "## Does the paper's ordering blurry < TV < ADP-β hold? PSNR (dB)",
        "",
        f'"yes": both gaps (TV − blurry, ADP-β − TV, in brackets) above {TIE_DB} dB; "tie": one within',
        f'±{TIE_DB} dB; "no": one below −{TIE_DB} dB.',
        "",
        head,
        "|---" * head.count(" | ") + "|---|",
    ]
    for (size, protocol, problem, image), g in rows.groupby(
        ["size", "protocol", "problem", "image"], sort=False
    ):
        psnr = {m: float(g[g.method == m].psnr.iloc[0]) for m in g.method.unique()}
        if "blurry" not in psnr or "TV" not in psnr:
            continue
        b, t = psnr["blurry"], psnr["TV"]
        cells = [f"{psnr[m]:.2f}" if m in psnr else "" for m in solvers]
        verdicts = []
        for m in solvers:
            if m not in psnr:
                verdicts.append("")
                continue
            gaps = (t - b, psnr[m] - t)
            verdict = "yes" if min(gaps) > TIE_DB else ("no" if min(gaps) < -TIE_DB else "tie")
            verdicts.append(f"{verdict} ({gaps[0]:+.2f}, {gaps[1]:+.2f})")
        lines.append(
            f"| {size} | {protocol} | {problem} | {image} | {b:.2f} | {t:.2f} | "
            + " | ".join(cells + verdicts)
            + " |"
        )
    return lines + [""]


def write_summary(out: Path, command: str) -> str:
    import pandas as pd

    import protocols

    rows = pd.read_csv(out / "rows.csv")
    same_work = rows.method.str.endswith("iterations (as ADP maid)")
    rows.loc[same_work, "method"] = SAME_WORK
    runner = next((d / "run.sh" for d in (out, out.parent) if (d / "run.sh").exists()), None)
    made_by = f"`bash {runner}` (phases in order; rows.csv resumes)" if runner else f"`{command}`"
    lines = [f"# 2D study, made by {made_by}", ""]
    if EXTRA_PARAMS:
        given = ", ".join(f"{k}={v}" for k, v in EXTRA_PARAMS.items())
        lines += [f"Every instance with {given} (the `TV` column is that instance's TV baseline).", ""]
    lines += [
        "PSNR (dB) / SSIM of x clamped to [0, 1]; seed 0, noise 5/255, replicate boundary, float64, one",
        "torch thread per study process, two processes on a 2-core machine (solver seconds: indicative;",
        "compare work). ADP runs by name, i.e. with the protocol's solver settings; each cell: upper",
        "iterations, lower iterations, CG steps, solver seconds, status. Budget: see run.sh.",
        "",
    ]
    for size, by_size in rows.groupby("size", sort=False):
        for problem, grp in by_size.groupby("problem", sort=False):
            lines += [f"## {problem}, {size}", ""]
            methods = sorted(dict.fromkeys(grp.method), key=_method_order)
            lines += ["| protocol | image | " + " | ".join(methods) + " |"]
            lines += ["|---|---|" + "---|" * len(methods)]
            for (protocol, image), g in grp.groupby(["protocol", "image"], sort=False):
                cells = []
                for method in methods:
                    r = g[g.method == method]
                    if r.empty:
                        cells.append("")
                        continue
                    r = r.iloc[0]
                    cell = f"{r.psnr:.2f} / {r.ssim:.3f}"
                    if str(r.method).startswith("ADP"):
                        cell += f" ({int(r.upper_iters)} it, {int(r.ll_iters)} ll, {int(r.cg_iters)} cg, "
                        cell += f"{r.wall_time:.0f} s, {r.status})"
                    elif isinstance(r.note, str) and r.note.startswith("‖"):
                        cell += f" ({int(r.ll_iters)} ll, {r.note})"
                    elif method == SAME_WORK:
                        cell += f" ({int(r.ll_iters)} ll)"
                    cells.append(cell)
                lines.append(f"| {protocol} | {image} | " + " | ".join(cells) + " |")
            lines.append("")
    lines += ordering_table(rows)
    lines += ["Protocols (inconsistencies labelled; `adpbench list` prints what each sets):", ""]
    lines += [f"* {protocols.get(name).label}" for name in dict.fromkeys(rows.protocol)]
    lines.append("")
    text = "\n".join(lines)
    (out / "summary.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="128", help="N or HxW (e.g. 400x300)")
    ap.add_argument("--problems", default="deblur2d,semiblind2d")
    ap.add_argument("--images", default="astronaut,coffee,chelsea")
    ap.add_argument("--protocols", default=None, help="comma-separated (default: protocols.ablation_rows())")
    ap.add_argument("--solvers", default="maid,ift,lista")
    ap.add_argument("--ablation-solvers", default="maid", help="solvers for the authors-fix-* rows")
    ap.add_argument("--max-ll-iters", type=int, default=1500)
    ap.add_argument("--max-time", type=float, default=25.0)
    ap.add_argument("--control-tol", type=float, default=1e-3)
    ap.add_argument("--control-iters", type=int, default=5000)
    ap.add_argument("--big", default="400x300", help="H×W of the paper-size TV baselines ('' = none)")
    ap.add_argument("--big-protocols", default="authors,certified")
    ap.add_argument("--out", default="results/study2d")
    ap.add_argument("--summary-only", action="store_true")
    ap.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="problem parameter, all instances"
    )
    args = ap.parse_args(argv)
    EXTRA_PARAMS.clear()
    EXTRA_PARAMS.update(dict(_parse_param(t) for t in args.param))
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        run_grid(args, out)
        if args.big:
            run_big(args, out)
    argv = sys.argv[1:] if argv is None else argv
    print(write_summary(out, "OMP_NUM_THREADS=1 python -m studies.study2d " + " ".join(argv)))


if __name__ == "__main__":
    main()
