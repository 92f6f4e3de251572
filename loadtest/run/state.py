"""What the closed and open models share while one transport runs."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from loadtest.core.errors import TargetError
from loadtest.run.control import INTERRUPT_GRACE_S, RunControl, TransportReport, WorkerShare
from loadtest.run.pipeline import CallPipeline, Flight
from loadtest.run.plan import Budget, LoadPlan, Window
from loadtest.run.sessions import SessionSource
from loadtest.run.setup import SetUp
from loadtest.run.timing import either
from loadtest.run.workload import OpPicker
from loadtest.scenario import Workload


@dataclass(eq=False)
class RunState:
    """One transport's run as the models see it: plan, window, pipeline, sessions, stop."""

    transport: str
    workload: Workload
    plan: LoadPlan
    control: RunControl
    report: TransportReport
    pipeline: CallPipeline
    source: SessionSource
    picker: OpPicker
    flight: Flight
    stopping: anyio.Event
    #: Starts the clock (warm-up, then measurement); returns the window it set.
    start_clock: Callable[[], Awaitable[Window]]
    setup: SetUp
    share: WorkerShare | None = None
    window: Window | None = None
    budget: Budget | None = None
    #: When the run was told to stop (``perf_counter_ns``), 0 while it runs.
    stopped_ns: int = field(default=0)
    #: Every planned session is open.
    all_open: anyio.Event = field(default_factory=anyio.Event)
    #: The clock has started: calls may go out.
    started: anyio.Event = field(default_factory=anyio.Event)

    def stop(self) -> None:
        if not self.stopping.is_set():
            self.stopped_ns = time.perf_counter_ns()
            self.stopping.set()

    def measured_end_ns(self, now_ns: int) -> int:
        """Where the measured window ends, as far as known at ``now_ns``: the planned end, or
        the stop if it came first. Calls still draining after it are counted, but the time
        they take is not part of the window (rates are calls over the window)."""
        ends = [now_ns]
        if self.stopped_ns:
            ends.append(self.stopped_ns)
        if self.window is not None and self.window.end_ns is not None:
            ends.append(self.window.end_ns)
        return min(ends)

    def session_up(self, index: int) -> None:
        """Session ``index`` (a closed-model worker's, an open-model slot's) is open."""
        if self.setup.opened_one(index, time.perf_counter_ns()):
            self.all_open.set()

    async def set_up(self) -> Window:
        """Wait until the planned sessions are open, or the set-up deadline; start the clock.

        Called once the first session is up (the readiness check). No call goes out before
        this returns, so set-up never lands in the measured latencies.
        """
        if not self.setup.complete:
            with anyio.move_on_after(max(0.0, (self.setup.deadline_ns - time.perf_counter_ns()) / 1e9)):
                await either(self.all_open, self.stopping)
        self.setup.start(time.perf_counter_ns())
        self.window = await self.start_clock()
        self.budget = Budget(self.window, self.plan.request_limit)
        self.started.set()
        return self.window

    async def wait_started(self) -> bool:
        """Wait for the clock to start; False if the run stopped first."""
        if not self.started.is_set():
            await either(self.started, self.stopping)
        return self.started.is_set() and not self.stopping.is_set()

    def ticket(self, intended_ns: int) -> bool:
        """May a call intended at ``intended_ns`` go out? (Also stops the run when the plan is done.)"""
        if self.stopping.is_set():
            return False
        assert self.budget is not None
        if self.budget.ticket(intended_ns):
            return True
        self.stop()
        return False

    def measuring(self, intended_ns: int) -> bool:
        """Whether a call intended at ``intended_ns`` is measured (not set-up, not warm-up)."""
        window = self.window
        return window is not None and intended_ns >= window.measure_start_ns

    async def drain(self) -> None:
        """Give calls under way their deadline (or, after an interrupt, a short grace) to finish."""
        interrupted = self.control.interrupted.is_set()
        await self.flight.drain(INTERRUPT_GRACE_S if interrupted else self.workload.request_timeout + 1.0)

    def reweigh(self, weights: list[float]) -> None:
        """New op weights (the protocol removed some ops): a new picker, the same seed."""
        self.picker = OpPicker(weights, seed=self.share.index if self.share else 0)

    def session_error(self, exc: TargetError) -> None:
        self.report.error = str(exc)
        self.setup.failed_one()


__all__ = ["RunState"]
