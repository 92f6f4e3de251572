"""Structured-concurrency helpers shared by the whole package."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup


@asynccontextmanager
async def task_group() -> AsyncIterator[TaskGroup]:
    """An anyio task group that lets a lone exception through unwrapped.

    anyio wraps whatever escapes a task group in an ExceptionGroup, even one exception from
    the block itself. Our context managers nest several groups, so a user's one-line error
    (say, a TargetError) would otherwise reach the CLI buried under several group layers.
    Groups of more than one real exception are left as they are.
    """
    try:
        async with anyio.create_task_group() as tg:
            yield tg
    except BaseExceptionGroup as group:
        exc: BaseException = group
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if exc is group:
            raise
        raise exc from None
