"""The closed model: ``sessions`` workers, each sending its next call when the last returned.

Every planned session (with stages: the most any stage has) is opened before the clock
starts (:mod:`loadtest.run.setup`), and the stages say how many of them send; think time pauses a worker between two calls; churn replaces a worker's session
after so many calls.
"""

from __future__ import annotations

import time

import anyio
from anyio.abc import TaskStatus

from loadtest.core.aio import task_group
from loadtest.run.state import RunState
from loadtest.run.timing import sleep_unless


async def run_closed(run: RunState) -> None:
    """Run the closed model until the plan is done or the run is stopped; then let calls under way finish."""
    async with task_group() as tg:
        # The first session is the readiness check: if it cannot be opened, nothing can.
        await tg.start(_worker, run, 0)
        for index in range(1, run.plan.max_sessions):
            tg.start_soon(_worker, run, index)
        await run.set_up()
        await run.stopping.wait()
        await run.drain()
        tg.cancel_scope.cancel()


async def _worker(
    run: RunState, index: int, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    churn = run.workload.churn
    think = run.workload.think_time
    source = run.source
    # Worker 0's first session is the readiness check.
    first = index == 0
    while not run.stopping.is_set():
        async with source.reopen(first, run.session_error, run.stopping) as session:
            if session is None:
                continue
            run.session_up(index)
            if first:
                first = False
                task_status.started()
            # Nothing is sent until every planned session is open (or the set-up deadline).
            if not await run.wait_started():
                return
            window = run.window
            assert window is not None
            calls = 0
            while churn == 0 or calls < churn:
                now = time.perf_counter_ns()
                if index >= run.plan.sessions_at((now - window.measure_start_ns) / 1e9):
                    await sleep_unless(run.stopping, 0.05)
                    if run.stopping.is_set():
                        return
                    continue
                if not run.ticket(now):
                    return
                await run.pipeline.call(session, run.picker.pick(), now)
                calls += 1
                if source.stale(session):
                    if session.ended is not None and source.reopen_backoff_s:
                        await sleep_unless(run.stopping, source.reopen_backoff_s)
                    break
                if think:
                    await sleep_unless(run.stopping, think)


__all__ = ["run_closed"]
