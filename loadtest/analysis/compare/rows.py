"""The vocabulary of a comparison: verdicts, metrics and rows (shared by verdicts and health).

A :class:`Row` is one figure of one transport x op (or of the server, for health): A, B, the
ratio or difference, its interval, p-value, the p-value adjusted for the report's family, and
the verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_EFFECT",
    "IMPROVED",
    "INCONCLUSIVE",
    "INTERVAL_RESAMPLES",
    "METHOD",
    "METRICS",
    "MIN_RUNS",
    "MOSTLY_FAILED",
    "NOT_COMPARABLE",
    "NOT_ENOUGH",
    "REGRESSED",
    "RUN_RESAMPLES",
    "SCHEMA",
    "UNCHANGED",
    "Metric",
    "NewSilent",
    "Row",
    "num",
]

SCHEMA = "mcp-loadtest/compare/1"
IMPROVED, REGRESSED, UNCHANGED, NOT_ENOUGH = "improved", "regressed", "unchanged", "not enough data"
#: A figure that moved beyond the minimum effect on evidence too thin for the report to call it.
INCONCLUSIVE = "inconclusive"
#: Latency where most calls of a side failed: what it measures is the failures.
NOT_COMPARABLE = "not comparable"
#: Runs per side below which a figure is *thin* (no verdict, at most inconclusive). Three is
#: the fewest for which a run-to-run spread is seen on both sides with a degree of freedom to spare.
MIN_RUNS = 3
#: Share of failed calls (loud or silent) above which a side's latency is not comparable.
MOSTLY_FAILED = 0.5
#: How the report controls for its many figures (said in every report).
METHOD = "Benjamini-Hochberg over the gated figures"
DEFAULT_MIN_EFFECT = 0.05
DEFAULT_ALPHA = 0.05
RUN_RESAMPLES = 2000
INTERVAL_RESAMPLES = 1000


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    #: "rate" (calls/s, higher is better), "latency" (µs), "fraction" (error rate), "count".
    kind: str
    #: Latency quantile (0..1) for percentiles; None otherwise.
    q: float | None = None
    #: Gated metrics can fail the comparison; ``max`` is one sample, so it is shown, not gated.
    gated: bool = True
    #: Unit of a server-health figure ("MB per 1000 sessions"), compared as a difference B - A.
    unit: str = ""
    #: Smallest difference B - A worth a verdict, for health figures (whose A may be near 0).
    absolute_min: float = 0.0

    @property
    def higher_is_better(self) -> bool:
        return self.kind == "rate"


METRICS: tuple[Metric, ...] = (
    Metric("throughput", "calls/s", "rate"),
    Metric("p50", "p50", "latency", 0.5),
    Metric("p90", "p90", "latency", 0.9),
    Metric("p99", "p99", "latency", 0.99),
    Metric("p999", "p99.9", "latency", 0.999),
    Metric("max", "max", "latency", 1.0, gated=False),
    # Labels in the thresholds' words: error_rate counts loud failures, silent_failures silent ones.
    Metric("error_rate", "error_rate", "fraction"),
    Metric("silent", "silent_failures", "count"),
)


@dataclass(frozen=True)
class Row:
    """One transport x op x metric."""

    transport: str
    op: str
    metric: Metric
    a: float | None
    b: float | None
    ratio: float | None
    ci: tuple[float, float] | None
    p: float | None
    verdict: str
    method: str
    thin: bool = False
    note: str = ""
    #: The p-value adjusted for the report's family of gated figures (None outside it).
    q: float | None = None
    #: Runs per side that would likely settle an inconclusive figure (None otherwise).
    runs_needed: int | None = None
    #: Runs that carried the figure on each side.
    runs: tuple[int, int] = (0, 0)
    #: B - A, for figures compared as a difference (server health); ``ci`` is then its interval.
    diff: float | None = None
    #: Decided by a fact about B (a failure kind A never had), not by an estimate: the family
    #: control leaves it as it is.
    fact: bool = False

    @property
    def key(self) -> str:
        return f"{self.transport}/{self.op} {self.metric.label}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "op": self.op,
            "metric": self.metric.key,
            "kind": self.metric.kind,
            "a": num(self.a),
            "b": num(self.b),
            "ratio": num(self.ratio),
            **({"diff": num(self.diff), "unit": self.metric.unit} if self.metric.unit else {}),
            "ci95": [num(self.ci[0]), num(self.ci[1])] if self.ci else None,
            "p": num(self.p),
            "q": num(self.q),
            "verdict": self.verdict,
            "gated": self.metric.gated,
            "thin": self.thin,
            "method": self.method,
            "note": self.note,
            "runs": list(self.runs),
            "runs_needed": self.runs_needed,
        }


def num(value: float | None) -> float | None:
    """Six significant digits: enough for a report, and stable across platforms."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


@dataclass(frozen=True)
class NewSilent:
    """A silent-failure kind that B had on an op and A did not."""

    transport: str
    op: str
    kind: str
    count: int
    examples: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.transport}/{self.op}: {self.kind} x{self.count} in B, none in A"

    def to_dict(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "op": self.op,
            "kind": self.kind,
            "count": self.count,
            "examples": list(self.examples),
        }
