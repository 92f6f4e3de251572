"""What the two HTTP transports share: the aiohttp client and error wording."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

#: Connect deadline for every HTTP connection the tester opens.
CONNECT_TIMEOUT_S = 10.0


def new_client_session() -> aiohttp.ClientSession:
    """One pooled client for many MCP sessions: no per-host limit, no total deadline.

    Deadlines belong to requests (the session layer enforces them), not to connections: an
    SSE stream legitimately stays open for the whole run.
    """
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False, skip_auto_headers=("User-Agent",)
    )


@asynccontextmanager
async def client_session(shared: aiohttp.ClientSession | None) -> AsyncIterator[aiohttp.ClientSession]:
    """Use ``shared`` if given; otherwise own a client for the duration of the block."""
    if shared is not None:
        yield shared
        return
    http = new_client_session()
    try:
        yield http
    finally:
        await http.close()


def describe_client_error(exc: BaseException) -> str:
    """One line for an aiohttp error, without the noise of its repr."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection refused or unreachable ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"response body broken off ({exc})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
