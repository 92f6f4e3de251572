"""The HTML page shell the reports share: colours, stylesheet, the few lines of script, and
the side of a comparison as a plotted series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from loadtest.analysis.compare.model import Run

COLOURS = ("#1f6fb4", "#e8710a")
OP_COLOURS = (
    "#1f6fb4",
    "#e8710a",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
NINES_MAX = 5.0

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1f24;max-width:1800px}
h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.headline{font-size:17px;font-weight:600;padding:8px 12px;border-radius:6px;display:inline-block}
.bad{background:#ffebe9;color:#a40e26}.good{background:#dafbe1;color:#116329}
table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f6f8fa}td.l,th.l{text-align:left}
tr.regressed td{background:#ffebe9}tr.improved td{background:#dafbe1}tr.inconclusive td{background:#fff8c5}tr.nodata td{color:#8c959f}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #d0d7de;border-radius:6px;font-size:11px}
svg.chart text{fill:#1b1f24}svg.chart text.t{font-size:13px;font-weight:600}svg.chart text.a{fill:#57606a}
svg.chart text.n{fill:#8c959f;font-size:14px}svg.chart rect.plot{fill:none;stroke:#8c959f}
svg.chart line.g{stroke:#eaeef2}
.silent{background:#ffebe9;border:2px solid #cf222e;padding:8px 12px;border-radius:6px}
.muted{color:#57606a}code{background:#f6f8fa;padding:1px 4px;border-radius:4px}
table.wrap td{white-space:normal;max-width:1000px}
"""

SCRIPT = """
(function(){
  var plots=document.querySelectorAll('svg.chart').length;
  var box=document.getElementById('only-flagged');
  if(box){box.addEventListener('change',function(){
    document.querySelectorAll('#all-metrics tr.unchanged,#all-metrics tr.nodata').forEach(function(r){
      r.style.display=box.checked?'none':'';});});}
  document.body.setAttribute('data-plots',String(plots));
  document.title=document.title+' \\u2014 ready ('+plots+' plots)';
})();
"""


@dataclass(frozen=True)
class SideView:
    name: str
    colour: str
    runs: Sequence[Run]


def page(title: str, body: Sequence[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


def write_html(text: str, path: Path) -> None:
    path.write_text(text, encoding="utf-8")
