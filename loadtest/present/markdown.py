"""The comparison as GitHub-flavoured markdown: for ``$GITHUB_STEP_SUMMARY`` and PR comments.

Verdicts come first (new silent failures, then regressions and improvements); the full table
is folded in a ``<details>`` block. The text stays under GitHub's 1 MiB limit: when the full
table would not fit, its tail is cut and the cut is said.
"""

from __future__ import annotations

from collections.abc import Iterable

from loadtest.analysis.compare.health import HEALTH_OP
from loadtest.analysis.compare.model import split_target
from loadtest.analysis.compare.verdicts import (
    IMPROVED,
    INCONCLUSIVE,
    NOT_COMPARABLE,
    NOT_ENOUGH,
    REGRESSED,
    Comparison,
    Row,
)
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
from loadtest.present.wire_diffs import by_cause

__all__ = ["MAX_BYTES", "render_markdown"]

#: GitHub refuses step summaries and comments above 1 MiB; keep a margin.
MAX_BYTES = 1_000_000
_ICON = {REGRESSED: "🔴", IMPROVED: "🟢", INCONCLUSIVE: "🟡", NOT_ENOUGH: "⚪", NOT_COMPARABLE: "⚪"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: Iterable[Row]) -> list[str]:
    lines = [
        "| | transport/op | metric | A | B | B/A | 95% CI | p | verdict |",
        "|---|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        icon = _ICON.get(row.verdict, "") if row.metric.gated or row.verdict == NOT_ENOUGH else ""
        cells = [
            icon,
            f"{row.transport}/{row.op}",
            row.metric.label,
            fmt_value(row.metric, row.a),
            fmt_value(row.metric, row.b),
            fmt_ratio(row),
            fmt_ci(row),
            fmt_p(row.p),
            fmt_verdict(row) + (f" — {row.note}" if row.note else ""),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _health_section(rows: list[Row]) -> list[str]:
    return [
        "### Server health",
        "",
        "Per transport, from the launched server's health in each run (B − A for figures; "
        "figures only from runs with enough data).",
        "",
        *_table(rows),
        "",
    ]


def render_markdown(comparison: Comparison, *, max_bytes: int = MAX_BYTES) -> str:
    """The markdown report (deterministic: no clock, stable order, fixed number formats)."""
    c = comparison
    title = "🔴 regression" if c.regressed else "✅ no regression"
    lines = [
        f"## mcp-loadtest compare: {title}",
        "",
        f"**{c.headline()}**",
        "",
        f"- **A**: {_cell(side_summary(c.a.label, len(c.a.runs), c.a.sdks, c.a.clients))}",
        f"- **B**: {_cell(side_summary(c.b.label, len(c.b.runs), c.b.sdks, c.b.clients))}",
        *(f"- **target differs**: {_cell(t)}" for t in split_target(c.warnings)[0]),
        f"- {settings_line(c)}",
        "",
    ]
    if c.new_silent:
        lines.append("### 🚨 New silent failures")
        lines.append("")
        for item in c.new_silent:
            lines.append(f"- **{_cell(str(item))}**")
            lines.extend(f"  - `{_cell(example)}`" for example in item.examples)
        lines.append("")
    health = [row for row in c.rows if row.op == HEALTH_OP]
    if health and c.health_changes:
        # A change in server health leads: a leak matters more than a latency percentile.
        lines.extend(_health_section(health))
    lines.append("### Verdicts")
    lines.append("")
    order = {REGRESSED: 0, IMPROVED: 1, INCONCLUSIVE: 2, NOT_COMPARABLE: 3}
    flagged = [row for row in c.rows if row.verdict in order and row.metric.gated]
    flagged.sort(key=lambda row: order[row.verdict])
    if flagged:
        lines.extend(_table(flagged))
    else:
        lines.append(f"No metric changed by {c.min_effect:.0%} or more with significance.")
    lines.append("")
    if health and not c.health_changes:
        lines.extend(_health_section(health))
    if c.check_diffs:
        lines.append("### Wire-behaviour differences (conformance checks)")
        lines.append("")
        lines.append("| check | status A → B | observed A → B |")
        lines.append("|---|---|---|")
        causes, single = by_cause(c.check_diffs)
        for group in causes:
            lines.append(
                f"| {len(group.ids)} checks | unchanged | {_cell(group.cause)}: {_cell(', '.join(group.ids))} |"
            )
        for diff in single:
            status = " → ".join(str(s) for s in diff["status"])
            observed = " → ".join(str(o) if o is not None else "(absent)" for o in diff["observed"])
            lines.append(f"| `{_cell(diff['id'])}` | {_cell(status)} | {_cell(observed)} |")
        lines.append("")
    elif c.checks_note:
        lines.append(f"Conformance checks: {c.checks_note}.")
        lines.append("")
    warnings = split_target(c.warnings)[1]
    if warnings:
        lines.append("### Warnings")
        lines.append("")
        lines.extend(f"- {_cell(w)}" for w in warnings)
        lines.append("")
    head = "\n".join(lines)
    all_rows = _table(c.rows)
    tail = [
        "",
        "</details>",
        "",
        f"<sub>{METHODS_NOTE}</sub>",
        "",
    ]
    body = ["<details><summary>All metrics</summary>", ""]
    budget = max_bytes - len(head.encode()) - len("\n".join(tail).encode()) - 200
    used = 0
    for index, line in enumerate(all_rows):
        size = len(line.encode()) + 1
        if used + size > budget:
            body.append("")
            body.append(
                f"*{len(all_rows) - index} more rows cut to stay under {max_bytes} bytes; see the JSON report.*"
            )
            break
        body.append(line)
        used += size
    return head + "\n" + "\n".join(body + tail)
