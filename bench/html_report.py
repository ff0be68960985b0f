"""The report as one self-contained HTML page (``report.html`` beside ``summary.md``): opens offline.

Sections: notes (mixed configurations, damaged runs), the summary table (sorts on a header click), the
convergence curves per case with menus for the axes (``bench/html_figures.py``), the profiles and ECDFs
across instances where the runs have targets (``bench/profiles.py``), the reconstruction, kernel and other
figures the report wrote as PNG (embedded), and the provenance with the recorded command lines. Plotly's
JavaScript is embedded once, in the page head; nothing is fetched from the network.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.io as pio
import plotly.offline

from bench import html_figures, plots, profiles

#: the columns the summary groups runs by (``bench.report.summarize``)
GROUP_KEYS = ["case", "setting", "config", "problem", "solver"]
#: figures the page draws itself (interactive), so their PNGs are not embedded again
DRAWN = {"convergence.png", *profiles.FIGURES.values()}
#: a plain, printable page
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; padding: 0 1em; max-width: 1320px; }
table.sortable { border-collapse: collapse; font-size: 13px; }
table.sortable th, table.sortable td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
table.sortable td { white-space: nowrap; }
table.sortable th { background: #eef; cursor: pointer; position: sticky; top: 0; }
table.sortable th:hover { background: #dde; }
table.sortable td.text { text-align: left; }
.note { background: #fff6dd; border-left: 4px solid #e6a700; padding: 4px 10px; }
figure img { max-width: 100%; border: 1px solid #ddd; }
.wide { overflow-x: auto; }
pre { background: #f5f5f5; padding: 8px; overflow-x: auto; }
"""
#: sorting the summary table: the one piece of script the page adds to Plotly's
SORT_JS = """
document.querySelectorAll("table.sortable th").forEach((th, i) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], rows = Array.from(body.rows);
  const dir = th.dataset.dir === "asc" ? -1 : 1;
  th.closest("tr").querySelectorAll("th").forEach(h => delete h.dataset.dir);
  th.dataset.dir = dir > 0 ? "asc" : "desc";
  const key = r => { const v = r.cells[i].dataset.v, n = Number(v); return v !== "" && !isNaN(n) ? n : v; };
  rows.sort((a, b) => { const x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * dir; });
  rows.forEach(r => body.appendChild(r));
}));
"""


@dataclass
class Page:
    """What the page shows, as the markdown report computed it (``bench.report.write_report``)."""

    title: str
    traces: pd.DataFrame  # every run's trace, with ``case`` and ``config`` labels
    runs: pd.DataFrame  # one row per run (``bench.report.per_run``)
    table: pd.DataFrame  # the summary (``bench.report.summarize``)
    columns: list[str]  # the summary's columns, in order
    targets: pd.DataFrame | None = None  # the targets table of exact values, when the runs have one
    figures: list[str] = field(default_factory=list)  # PNG files the report wrote into the folder
    notes: list[str] = field(default_factory=list)
    provenance: list[str] = field(default_factory=list)


def _inline(text: str) -> str:
    """Escaped text with markdown's **bold** and `code` as HTML."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _cell(value: object) -> str:
    from bench.report import _fmt

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        key = "Infinity" if math.isnan(number) else repr(number)  # missing values sort last
        return f'<td data-v="{key}">{html.escape(_fmt(number))}</td>'
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    key = html.escape(text.replace("**", ""))  # the summary marks contradicted verdicts in **bold**
    return f'<td class="text" data-v="{key}">{_inline(text)}</td>'


def with_verdicts(table: pd.DataFrame, traces: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The summary with ``verdict``: the harness's verdicts of its runs (distinct, joined), when the traces
    record them and the summary does not have them yet."""
    if "verdict" in table or "verdict" not in traces:
        return table
    last = traces.dropna(subset=["verdict"]).groupby("run_id").verdict.last()
    verdicts = runs.assign(verdict=runs.run_id.map(last)).groupby(GROUP_KEYS, sort=False).verdict
    joined = verdicts.agg(lambda s: ",".join(sorted(set(s.dropna().astype(str))))).reset_index()
    return table.merge(joined, on=GROUP_KEYS, how="left")


def summary_table(table: pd.DataFrame, columns: list[str]) -> str:
    """The summary as a sortable HTML table (click a header; again to reverse)."""
    cols = [c for c in columns if c in table.columns]
    if "verdict" in table and "verdict" not in cols:
        cols.insert(cols.index("status") + 1 if "status" in cols else len(cols), "verdict")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "\n".join("<tr>" + "".join(_cell(row[c]) for c in cols) + "</tr>" for _, row in table.iterrows())
    table_html = f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'
    return f'<div class="wide">{table_html}</div>'


def _figure(fig) -> str:
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(path.name)
    img = f'<img alt="{name}" src="data:image/png;base64,{data}">'
    return f"<figure>{img}<figcaption>{name}</figcaption></figure>"


def _provenance(page: Page) -> list[str]:
    parts = [f"<p>{_inline(text)}</p>" for text in page.provenance if text]
    if "command" in page.traces:
        commands = list(dict.fromkeys(page.traces.command.dropna().astype(str)))
        parts += ["<p>Command line(s) that made these runs:</p>"]
        parts += [f"<pre>{html.escape(c)}</pre>" for c in commands]
    else:
        parts.append("<p>No command line recorded in these traces (runs made before it was recorded).</p>")
    return parts


def render(page: Page, out_dir: Path) -> str:
    """The page's HTML text; PNG figures are read from ``out_dir``."""
    body = [f"<h1>{html.escape(page.title)}</h1>"]
    body += [f'<p class="note">{_inline(n)}</p>' for n in page.notes]
    body += [
        "<h2>Summary</h2>",
        "<p>Medians over the seeds of one configuration (<code>runs</code>: how many); times are solver "
        "seconds (evaluation excluded). Click a column header to sort.</p>",
        summary_table(with_verdicts(page.table, page.traces, page.runs), page.columns),
        "<h2>Convergence</h2>",
        "<p>Menus: the x axis (solver time, upper or lower iterations, HVPs), the y axis (the harness's "
        "exact values where recorded, the solver's own upper value) and the scales. Click a legend entry to "
        "hide or show a solver.</p>",
    ]
    for case in plots.figure_cases(page.traces.case):
        body += [f"<h3>{html.escape(case)}</h3>", _figure(html_figures.convergence(page.traces, case))]
    body.append("<h2>Across instances</h2>")
    drawn = html_figures.profile_figures(page.targets) if page.targets is not None else []
    if not drawn:
        body.append("<p>No targets were evaluated in these runs: no profiles or ECDFs.</p>")
    for heading, fig in drawn:
        body += [f"<h3>{html.escape(heading)}</h3>", _figure(fig)]
    images = [n for n in page.figures if n not in DRAWN and n.endswith(".png") and (out_dir / n).is_file()]
    if images:
        body += [
            "<h2>Reconstructions, kernels and other figures</h2>",
            *(_image(out_dir / n) for n in images),
        ]
    body += ["<h2>Provenance</h2>", *_provenance(page)]
    body.append(f"<p>Rewrite this page: <code>adpbench report {html.escape(str(out_dir))}</code></p>")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(page.title)}</title>",
            f"<style>{STYLE}</style>",
            f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>',
            "</head><body>",
            *body,
            f"<script>{SORT_JS}</script>",
            "</body></html>",
        ]
    )


def write(page: Page, path: str | Path) -> Path:
    """Write the page to ``path`` (its folder holds the report's PNG figures)."""
    path = Path(path)
    path.write_text(render(page, path.parent), encoding="utf-8")
    return path
