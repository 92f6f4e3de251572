"""Gates that cannot pass on nothing, and one failure vocabulary, through the real command line.

A target that hangs during warm-up (the reference server's ``--hang-after-calls``) leaves no
measured call; an unreachable URL leaves nothing at all. Neither may print a passing threshold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from loadtest.run.targets.reference import REFERENCE_SERVER

CLI = [sys.executable, "-m", "loadtest"]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _scenario(tmp_path: Path, server_args: str, thresholds: str, workload: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(
        f"""
transports = ["stdio"]
thresholds = {thresholds}
[target]
command = "{{python}} {REFERENCE_SERVER} --transport {{transport}} {server_args}"
[workload]
{workload}
[[ops]]
tool = "echo"
arguments = {{ text = "{{nonce}}" }}
expect = {{ text = "{{nonce}}" }}
"""
    )
    return path


def test_a_target_that_hangs_in_warm_up_fails_every_gate_with_no_data(tmp_path: Path) -> None:
    # The first call hangs: the calls sent during the 1 s warm-up are lost only at
    # their 5 s deadline, after the 2 s measured window; so the window holds no call at all.
    path = _scenario(
        tmp_path,
        "--hang-after-calls 1",
        '["silent_failures == 0", "error_rate == 0", "failure_rate == 0", "p99 < 1s", "rate < 1000"]',
        'sessions = 1\nwarmup = "1s"\nduration = "2s"\nrequest_timeout = "5s"',
    )
    done = cli("run", str(path), "--out", str(tmp_path / "out"), "--no-progress", "--json")
    assert done.returncode == 1, done.stderr
    run = json.loads(done.stdout)
    assert run["totals"]["calls"] == 0
    assert len(run["thresholds"]) == 5
    for item in run["thresholds"]:
        assert item["passed"] is False, item
        assert item["reason"].startswith("no data"), item
        assert "stdio/echo (no measured calls)" in item["reason"]
    # And on screen: no "pass", no "measured None".
    text = cli("report", str(Path(run["path"]).parent))
    assert "pass " not in text.stdout
    assert "None" not in text.stdout
    assert text.stdout.count("no data") >= 5


def test_an_unreachable_url_is_one_line_no_table_and_no_passing_threshold(tmp_path: Path) -> None:
    done = cli(
        "run", "--url", "http://127.0.0.1:1/mcp", "--out", str(tmp_path), "--no-progress", "--duration", "1s"
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("mcp-loadtest: error:")]
    assert len(errors) == 1
    assert "127.0.0.1:1" in errors[0]
    # No table of zeros, and no thresholds (passing or not) under the error line.
    assert done.stdout == ""
    assert "pass" not in done.stderr
    (run_json,) = tmp_path.glob("*/run.json")
    run = json.loads(run_json.read_text())
    assert run["error"]
    assert not any(item["passed"] for item in run["thresholds"])


def _through_proxy(tmp_path: Path, faults: str) -> dict[str, Any]:
    """A stdio run through the fault proxy (its own process) wrapping the reference server."""
    proxy = [sys.executable, "-m", "loadtest.proxy", "--stdio", "--faults", faults, "--seed", "1"]
    command = [*proxy, "--", "{python}", str(REFERENCE_SERVER), "--transport", "stdio"]
    path = tmp_path / "proxied.toml"
    path.write_text(
        f"""
transports = ["stdio"]
thresholds = ["error_rate == 0", "silent_rate == 0", "failure_rate == 0", "silent_failures == 0"]
[target]
command = {json.dumps(command)}
[workload]
sessions = 1
requests = 90
warmup = "0s"
request_timeout = "1s"
[[ops]]
tool = "echo"
arguments = {{ text = "{{nonce}}" }}
expect = {{ text = "{{nonce}}" }}
"""
    )
    done = cli("run", str(path), "--out", str(tmp_path / "out"), "--no-progress", "--json")
    assert done.returncode in (0, 1), done.stderr
    run: dict[str, Any] = json.loads(done.stdout)
    return run


def test_answers_to_foreign_ids_fail_silent_and_failure_rates_not_error_rate(tmp_path: Path) -> None:
    # The proxy rewrites the id of every 9th answer (4 times): the tester gets answers to ids it
    # never sent (misrouted, not attributable to an op) and the real calls go unanswered (lost).
    run = _through_proxy(tmp_path, "foreign_id:every=9:max=4")
    verdicts = {item["expr"]: item for item in run["thresholds"]}
    assert verdicts["error_rate == 0"]["passed"] is True  # nothing loud happened
    for expr in ("silent_rate == 0", "failure_rate == 0", "silent_failures == 0"):
        assert verdicts[expr]["passed"] is False, verdicts[expr]
        scopes = {check["scope"]: check["value"] for check in verdicts[expr]["checked"]}
        # The misrouted answers are in the gate, as their own scope: no op could be blamed.
        assert scopes["stdio/(unattributed)"] > 0, scopes
    assert verdicts["silent_failures == 0"]["value"] == 4


def test_a_clean_run_through_the_proxy_passes_every_rate(tmp_path: Path) -> None:
    run = _through_proxy(tmp_path, "")
    assert all(item["passed"] for item in run["thresholds"]), run["thresholds"]


def _copy_run(source: Path, target: Path, thresholds: list[dict[str, Any]]) -> Path:
    import shutil

    shutil.copytree(source, target)
    document = json.loads((target / "run.json").read_text())
    document["thresholds"] = thresholds
    (target / "run.json").write_text(json.dumps(document))
    return target


def test_compare_shows_each_sides_thresholds_and_fails_on_bs(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from loadtest.cli.main import main

    golden = Path(__file__).parent / "golden" / "compare" / "a" / "run-01"
    passed = [{"expr": "silent_failures == 0", "value": 0, "passed": True, "scope": "http/echo"}]
    failed = [
        {
            "expr": "silent_failures == 0",
            "value": None,
            "passed": False,
            "scope": None,
            "reason": "no data in http/echo (no measured calls)",
        }
    ]
    a = _copy_run(golden, tmp_path / "a", passed)
    same = CliRunner().invoke(main, ["compare", str(a), str(_copy_run(golden, tmp_path / "b1", passed))])
    assert same.exit_code == 0, same.output
    junit = tmp_path / "junit.xml"
    b = _copy_run(golden, tmp_path / "b2", failed)
    result = CliRunner().invoke(main, ["compare", str(a), str(b), "--junit", str(junit)])
    assert result.exit_code == 1, result.output
    assert "FAIL B: " in result.output
    assert "silent_failures == 0: no data in http/echo" in result.output
    xml = junit.read_text()
    assert 'name="thresholds"' in xml
    assert 'type="threshold"' in xml


def _with_misrouted(n: int) -> dict[str, Any]:
    """A run document: 1000 clean echo calls on http, and ``n`` answers to unknown ids."""
    ops: dict[str, Any] = {
        "echo": {
            "count": 1000,
            "ok": 1000,
            "errors": {},
            "silent": {},
            "rate": 100.0,
            "latency_us": {"p50": 1000, "p90": 1500, "p99": 2000, "p999": 2500, "max": 3000, "mean": 1100},
        }
    }
    if n:
        ops["(unattributed)"] = {"count": 0, "ok": 0, "errors": {}, "silent": {"misrouted": n}}
    return {
        "schema": "mcp-loadtest/run/1",
        "meta": {"scenario_hash": "h"},
        "transports": {"http": {"ops": ops}},
    }


def test_compare_weighs_unattributed_failures_against_the_transports_calls() -> None:
    from loadtest.analysis.compare.model import Run, Side
    from loadtest.analysis.compare.verdicts import REGRESSED, compare_sides

    def side(label: str, n: int) -> Side:
        return Side(label, [Run(Path(f"/nonexistent/{label}"), _with_misrouted(n), label)])

    # Both sides misroute (so it is no new kind): only the rate over all calls can tell them apart.
    c = compare_sides(side("A", 2), side("B", 300))
    row = next(r for r in c.rows if r.op == "(unattributed)" and r.metric.kind == "count")
    assert row.verdict == REGRESSED, row
    assert "300/1000" in row.method


def test_a_scenario_gating_only_error_rate_is_told_its_meaning_changed(tmp_path: Path) -> None:
    scenario = tmp_path / "old.toml"
    scenario.write_text(
        'transports = ["http"]\nthresholds = ["error_rate == 0"]\n'
        '[workload]\nrequests = 20\nwarmup = "0s"\n[[ops]]\nmethod = "ping"\n'
    )
    done = cli("run", str(scenario), "--out", str(tmp_path / "out"), "--no-progress")
    assert done.returncode == 0, done.stderr
    (note,) = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert str(scenario) in note
    assert "loud failures only" in note
    assert "failure_rate" in note
