"""Pass/fail rules over a run's results: ``"p99 < 500ms"``, ``"http/echo: error_rate < 0.1%"``.

Grammar: ``[SCOPE:] METRIC OP VALUE``.

SCOPE
    ``transport`` (every op on it), ``transport/op``, ``*/op`` (that op on every transport);
    none means every transport x op. Each (transport, op) in scope is checked on its own, and
    the threshold passes only if all of them pass; the result reports the worst one.
METRIC
    ``p50 p90 p99 p999`` (alias ``p99.9``) ``max mean``: latency; VALUE takes ``us``/``ms``/``s``,
    a bare number is milliseconds. Failure rates over calls, VALUE ``"0.1%"`` or a fraction
    ``0.001``: ``error_rate`` (loud failures: transport and JSON-RPC errors, ``isError``),
    ``silent_rate`` (silent failures: lost, truncated, corrupt, misrouted...) and
    ``failure_rate`` (both). ``errors`` (loud), ``silent_failures``, ``failures`` (both),
    ``calls``: counts. ``rate``: calls/s; VALUE ``100`` or ``"100/s"``.
    Per transport, from the launched target's health (``server.health``): ``rss_slope``, its
    memory growth after warm-up in MB/h, and ``rss_per_1k_sessions``, in MB per 1000 sessions;
    VALUE a number (``"10"``, ``"10MB/h"``, ``"1MB"``). Their scope is a transport, never an op.
OP
    ``< <= > >= == !=``

Values are reported in the metric's natural unit: latency in ms, rates as fractions.

No data never passes. A (transport, op) in scope with no measured calls (or, for latency, no
answered call) fails every threshold but ``calls``, with the reason ``no data``: a server that
hangs in warm-up must not pass ``silent_failures == 0`` on nothing.

Failures the recorder could not tie to a request (an answer to an unknown id, a malformed
message: op ``(unattributed)`` in run.json) count too. For a threshold over a transport they
are one more scope, their rate taken over all the transport's calls; for a threshold on one op
they are added to that op's, since they may have been its answers.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loadtest.core.units import parse_duration, parse_rate

__all__ = [
    "METRICS",
    "UNATTRIBUTED",
    "ScopeCheck",
    "Threshold",
    "ThresholdResult",
    "parse_threshold",
    "vocabulary_notes",
]

LATENCY_METRICS = {
    "p50": "p50",
    "p90": "p90",
    "p99": "p99",
    "p999": "p999",
    "p99.9": "p999",
    "max": "max",
    "mean": "mean",
}
COUNT_METRICS = ("errors", "silent_failures", "failures", "calls")
#: Failure rates: which failures (loud ``errors``, ``silent`` or both) they count.
RATE_METRICS = {"error_rate": ("errors",), "silent_rate": ("silent",), "failure_rate": ("errors", "silent")}
#: Failure counts, by the same rule.
FAILURE_COUNTS = {"errors": ("errors",), "silent_failures": ("silent",), "failures": ("errors", "silent")}
#: The op run.json counts failures under when no request can be blamed. The recorder's name for
#: it (loadtest.measure.metrics.UNATTRIBUTED) lives in a layer above this one; a test keeps the
#: two equal.
UNATTRIBUTED = "(unattributed)"
#: Transport-level metrics: their key in ``server.health`` and their unit.
HEALTH_METRICS = {
    "rss_slope": ("rss_slope_mb_per_h", "MB/h"),
    "rss_per_1k_sessions": ("rss_per_1k_sessions_mb", "MB"),
}
#: Every metric name a threshold may use (aliases included).
METRICS: tuple[str, ...] = (*LATENCY_METRICS, *RATE_METRICS, *COUNT_METRICS, "rate", *HEALTH_METRICS)

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_EXPR = re.compile(
    r"^\s*(?:(?P<scope>.+?)\s*:\s*)?(?P<metric>[A-Za-z_][A-Za-z0-9_.]*)\s*"
    r"(?P<op><=|>=|==|!=|=<|=>|<|>|=)\s*(?P<value>.*?)\s*$"
)


@dataclass(frozen=True, slots=True)
class Threshold:
    """One parsed rule. ``transport``/``op`` of None mean "every"."""

    expr: str
    metric: str
    op: str
    value: float
    transport: str | None = None
    op_name: str | None = None

    @property
    def unit(self) -> str:
        """The unit ``value`` (and measured values) are in: ``"ms"``, ``"/s"`` or ``""``."""
        if self.metric in LATENCY_METRICS.values():
            return "ms"
        if self.metric in HEALTH_METRICS:
            return HEALTH_METRICS[self.metric][1]
        return "/s" if self.metric == "rate" else ""

    @property
    def scope(self) -> str:
        """The scope as written back: ``"*/*"``, ``"http/*"``, ``"*/echo"``, ``"http/echo"``."""
        return f"{self.transport or '*'}/{self.op_name or '*'}"

    def passes(self, measured: float) -> bool:
        return _COMPARE[self.op](measured, self.value)

    def measure(self, stats: Mapping[str, Any]) -> float | None:
        """This threshold's metric for one op's statistics, or None when there is no data."""
        return measure_metric(self.metric, stats)


@dataclass(frozen=True, slots=True)
class ScopeCheck:
    """The metric measured for one (transport, op) and whether it passed."""

    scope: str
    value: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "value": self.value, "passed": self.passed}


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    """The verdict of one threshold over all the scopes it covers.

    ``value`` is the worst measured value and ``scope`` is where it was measured; both are None
    when nothing in scope had data. A scope without data fails the threshold (``passed`` is
    False) and ``reason`` names it, starting ``no data``.
    """

    expr: str
    value: float | None
    passed: bool
    scope: str | None
    reason: str = ""
    checked: tuple[ScopeCheck, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "expr": self.expr,
            "value": self.value,
            "passed": self.passed,
            "scope": self.scope,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.checked:
            out["checked"] = [c.to_dict() for c in self.checked]
        return out


def parse_threshold(expr: str) -> Threshold:
    """Parse ``"[SCOPE:] METRIC OP VALUE"``; raises ValueError with the reason."""
    if not isinstance(expr, str):
        raise ValueError(f"expected a string like 'p99 < 500ms', got {type(expr).__name__}")
    match = _EXPR.match(expr)
    if match is None:
        raise ValueError(f"expected '[scope:] metric op value' like 'p99 < 500ms', got {expr!r}")
    scope, metric_text, op, value_text = match.group("scope", "metric", "op", "value")
    if op in ("=", "=<", "=>"):
        better = {"=": "==", "=<": "<=", "=>": ">="}[op]
        raise ValueError(f"unknown comparison {op!r} in {expr!r}; use {better!r}")
    metric_key = metric_text.lower()
    if metric_key not in METRICS:
        close = difflib.get_close_matches(metric_key, METRICS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "expected one of " + ", ".join(METRICS)
        raise ValueError(f"unknown metric {metric_text!r} in {expr!r}; {hint}")
    if not value_text:
        raise ValueError(f"missing value after {op!r} in {expr!r}")
    metric = LATENCY_METRICS.get(metric_key, metric_key)
    transport, op_name = _parse_scope(scope, expr)
    if metric in HEALTH_METRICS and op_name is not None:
        raise ValueError(
            f"{metric} is measured per transport, not per op; scope it like 'http:', not {scope!r}, in {expr!r}"
        )
    value = _parse_value(metric, value_text, expr)
    return Threshold(
        expr=expr.strip(), metric=metric, op=op, value=value, transport=transport, op_name=op_name
    )


def _parse_scope(scope: str | None, expr: str) -> tuple[str | None, str | None]:
    if scope is None:
        return None, None
    transport, slash, op_name = (part.strip() for part in scope.partition("/"))
    if not transport or (slash and not op_name):
        raise ValueError(f"expected a scope like 'http', 'http/echo' or '*/echo', got {scope!r} in {expr!r}")
    if any(c.isspace() for c in transport):
        raise ValueError(f"expected a scope like 'http', 'http/echo' or '*/echo', got {scope!r} in {expr!r}")
    return (None if transport == "*" else transport), (None if op_name in ("", "*") else op_name)


def _parse_value(metric: str, text: str, expr: str) -> float:
    try:
        if metric in LATENCY_METRICS.values():
            # A bare number is milliseconds: that is how latency budgets are usually stated.
            seconds = parse_duration(text + "ms" if _is_number(text) else text)
            return seconds * 1e3
        if metric in RATE_METRICS:
            return _parse_fraction(text)
        if metric == "rate":
            return parse_rate(text)
        if metric in HEALTH_METRICS:
            unit = HEALTH_METRICS[metric][1]
            return float(text[: -len(unit)].strip() if text.endswith(unit) else text)
        count = float(text)
    except ValueError as exc:
        raise ValueError(f"{metric} in {expr!r}: {exc}") from None
    if not count.is_integer() or count < 0:
        raise ValueError(f"{metric} in {expr!r}: expected a whole number, got {text!r}")
    return count


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_fraction(text: str) -> float:
    if text.endswith("%"):
        try:
            percent = float(text[:-1].strip())
        except ValueError:
            raise ValueError(f"expected a percentage like '0.1%', got {text!r}") from None
        if not 0 <= percent <= 100:
            raise ValueError(f"expected a percentage between 0% and 100%, got {text!r}")
        return percent / 100
    try:
        fraction = float(text)
    except ValueError:
        raise ValueError(
            f"expected a fraction like 0.001 or a percentage like '0.1%', got {text!r}"
        ) from None
    if not 0 <= fraction <= 1:
        raise ValueError(
            f"expected a fraction between 0 and 1 (write '{text}%' for a percentage), got {text!r}"
        )
    return fraction


def total_count(counts: Any) -> int:
    if isinstance(counts, Mapping):
        return sum(int(n) for n in counts.values())
    return 0


def failed_count(metric: str, stats: Mapping[str, Any]) -> int:
    fields = RATE_METRICS.get(metric) or FAILURE_COUNTS[metric]
    return sum(total_count(stats.get(name)) for name in fields)


def measure_metric(
    metric: str, stats: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> float | None:
    """``metric`` for one op's statistics; None when there is no data to say it.

    ``extra``: unattributed failures (a ``{"errors": ..., "silent": ...}`` mapping) to add.
    """
    count = int(stats.get("count", 0))
    if metric == "calls":
        # Counts stay ints, so run.json says 2, not 2.0.
        return count
    if metric in LATENCY_METRICS.values():
        latency = stats.get("latency_us")
        if not isinstance(latency, Mapping) or latency.get(metric) is None or not stats.get("ok", 1):
            # No successful call means no latency; 0 would pass any "<" threshold.
            return None
        return float(latency[metric]) / 1e3
    if metric in RATE_METRICS or metric in FAILURE_COUNTS:
        failed = failed_count(metric, stats) + (failed_count(metric, extra) if extra else 0)
        if metric in FAILURE_COUNTS:
            # Zero failures out of zero calls is not a pass: nothing was asked. Failures seen
            # without a measured call (unattributed ones) are data, though.
            return failed if count > 0 or failed else None
        if count <= 0:
            return None
        # Anomalies (a duplicate answer) add failures without adding calls.
        return min(failed / count, 1.0)
    if count <= 0:
        return None  # a rate of nothing is no data, not 0/s that passes "rate < 100"
    rate = stats.get("rate")
    return None if rate is None else float(rate)


def vocabulary_notes(thresholds: Iterable[Threshold]) -> list[str]:
    """Notes for thresholds whose meaning changed: ``error_rate`` counts loud failures only.

    Before, ``error_rate`` counted silent failures too; a scenario that gates it and nothing
    silent would now let silent failures pass, so it gets a line saying what to add.
    """
    metrics = {t.metric for t in thresholds}
    silent = {"silent_rate", "failure_rate", "silent_failures", "failures"}
    if "error_rate" in metrics and not metrics & silent:
        return [
            "error_rate counts loud failures only (it used to count silent ones too); "
            "add 'failure_rate' or 'silent_failures == 0' to gate silent failures"
        ]
    return []
