"""Thresholds judged over a run's transport sections: each (transport, op) in scope on its own,
no data never passing, unattributed failures counted (the rules are in :mod:`loadtest.scenario.thresholds`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from loadtest.scenario.thresholds import (
    FAILURE_COUNTS,
    HEALTH_METRICS,
    RATE_METRICS,
    UNATTRIBUTED,
    ScopeCheck,
    Threshold,
    ThresholdResult,
    measure_metric,
    parse_threshold,
)

__all__ = ["evaluate"]


def _badness(threshold: Threshold, value: float) -> float:
    """Larger is worse, so the reported value is the one closest to (or furthest past) the limit."""
    if threshold.op in ("<", "<="):
        return value
    if threshold.op in (">", ">="):
        return -value
    distance = abs(value - threshold.value)
    return distance if threshold.op == "==" else -distance


def evaluate(
    thresholds: Iterable[Threshold | str], transports_summary: Mapping[str, Any]
) -> list[ThresholdResult]:
    """Check ``thresholds`` against run.json's ``transports`` section; one result per threshold."""
    return [
        _evaluate_one(t if isinstance(t, Threshold) else parse_threshold(t), transports_summary)
        for t in thresholds
    ]


def _health_value(metric: str, section: Any) -> float | None:
    server = section.get("server") if isinstance(section, Mapping) else None
    health = server.get("health") if isinstance(server, Mapping) else None
    value = health.get(HEALTH_METRICS[metric][0]) if isinstance(health, Mapping) else None
    return None if value is None else float(value)


def _evaluate_one(threshold: Threshold, transports: Mapping[str, Any]) -> ThresholdResult:
    checks: list[ScopeCheck] = []
    no_data: list[str] = []
    no_success: list[str] = []
    for transport, section in transports.items():
        if threshold.transport is not None and transport != threshold.transport:
            continue
        if threshold.metric in HEALTH_METRICS:
            # Transport-level and documented as such: a transport without enough samples (a
            # stdio server that churns) is listed as unmeasured but does not fail the rest.
            value = _health_value(threshold.metric, section)
            if value is None:
                no_data.append(transport)
            else:
                checks.append(ScopeCheck(transport, value, threshold.passes(value)))
            continue
        ops = section.get("ops") if isinstance(section, Mapping) else None
        if not isinstance(ops, Mapping):
            continue
        unattributed = ops.get(UNATTRIBUTED)
        if not isinstance(unattributed, Mapping):
            unattributed = None
        counted = FAILURE_COUNTS.keys() | RATE_METRICS.keys()
        # Ops the transport's protocol removed (ping on 2026-07-28) were not sent by design.
        skipped = section.get("skipped_ops") or {}
        for op_name, stats in ops.items():
            if op_name == UNATTRIBUTED or op_name in skipped or not isinstance(stats, Mapping):
                continue
            if threshold.op_name is not None and op_name != threshold.op_name:
                continue
            where = f"{transport}/{op_name}"
            # On one op's scope, failures no request can be blamed for may have been its own.
            extra = unattributed if threshold.op_name is not None else None
            value = measure_metric(threshold.metric, stats, extra)
            if value is None:
                (no_success if int(stats.get("count", 0)) > 0 else no_data).append(where)
                continue
            checks.append(ScopeCheck(where, value, threshold.passes(value)))
        if unattributed is not None and threshold.op_name is None and threshold.metric in counted:
            # Over a transport they are one more scope, as a share of all its calls.
            calls = sum(
                int(s.get("count", 0))
                for name, s in ops.items()
                if name != UNATTRIBUTED and isinstance(s, Mapping)
            )
            value = measure_metric(threshold.metric, {**unattributed, "count": calls})
            if value is not None and (value or threshold.metric in FAILURE_COUNTS):
                where = f"{transport}/{UNATTRIBUTED}"
                checks.append(ScopeCheck(where, value, threshold.passes(value)))
    if threshold.metric in HEALTH_METRICS:
        reason = _nothing_reason(threshold, transports, no_data) if not checks else ""
        missing = bool(not checks)
    else:
        reason = _no_data_reason(threshold, no_data, no_success)
        missing = bool(no_data or no_success)
        if not checks and not missing:
            reason = _nothing_reason(threshold, transports, [])
            missing = True
    if not checks:
        return ThresholdResult(expr=threshold.expr, value=None, passed=False, scope=None, reason=reason)
    worst = max(checks, key=lambda c: (not c.passed, _badness(threshold, c.value)))
    return ThresholdResult(
        expr=threshold.expr,
        value=worst.value,
        passed=all(c.passed for c in checks) and not missing,
        scope=worst.scope,
        reason=reason,
        checked=tuple(checks),
    )


def _no_data_reason(threshold: Threshold, no_data: list[str], no_success: list[str]) -> str:
    """``no data in stdio/echo (no measured calls)``, or "" when every scope had data."""
    parts = []
    if no_data:
        parts.append(f"{', '.join(no_data)} (no measured calls)")
    if no_success:
        parts.append(f"{', '.join(no_success)} (no successful calls)")
    return f"no data in {'; '.join(parts)}" if parts else ""


def _nothing_reason(threshold: Threshold, transports: Mapping[str, Any], no_data: list[str]) -> str:
    if no_data:
        return (
            f"no data: no {threshold.metric} measured in {', '.join(no_data)} (no launched server, or"
            " too few samples after warm-up: see server.health.reason)"
        )
    if threshold.transport is not None and threshold.transport not in transports:
        known = ", ".join(transports) or "none"
        return f"no transport {threshold.transport!r} in the results (transports: {known})"
    if threshold.op_name is not None:
        return f"no op {threshold.op_name!r} in the results for scope {threshold.scope!r}"
    return f"no results in scope {threshold.scope!r}"
