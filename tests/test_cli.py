"""The command line as a user meets it: exit codes, one-line errors, results files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from loadtest.core.units import format_latency_us

CLI = [sys.executable, "-m", "loadtest"]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _results_path(stdout: str) -> Path:
    match = re.search(r"^results: (.+)$", stdout, re.MULTILINE)
    assert match, stdout
    return Path(match.group(1))


def test_default_run_passes_on_every_transport(tmp_path: Path) -> None:
    # The README's first command, shortened: bundled scenario, bundled server, all transports.
    done = cli("run", "--duration", "2s", "--out", str(tmp_path), "--no-progress")
    assert done.returncode == 0, done.stderr
    run = json.loads(_results_path(done.stdout).read_text())
    assert run["schema"] == "mcp-loadtest/run/1"
    assert set(run["transports"]) == {"stdio", "sse", "http"}
    assert run["totals"]["calls"] > 0
    assert run["totals"]["errors"] == 0
    assert run["totals"]["silent_failures"] == 0
    assert all(t["passed"] for t in run["thresholds"])
    assert run["meta"]["target"]["sdk"]["name"] == "mcp"
    for section in run["transports"].values():
        assert section["negotiated_protocol_version"]
        assert section["server"]["rss_peak_bytes"] > 0


def test_results_decode_and_agree_with_the_printed_summary(tmp_path: Path) -> None:
    done = cli("run", "--transport", "sse", "--duration", "2s", "--out", str(tmp_path), "--no-progress")
    assert done.returncode == 0, done.stderr
    path = _results_path(done.stdout)
    run: dict[str, Any] = json.loads(path.read_text())
    ops = run["transports"]["sse"]["ops"]
    printed = {}
    for line in done.stdout.splitlines():
        cells = line.split()
        if len(cells) == 11 and cells[0] == "sse":
            printed[cells[1]] = cells
    assert set(printed) == set(ops)
    log_counts: dict[str, int] = {}
    reader = HistogramLogReader(str(path.parent / "sse.hlog"), HdrHistogram(1, 3_600_000_000, 3))
    while (interval := reader.get_next_interval_histogram()) is not None:
        tag = interval.get_tag()
        log_counts[tag] = log_counts.get(tag, 0) + interval.get_total_count()
    reader.close()
    for op, stats in ops.items():
        hist = HdrHistogram.decode(stats["hdr"])
        assert hist.get_total_count() == stats["count"] > 0
        p99 = hist.get_value_at_percentile(99)
        assert p99 == stats["latency_us"]["p99"]
        assert printed[op][2] == str(stats["count"])
        assert printed[op][6] == format_latency_us(p99)
        assert log_counts[stats["hlog_tag"]] == stats["count"]


def test_malformed_scenario_names_file_and_key_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[workload]\nrate = "fast"\nmodel = "open"\n')
    done = cli("run", str(bad))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert str(bad) in line
    assert "workload.rate" in line


def test_unreachable_url_is_one_line_and_exit_3(tmp_path: Path) -> None:
    done = cli(
        "run", "--url", "http://127.0.0.1:9/mcp", "--out", str(tmp_path), "--no-progress", "--duration", "1s"
    )
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("mcp-loadtest: error:")]
    assert len(errors) == 1
    assert "127.0.0.1:9" in errors[0]


def test_missing_server_command_is_exit_3(tmp_path: Path) -> None:
    done = cli(
        "run",
        "--target-cmd",
        "no-such-server-xyz {transport}",
        "--transport",
        "stdio",
        "--out",
        str(tmp_path),
    )
    assert done.returncode == 3
    assert "no-such-server-xyz" in done.stderr
    assert "Traceback" not in done.stderr


def test_interrupt_writes_partial_results_and_leaves_no_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*CLI, "run", "--duration", "60s", "--transport", "stdio", "--out", str(tmp_path), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if "stdio: running" in line:
                break
            assert time.monotonic() < deadline
        servers = psutil.Process(proc.pid).children(recursive=True)
        assert servers, "the stdio sessions' server processes should be running"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    run = json.loads(_results_path(stdout).read_text())
    assert run["schema"] == "mcp-loadtest/run/1"
    assert run["transports"]["stdio"]["ops"]
    assert "partial results written" in stderr
    for server in servers:
        assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE


def test_json_summary_on_stdout(tmp_path: Path) -> None:
    done = cli("run", "--transport", "http", "--requests", "50", "--out", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["totals"]["calls"] == 50
    assert Path(summary["path"]).is_file()


def test_threshold_breach_exits_1(tmp_path: Path) -> None:
    scenario = tmp_path / "strict.toml"
    scenario.write_text(
        'transports = ["http"]\nthresholds = ["p50 < 1us"]\n[workload]\nrequests = 20\nwarmup = "0s"\n'
        '[[ops]]\nmethod = "ping"\n'
    )
    done = cli("run", str(scenario), "--out", str(tmp_path))
    assert done.returncode == 1
    assert "FAIL" in done.stdout
    assert "p50 < 1us" in done.stdout


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX only")
def test_reference_server_command_starts_and_answers() -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        },
    }
    done = subprocess.run(
        [*CLI, "reference-server", "--transport", "stdio"],
        input=json.dumps(init) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    answer = json.loads(done.stdout.splitlines()[0])
    assert answer["id"] == 1
    assert answer["result"]["serverInfo"]["name"] == "mcp-loadtest-reference"


def test_run_against_a_baseline_writes_junit(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        'transports = ["http"]\n[workload]\nrequests = 150\nwarmup = "0s"\n[[ops]]\nmethod = "ping"\n'
    )
    first = cli("run", str(scenario), "--out", str(tmp_path / "baseline"), "--no-progress")
    assert first.returncode == 0, first.stderr
    junit = tmp_path / "junit.xml"
    second = cli(
        "run",
        str(scenario),
        "--out",
        str(tmp_path / "new"),
        "--no-progress",
        "--baseline",
        str(tmp_path / "baseline"),
        "--junit",
        str(junit),
    )
    # One run against one is thin evidence, so either verdict may come; what must come is the
    # comparison itself, and a JUnit file with the thresholds and the baseline's gated metrics.
    assert second.returncode in (0, 1), second.stderr
    assert "against baseline" in second.stdout
    xml = junit.read_text()
    assert "<testsuite" in xml
    assert "testcase" in xml
    assert "p99" in xml


def test_missing_baseline_is_a_usage_error(tmp_path: Path) -> None:
    done = cli("run", "--baseline", str(tmp_path / "nope"), "--out", str(tmp_path))
    assert done.returncode == 2
    assert "--baseline" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_baseline_from_another_machine_is_skipped_and_junit_and_summary_still_written(
    tmp_path: Path,
) -> None:
    # A hosted runner that changed CPU model overnight: the nightly job must not stay red (exit
    # 3, no JUnit, no summary) for ever. The mismatched run is skipped with a line saying why.
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        'transports = ["http"]\nthresholds = ["silent_failures == 0"]\n'
        '[workload]\nrequests = 150\nwarmup = "0s"\n[[ops]]\nmethod = "ping"\n'
    )
    first = cli("run", str(scenario), "--out", str(tmp_path / "baseline"), "--no-progress")
    assert first.returncode == 0, first.stderr
    (old,) = (tmp_path / "baseline").glob("*/run.json")
    document = json.loads(old.read_text())
    document["meta"]["cpu_model"] = "Some Other CPU"
    old.write_text(json.dumps(document))
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    args = ["--junit", str(junit), "--markdown", str(summary), "--baseline", str(tmp_path / "baseline")]
    second = cli("run", str(scenario), "--out", str(tmp_path / "new"), "--no-progress", *args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "not compared" in second.stdout
    assert "cpu_model" in second.stdout
    xml = junit.read_text()
    assert 'name="silent_failures == 0"' in xml
    assert "<skipped" in xml
    text = summary.read_text()
    assert "thresholds passed" in text
    assert "not compared with the baseline" in text
    forced = cli("run", str(scenario), "--out", str(tmp_path / "new"), "--no-progress", *args, "--force")
    assert forced.returncode in (0, 1), forced.stderr
    assert "against baseline" in forced.stdout
    assert "compared with --force despite different machines: cpu_model" in forced.stdout
    assert "## mcp-loadtest compare" in summary.read_text()


def test_force_without_a_baseline_is_a_usage_error(tmp_path: Path) -> None:
    done = cli("run", "--force", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "--force goes with --baseline" in done.stderr
