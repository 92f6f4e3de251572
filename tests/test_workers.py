"""`--workers N`: generator processes whose figures merge exactly, against the real reference server."""

from __future__ import annotations

import json
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

import loadtest.protocol.session as session_module
from loadtest.core.errors import UsageError
from loadtest.protocol.session import Session, number_sessions
from loadtest.run.execute import execute
from loadtest.run.workers import check_workers, share_scenario, split
from loadtest.scenario import Scenario, load_scenario

CLI = [sys.executable, "-m", "loadtest"]

ECHO_AND_PING = """
[[ops]]
tool = "echo"
weight = 3
arguments = { text = "{nonce}" }
expect = { text = "{nonce}" }
[[ops]]
method = "tools/list"  # not ping: 2026-07-28 removed it, and auto speaks 2026-07-28
"""


def scenario(tmp_path: Path, text: str) -> Scenario:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return load_scenario(path)


def hlog_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    reader = HistogramLogReader(str(path), HdrHistogram(1, 3_600_000_000, 3))
    while (interval := reader.get_next_interval_histogram()) is not None:
        tag = interval.get_tag()
        counts[tag] = counts.get(tag, 0) + interval.get_total_count()
    reader.close()
    return counts


def assert_merged_exactly(section: dict[str, Any], hlog: Path, workers: int) -> int:
    """The merged figures are the sums of the workers' own; returns the calls."""
    ops = section["ops"]
    per_worker = section["generator"]["per_worker"]
    assert [w["index"] for w in per_worker] == list(range(workers))
    calls = sum(op["count"] for op in ops.values())
    # Every worker did its share, and the workers' own totals add up to the merged ones.
    assert all(w["calls"] > 0 for w in per_worker), per_worker
    assert sum(w["calls"] for w in per_worker) == calls
    recorded = 0
    logged = hlog_counts(hlog)
    for name, op in ops.items():
        assert op["errors"] == {}, name
        assert op["silent"] == {}, name
        hist = HdrHistogram.decode(op["hdr"])
        assert hist.get_total_count() == op["count"] == op["ok"], name
        assert HdrHistogram.decode(op["hdr_uncorrected"]).get_total_count() == op["count"], name
        assert hist.get_value_at_percentile(99) == op["latency_us"]["p99"], name
        # The interval log, written from the merged intervals, holds the same calls.
        assert logged[op["hlog_tag"]] == op["count"], name
        recorded += hist.get_total_count()
    assert sum(w["recorded"] for w in per_worker) == recorded
    assert section["generator"]["workers"] == workers
    return int(calls)


pytestmark = pytest.mark.anyio


async def test_two_workers_merge_exactly_on_every_transport(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        """
        transports = ["stdio", "sse", "http"]
        [workload]
        sessions = 3
        duration = "1s"
        warmup = "0.5s"
        """
        + ECHO_AND_PING,
    )
    directory = tmp_path / "run"
    directory.mkdir()
    outcome = await execute(s, directory, workers=2)
    assert outcome.failure is None
    document = outcome.document
    assert document["meta"]["workers"] == 2
    assert document["totals"]["silent_failures"] == 0
    calls = 0
    for transport in ("stdio", "sse", "http"):
        section = document["transports"][transport]
        calls += assert_merged_exactly(section, directory / f"{transport}.hlog", 2)
        # Session counts add up too (how many opened before the end depends on the machine).
        per_worker = section["generator"]["per_worker"]
        assert section["sessions"]["opened"] == sum(w["sessions_opened"] for w in per_worker) >= 2
        assert section["negotiated_protocol_version"]
        assert section["server"]["cpu_s"] > 0
    assert document["totals"]["calls"] == calls


async def test_open_model_workers_send_exactly_the_one_schedule(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        """
        transports = ["http"]
        [target]
        json_response = true
        [workload]
        model = "open"
        rate = "100/s"
        sessions = 2
        duration = "1.5s"
        warmup = "0.5s"
        """
        + ECHO_AND_PING,
    )
    directory = tmp_path / "run"
    directory.mkdir()
    outcome = await execute(s, directory, workers=2)
    assert outcome.failure is None
    section = outcome.document["transports"]["http"]
    # Arrivals 0, 10 ms, ... 1490 ms after warm-up: 150, worker i taking every other one.
    assert assert_merged_exactly(section, directory / "http.hlog", 2) == 150
    assert [w["calls"] for w in section["generator"]["per_worker"]] == [75, 75]


async def test_request_limit_is_exact_across_workers(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        """
        transports = ["sse"]
        [workload]
        sessions = 3
        requests = 37
        warmup = "0s"
        [[ops]]
        method = "ping"
        """,
    )
    directory = tmp_path / "run"
    directory.mkdir()
    outcome = await execute(s, directory, workers=3)
    assert outcome.failure is None
    section = outcome.document["transports"]["sse"]
    assert assert_merged_exactly(section, directory / "sse.hlog", 3) == 37
    assert [w["calls"] for w in section["generator"]["per_worker"]] == [13, 12, 12]


async def test_workers_report_the_client_and_error_examples_like_one_process(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        """
        transports = ["sse"]
        [workload]
        sessions = 2
        requests = 40
        warmup = "0s"
        [[ops]]
        tool = "fail"
        arguments = { nonce = "{nonce}" }
        [[ops]]
        method = "ping"
        """,
    )
    sections = []
    for workers in (1, 2):
        directory = tmp_path / f"run{workers}"
        directory.mkdir()
        outcome = await execute(s, directory, workers=workers)
        assert outcome.failure is None
        sections.append(outcome.document["transports"]["sse"])
    for section in sections:
        client = section["client"]
        # compare reads the client's cost per call; with workers it was missing.
        assert client["kind"] == "builtin"
        assert client["calls"] == 40
        assert client["cpu_s"] > 0
        assert client["cpu_per_call_us"] == pytest.approx(client["cpu_s"] / 40 * 1e6, rel=0.01)
        fail = section["ops"]["fail"]
        assert fail["errors"]["is_error"] == fail["count"] > 0
        kept = fail["error_examples"]["is_error"]
        assert 0 < len(kept) <= 5
        assert all("fail requested nonce-" in example["detail"] for example in kept)
    assert sections[0]["client"].keys() == sections[1]["client"].keys()


async def test_workers_skip_the_ops_the_protocol_removed_like_one_process(tmp_path: Path) -> None:
    # On 2026-07-28 ping is gone: each worker skips it, and the merged run.json says so, so
    # that the gates leave it out instead of failing it for "no data".
    s = scenario(
        tmp_path,
        """
        transports = ["http"]
        [workload]
        sessions = 2
        requests = 30
        warmup = "0s"
        [[ops]]
        tool = "echo"
        arguments = { text = "{nonce}" }
        [[ops]]
        method = "ping"
        """,
    )
    outcome = await execute(s, tmp_path, workers=2)
    assert outcome.failure is None
    section = outcome.document["transports"]["http"]
    assert section["protocol_chosen_by"] == "discover"
    assert section["skipped_ops"] == {"ping": f"removed in {section['negotiated_protocol_version']}"}
    assert section["ops"]["ping"]["count"] == 0
    assert section["ops"]["echo"]["count"] == section["ops"]["echo"]["ok"] == 30


def test_shares_add_up_to_the_workload(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        """
        [workload]
        requests = 11
        stages = [{ duration = "1s", sessions = 1 }, { duration = "1s", sessions = 7 }]
        """
        + ECHO_AND_PING,
    )
    shares = [share_scenario(s, i, 3).workload for i in range(3)]
    assert [w.sessions for w in shares] == [3, 2, 2]
    assert [w.requests for w in shares] == [4, 4, 3]
    assert [[stage.sessions for stage in w.stages] for w in shares] == [[1, 3], [0, 2], [0, 2]]
    assert all(w.stages[0].duration == 1.0 for w in shares)
    assert [split(10, i, 4) for i in range(4)] == [3, 3, 2, 2]


def test_more_workers_than_sessions_is_a_usage_error(tmp_path: Path) -> None:
    s = scenario(tmp_path, "[workload]\nsessions = 2\n" + ECHO_AND_PING)
    check_workers(s, 2)
    with pytest.raises(UsageError, match="more workers than the 2 sessions"):
        check_workers(s, 3)
    done = subprocess.run(
        [*CLI, "run", "--workers", "3", "--sessions", "2", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr


class _NoChannel:
    pass


def test_workers_number_their_sessions_apart() -> None:
    seen: dict[int, int] = {}
    saved = session_module._session_numbers
    try:
        for worker in range(3):
            number_sessions(worker + 1, 3)
            for _ in range(50):
                number = Session(_NoChannel()).number  # type: ignore[arg-type]
                assert number not in seen, (worker, seen.get(number))
                seen[number] = worker
    finally:
        session_module._session_numbers = saved
    assert len(seen) == 150


def _results_path(stdout: str) -> Path:
    match = re.search(r"^results: (.+)$", stdout, re.MULTILINE)
    assert match, stdout
    return Path(match.group(1))


def _wait_for_line(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if text in line:
            return
        assert time.monotonic() < deadline
    raise AssertionError(f"{text!r} never printed")


def _workers_of(pid: int) -> list[psutil.Process]:
    # The workers are the tester's own children. Not recursive: a server a worker starts
    # carries the worker's command line between fork and exec, and would count as a worker.
    return [p for p in psutil.Process(pid).children() if "loadtest.run.workers" in " ".join(p.cmdline())]


def test_interrupt_with_workers_writes_merged_partial_results_and_leaves_no_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            *CLI,
            "run",
            "--workers",
            "2",
            "--duration",
            "60s",
            "--transport",
            "stdio",
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        _wait_for_line(proc, "stdio: running")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(_workers_of(proc.pid)) == 2
        time.sleep(1.5)  # let a measured interval or so pass; not a timing assertion
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    run = json.loads(_results_path(stdout).read_text())
    section = run["transports"]["stdio"]
    assert sum(w["calls"] for w in section["generator"]["per_worker"]) == run["totals"]["calls"]
    assert "partial results written" in stderr
    assert run["meta"]["partial"] is True
    assert run["meta"]["ran"]["transports"]["stdio"]["completed"] is False
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_a_worker_that_dies_fails_the_run_and_keeps_the_rest(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            *CLI,
            "run",
            "--workers",
            "2",
            "--duration",
            "4s",
            "--transport",
            "sse",
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        _wait_for_line(proc, "sse: running")
        workers = _workers_of(proc.pid)
        assert len(workers) == 2
        workers[0].kill()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, stderr
    assert "Traceback" not in stderr
    assert "killed by signal 9" in stderr
    run = json.loads(_results_path(stdout).read_text())
    assert "partial" in run["error"]
    per_worker = run["transports"]["sse"]["generator"]["per_worker"]
    assert sum("error" in w for w in per_worker) == 1
    survivor = next(w for w in per_worker if "error" not in w)
    # The survivor's calls, and whatever the other sent before it died, are all in the totals.
    assert run["totals"]["calls"] >= survivor["calls"] > 0
