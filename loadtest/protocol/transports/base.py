"""What every transport yields: a channel of JSON-RPC messages, with errors as values.

A transport is an async context manager that connects, yields a :class:`Channel`, and tears
the connection down when the block exits. The session on top never learns which transport it
is on: it calls ``channel.send(message)`` and reads ``channel.incoming``, where each item is
either a :class:`Received` message or a :class:`TransportError`. Transports never raise for
what the peer does (bad status, garbage, a dropped stream); they report it as a value so the
caller can count it. They only raise :class:`~loadtest.core.errors.TargetError` when they cannot
connect at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from loadtest.core.process import TargetProcess
from loadtest.protocol.versions import LEGACY_VERSIONS

Message = dict[str, Any]

#: Protocol versions negotiated with ``initialize``, newest first.
PROTOCOL_VERSIONS = LEGACY_VERSIONS
LATEST_PROTOCOL_VERSION = PROTOCOL_VERSIONS[0]


@dataclass(frozen=True, slots=True)
class Received:
    """A JSON-RPC message as it came off the wire, with its size in bytes."""

    message: Any
    nbytes: int


@dataclass(frozen=True, slots=True)
class TransportError:
    """Something went wrong below JSON-RPC: a status code, garbage, a closed stream.

    ``request_id`` names the request the error belongs to when the transport knows it (the
    HTTP response to the POST that carried that request); ``None`` otherwise.
    """

    kind: str
    detail: str
    request_id: Any = None
    #: The error ended the channel: nothing more will arrive.
    fatal: bool = False


Incoming = Received | TransportError
#: Sends one message; returns the bytes it put on the wire (the body, for HTTP).
Send = Callable[[Message], Awaitable[int]]


@dataclass(slots=True)
class ChannelInfo:
    """Facts about one connection, for whoever drives it and for reports.

    Each transport fills in what it knows; the rest stays ``None``. The HTTP transports update
    it as the connection goes on (the session id once the server gives one, the status of the
    GET stream and of the closing DELETE).
    """

    #: stdio: the server process this session launched (and owns).
    process: TargetProcess | None = None
    #: stdio: the file the server's stderr is appended to, if any.
    stderr_log: Path | None = None
    #: sse / http: the URL connected to.
    url: str | None = None
    #: sse: the POST endpoint the server announced.
    endpoint: str | None = None
    #: http: the ``Mcp-Session-Id`` the server assigned.
    session_id: str | None = None
    #: http: the status of the optional GET stream, once opened.
    get_stream_status: int | None = None
    #: http: the status of the DELETE that ended the session.
    delete_status: int | None = None

    @property
    def pid(self) -> int | None:
        """The stdio server's process id (None on the HTTP transports)."""
        return self.process.pid if self.process is not None else None


@dataclass(slots=True)
class Channel:
    """The send/receive pair a transport yields."""

    send: Send
    incoming: MemoryObjectReceiveStream[Incoming]
    info: ChannelInfo = field(default_factory=ChannelInfo)


async def deliver(stream: MemoryObjectSendStream[Incoming], item: Incoming) -> None:
    """Hand ``item`` to the session; if the session has gone, drop it (nobody is listening)."""
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        try:
            # The hot path: room in the queue. ``send()`` would first yield to the event loop
            # (a checkpoint), a whole loop iteration per message for nothing.
            stream.send_nowait(item)
        except anyio.WouldBlock:
            await stream.send(item)
