"""The generator warns that it may be the bottleneck only when it is the cause.

Known-bad: a loop kept busy by the generator's own work (CPU spent in a callback). Known
elsewhere: an idle loop whose CPU other processes take (busy processes pinned to its CPU,
the loop at a low priority).
Known-good: an idle loop.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from loadtest.present.terminal import Style, render_summary
from loadtest.run.bottleneck import bottleneck, is_own
from loadtest.run.ticker import LagProbe

pytestmark = pytest.mark.anyio

#: How long each stall of the loop lasts: four times the 5 ms limit.
STALL_S = 0.02


def _spin_cpu(seconds: float) -> None:
    # Busy for `seconds` of this process's CPU time (not wall time, which a shared machine
    # could stretch without the loop doing more of its own work).
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


async def _probe_while(stall: Any, probes: int = 60) -> LagProbe:
    probe = LagProbe()
    async with anyio.create_task_group() as tg:
        tg.start_soon(probe.run)
        while probe.lag.get_total_count() < probes:
            stall(STALL_S)
            await anyio.sleep(0.005)
        tg.cancel_scope.cancel()
    return probe


def _p99(hist: Any) -> int:
    return int(hist.get_value_at_percentile(99.0))


async def test_lag_from_its_own_busy_loop_is_its_own() -> None:
    probe = await _probe_while(_spin_cpu)
    found = bottleneck(0.3, _p99(probe.lag), _p99(probe.own))
    assert found is not None
    assert found["cause"] == "own_busy"
    assert is_own(found)


_NICE_PROBE = """
import json, os, sys
import anyio
from loadtest.run.ticker import LagProbe

async def main() -> None:
    probe = LagProbe()
    async with anyio.create_task_group() as tg:
        tg.start_soon(probe.run)
        await anyio.sleep(2.0)
        tg.cancel_scope.cancel()
    # Off the busy CPU again to report and exit (at nice 19 beside them that alone takes seconds).
    os.sched_setaffinity(0, everywhere)
    print(json.dumps([int(h.get_value_at_percentile(99.0)) for h in (probe.lag, probe.own)]), flush=True)
    os._exit(0)

everywhere = os.sched_getaffinity(0)
os.sched_setaffinity(0, {int(sys.argv[1])})
# The lowest nice level: its wake-ups wait for the busy processes' time slices (at nice 10 the
# kernel's wake-up preemption sometimes let it in at once: 2.2 ms p99 in one CI run).
os.nice(19)
anyio.run(main)
"""


@pytest.mark.skipif(not Path("/proc/thread-self/schedstat").exists(), reason="needs Linux run-queue delays")
async def test_lag_while_other_processes_had_the_cpu_came_from_elsewhere() -> None:
    # An idle generator loop (at the lowest priority, nice 19) pinned to one CPU with two busy
    # processes: it is late to wake because it waits for that CPU, not because of its work.
    cpu = min(os.sched_getaffinity(0))
    hog = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nprint(flush=True)\nwhile True: pass"
    hogs = [await anyio.open_process([sys.executable, "-c", hog]) for _ in range(2)]
    try:
        # Each hog says when it is pinned and spinning: only then does the probe start.
        for process in hogs:
            assert process.stdout is not None
            await process.stdout.receive()
        done = await anyio.run_process([sys.executable, "-c", _NICE_PROBE, str(cpu)])
    finally:
        for process in hogs:
            process.kill()
            await process.wait()
    lag_p99, own_p99 = json.loads(done.stdout)
    assert lag_p99 > 5_000, (lag_p99, own_p99)
    found = bottleneck(0.01, lag_p99, own_p99)
    assert found is not None
    assert found["cause"] == "elsewhere"
    assert not is_own(found)


async def test_an_idle_loop_is_no_bottleneck() -> None:
    probe = await _probe_while(lambda _: None, probes=30)
    # Whatever lag this shared machine adds, the generator's own share of it stays small.
    assert _p99(probe.own) < 5_000
    assert not is_own(bottleneck(0.01, _p99(probe.lag), _p99(probe.own)))


def test_the_cause_is_decided_by_cpu_first_then_own_lag() -> None:
    assert bottleneck(0.93, 100, 100)["cause"] == "own_cpu"  # type: ignore[index]
    assert bottleneck(0.2, 12_000, 11_000)["cause"] == "own_busy"  # type: ignore[index]
    assert bottleneck(0.02, 6_270, 300)["cause"] == "elsewhere"  # type: ignore[index]
    assert bottleneck(0.2, 1_000, 900) is None


def _summary(**generator: Any) -> str:
    run = {
        "transports": {"stdio": {"ops": {}, "generator": {"cpu_s": 1.0, **generator}}},
        "totals": {"calls": 0, "errors": 0, "silent_failures": 0},
    }
    return render_summary(run, Style(colour=False))


def test_the_summary_says_which_cause() -> None:
    cpu = _summary(
        cpu_busy=0.93, lag_p99_us=12_000, bottleneck=bottleneck(0.93, 12_000, 12_000), saturated=True
    )
    assert "may be the bottleneck: its own CPU was 93% of one core" in cpu
    assert "--workers spreads the load" in cpu
    busy = _summary(
        cpu_busy=0.3,
        lag_p99_us=12_000,
        own_lag_p99_us=11_000,
        bottleneck=bottleneck(0.3, 12_000, 11_000),
        saturated=True,
    )
    assert "may be the bottleneck: its event loop woke late while busy with its own work" in busy
    # The case: 2% of a core and 6 ms of lag, all of it from other processes.
    elsewhere = _summary(
        cpu_busy=0.02, lag_p99_us=6_270, bottleneck=bottleneck(0.02, 6_270, 300), saturated=False
    )
    assert "bottleneck" not in elsewhere
    assert (
        "the lag came from elsewhere (other processes on this machine), not from the generator" in elsewhere
    )
    assert "note: on stdio the event loop woke late (lag p99 6.27ms)" in elsewhere
