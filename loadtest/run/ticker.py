"""The clock of a transport's run: interval ticks, progress and soak status, the lag probe."""

from __future__ import annotations

import os
import time
from typing import Any

import anyio
from hdrh.histogram import HdrHistogram

from loadtest.core.names import LAG_RANGE
from loadtest.measure.metrics import Recorder
from loadtest.run.control import Progress
from loadtest.run.guard import TargetGuard
from loadtest.run.state import RunState

#: How often the lag probe sleeps and measures how late it woke.
LAG_PERIOD_NS = 10_000_000


class Ticker:
    """Every second: an interval for the recorder (or a worker's parent), progress, status."""

    def __init__(
        self, run: RunState, recorder: Recorder, progress: Progress, guard: TargetGuard, status_every_s: float
    ) -> None:
        self.run = run
        self.recorder = recorder
        self.progress = progress
        self.guard = guard
        self.status_ns = int(status_every_s * 1e9)

    async def run_ticks(self) -> None:
        run = self.run
        window = run.window
        assert window is not None
        transport = run.transport
        interval_ns = 1_000_000_000
        next_tick = window.t0_ns + interval_ns
        status_ns = self.status_ns
        next_status = window.measure_start_ns + status_ns
        calls_at_status = 0
        while True:
            await anyio.sleep(max(0.0, (next_tick - time.perf_counter_ns()) / 1e9))
            now = time.perf_counter_ns()
            measuring = window.measuring(now)
            # No interval reaches past the window's end: calls that finish while the run
            # drains belong to the window's last interval, and rates stay calls over the window.
            end = run.measured_end_ns(now)
            if run.share is not None:
                # A worker keeps telling its parent it is alive, even while draining, and
                # every interval it sends must be folded here (or it would go out again).
                run.share.interval(end, not measuring, False)
            if measuring and (run.share is not None or end == now):
                self.recorder.tick(end, transport=transport)
            if run.plan.model == "closed" and window.over(now):
                # Also ends a closed run in which no call was due (idle stages). The open
                # model's schedule ends itself, so no call due before the end is refused.
                run.stop()
            if not self.guard.idling:
                self.progress.tick(
                    transport, (now - window.measure_start_ns) / 1e9, not measuring, self.recorder
                )
            if status_ns and now >= next_status:
                figures = self.status(now, calls_at_status, status_ns + now - next_status)
                calls_at_status = figures["calls"]
                self.progress.status(transport, figures)
                next_status = max(next_status + status_ns, now)
            next_tick += interval_ns

    def status(self, now_ns: int, calls_before: int, period_ns: int) -> dict[str, Any]:
        """What a soak's status line says: progress, failures, server and generator health."""
        run = self.run
        assert run.window is not None
        live = self.recorder.live(run.transport)
        health = self.guard.health
        server = health.monitor.last if health.watching else None
        counts = health.counts
        return {
            "elapsed_s": (now_ns - run.window.measure_start_ns) / 1e9,
            "planned_s": run.plan.planned_s,
            "calls": live.calls,
            "rate": (live.calls - calls_before) / (period_ns / 1e9) if period_ns > 0 else 0.0,
            "errors": live.errors,
            "silent": live.silent,
            "sessions": self.recorder.live_sessions(run.transport),
            "server_rss": server[1] if server else None,
            "server_fds": server[3] if server else None,
            "server_threads": server[4] if server else None,
            "crashes": counts["crash"],
            "hangs": counts["hang"],
            "restarts": counts["restart"],
            "generator_rss": health.generator_rss,
        }


class LagProbe:
    """The event loop's scheduling lag: how late a 10 ms sleep wakes up.

    A generator whose loop is late sends late, and the corrected histogram then blames the
    server. Each lateness is also split by its cause (see :mod:`loadtest.run.bottleneck`):
    the time the loop's thread spent waiting for a CPU meanwhile (Linux's per-thread
    run-queue delay) came from elsewhere; ``own`` holds the rest, the loop busy with the
    generator's own work. Where the kernel does not say, all of it counts as its own.
    """

    def __init__(self) -> None:
        self.lag = HdrHistogram(*LAG_RANGE)
        self.own = HdrHistogram(*LAG_RANGE)

    async def run(self) -> None:
        waited = RunQueueDelay()
        try:
            while True:
                before = time.perf_counter_ns()
                wait_before = waited.ns()
                await anyio.sleep(LAG_PERIOD_NS / 1e9)
                late_ns = max(0, time.perf_counter_ns() - before - LAG_PERIOD_NS)
                wait_after = waited.ns()
                elsewhere_ns = (
                    wait_after - wait_before if wait_after is not None and wait_before is not None else 0
                )
                self.lag.record_value(min(late_ns // 1000, LAG_RANGE[1]))
                self.own.record_value(min(max(0, late_ns - elsewhere_ns) // 1000, LAG_RANGE[1]))
        finally:
            waited.close()


class RunQueueDelay:
    """How long this thread has waited for a CPU while runnable (``/proc/thread-self/schedstat``)."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            self._fd = None

    def ns(self) -> int | None:
        """Nanoseconds waited so far, or None where the kernel does not tell."""
        if self._fd is None:
            return None
        try:
            # "<on-cpu ns> <run-queue wait ns> <timeslices>"
            return int(os.pread(self._fd, 128, 0).split()[1])
        except (OSError, ValueError, IndexError):
            return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


__all__ = ["LagProbe", "RunQueueDelay", "Ticker"]
