"""ProcessMonitor against real processes: a child that holds memory, spins, and has a child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import partial

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from loadtest.run.targets.monitor import ProcessMonitor, self_usage

MB = 1 << 20

BURN = """
import time
def burn(cpu_s):
    start = time.process_time()
    while time.process_time() - start < cpu_s:
        sum(range(1000))
    return time.process_time() - start
"""

# Holds 20 MB; on "spin" (or end of input) burns CPU, reports how much, and exits.
GRANDCHILD = BURN + textwrap.dedent(
    """
    import sys
    blob = b"y" * (20 << 20)
    print("ready", flush=True)
    line = sys.stdin.readline()
    spent = burn(0.3) if line.strip() == "spin" else 0.0
    print(spent, flush=True)
    """
)

# Holds 50 MB and runs the grandchild; obeys commands on stdin, one answer line each.
CHILD = BURN + textwrap.dedent(
    f"""
    import subprocess, sys
    blob = b"x" * (50 << 20)
    gc = subprocess.Popen([sys.executable, "-c", {GRANDCHILD!r}],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert gc.stdout.readline() == b"ready\\n"
    print("ready", gc.pid, flush=True)
    for line in sys.stdin:
        if line.strip() == "spin":
            print("spun", burn(0.3), flush=True)
        elif line.strip() == "reap":
            gc.stdin.write(b"spin\\n")
            gc.stdin.flush()
            spent = float(gc.stdout.readline())
            gc.wait()
            print("reaped", spent, flush=True)
    if gc.poll() is None:
        gc.stdin.close()
        gc.wait()
    """
)


class Child:
    def __init__(self, process: anyio.abc.Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self.stdin = process.stdin
        self.stdout = BufferedByteReceiveStream(process.stdout)

    async def ask(self, command: str) -> list[str]:
        await self.stdin.send(command.encode() + b"\n")
        return await self.answer()

    async def answer(self) -> list[str]:
        with anyio.fail_after(60):
            line = await self.stdout.receive_until(b"\n", 1024)
        return line.decode().split()


@asynccontextmanager
async def child_tree() -> AsyncIterator[tuple[Child, int]]:
    """The child running, its grandchild ready; both killed (whole session) on the way out."""
    process = await anyio.open_process(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        child = Child(process)
        word, grandchild_pid = await child.answer()
        assert word == "ready"
        yield child, int(grandchild_pid)
    finally:
        # The child leads its own session, so the group kill reaches the grandchild too.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with anyio.move_on_after(10, shield=True):
            await process.wait()
        await process.aclose()


@pytest.mark.anyio
async def test_tree_memory_and_cpu_including_a_reaped_grandchild() -> None:
    async with child_tree() as (child, grandchild_pid), anyio.create_task_group() as tg:
        monitor = ProcessMonitor()
        # A long interval: the test takes the samples that matter itself, with sample_now().
        await tg.start(partial(monitor.run, child.process.pid, interval_s=3600.0))
        first = monitor.summary()
        assert first["rss_start_bytes"] >= 70 * MB  # 50 MB + the grandchild's 20 MB
        assert first["processes_peak"] == 2
        assert first["threads_peak"] >= 2
        assert first["fds_peak"] is not None
        assert first["fds_peak"] >= 6
        assert len(first["samples"]) == 1

        word, spun = await child.ask("spin")
        assert word == "spun"
        word, reaped = await child.ask("reap")  # the grandchild spins, exits and is reaped
        assert word == "reaped"
        assert not await anyio.Path(f"/proc/{grandchild_pid}").exists()
        assert monitor.sample_now()

        summary = monitor.summary()
        # The grandchild's CPU counts although it is gone (it moved into the child's
        # children_user/system); 5% slack for process_time() vs /proc tick granularity.
        assert summary["cpu_s"] >= 0.95 * (float(spun) + float(reaped))
        # ...and only once: little besides the two spins ran since the first sample.
        assert summary["cpu_s"] < float(spun) + float(reaped) + 0.5
        assert summary["rss_peak_bytes"] >= 70 * MB
        assert summary["rss_end_bytes"] >= 50 * MB
        assert summary["rss_end_bytes"] < summary["rss_peak_bytes"]  # the grandchild's 20 MB left
        t, rss, cpu, fds, threads = summary["samples"][-1]
        assert (rss, cpu) == (summary["rss_end_bytes"], summary["cpu_s"])
        assert t >= 0
        assert fds >= 3
        assert threads >= 1
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_process_that_exits_ends_sampling_quietly() -> None:
    async with child_tree() as (child, _):
        monitor = ProcessMonitor()
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                await tg.start(partial(monitor.run, child.process.pid, interval_s=0.02))
                # End of input: the child lets its grandchild finish and exits; run() returns
                # by itself, without an exception, which ends the task group.
                await child.stdin.aclose()
        assert monitor.ended
        assert not monitor.sample_now()
        summary = monitor.summary()
        assert summary["rss_peak_bytes"] >= 70 * MB
        assert summary["samples"]
        assert summary["cpu_s"] >= 0


@pytest.mark.anyio
async def test_no_such_process() -> None:
    monitor = ProcessMonitor()
    pid = 2**22 + 12345  # above the default pid_max of 4194304
    with anyio.fail_after(10):
        await monitor.run(pid, interval_s=0.01)
    assert monitor.ended
    assert monitor.summary() == {
        "rss_start_bytes": None,
        "rss_peak_bytes": None,
        "rss_end_bytes": None,
        "cpu_s": None,
        "fds_peak": None,
        "threads_peak": None,
        "processes_peak": 0,
        "samples": [],
        "sample_sessions": [],
        "sample_segments": [],
    }


def test_series_is_bounded_and_downsampled() -> None:
    monitor = ProcessMonitor(max_samples=8)
    assert monitor.attach(os.getpid())
    for _ in range(100):
        assert monitor.sample_now()
    samples = monitor.summary()["samples"]
    assert 4 <= len(samples) < 8
    times = [row[0] for row in samples]
    assert times == sorted(times)
    assert times[0] == 0


def test_self_usage() -> None:
    cpu_s, rss = self_usage()
    assert cpu_s > 0
    assert rss > 10 * MB
