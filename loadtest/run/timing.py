"""Small waits the run engine needs: sleep unless stopped, CPU time, either of two events."""

from __future__ import annotations

import anyio

from loadtest.core.aio import task_group


async def sleep_unless(event: anyio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``event`` is set meanwhile."""
    with anyio.move_on_after(seconds):
        await event.wait()


async def set_when(source: anyio.Event, target: anyio.Event) -> None:
    """Set ``target`` once ``source`` is set."""
    await source.wait()
    target.set()


async def either(a: anyio.Event, b: anyio.Event) -> None:
    """Return once ``a`` or ``b`` is set."""
    async with task_group() as tg:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(wait, a)
        tg.start_soon(wait, b)


__all__ = ["either", "set_when", "sleep_unless"]
