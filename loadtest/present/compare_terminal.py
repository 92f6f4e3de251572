"""The comparison as a terminal table: colour on a TTY, plain text otherwise."""

from __future__ import annotations

from collections.abc import Sequence

from loadtest.analysis.compare.model import split_target
from loadtest.analysis.compare.verdicts import IMPROVED, NOT_ENOUGH, REGRESSED, Comparison
from loadtest.present.format import fmt_ci, fmt_p, fmt_ratio, fmt_value, fmt_verdict, side_summary
from loadtest.present.terminal import Style
from loadtest.present.wire_diffs import group_differences, render_groups

__all__ = ["render_comparison"]

_COLUMNS = ("transport", "op", "metric", "A", "B", "B/A", "95% CI", "p", "verdict")
_LEFT = frozenset({"transport", "op", "metric", "verdict"})


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(_COLUMNS)]
    return [
        "  ".join(
            c.ljust(w) if _COLUMNS[i] in _LEFT else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()
        for cells in (_COLUMNS, *rows)
    ]


def render_comparison(comparison: Comparison, style: Style) -> str:
    """Headline and new silent failures first, then the table, wire differences and notes."""
    c = comparison
    lines = [
        (style.red if c.regressed else style.green)(c.headline()),
        f"A: {side_summary(c.a.label, len(c.a.runs), c.a.sdks, c.a.clients)}",
        f"B: {side_summary(c.b.label, len(c.b.runs), c.b.sdks, c.b.clients)}",
        *(f"target differs: {t}" for t in split_target(c.warnings)[0]),
        f"minimum effect {c.min_effect:.0%}, significance {c.alpha:g}",
    ]
    for item in c.new_silent:
        lines.append(style.red(f"NEW SILENT FAILURES {item}"))
        lines.extend(f"    {example}" for example in item.examples)
    lines.append("")
    cells = [
        [
            row.transport,
            row.op,
            row.metric.label,
            fmt_value(row.metric, row.a),
            fmt_value(row.metric, row.b),
            fmt_ratio(row),
            fmt_ci(row),
            fmt_p(row.p),
            fmt_verdict(row),
        ]
        for row in c.rows
    ]
    table = _table(cells)
    lines.append(style.bold(table[0]))
    for row, text in zip(c.rows, table[1:], strict=True):
        if row.verdict == REGRESSED and row.metric.gated:
            text = style.red(text)
        elif row.verdict == IMPROVED and row.metric.gated:
            text = style.green(text)
        elif row.verdict == NOT_ENOUGH:
            text = style.dim(text)
        lines.append(text)
    if c.check_diffs:
        lines.append("")
        lines.append(style.bold("wire-behaviour differences (conformance checks)"))
        lines.extend(render_groups(group_differences(c.check_diffs)))
    warnings = split_target(c.warnings)[1]
    if warnings:
        lines.append("")
        lines.extend(style.red(f"warning: {w}") for w in warnings)
    methods = sorted({row.method.split(" (")[0] for row in c.rows if row.method})
    if methods:
        lines.append(
            style.dim(
                "methods: "
                + "; ".join(methods)
                + ". thin: one run or a few per side; the spread between runs is not seen."
            )
        )
    return "\n".join(lines)
