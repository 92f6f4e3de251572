"""Server health in `compare` (issue 15 item 16), on real runs of the reference server.

Streamable HTTP, many one-call sessions (``churn = 1``, as scenarios/session-leak.toml but
seconds long): B's server keeps 64 KiB per session (``--leak-kb-per-session``), A's releases
them. The leak must show as a server-health regression, first in the headline, in every
report; the fixed release as an improvement; two groups of clean runs as no change at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from loadtest.analysis.compare.health import HEALTH_OP
from loadtest.analysis.compare.model import load_side
from loadtest.analysis.compare.verdicts import IMPROVED, REGRESSED, Comparison, compare_sides
from loadtest.present.compare_terminal import render_comparison
from loadtest.present.html import render_html_comparison
from loadtest.present.json_report import render_json
from loadtest.present.markdown import render_markdown
from loadtest.present.terminal import Style
from loadtest.run.execute import execute
from loadtest.scenario import load_scenario

SCENARIO = """
transports = ["http"]
[target]
leak_kb_per_session = {leak}
[workload]
sessions = 8
duration = "8s"
warmup = "0.5s"
churn = 1
[health]
warmup = "1s"
sample_every = "0.25s"
[[ops]]
tool = "echo"
arguments = {{ text = "{{nonce}}" }}
expect = {{ text = "{{nonce}}" }}
"""

#: Interleaved, as matrix does, so a drift of the (shared) machine falls on every group.
ORDER = ("clean", "leak", "leak", "clean", "clean", "leak", "clean", "clean", "clean")


@pytest.fixture(scope="module")
def groups(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("health-compare")
    scenarios = {}
    for kind, leak in (("clean", 0), ("leak", 64)):
        path = root / f"{kind}.toml"
        path.write_text(SCENARIO.format(leak=leak))
        scenarios[kind] = load_scenario(path)
    counts = {"clean": 0, "leak": 0}
    for kind in ORDER:
        # Clean runs 1-3 are group "a", 4-6 group "a2" (the A/A pair); leaking runs "leak".
        group = "leak" if kind == "leak" else ("a" if counts["clean"] < 3 else "a2")
        counts[kind] += 1
        directory = root / group / f"run-{counts[kind]:02d}"
        directory.mkdir(parents=True)
        outcome = anyio.run(execute, scenarios[kind], directory)
        assert outcome.failure is None
    return {name: root / name for name in ("a", "a2", "leak")}


def _compare(a: Path, b: Path) -> Comparison:
    # leak_kb_per_session is part of the target, hence of the scenario hash: force.
    return compare_sides(load_side([a], label=a.name), load_side([b], label=b.name), force=True)


def _health(c: Comparison, key: str) -> Any:
    return next(r for r in c.rows if r.op == HEALTH_OP and r.metric.key == key)


@pytest.mark.timeout(400)
@pytest.mark.slow
def test_a_session_leak_is_a_health_regression_first_in_every_report(groups: dict[str, Path]) -> None:
    c = _compare(groups["a"], groups["leak"])
    row = _health(c, "rss_per_1k_sessions")
    assert row.runs == (3, 3), row
    assert row.verdict == REGRESSED, row
    assert row.diff is not None
    assert 40 < row.diff < 90, row  # 64 KiB a session is 62.5 MiB per 1000
    assert not row.thin
    assert c.regressed
    assert c.headline().startswith("REGRESSION: SERVER HEALTH http RSS per 1k sessions regressed (+")
    # Side by side in every report.
    md = render_markdown(c)
    assert md.index("### Server health") < md.index("### Verdicts")
    assert "| 🔴 | http/(server) | RSS per 1k sessions |" in md
    report = json.loads(render_json(c))
    rows = [r for r in report["rows"] if r["op"] == HEALTH_OP]
    assert {r["metric"] for r in rows} >= {"rss_per_1k_sessions", "crashes", "hangs", "restarts"}
    assert next(r for r in rows if r["metric"] == "rss_per_1k_sessions")["verdict"] == "regressed"
    assert report["headline"] == c.headline()
    assert "<h2>Server health</h2>" in render_html_comparison(c)
    terminal = render_comparison(c, Style(colour=False)).splitlines()
    assert any(
        line.split()[:2] == ["http", "(server)"] and "RSS per 1k sessions" in line and "regressed" in line
        for line in terminal
    ), terminal


@pytest.mark.timeout(400)
@pytest.mark.slow
def test_the_release_that_fixed_the_leak_is_a_health_improvement(groups: dict[str, Path]) -> None:
    c = _compare(groups["leak"], groups["a"])
    assert _health(c, "rss_per_1k_sessions").verdict == IMPROVED
    assert c.headline().startswith("no regression: SERVER HEALTH http RSS per 1k sessions improved (-")


@pytest.mark.timeout(400)
@pytest.mark.slow
def test_clean_against_clean_changes_no_health_verdict(groups: dict[str, Path]) -> None:
    c = _compare(groups["a"], groups["a2"])
    health = [r for r in c.rows if r.op == HEALTH_OP]
    assert health
    assert _health(c, "rss_per_1k_sessions").runs == (3, 3)
    assert not c.health_changes, [(r.metric.key, r.verdict, r.diff, r.p) for r in health]
    assert "SERVER HEALTH" not in c.headline()


# -- the same rules on synthetic health sections (fast) -------------------------------------------


def _run_doc(rss_1k: float | None, verdict: str, crashes: int = 0, sessions: int = 500) -> dict[str, Any]:
    health = {
        "verdict": verdict,
        "rss_per_1k_sessions_mb": rss_1k,
        "rss_slope_mb_per_h": None,
        "sessions_in_window": sessions,
        "fds": {"start": 7, "end": 9, "peak": 9, "per_1k_sessions": None},
        "threads": {"start": 1, "end": 1, "peak": 1},
        "crashes": crashes,
        "hangs": 0,
        "restarts": crashes,
        "evidence": {
            "rss_slope": {"enough_data": False},
            "rss_per_1k_sessions": {"enough_data": rss_1k is not None},
        },
    }
    op = {"count": 1000, "ok": 1000, "errors": {}, "silent": {}, "rate": 50.0, "latency_us": {"p50": 5000.0}}
    return {
        "meta": {"scenario_hash": "h", "machine_fingerprint": "m"},
        "transports": {"http": {"ops": {"echo": op}, "server": {"health": health}}},
    }


def _sides(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> Comparison:
    from loadtest.analysis.compare.model import Run, Side

    def side(label: str, docs: list[dict[str, Any]]) -> Side:
        return Side(
            label, [Run(Path(f"/nonexistent/{label}{i}"), d, f"{label}{i}") for i, d in enumerate(docs)]
        )

    return compare_sides(side("A", a), side("B", b), resamples=50)


def test_one_leaking_run_against_one_clean_run_is_inconclusive_not_a_failure() -> None:
    c = _sides([_run_doc(2.5, "stable")], [_run_doc(64.0, "growing")])
    row = _health(c, "rss_per_1k_sessions")
    assert row.verdict == "inconclusive"
    assert row.thin
    assert row.runs_needed == 3
    assert "A: stable in 1 of 1 runs; B: growing in 1 of 1 runs" in row.note
    assert not c.regressed
    assert not c.health_changes


def test_runs_without_enough_data_are_left_out_not_read_as_zero() -> None:
    c = _sides([_run_doc(None, "unknown", sessions=2)] * 3, [_run_doc(64.0, "growing")] * 3)
    row = _health(c, "rss_per_1k_sessions")
    assert row.verdict == "not enough data"
    assert "no run with enough data for it on A" in row.note


def test_crashes_that_a_never_had_are_a_health_regression_whatever_the_runs() -> None:
    c = _sides([_run_doc(2.5, "stable")], [_run_doc(2.5, "stable", crashes=1)])
    crashes = _health(c, "crashes")
    assert crashes.verdict == REGRESSED
    assert crashes.fact
    assert "crashes in 1 of 1 runs of B, none in A" in crashes.note
    assert _health(c, "restarts").verdict == "unchanged"  # shown, not gated
    assert c.regressed
    assert c.headline().startswith("REGRESSION: SERVER HEALTH http crashes regressed (0 -> 1)")
