"""Small inline-SVG line charts for the HTML report (no JavaScript library, no network).

Log axes are drawn with 1-2-5 ticks; the percentile axis is HdrHistogram's "nines" axis:
x = log10(1 / (1 - p)), so 90%, 99%, 99.9% and 99.99% are equally spaced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Series", "line_chart"]

_W, _H = 560, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 30, 62


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False
    #: Several series may share one legend entry (one per run of a side).
    legend: bool = True


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _log_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    k = math.floor(math.log10(max(lo, 1e-12)))
    while 10**k <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10**k
            if lo * 0.9999 <= v <= hi * 1.0001:
                ticks.append(float(v))
        k += 1
    if len(ticks) > 8:
        ticks = [t for t in ticks if round(t / 10 ** math.floor(math.log10(t))) == 1]
    return ticks


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    log_y: bool = False,
    y_format: Callable[[float], str] = lambda v: f"{v:g}",
    x_ticks: Sequence[tuple[float, str]] | None = None,
    y_zero: bool = False,
) -> str:
    """An SVG line chart; empty series are left out, and a chart with no data says so."""
    drawn = [s for s in series if any(math.isfinite(y) and (y > 0 or not log_y) for _, y in s.points)]
    head = f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img">'
    head += f"<title>{escape(title)}</title>"
    head += f'<text x="{_W / 2}" y="18" text-anchor="middle" class="t">{escape(title)}</text>'
    if not drawn:
        return head + f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" class="n">no data</text></svg>'
    xs = [x for s in drawn for x, y in s.points if math.isfinite(y)]
    ys = [y for s in drawn for _, y in s.points if math.isfinite(y) and (y > 0 or not log_y)]
    x0, x1 = min(xs), max(xs)
    if x_ticks:
        x0, x1 = min(x0, x_ticks[0][0]), max(x1, x_ticks[-1][0])
    if x1 <= x0:
        x1 = x0 + 1
    y0, y1 = min(ys), max(ys)
    if log_y:
        y0, y1 = y0 / 1.15, y1 * 1.15
    else:
        y0 = 0.0 if y_zero or y0 >= 0 else y0
        y1 = y1 * 1.08 if y1 > 0 else 1.0
    if y1 <= y0:
        y1 = y0 + 1
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def px(x: float) -> float:
        return _LEFT + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        frac = (math.log(y) - math.log(y0)) / (math.log(y1) - math.log(y0)) if log_y else (y - y0) / (y1 - y0)
        return _TOP + ph - frac * ph

    parts = [head]
    parts.append(f'<rect x="{_LEFT}" y="{_TOP}" width="{pw}" height="{ph}" class="plot"/>')
    for t in _log_ticks(y0, y1) if log_y else _nice_ticks(y0, y1):
        y = py(t)
        parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + pw}" y1="{_fmt(y)}" y2="{_fmt(y)}" class="g"/>')
        parts.append(
            f'<text x="{_LEFT - 6}" y="{_fmt(y + 4)}" text-anchor="end">{escape(y_format(t))}</text>'
        )
    for t, label in x_ticks or [(t, f"{t:g}") for t in _nice_ticks(x0, x1, 6)]:
        x = px(t)
        parts.append(f'<line x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{_TOP}" y2="{_TOP + ph}" class="g"/>')
        parts.append(f'<text x="{_fmt(x)}" y="{_TOP + ph + 15}" text-anchor="middle">{escape(label)}</text>')
    parts.append(
        f'<text x="{_LEFT + pw / 2}" y="{_TOP + ph + 32}" text-anchor="middle" class="a">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="14" y="{_TOP + ph / 2}" text-anchor="middle" class="a" transform="rotate(-90 14 {_TOP + ph / 2})">{escape(y_label)}</text>'
    )
    for s in drawn:
        pts = " ".join(
            f"{_fmt(px(x))},{_fmt(py(y))}" for x, y in s.points if math.isfinite(y) and (y > 0 or not log_y)
        )
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        parts.append(
            f'<polyline points="{pts}" fill="none" stroke="{s.colour}" stroke-width="1.6" stroke-opacity="0.85"{dash}/>'
        )
    legend = [s for s in drawn if s.legend]
    lx = _LEFT
    for s in legend:
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        y = _H - 12
        parts.append(
            f'<line x1="{lx}" x2="{lx + 22}" y1="{y - 4}" y2="{y - 4}" stroke="{s.colour}" stroke-width="2"{dash}/>'
        )
        parts.append(f'<text x="{lx + 26}" y="{y}">{escape(s.label)}</text>')
        lx += 34 + 7 * min(len(s.label), 40)
    parts.append("</svg>")
    return "".join(parts)
