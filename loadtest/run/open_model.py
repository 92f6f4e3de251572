"""The open model: calls released at their intended times, never waiting for earlier ones.

One scheduler releases calls at the times of :meth:`~loadtest.run.plan.LoadPlan.arrivals`,
each on the next session with room (``max_in_flight`` calls per session); latency is measured
from the intended time (corrected for coordinated omission) and from the actual send.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskStatus

from loadtest.core.aio import LightTaskGroup, light_task_group, task_group
from loadtest.run.pipeline import ClientSession
from loadtest.run.state import RunState
from loadtest.run.timing import set_when, sleep_unless

#: Gaps up to this long are slept through without watching for a stop.
_SHORT_SLEEP_S = 0.05


@dataclass
class _Slot:
    """One session of the open model, replaced after ``churn`` calls."""

    session: ClientSession | None = None
    calls: int = 0
    #: Calls counted against the first session before it makes any (see ``run_open``).
    head_start: int = 0
    in_flight: int = 0
    retire: anyio.Event = field(default_factory=anyio.Event)
    idle: anyio.Event = field(default_factory=anyio.Event)
    limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))


class _OpenRun:
    def __init__(self, run: RunState) -> None:
        self.run = run
        self.cap = run.workload.max_in_flight or math.inf
        #: Sessions that may have room for another call (see _schedule).
        self.room: deque[_Slot] = deque()

    async def run_open(self) -> None:
        run = self.run
        n = run.plan.sessions
        churn = run.workload.churn
        # The calls go round the sessions in turn, so with churn they would all reach their
        # last call together and reconnect at once, leaving no session for the calls then
        # due. Their first sessions retire early by different amounts, which spreads it out.
        slots = [_Slot(limiter=anyio.CapacityLimiter(self.cap), head_start=k * churn // n) for k in range(n)]
        async with task_group() as tg:
            await tg.start(self._slot_worker, slots[0], True, 0)
            for k, slot in enumerate(slots[1:], 1):
                tg.start_soon(self._slot_worker, slot, False, k)
            # No call is due before every planned session is open (or the set-up deadline):
            # calls released during set-up would queue on the first session, and their wait
            # would count as server latency.
            await run.set_up()
            # One task per call: the light kind (see loadtest.core.aio).
            async with light_task_group() as calls:
                await self._schedule(slots, calls)
                run.stop()
                await run.drain()
                calls.cancel()
            tg.cancel_scope.cancel()

    async def _schedule(self, slots: list[_Slot], calls: LightTaskGroup) -> None:
        run = self.run
        window = run.window
        assert window is not None
        cap = self.cap
        turn = 0
        end_ns = window.end_ns
        share = run.share
        schedule = run.plan.arrivals(share.index, share.count) if share is not None else run.plan.arrivals()
        for t in schedule:
            intended = window.t0_ns + int(t * 1e9)
            if end_ns is not None and intended >= end_ns:
                break
            delay = (intended - time.perf_counter_ns()) / 1e9
            if delay > _SHORT_SLEEP_S:
                await sleep_unless(run.stopping, delay)
            elif delay > 0:
                # The usual gap between two calls: a plain sleep is several times cheaper than
                # one that a stop can interrupt, and the ticket sees the stop right after.
                await anyio.sleep(delay)
            if not run.ticket(intended):
                return
            # The next open session with room for another call; if all are full, the next
            # open one in turn, where the call waits (its intended time keeps running).
            # Sessions with room queue up in ``self.room`` (entries are checked when taken), so
            # that choosing stays O(1) with a thousand sessions all busy.
            chosen = None
            room = self.room
            while room:
                slot = room.popleft()
                if slot.session is not None and slot.in_flight < cap:
                    chosen = slot
                    if slot.in_flight + 1 < cap:
                        room.append(slot)  # still room after this call: back of the queue
                    break
            else:
                for step in range(len(slots)):
                    slot = slots[(turn + step) % len(slots)]
                    if slot.session is not None:
                        chosen = slot
                        turn += step + 1
                        break
            if chosen is None:
                # No session is open (all reconnecting): the call cannot go out at all.
                run.pipeline.no_session(run.picker.pick(), intended)
                continue
            session = chosen.session
            assert session is not None
            chosen.in_flight += 1
            run.flight.queued += 1
            calls.start_soon(self._slot_call, chosen, session, run.picker.pick(), intended)
        if end_ns is not None:
            # No call is due before the end: hold until then (at 300/h the next call could be
            # 12 s later), so that the measured time is the planned one.
            await sleep_unless(run.stopping, (end_ns - time.perf_counter_ns()) / 1e9)

    async def _slot_call(self, slot: _Slot, session: ClientSession, index: int, intended_ns: int) -> None:
        run = self.run
        churn = run.workload.churn
        # in_flight counts calls assigned to the slot (queued or sent); the limiter lets
        # max_in_flight of them onto the wire at once.
        slot.calls += 1
        if churn and slot.calls >= churn:
            slot.session = None
            slot.retire.set()
        try:
            async with slot.limiter:
                run.flight.queued -= 1
                await run.pipeline.call(session, index, intended_ns)
            if slot.session is session and run.source.stale(session):
                slot.session = None  # reopened by the slot's worker
                slot.retire.set()
        finally:
            slot.in_flight -= 1
            if slot.in_flight == 0:
                slot.idle.set()
            if slot.session is not None and slot.in_flight + 1 == self.cap:
                self.room.append(slot)  # it was full and has room again

    async def _slot_worker(
        self,
        slot: _Slot,
        first: bool,
        index: int,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        run = self.run
        started = False
        first_slot = first
        while not run.stopping.is_set():
            async with run.source.reopen(first, run.session_error, run.stopping) as session:
                first = False
                if session is None:
                    continue
                slot.session = session
                slot.calls, slot.head_start = slot.head_start, 0
                self.room.append(slot)
                run.session_up(index)
                if not started and first_slot:
                    started = True
                    task_status.started()
                async with task_group() as waiter:
                    waiter.start_soon(set_when, run.stopping, slot.retire)
                    await slot.retire.wait()
                    waiter.cancel_scope.cancel()
                slot.session = None
                # Let the calls still out on this session finish before closing it.
                while slot.in_flight:
                    slot.idle = anyio.Event()
                    await slot.idle.wait()
                slot.retire = anyio.Event()
        if not started and first_slot:
            task_status.started()


async def run_open(run: RunState) -> None:
    """Run the open model until its schedule ends or the run is stopped; then let calls under way finish."""
    await _OpenRun(run).run_open()


__all__ = ["run_open"]
