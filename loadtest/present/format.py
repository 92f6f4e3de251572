"""How comparison numbers are written, the same in every report (fixed formats: golden-testable)."""

from __future__ import annotations

from loadtest.analysis.compare.verdicts import (
    IMPROVED,
    INCONCLUSIVE,
    METHOD,
    NOT_COMPARABLE,
    NOT_ENOUGH,
    REGRESSED,
    Comparison,
    Metric,
    Row,
)
from loadtest.core.units import format_latency_us

__all__ = [
    "METHODS_NOTE",
    "fmt_ci",
    "fmt_p",
    "fmt_ratio",
    "fmt_value",
    "fmt_verdict",
    "settings_line",
    "side_summary",
]

#: How the figures were tested, said at the foot of every comparison report.
METHODS_NOTE = (
    "With at least 3 runs a side: Welch's t on the logarithms of the per-run values (A and B are "
    "geometric means over runs). With fewer: medians, and a block bootstrap over "
    "per-second intervals (thin: the spread between runs is not seen, so never a verdict). Errors and silent "
    "failures: Fisher's exact test on counts. The report controls for its many figures: "
    + METHOD
    + "; a change that does not clear it is inconclusive and never fails the exit code. "
    "max is shown, never gated."
)


def fmt_value(metric: Metric, value: float | None) -> str:
    if value is None:
        return "-"
    if metric.kind == "rate":
        return f"{value:.1f}"
    if metric.kind == "latency":
        return format_latency_us(value)
    if metric.kind == "fraction":
        return f"{value * 100:.2f}%"
    if metric.kind == "health":
        return f"{value:g}" if metric.key == "threads_peak" else f"{value:+.2f} {metric.unit}"
    return str(round(value))


def fmt_ratio(row: Row) -> str:
    if row.diff is not None:
        # Health figures are compared as a difference (A may be near zero).
        return f"Δ {row.diff:+.2f}" if row.metric.kind == "health" else f"Δ {row.diff:+g}"
    if row.ratio is None:
        return "new" if row.b and not row.a else "-"
    return f"{row.ratio:.2f}x"


def fmt_ci(row: Row) -> str:
    if row.ci is None:
        return "-"
    return f"[{row.ci[0]:.2f}, {row.ci[1]:.2f}]"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"


def fmt_verdict(row: Row) -> str:
    text = row.verdict
    if row.thin and row.verdict not in (NOT_ENOUGH, NOT_COMPARABLE):
        text += " (thin)"
    if not row.metric.gated and row.verdict in (REGRESSED, IMPROVED, INCONCLUSIVE):
        text += " (not gated)"
    return text


def settings_line(comparison: Comparison) -> str:
    """``minimum effect 5%, significance 0.05 over 14 gated figures (Benjamini-Hochberg)``."""
    c = comparison
    figures = c.evidence()["gated_figures"]
    return (
        f"minimum effect {c.min_effect:.0%}, significance {c.alpha:g} for the report "
        f"({METHOD.split(' over')[0]} over {figures} gated figures), 95% intervals of B/A"
    )


def side_summary(label: str, runs: int, sdks: list[str], clients: list[str] | None = None) -> str:
    """``a (4 runs, mcp 2.3.0)``; with client figures (runs since SDK-client mode):
    ``a (4 runs, server mcp 2.3.0; client: mcp 1.8.0 SDK, CPU/call http 1.2ms)``."""
    if clients:
        sdk = f", server {', '.join(sdks)}" if sdks else ""
        client = "; client: " + "; ".join(clients)
    else:
        sdk = f", {', '.join(sdks)}" if sdks else ""
        client = ""
    return f"{label} ({runs} run{'s' if runs != 1 else ''}{sdk}{client})"
