"""The hot-path concurrency helpers keep the structured-concurrency promises."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from loadtest.core.aio import call_later, light_task_group

pytestmark = pytest.mark.anyio


async def test_leaving_a_light_group_cancels_and_awaits_its_tasks() -> None:
    started = anyio.Event()
    finished: list[str] = []

    async def forever() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            finished.append("cleaned up")

    async with light_task_group() as group:
        group.start_soon(forever)
        await started.wait()
    # Its cleanup ran before the block was left: no task outlives its group.
    assert finished == ["cleaned up"]


async def test_a_failing_light_task_cancels_the_block_and_its_error_is_raised() -> None:
    reached_end = False

    async def fail() -> None:
        raise ValueError("boom")

    async def block() -> None:
        nonlocal reached_end
        async with light_task_group() as group:
            group.start_soon(fail)
            await anyio.sleep_forever()
            reached_end = True

    with pytest.raises(ValueError, match="boom"):
        await block()
    assert not reached_end


async def test_tasks_that_finish_leave_nothing_behind() -> None:
    done = anyio.Event()
    results: list[int] = []

    async def work(n: int) -> None:
        results.append(n)
        if len(results) == 3:
            done.set()

    async with light_task_group() as group:
        for n in range(3):
            group.start_soon(work, n)
        await done.wait()
        with anyio.fail_after(5):
            while group._tasks:  # the last one is finishing right after setting `done`
                await anyio.lowlevel.checkpoint()
    assert sorted(results) == [0, 1, 2]


async def test_call_later_fires_unless_cancelled() -> None:
    fired = anyio.Event()
    dropped: list[str] = []
    call_later(0.01, fired.set)
    handle = call_later(0.01, lambda: dropped.append("fired"))
    handle.cancel()
    with anyio.fail_after(5):
        await fired.wait()
    await anyio.sleep(0.05)
    assert dropped == []
