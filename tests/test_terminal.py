"""The end-of-run summary: what a person must not miss is on screen."""

from __future__ import annotations

from typing import Any

from loadtest.present.terminal import Style, render_summary


def _run(**generator: Any) -> dict[str, Any]:
    return {
        "transports": {
            "http": {
                "negotiated_protocol_version": "2025-11-25",
                "sessions": {
                    "opened": 4,
                    "failed": 0,
                    "setup_latency_us": {"p50": 9000, "p99": 12000, "max": 12000},
                },
                "ops": {
                    "blob": {
                        "count": 100,
                        "ok": 97,
                        "rate": 50.0,
                        "errors": {},
                        "silent": {"truncated": 2, "lost": 1},
                        "silent_examples": {"truncated": [{"detail": "7000 of 10000 bytes arrived"}]},
                        "latency_us": {
                            "p50": 900,
                            "p90": 1500,
                            "p99": 12000,
                            "p999": 13000,
                            "max": 13100,
                            "mean": 1000.0,
                        },
                    }
                },
                "generator": {"cpu_s": 1.0, "lag_p99_us": 100, **generator},
            }
        },
        "totals": {"calls": 100, "errors": 0, "silent_failures": 3},
        "thresholds": [{"expr": "silent_failures == 0", "value": 3, "passed": False, "scope": "http/blob"}],
    }


def test_silent_failures_and_failed_thresholds_are_spelled_out() -> None:
    text = render_summary(_run(), Style(colour=False))
    assert "SILENT FAILURES http/blob: lost 1, truncated 2" in text
    assert "truncated: 7000 of 10000 bytes arrived" in text
    assert "FAIL  silent_failures == 0  measured 3 (worst: http/blob)" in text
    assert (
        "100 calls, 0 errors (error_rate 0.00%), 3 silent failures (silent_rate 3.00%), failure_rate 3.00%"
        in text
    )
    assert "12.0ms" in text
    assert "bottleneck" not in text


def test_a_saturated_generator_is_warned_about() -> None:
    text = render_summary(_run(saturated=True, cpu_busy=0.93, lag_p99_us=12000), Style(colour=False))
    assert "the load generator may be the bottleneck (CPU 93% of one core, event-loop lag p99 12.0ms)" in text


def test_plain_text_has_no_escape_codes_and_colour_has() -> None:
    assert "\033[" not in render_summary(_run(), Style(colour=False))
    assert "\033[1;31m" in render_summary(_run(), Style(colour=True))


def test_a_saturated_worker_is_named_and_workers_suggested() -> None:
    text = render_summary(
        _run(saturated=True, cpu_busy=0.93, lag_p99_us=12000, workers=3), Style(colour=False)
    )
    assert "(CPU 93% of one core in the busiest of 3 workers, event-loop lag p99 12.0ms)" in text
    assert "generator CPU 1.0s in 3 processes" in text
    lagging = render_summary(_run(saturated=True, cpu_busy=0.2, lag_p99_us=12000), Style(colour=False))
    assert "--workers" not in lagging
    assert "--workers spreads the load" in render_summary(
        _run(saturated=True, cpu_busy=0.93), Style(colour=False)
    )


def test_a_threshold_without_data_says_no_data_not_measured_none() -> None:
    run = _run()
    run["thresholds"] = [
        {
            "expr": "p99 < 1s",
            "value": None,
            "passed": False,
            "scope": None,
            "reason": "no data in http/blob (no measured calls)",
        }
    ]
    run["totals"] = {"calls": 0, "errors": 0, "silent_failures": 0}
    text = render_summary(run, Style(colour=False))
    assert "FAIL  p99 < 1s  no data in http/blob (no measured calls)" in text
    assert "None" not in text
    assert "0 calls, 0 errors (error_rate -), 0 silent failures (silent_rate -)" in text
    assert "nothing was measured" in text


def test_the_html_run_report_says_no_data_too(tmp_path: Any) -> None:
    from pathlib import Path

    from loadtest.analysis.compare.model import Run
    from loadtest.present.html import render_html_run

    run = _run()
    run["thresholds"] = [
        {"expr": "p99 < 1s", "value": None, "passed": False, "scope": None, "reason": "no data in http/blob"}
    ]
    page = render_html_run(Run(Path(tmp_path), run, "r"))
    assert "p99 &lt; 1s</code> no data in http/blob" in page
    assert "measured None" not in page
    assert "failure_rate 3.00%" in page
