"""Shared fixtures: the anyio backend, and channels to the bundled reference server."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from loadtest.protocol.transports import Channel, connect
from loadtest.run.targets.reference import free_port, reference_command, start_target

#: (transport, reference-server flags) for every way the reference server can be reached.
MODES: dict[str, tuple[str, dict[str, bool]]] = {
    "stdio": ("stdio", {}),
    "sse": ("sse", {}),
    "http": ("http", {}),
    "http-json": ("http", {"json_response": True}),
    "http-stateless": ("http", {"stateless": True}),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of SDK environments for the whole test session (each build takes seconds)."""
    return tmp_path_factory.mktemp("sdk-envs")


@asynccontextmanager
async def reference_channel(
    mode: str, *, python: str = sys.executable, delay_ms: float = 0.0, extra: Sequence[str] = ()
) -> AsyncIterator[Channel]:
    """A channel to a freshly started reference server, reached the way ``mode`` says."""
    transport, flags = MODES[mode]
    port = None if transport == "stdio" else free_port()
    command = reference_command(transport, python=python, port=port, delay_ms=delay_ms, extra=extra, **flags)
    async with (
        start_target(transport, command=command, url=None, port=port) as endpoint,
        connect(transport, command=endpoint.command, url=endpoint.url) as channel,  # type: ignore[arg-type]
    ):
        yield channel
