"""The terminal table of check results: id, status (coloured on a TTY), observed; a summary line."""

from __future__ import annotations

from collections.abc import Sequence

from loadtest.conformance.model import CheckResult, summarize

_COLOURS = {"SUCCESS": "32", "FAILURE": "31", "WARNING": "33", "SKIPPED": "2", "INFO": "36"}


def render_checks(results: Sequence[CheckResult], *, colour: bool = False) -> str:
    """One row per check, grouped by transport, and the count of each status."""
    width = max((len(r.id) for r in results), default=10)
    lines = [f"{'check':<{width}}  {'status':<8}  observed"]
    transport = None
    for result in results:
        if result.transport != transport:
            transport = result.transport
            lines.append(f"-- {transport} " + "-" * max(0, width - len(transport)))
        status = f"{result.status:<8}"
        if colour:
            status = f"\x1b[{_COLOURS[result.status]}m{status}\x1b[0m"
        line = f"{result.id:<{width}}  {status}  {result.observed}"
        if result.error_message and result.status in ("FAILURE", "WARNING"):
            line += f"  ({result.error_message})"
        lines.append(line)
    counts = summarize(list(results))
    lines.append(f"{len(results)} checks: " + ", ".join(f"{n} {s.lower()}" for s, n in counts.items()))
    return "\n".join(lines)
