"""Streamable HTTP (2025-03-26 and later): every message is a POST to one endpoint.

A POST that carries a request is answered with either ``application/json`` or an SSE stream;
both are handled. The transport keeps the session id the server issues at ``initialize`` and
the protocol version it chose, and sends them on every later request, so the session layer
above never needs to know it is on HTTP.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import orjson
from anyio.streams.memory import MemoryObjectSendStream

from loadtest.core.aio import light_task_group, task_group
from loadtest.protocol.transports.base import (
    Channel,
    ChannelInfo,
    Incoming,
    Message,
    Received,
    TransportError,
    deliver,
)
from loadtest.protocol.transports.http import client_session, describe_client_error
from loadtest.protocol.transports.sse_parser import SseParser
from loadtest.protocol.versions import request_headers, request_version

_QUEUE = 1024
#: How often a POST's SSE stream may be resumed with Last-Event-ID before giving up.
_MAX_RESUMES = 3
#: Bound on the DELETE sent at close: a server that hangs must not hang our teardown.
_DELETE_TIMEOUT_S = 2.0


class _State:
    """What one session has learned: its id, the negotiated version, the headers they imply."""

    __slots__ = ("_base", "headers", "inflight", "init_id", "modern", "protocol_version", "session_id")

    def __init__(self, headers: dict[str, str]) -> None:
        self._base = headers
        #: Headers for every request of this session; rebuilt only when the session changes.
        self.headers = headers
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.init_id: Any = None
        #: 2026-07-28+: set once a stateless request went out; the POSTs still in flight, so
        #: that cancelling one closes its stream (that era's cancellation on HTTP).
        self.modern = False
        self.inflight: dict[Any, anyio.CancelScope] = {}

    def stateless(self, message: Message, version: str) -> dict[str, str]:
        """Headers for a 2026-07-28+ POST: no session id, the request's own metadata."""
        self.modern = True
        return {**self._base, **request_headers(message, version)}

    def learned(self, *, session_id: str | None = None, protocol_version: str | None = None) -> None:
        self.session_id = session_id or self.session_id
        self.protocol_version = protocol_version or self.protocol_version
        headers = dict(self._base)
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version is not None:
            headers["MCP-Protocol-Version"] = self.protocol_version
        self.headers = headers


@asynccontextmanager
async def connect_streamable_http(
    url: str,
    *,
    http: aiohttp.ClientSession | None = None,
    headers: Mapping[str, str] | None = None,
    get_stream: bool = False,
    delete_on_close: bool = True,
) -> AsyncIterator[Channel]:
    """Yield a channel that POSTs each message to ``url``.

    ``get_stream`` opens the optional GET stream for server-initiated messages once the
    session is initialised; ``delete_on_close`` ends the session with DELETE (spec: should).
    """
    base = {
        **(headers or {}),
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    state = _State(base)
    info = ChannelInfo(url=url)
    async with client_session(http) as client:
        send_incoming, incoming = anyio.create_memory_object_stream[Incoming](_QUEUE)
        async with task_group() as tg, light_task_group() as posts:

            async def send(message: Message) -> int:
                method = message.get("method")
                body = orjson.dumps(message)
                if method == "initialize":
                    state.init_id = message.get("id")
                version = request_version(message) if method is not None else None
                if version is not None:
                    posts.start_soon(
                        _post_stateless, client, url, state, message, body, send_incoming, version
                    )
                elif method == "notifications/cancelled" and state.modern:
                    # 2026-07-28 sends no cancel notification over HTTP: closing the request's
                    # response stream is the cancellation.
                    params = message.get("params") or {}
                    if (scope := state.inflight.pop(params.get("requestId"), None)) is not None:
                        scope.cancel()
                    return 0
                elif "id" in message and method is not None:
                    # A request: its answer may take a while, and arrives on this POST. One
                    # task per request, so the light kind (see loadtest.core.aio).
                    posts.start_soon(_post, client, url, state, message, body, send_incoming, info)
                else:
                    await _post(client, url, state, message, body, send_incoming, info)
                    if method == "notifications/initialized" and get_stream:
                        tg.start_soon(_get_stream, client, url, state, send_incoming, info)
                return len(body)

            try:
                yield Channel(send, incoming, info)
            finally:
                tg.cancel_scope.cancel()
                posts.cancel()
                incoming.close()
                send_incoming.close()
        if delete_on_close and state.session_id is not None:
            await _delete(client, url, state, info)


async def _post(
    client: aiohttp.ClientSession,
    url: str,
    state: _State,
    message: Message,
    body: bytes,
    out: MemoryObjectSendStream[Incoming],
    info: ChannelInfo,
) -> None:
    request_id = message.get("id") if message.get("method") is not None else None
    try:
        async with client.post(url, data=body, headers=state.headers) as resp:
            if state.session_id is None:
                # Spelled Mcp-Session-Id (2025-03-26, 2025-06-18) or MCP-Session-Id (2025-11-25);
                # aiohttp's header lookup ignores case.
                session_id = resp.headers.get("mcp-session-id")
                if session_id is not None:
                    state.learned(session_id=session_id)
                    info.session_id = session_id
            if resp.status >= 300:
                answer = (await resp.content.read(300)).decode("utf-8", "replace")
                await deliver(
                    out,
                    TransportError(
                        f"http_{resp.status}", f"POST answered {resp.status}: {answer!r}", request_id
                    ),
                )
                return
            if resp.status == 202 or request_id is None:
                await resp.read()
                return
            ctype = resp.content_type
            if ctype == "application/json":
                data = await resp.read()
                await _deliver_json(data, state, out, request_id)
            elif ctype == "text/event-stream":
                await _read_sse_response(client, url, state, resp, out, request_id)
            else:
                await deliver(
                    out, TransportError("bad_content_type", f"POST answered with {ctype!r}", request_id)
                )
    except aiohttp.ClientError as exc:
        await deliver(out, TransportError("connection", describe_client_error(exc), request_id))


async def _post_stateless(
    client: aiohttp.ClientSession,
    url: str,
    state: _State,
    message: Message,
    body: bytes,
    out: MemoryObjectSendStream[Incoming],
    version: str,
) -> None:
    """POST one 2026-07-28+ request: its own headers, no session, no resumption; an error
    status whose body is this request's JSON-RPC error is delivered as that error (the era's
    UnsupportedProtocolVersion, HeaderMismatch, ... come with 400)."""
    request_id = message.get("id")
    with anyio.CancelScope() as scope:
        state.inflight[request_id] = scope
        try:
            async with client.post(url, data=body, headers=state.stateless(message, version)) as resp:
                if resp.status >= 300:
                    data = await resp.content.read(1 << 16)
                    answer = (
                        _error_answer(data, request_id) if resp.content_type == "application/json" else None
                    )
                    if answer is not None:
                        await deliver(out, Received(answer, len(data)))
                        return
                    text = data[:300].decode("utf-8", "replace")
                    await deliver(
                        out,
                        TransportError(
                            f"http_{resp.status}", f"POST answered {resp.status}: {text!r}", request_id
                        ),
                    )
                elif resp.status == 202:
                    # Accepted, yet no answer will come: ``lost`` at its deadline, as in the
                    # handshake era (a proxy that drops a JSON answer sends exactly this).
                    await resp.read()
                elif resp.content_type == "application/json":
                    await _deliver_json(await resp.read(), state, out, request_id)
                elif resp.content_type == "text/event-stream":
                    # A stream that ends unanswered is not reported: with nothing to resume,
                    # the request is ``lost`` at its deadline, as the taxonomy has it.
                    await _consume_sse(resp, SseParser(), state, out, request_id)
                else:
                    await deliver(
                        out,
                        TransportError(
                            "bad_content_type", f"POST answered with {resp.content_type!r}", request_id
                        ),
                    )
        except aiohttp.ClientError as exc:
            await deliver(out, TransportError("connection", describe_client_error(exc), request_id))
        finally:
            state.inflight.pop(request_id, None)


def _error_answer(data: bytes, request_id: Any) -> Message | None:
    """The body of an error status, if it is this request's JSON-RPC error; else None (a
    legacy server's 400 carries an error with another id, e.g. ``"server-error"``)."""
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if (
        isinstance(message, dict)
        and message.get("id") == request_id
        and isinstance(message.get("error"), dict)
    ):
        return message
    return None


async def _deliver_json(
    data: bytes, state: _State, out: MemoryObjectSendStream[Incoming], request_id: Any
) -> bool:
    """Decode one JSON body (a message or a batch); True if it answered ``request_id``."""
    try:
        decoded = orjson.loads(data)
    except orjson.JSONDecodeError:
        await deliver(out, TransportError("non_json", f"response is not JSON: {data[:200]!r}", request_id))
        return False
    messages = decoded if isinstance(decoded, list) else [decoded]
    answered = False
    for message in messages:
        if isinstance(message, dict):
            message_id = message.get("id")
            if message_id is not None and message_id == state.init_id and state.protocol_version is None:
                result = message.get("result")
                if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
                    state.learned(protocol_version=result["protocolVersion"])
            answered = answered or (message_id == request_id and "method" not in message)
        await deliver(out, Received(message, len(data) if len(messages) == 1 else 0))
    return answered


async def _read_sse_response(
    client: aiohttp.ClientSession,
    url: str,
    state: _State,
    resp: aiohttp.ClientResponse,
    out: MemoryObjectSendStream[Incoming],
    request_id: Any,
) -> None:
    parser = SseParser()
    answered = await _consume_sse(resp, parser, state, out, request_id)
    for _ in range(_MAX_RESUMES):
        last_id = parser.last_event_id
        if answered or last_id is None:
            return
        # The server closed the stream before answering but gave us an event id: resume with
        # GET + Last-Event-ID after the retry interval it asked for (2025-11-25).
        await anyio.sleep((parser.retry_ms or 0) / 1000)
        headers = {**state.headers, "Accept": "text/event-stream", "Last-Event-ID": last_id}
        async with client.get(url, headers=headers) as again:
            if again.status != 200 or again.content_type != "text/event-stream":
                return
            parser = SseParser()
            parser.last_event_id = last_id
            answered = await _consume_sse(again, parser, state, out, request_id)


async def _consume_sse(
    resp: aiohttp.ClientResponse,
    parser: SseParser,
    state: _State,
    out: MemoryObjectSendStream[Incoming],
    request_id: Any,
) -> bool:
    """Deliver every message event of ``resp``; True if one answered ``request_id``."""
    answered = False
    async for chunk in resp.content.iter_any():
        for event in parser.feed(chunk):
            # Empty data is a priming event (2025-11-25): it only carries an id to resume from.
            if event.event == "message" and event.data:
                answered = await _deliver_json(event.data, state, out, request_id) or answered
    return answered


async def _get_stream(
    client: aiohttp.ClientSession,
    url: str,
    state: _State,
    out: MemoryObjectSendStream[Incoming],
    info: ChannelInfo,
) -> None:
    headers = {**state.headers, "Accept": "text/event-stream"}
    try:
        async with client.get(url, headers=headers) as resp:
            info.get_stream_status = resp.status
            if resp.status != 200:
                return
            await _consume_sse(resp, SseParser(), state, out, None)
    except aiohttp.ClientError as exc:
        await deliver(out, TransportError("get_stream_broken", describe_client_error(exc)))


async def _delete(client: aiohttp.ClientSession, url: str, state: _State, info: ChannelInfo) -> None:
    # Shielded and bounded: the DELETE runs during teardown (possibly while being cancelled),
    # and a server that does not answer must not keep the run from ending.
    with (
        anyio.CancelScope(shield=True),
        anyio.move_on_after(_DELETE_TIMEOUT_S),
        contextlib.suppress(aiohttp.ClientError),
    ):
        async with client.delete(url, headers=state.headers) as resp:
            info.delete_status = resp.status
