"""Legacy HTTP+SSE (2024-11-05): GET an event stream, POST messages to the ``endpoint`` it names."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urljoin

import aiohttp
import anyio
import orjson
from anyio.streams.memory import MemoryObjectSendStream

from loadtest.core.aio import task_group
from loadtest.core.errors import TargetError
from loadtest.protocol.transports.base import (
    Channel,
    ChannelInfo,
    Incoming,
    Message,
    Received,
    TransportError,
    deliver,
)
from loadtest.protocol.transports.http import CONNECT_TIMEOUT_S, client_session, describe_client_error
from loadtest.protocol.transports.sse_parser import SseEvent, SseParser

_QUEUE = 1024
_JSON = {"Content-Type": "application/json"}


@asynccontextmanager
async def connect_sse(
    url: str,
    *,
    http: aiohttp.ClientSession | None = None,
    headers: Mapping[str, str] | None = None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> AsyncIterator[Channel]:
    """Open the event stream at ``url``, wait for its ``endpoint`` event, and yield a channel."""
    extra = dict(headers or {})
    async with client_session(http) as client:
        try:
            with anyio.fail_after(connect_timeout):
                response = await client.get(url, headers={**extra, "Accept": "text/event-stream"})
        except aiohttp.ClientError as exc:
            raise TargetError(f"cannot reach {url}: {describe_client_error(exc)}") from None
        except TimeoutError:
            raise TargetError(f"cannot reach {url}: no answer within {connect_timeout:g}s") from None
        try:
            if response.status != 200 or response.content_type != "text/event-stream":
                raise TargetError(
                    f"GET {url} answered {response.status} {response.content_type or ''}".rstrip()
                    + ", not an SSE stream (is this a legacy SSE endpoint?)"
                )
            parser = SseParser()
            events = _events(response, parser)
            try:
                with anyio.fail_after(connect_timeout):
                    first = await anext(events)
            except (TimeoutError, StopAsyncIteration, aiohttp.ClientError):
                raise TargetError(f"{url} sent no 'endpoint' event within {connect_timeout:g}s") from None
            if first.event != "endpoint":
                raise TargetError(f"{url}: first SSE event is {first.event!r}, expected 'endpoint'")
            endpoint = urljoin(url, first.data.decode("utf-8", "replace").strip())

            send_incoming, incoming = anyio.create_memory_object_stream[Incoming](_QUEUE)

            async def send(message: Message) -> int:
                data = orjson.dumps(message)
                try:
                    async with client.post(endpoint, data=data, headers={**extra, **_JSON}) as resp:
                        if resp.status >= 300:
                            body = (await resp.content.read(300)).decode("utf-8", "replace")
                            await deliver(
                                send_incoming,
                                TransportError(
                                    f"http_{resp.status}",
                                    f"POST answered {resp.status}: {body!r}",
                                    message.get("id"),
                                ),
                            )
                        else:
                            await resp.read()
                except aiohttp.ClientError as exc:
                    await deliver(
                        send_incoming,
                        TransportError("connection", describe_client_error(exc), message.get("id")),
                    )
                return len(data)

            async with task_group() as tg:
                tg.start_soon(_read_events, events, send_incoming)
                try:
                    yield Channel(send, incoming, ChannelInfo(url=url, endpoint=endpoint))
                finally:
                    tg.cancel_scope.cancel()
                    incoming.close()
        finally:
            response.close()


async def _events(response: aiohttp.ClientResponse, parser: SseParser) -> AsyncIterator[SseEvent]:
    async for chunk in response.content.iter_any():
        for event in parser.feed(chunk):
            yield event


async def _read_events(events: AsyncIterator[SseEvent], out: MemoryObjectSendStream[Incoming]) -> None:
    async with out:
        try:
            async for event in events:
                if event.event != "message" or not event.data:
                    continue
                data = event.data
                try:
                    await deliver(out, Received(orjson.loads(data), len(data)))
                except orjson.JSONDecodeError:
                    await deliver(out, TransportError("non_json", f"SSE message is not JSON: {data[:200]!r}"))
        except aiohttp.ClientError as exc:
            await deliver(out, TransportError("stream_broken", describe_client_error(exc), fatal=True))
            return
        await deliver(out, TransportError("stream_closed", "the server closed the SSE stream", fatal=True))
