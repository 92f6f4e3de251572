"""`run` against the real reference server: the workload models do what they say."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from hdrh.histogram import HdrHistogram

from loadtest.core.process import launch, wait_for_port
from loadtest.measure.metrics import Recorder
from loadtest.run.driver import Progress, run_scenario
from loadtest.run.targets.reference import free_port, reference_command
from loadtest.scenario import Scenario, load_scenario

pytestmark = pytest.mark.anyio


def scenario(tmp_path: Path, text: str, **overrides: Any) -> Scenario:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return load_scenario(path, overrides or None)


async def run(s: Scenario, tmp_path: Path, progress: Progress | None = None) -> dict[str, Any]:
    recorder = Recorder(out_dir=tmp_path)
    await run_scenario(s, recorder, progress=progress)
    recorder.finish()
    summary: dict[str, Any] = recorder.summary()
    return summary


async def test_closed_loop_keeps_exactly_n_calls_in_flight(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        """
        transports = ["http"]
        [workload]
        sessions = 5
        duration = "1.5s"
        warmup = "0s"
        [[ops]]
        tool = "sleep"
        arguments = { ms = 150, nonce = "{nonce}" }
        expect = { text = "slept 150 {nonce}" }
        """,
    )
    summary = await run(s, tmp_path)
    http = summary["http"]
    # Every session is always waiting on one 150 ms call: 5 at once, never more.
    assert http["generator"]["in_flight_max"] == 5
    assert http["sessions"]["opened"] == 5
    stats = http["ops"]["sleep"]
    assert stats["count"] == stats["ok"] > 0
    assert stats["latency_us"]["p50"] >= 150_000


async def test_open_model_sends_exactly_the_scheduled_calls(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        """
        transports = ["stdio", "http"]
        [workload]
        model = "open"
        rate = "100/s"
        sessions = 2
        duration = "2s"
        warmup = "0.5s"
        [[ops]]
        tool = "echo"
        arguments = { text = "{nonce}" }
        expect = { text = "{nonce}" }
        """,
    )
    summary = await run(s, tmp_path)
    for transport in ("stdio", "http"):
        stats = summary[transport]["ops"]["echo"]
        # 100/s for 2 s after warm-up: calls due at 0, 10 ms, ... 1990 ms.
        assert stats["count"] == 200, transport
        assert stats["ok"] == 200


async def test_request_limit_is_exact(tmp_path: Path) -> None:
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
    summary = await run(s, tmp_path)
    assert summary["sse"]["ops"]["ping"]["count"] == 37


async def test_server_side_delay_shows_as_latency_at_least_that(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        """
        transports = ["stdio", "sse", "http"]
        [target]
        delay_ms = 25
        [workload]
        sessions = 2
        requests = 20
        warmup = "0s"
        [[ops]]
        tool = "echo"
        arguments = { text = "{nonce}" }
        expect = { text = "{nonce}" }
        """,
    )
    summary = await run(s, tmp_path)
    for transport in ("stdio", "sse", "http"):
        stats = summary[transport]["ops"]["echo"]
        assert stats["ok"] == 20
        fastest = HdrHistogram.decode(stats["hdr_uncorrected"]).get_min_value()
        assert fastest >= 25_000, transport


class _StallAfterFirstSecond(Progress):
    def __init__(self) -> None:
        self.measuring = anyio.Event()

    def tick(self, transport: str, elapsed_s: float, warming: bool, recorder: Recorder) -> None:
        if not warming and elapsed_s >= 0.5:
            self.measuring.set()


async def test_a_stalled_server_shows_in_the_corrected_histogram(tmp_path: Path) -> None:
    port = free_port()
    command = reference_command("http", port=port)
    s = scenario(
        tmp_path,
        f"""
        transports = ["http"]
        [target]
        url = "http://127.0.0.1:{port}/mcp"
        [workload]
        model = "open"
        rate = "100/s"
        sessions = 1
        max_in_flight = 1
        duration = "3s"
        warmup = "0s"
        [[ops]]
        tool = "echo"
        arguments = {{ text = "{{nonce}}" }}
        """,
    )
    progress = _StallAfterFirstSecond()
    async with launch(command, stdin=False, stdout=False) as server:
        await wait_for_port(server, "127.0.0.1", port, 20)

        async def stall() -> None:
            await progress.measuring.wait()
            os.kill(server.pid, signal.SIGSTOP)
            try:
                await anyio.sleep(1.0)  # the stall itself: the server is frozen this long
            finally:
                os.kill(server.pid, signal.SIGCONT)

        async with anyio.create_task_group() as tg:
            tg.start_soon(stall)
            summary = await run(s, tmp_path, progress)
    stats = summary["http"]["ops"]["echo"]
    assert stats["ok"] == stats["count"] == 300
    corrected = HdrHistogram.decode(stats["hdr"]).get_value_at_percentile(99)
    uncorrected = HdrHistogram.decode(stats["hdr_uncorrected"]).get_value_at_percentile(99)
    # ~100 calls were due during the 1 s freeze: measured from when they were due, the
    # slowest wait most of a second; measured from when they could be sent, almost nothing.
    assert corrected >= 500_000
    assert uncorrected * 3 < corrected


async def test_low_rate_schedules_every_call_and_holds_to_the_end(tmp_path: Path) -> None:
    # 600/h is one call every 6 s; the same code path as 300/h, in 7 s instead of 24.
    s = scenario(
        tmp_path,
        """
        transports = ["http"]
        [workload]
        model = "open"
        rate = "600/h"
        sessions = 1
        duration = "7s"
        warmup = "0s"
        [[ops]]
        method = "ping"
        """,
    )
    summary = await run(s, tmp_path)
    assert summary["http"]["ops"]["ping"]["count"] == 2
    # The run lasts its planned 7 s, not until the last call (6 s) or the next one (12 s).
    assert summary["http"]["measured_s"] >= 6.9


async def test_churn_opens_a_fresh_session_every_k_calls(tmp_path: Path) -> None:
    s = scenario(
        tmp_path,
        """
        transports = ["http", "stdio"]
        [workload]
        sessions = 2
        requests = 40
        churn = 10
        warmup = "0s"
        [[ops]]
        method = "ping"
        """,
    )
    summary = await run(s, tmp_path)
    for transport in ("http", "stdio"):
        assert summary[transport]["ops"]["ping"]["ok"] == 40
        # 40 calls by 2 sessions, each replaced after 10 calls: at least 4 sessions.
        assert summary[transport]["sessions"]["opened"] >= 4, transport


def test_bundled_python_is_this_interpreter() -> None:
    assert reference_command("stdio")[0] == sys.executable
