"""How comparison numbers are written, the same in every report (fixed formats: golden-testable)."""

from __future__ import annotations

from loadtest.analysis.compare.verdicts import IMPROVED, NOT_ENOUGH, REGRESSED, Metric, Row
from loadtest.core.units import format_latency_us

__all__ = ["fmt_ci", "fmt_p", "fmt_ratio", "fmt_value", "fmt_verdict", "side_summary"]


def fmt_value(metric: Metric, value: float | None) -> str:
    if value is None:
        return "-"
    if metric.kind == "rate":
        return f"{value:.1f}"
    if metric.kind == "latency":
        return format_latency_us(value)
    if metric.kind == "fraction":
        return f"{value * 100:.2f}%"
    return str(round(value))


def fmt_ratio(row: Row) -> str:
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
    if row.thin and row.verdict != NOT_ENOUGH:
        text += " (thin)"
    if not row.metric.gated and row.verdict in (REGRESSED, IMPROVED):
        text += " (not gated)"
    return text


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
