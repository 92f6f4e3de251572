"""Wire-level, SDK-independent MCP client transports.

Each one is an async context manager that yields a :class:`Channel`; :func:`connect` picks one
by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp

from loadtest.core.names import TRANSPORTS, TransportName
from loadtest.protocol.transports.base import Channel, Incoming, Message, Received, TransportError
from loadtest.protocol.transports.sse import connect_sse
from loadtest.protocol.transports.stdio import connect_stdio
from loadtest.protocol.transports.streamable_http import connect_streamable_http

__all__ = [
    "TRANSPORTS",
    "Channel",
    "Incoming",
    "Message",
    "Received",
    "TransportError",
    "TransportName",
    "connect",
    "connect_sse",
    "connect_stdio",
    "connect_streamable_http",
]


def connect(
    transport: TransportName,
    *,
    command: str | Sequence[str] | None = None,
    url: str | None = None,
    http: aiohttp.ClientSession | None = None,
    headers: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    stderr_log: Path | None = None,
    get_stream: bool = False,
    delete_on_close: bool = True,
) -> AbstractAsyncContextManager[Channel]:
    """Open ``transport`` to a command (stdio) or a URL (sse, http).

    ``delete_on_close=False`` abandons a Streamable HTTP session at close instead of sending
    DELETE; the other transports end a session by closing its stream or stdin either way.
    """
    if transport == "stdio":
        if command is None:
            raise ValueError("stdio needs a command")
        return connect_stdio(command, env=env, stderr_log=stderr_log)
    if url is None:
        raise ValueError(f"{transport} needs a URL")
    if transport == "sse":
        return connect_sse(url, http=http, headers=headers)
    return connect_streamable_http(
        url, http=http, headers=headers, get_stream=get_stream, delete_on_close=delete_on_close
    )
