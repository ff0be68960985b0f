"""The HTML report: written beside summary.md, self-contained, and rendered without errors by a real
browser (headless Chromium, skipped where there is none), with every solver in the plots' legends."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import cli, html_figures, html_report, report

SOLVERS = ("maid", "ift")
#: a tiny sweep: deconv1d at n = 64, a few upper iterations, two solvers, two seeds (a few seconds)
SWEEP = ["-p", "deconv1d", "--param", "deconv1d.n=64", "-s", ",".join(SOLVERS), "--seed", "0,1"]
SWEEP += ["--max-iters", "8"]
#: what Chromium writes to stderr (--enable-logging) when a page's script fails or a resource is missing
JS_ERRORS = re.compile(r"Uncaught|Failed to load resource|ERR_FILE_NOT_FOUND|ERR_NAME_NOT_RESOLVED")
#: headless Chromium's own limit per page (the page is ~5 MB of embedded Plotly)
BROWSER_TIMEOUT = 120


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html") / "sweep"
    assert cli.main(["run", "--no-progress", *SWEEP, "-o", str(out)]) == 0
    return out


def chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = ["chromium", "--headless=new", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr"]
    command += ["--v=0", "--window-size=1400,2000", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=BROWSER_TIMEOUT)


def test_report_html_is_written_and_self_contained(swept):
    page = (swept / report.HTML_FILE).read_text(encoding="utf-8")
    assert "summary.md" in os.listdir(swept)
    # offline: no script or stylesheet is fetched from anywhere
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page)
    assert "Plotly.newPlot" in page and 'class="sortable"' in page
    assert "adpbench run --no-progress -p deconv1d" in page  # the recorded command line
    assert "data:image/png;base64," in page  # the reconstruction figure, embedded
    assert f"[{report.HTML_FILE}]({report.HTML_FILE})" in (swept / "summary.md").read_text()


def test_no_html_flag(swept, tmp_path, capsys):
    copy = shutil.copytree(swept, tmp_path / "copy")
    (copy / report.HTML_FILE).unlink()
    assert cli.main(["report", str(copy), "--no-figures", "--no-html"]) == 0
    assert (copy / "summary.md").is_file() and not (copy / report.HTML_FILE).exists()
    assert report.HTML_FILE not in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium on PATH (apt-get install chromium)")
def test_report_renders_in_headless_chromium(swept, tmp_path):
    url = (swept / report.HTML_FILE).resolve().as_uri()
    shot = tmp_path / "report.png"
    dom = chromium("--dump-dom", url, cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert not JS_ERRORS.search(dom.stderr), JS_ERRORS.findall(dom.stderr)
    legend = re.findall(r'<text class="legendtext"[^>]*>([^<]*)</text>', dom.stdout)
    for solver in SOLVERS:  # Plotly has drawn the convergence figure: every solver is in its legend
        assert solver in legend, legend
    assert 'class="main-svg"' in dom.stdout
    taken = chromium(f"--screenshot={shot}", url, cwd=tmp_path)
    assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    if os.environ.get("ADPBENCH_ARTEFACTS"):
        folder = Path(os.environ["ADPBENCH_ARTEFACTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, folder / "report.png")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium on PATH (apt-get install chromium)")
def test_the_error_check_sees_a_failing_script(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>notDefinedAnywhere();</script></body></html>")
    done = chromium("--dump-dom", bad.as_uri(), cwd=tmp_path)
    assert JS_ERRORS.search(done.stderr), done.stderr[-2000:]


# ------------------------------------------------------------------------- without a browser
def synthetic_traces() -> pd.DataFrame:
    """Two seeds of one solver, the second one iteration shorter, with exact values every other row."""
    rows = []
    for seed, n in ((0, 5), (1, 4)):
        for k in range(n):
            rows.append(
                dict(
                    run_id=f"r{seed}",
                    case="toy",
                    solver="maid",
                    seed=seed,
                    iteration=k,
                    wall_time=0.1 * (k + 1),
                    ll_iters=10 * k,
                    cg_iters=k,
                    upper_value=1.0 / (k + 1) + seed,
                    suboptimality=1.0 / (k + 1) if k % 2 == 0 else math.nan,
                    verdict="budget" if k == n - 1 else None,
                )
            )
    return pd.DataFrame(rows)


def test_convergence_axes_median_and_band():
    traces = synthetic_traces()
    assert html_figures.axes_present(traces) == (
        ["wall_time", "iteration", "ll_iters", "cg_iters"],
        ["suboptimality", "upper_value"],
    )
    fig = html_figures.convergence(traces, "toy")
    lo, hi, median = fig.data
    assert median.name == "maid" and not lo.showlegend and hi.fill == "tonexty"
    # y: suboptimality first; median only while both seeds run (iterations 0-3), band to the end
    assert list(median.y) == [1.0, None, 1 / 3, None, None]
    assert list(hi.y) == [1.0, None, 1 / 3, None, 0.2]
    upper = next(b for b in fig.layout.updatemenus[1].buttons if "own" in b.label).args[0]["y"]
    # seeds: 1/(k+1) and 1 + 1/(k+1); the median while both run, then only the band (seed 0 alone)
    assert np.allclose(upper[2][:4], [1.5, 1.0, 5 / 6, 0.75]) and upper[2][4] is None
    assert np.allclose(upper[1], [2.0, 1.5, 4 / 3, 1.25, 0.2]) and np.allclose(
        upper[0][:4], [1, 0.5, 1 / 3, 0.25]
    )


def test_summary_table_sorts_on_values_and_shows_verdicts():
    traces = synthetic_traces()
    runs = pd.DataFrame(
        [dict(run_id=f"r{s}", case="toy", setting="", config="", problem="p", solver="maid") for s in (0, 1)]
    )
    table = pd.DataFrame(
        [dict(case="toy", setting="", config="", problem="p", solver="maid", status="budget")]
    )
    table["wall_time"] = [math.nan]
    text = html_report.summary_table(
        html_report.with_verdicts(table, traces, runs), ["case", "status", "wall_time"]
    )
    assert "<th>verdict</th>" in text and '<td class="text" data-v="budget">budget</td>' in text
    assert 'data-v="Infinity">—</td>' in text  # a missing number sorts last


def test_profile_figures_from_a_targets_table():
    rows = []
    for instance, solver, time in (("a", "maid", 1.0), ("a", "ift", 2.0), ("b", "maid", math.inf)):
        rows.append(
            dict(instance=instance, seed=0, solver=solver, config="", target=1e-2, target_kind="rel_gap")
            | dict(reached=math.isfinite(time), time=time, ll_iters=time, work=time)
        )
    rows.append(rows[-1] | dict(solver="ift", time=3.0, ll_iters=3.0, work=3.0, reached=True))
    figures = dict(html_figures.profile_figures(pd.DataFrame(rows)))
    assert list(figures) == ["Performance profiles", "Data profiles", "Runtime ECDF"]
    perf = figures["Performance profiles"]
    names = [t.name for t in perf.data if t.visible is not False]
    assert names == ["maid (1/2)", "ift (2/2)"]  # the first menu entry (time, the one target) is shown
    maid = perf.data[0]
    assert maid.y[0] == 0.5 and maid.y[-1] == 0.5  # fastest on a, never solves b
