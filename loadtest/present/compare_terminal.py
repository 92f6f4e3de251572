"""The comparison as a terminal table: colour on a TTY, plain text otherwise."""

from __future__ import annotations

from collections.abc import Sequence

from loadtest.analysis.compare.model import split_target
from loadtest.analysis.compare.verdicts import IMPROVED, NOT_COMPARABLE, NOT_ENOUGH, REGRESSED, Comparison
from loadtest.present.format import (
    METHODS_NOTE,
    fmt_ci,
    fmt_p,
    fmt_ratio,
    fmt_value,
    fmt_verdict,
    settings_line,
    side_summary,
)
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
        settings_line(c),
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
        elif row.verdict in (NOT_ENOUGH, NOT_COMPARABLE):
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
    notes = [row for row in c.rows if row.note and row.verdict not in (NOT_ENOUGH,)]
    if notes:
        lines.append("")
        lines.extend(f"{row.key}: {row.note}" for row in notes)
    if any(row.method for row in c.rows):
        lines.append(style.dim(METHODS_NOTE))
    return "\n".join(lines)
