"""Thresholds: the expression grammar, and verdicts over run.json's ``transports`` section."""

from __future__ import annotations

import re
from typing import Any

import pytest

from loadtest.scenario.threshold_eval import evaluate
from loadtest.scenario.thresholds import (
    UNATTRIBUTED,
    Threshold,
    parse_threshold,
    vocabulary_notes,
)


def op_stats(
    *,
    count: int = 100,
    errors: dict[str, int] | None = None,
    silent: dict[str, int] | None = None,
    p99_us: float = 10_000,
    rate: float = 50.0,
) -> dict[str, Any]:
    errors = errors or {}
    silent = silent or {}
    ok = count - sum(errors.values()) - sum(silent.values())
    return {
        "count": count,
        "ok": ok,
        "errors": errors,
        "silent": silent,
        "latency_us": {
            "p50": p99_us / 4,
            "p90": p99_us / 2,
            "p99": p99_us,
            "p999": p99_us * 2,
            "max": p99_us * 3,
            "mean": p99_us / 3,
        },
        "rate": rate,
    }


SUMMARY: dict[str, Any] = {
    "stdio": {"ops": {"echo": op_stats(p99_us=2_000), "read:blob": op_stats(p99_us=30_000, rate=20.0)}},
    "sse": {
        "ops": {"echo": op_stats(p99_us=4_000), "read:blob": op_stats(p99_us=80_000, silent={"truncated": 2})}
    },
    "http": {
        "ops": {"echo": op_stats(p99_us=3_000, errors={"http_500": 1}), "tools/list": op_stats(p99_us=1_000)}
    },
}


def one(expr: str, summary: dict[str, Any] = SUMMARY) -> Any:
    (result,) = evaluate([expr], summary)
    return result


# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "metric", "op", "value"),
    [
        ("p99 < 500ms", "p99", "<", 500.0),
        ("p50<=2s", "p50", "<=", 2000.0),
        ("p90 > 250us", "p90", ">", 0.25),
        ("p999 < 1s", "p999", "<", 1000.0),
        ("p99.9 < 1s", "p999", "<", 1000.0),
        ("max < 50", "max", "<", 50.0),  # a bare latency is milliseconds
        ("mean != 0", "mean", "!=", 0.0),
        ("error_rate < 0.1%", "error_rate", "<", 0.001),
        ("error_rate <= 0.001", "error_rate", "<=", 0.001),
        ("error_rate == 0", "error_rate", "==", 0.0),
        ("errors == 0", "errors", "==", 0.0),
        ("silent_failures == 0", "silent_failures", "==", 0.0),
        ("calls >= 1000", "calls", ">=", 1000.0),
        ("rate >= 100", "rate", ">=", 100.0),
        ("rate >= 100/s", "rate", ">=", 100.0),
        ("rate > 6000/m", "rate", ">", 100.0),
        ("P99 < 5ms", "p99", "<", 5.0),
    ],
)
def test_parse_metrics_and_values(expr: str, metric: str, op: str, value: float) -> None:
    threshold = parse_threshold(expr)
    assert (threshold.metric, threshold.op) == (metric, op)
    assert threshold.value == pytest.approx(value)
    assert threshold.transport is None
    assert threshold.op_name is None
    assert threshold.expr == expr


@pytest.mark.parametrize(
    ("expr", "transport", "op_name"),
    [
        ("http: p99 < 5ms", "http", None),
        ("http/echo: p99 < 5ms", "http", "echo"),
        ("*/echo: p99 < 5ms", None, "echo"),
        ("http/*: p99 < 5ms", "http", None),
        ("sse/read:blob: p99 < 5ms", "sse", "read:blob"),  # op names may hold a colon
        ("http/tools/list: p99 < 5ms", "http", "tools/list"),  # ... or a slash
        ("  stdio / echo :p99<5ms ", "stdio", "echo"),
    ],
)
def test_parse_scopes(expr: str, transport: str | None, op_name: str | None) -> None:
    threshold = parse_threshold(expr)
    assert (threshold.transport, threshold.op_name) == (transport, op_name)
    assert threshold.metric == "p99"


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("p98 < 5ms", "unknown metric 'p98' in 'p98 < 5ms'; did you mean 'p99'?"),
        ("latency < 5ms", "unknown metric 'latency'"),
        ("p99 = 5ms", "unknown comparison '=' in 'p99 = 5ms'; use '=='"),
        ("p99 <", "missing value after '<'"),
        ("p99 < soon", "p99 in 'p99 < soon': expected a duration"),
        ("error_rate < 5", "expected a fraction between 0 and 1 (write '5%' for a percentage)"),
        ("error_rate < 150%", "between 0% and 100%"),
        ("errors < 1.5", "expected a whole number"),
        ("rate > quick", "expected a rate like"),
        ("p99 500ms", "expected '[scope:] metric op value'"),
        ("/echo: p99 < 5ms", "expected a scope like"),
        ("http/: p99 < 5ms", "expected a scope like"),
    ],
)
def test_parse_errors(expr: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_threshold(expr)


# -- evaluating ----------------------------------------------------------------------------------


def test_default_scope_checks_every_transport_and_op_and_reports_the_worst() -> None:
    result = one("p99 < 100ms")
    assert result.passed
    assert result.value == pytest.approx(80.0)  # ms
    assert result.scope == "sse/read:blob"
    assert len(result.checked) == 6

    failed = one("p99 < 50ms")
    assert not failed.passed
    assert failed.scope == "sse/read:blob"
    assert [c.scope for c in failed.checked if not c.passed] == ["sse/read:blob"]


def test_transport_scope() -> None:
    result = one("stdio: p99 < 50ms")
    assert result.passed
    assert (result.scope, result.value) == ("stdio/read:blob", pytest.approx(30.0))
    assert {c.scope for c in result.checked} == {"stdio/echo", "stdio/read:blob"}


def test_op_scopes() -> None:
    every = one("*/echo: p99 < 3.5ms")
    assert not every.passed
    assert (every.scope, every.value) == ("sse/echo", pytest.approx(4.0))
    assert {c.scope for c in every.checked} == {"stdio/echo", "sse/echo", "http/echo"}
    exact = one("http/echo: p99 < 3.5ms")
    assert exact.passed
    assert exact.scope == "http/echo"
    assert one("http/tools/list: p50 <= 250us").passed


def test_failure_vocabulary_error_rate_is_loud_silent_rate_silent_failure_rate_both() -> None:
    # http/echo has 1 loud error in 100 calls; sse/read:blob 2 silent failures in 100.
    error_rate = one("error_rate == 0")
    assert (error_rate.value, error_rate.scope) == (pytest.approx(0.01), "http/echo")
    silent_rate = one("silent_rate == 0")
    assert (silent_rate.value, silent_rate.scope) == (pytest.approx(0.02), "sse/read:blob")
    failure_rate = one("failure_rate < 1.5%")
    assert not failure_rate.passed
    assert (failure_rate.value, failure_rate.scope) == (pytest.approx(0.02), "sse/read:blob")
    assert one("http: failure_rate < 1.5%").passed
    assert one("sse: error_rate == 0").passed
    assert not one("sse: failure_rate == 0").passed
    failures = one("failures <= 1")
    assert (failures.passed, failures.value, failures.scope) == (False, 2, "sse/read:blob")


def test_counts() -> None:
    silent = one("silent_failures == 0")
    assert not silent.passed
    assert (silent.scope, silent.value) == ("sse/read:blob", 2)
    errors = one("errors == 0")
    assert (errors.passed, errors.scope, errors.value) == (False, "http/echo", 1)
    assert one("stdio: errors == 0").passed
    assert one("calls >= 100").passed
    assert not one("calls > 100").passed


def test_rate_reports_the_lowest_for_a_lower_bound() -> None:
    result = one("rate >= 30/s")
    assert not result.passed
    assert (result.scope, result.value) == ("stdio/read:blob", 20.0)
    assert one("rate >= 1200/m").passed


def test_a_scope_that_matches_nothing_fails_with_a_reason() -> None:
    missing_transport = one("stream: p99 < 1s")
    assert not missing_transport.passed
    assert missing_transport.value is None
    assert missing_transport.scope is None
    assert missing_transport.reason == "no transport 'stream' in the results (transports: stdio, sse, http)"
    missing_op = one("*/nope: p99 < 1s")
    assert not missing_op.passed
    assert "no op 'nope'" in missing_op.reason
    assert not one("p99 < 1s", {}).passed


def test_latency_without_successful_calls_is_no_data_not_zero() -> None:
    summary = {
        "http": {"ops": {"fail": {**op_stats(count=5, errors={"is_error": 5}), "latency_us": {"p99": 0}}}}
    }
    result = one("http/fail: p99 < 1s", summary)
    assert not result.passed
    assert "no successful calls" in result.reason
    assert one("http/fail: errors == 5", summary).passed


def test_to_dict_uses_the_results_contract_keys() -> None:
    data = one("sse/echo: p99 < 5ms").to_dict()
    assert {k: data[k] for k in ("expr", "value", "passed", "scope")} == {
        "expr": "sse/echo: p99 < 5ms",
        "value": pytest.approx(4.0),
        "passed": True,
        "scope": "sse/echo",
    }
    assert data["checked"] == [{"scope": "sse/echo", "value": pytest.approx(4.0), "passed": True}]
    failed = one("nope: p99 < 5ms").to_dict()
    assert failed["passed"] is False
    assert failed["value"] is None
    assert failed["reason"]


def test_evaluate_accepts_parsed_thresholds_and_strings() -> None:
    parsed = parse_threshold("p99 < 1s")
    assert isinstance(parsed, Threshold)
    results = evaluate([parsed, "errors == 0"], SUMMARY)
    assert [r.expr for r in results] == ["p99 < 1s", "errors == 0"]
    assert [r.passed for r in results] == [True, False]


@pytest.mark.parametrize(
    ("expr", "passed"),
    [
        ("p99 == 2ms", True),
        ("p99 != 2ms", False),
        ("p99 > 1ms", True),
        ("p99 >= 3ms", False),
        ("p99 <= 2ms", True),
    ],
)
def test_every_comparison(expr: str, passed: bool) -> None:
    assert one(f"stdio/echo: {expr}").passed is passed


# -- no data never passes -------------------------------------------------------------------------

NOTHING: dict[str, Any] = {
    "stdio": {
        "ops": {
            "echo": {"count": 0, "ok": 0, "errors": {}, "silent": {}, "latency_us": {}, "rate": 0.0},
        }
    }
}


@pytest.mark.parametrize(
    "expr",
    [
        "silent_failures == 0",
        "errors == 0",
        "failures == 0",
        "error_rate == 0",
        "silent_rate == 0",
        "failure_rate < 1%",
        "p99 < 1s",
        "rate < 1000",
    ],
)
def test_no_measured_calls_fails_every_threshold_that_needs_data(expr: str) -> None:
    result = one(expr, NOTHING)
    assert not result.passed
    assert result.reason.startswith("no data")
    assert "stdio/echo (no measured calls)" in result.reason


def test_calls_needs_no_data_and_says_zero() -> None:
    assert not one("calls > 0", NOTHING).passed
    assert one("calls > 0", NOTHING).value == 0


def test_one_op_without_data_fails_the_threshold_even_when_the_others_pass() -> None:
    summary = {"stdio": {"ops": {**NOTHING["stdio"]["ops"], "ping": op_stats()}}}
    result = one("silent_failures == 0", summary)
    assert not result.passed
    assert (result.value, result.scope) == (0, "stdio/ping")
    assert "stdio/echo" in result.reason
    assert one("stdio/ping: silent_failures == 0", summary).passed


# -- failures no request can be blamed for ----------------------------------------------------------


def _misrouted(n: int) -> dict[str, Any]:
    """A transport with two clean ops and ``n`` answers to unknown ids (a broadcasting gateway)."""
    return {
        "http": {
            "ops": {
                "echo": op_stats(count=100),
                "ping": op_stats(count=100),
                UNATTRIBUTED: {"count": 0, "ok": 0, "errors": {}, "silent": {"misrouted": n}},
            }
        }
    }


def test_unattributed_failures_fail_the_rates_and_counts_over_the_transport() -> None:
    summary = _misrouted(50)
    silent = one("silent_failures == 0", summary)
    assert (silent.passed, silent.value, silent.scope) == (False, 50, f"http/{UNATTRIBUTED}")
    rate = one("failure_rate < 10%", summary)
    assert not rate.passed
    # A share of all the transport's calls: 50 of 200.
    assert (rate.value, rate.scope) == (pytest.approx(0.25), f"http/{UNATTRIBUTED}")
    assert not one("silent_rate == 0", summary).passed
    assert one("error_rate == 0", summary).passed  # misrouted answers are silent, not loud
    assert one("failure_rate == 0", _misrouted(0)).passed


def test_unattributed_failures_count_against_a_single_op() -> None:
    result = one("http/echo: silent_rate < 10%", _misrouted(50))
    assert not result.passed
    assert (result.value, result.scope) == (pytest.approx(0.5), "http/echo")


def test_the_unattributed_name_is_the_recorders() -> None:
    from loadtest.measure.metrics import UNATTRIBUTED as RECORDED

    assert RECORDED == UNATTRIBUTED


def test_gating_error_rate_alone_gets_a_note_about_its_meaning() -> None:
    (note,) = vocabulary_notes([parse_threshold("error_rate == 0")])
    assert "loud failures only" in note
    assert (
        vocabulary_notes([parse_threshold("error_rate == 0"), parse_threshold("silent_failures == 0")]) == []
    )
