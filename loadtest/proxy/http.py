"""The HTTP proxy: legacy SSE and Streamable HTTP, forwarded request by request.

Every request (any method, path and query) is forwarded to the upstream with its headers, but
with ``Host`` (and ``Origin``, if sent) rewritten to the upstream's, because MCP servers refuse
other hosts (DNS-rebinding protection). Request bodies pass unchanged; the requests in them
are remembered. Responses come back:

* ``text/event-stream`` (the legacy SSE stream, a Streamable HTTP POST's or GET's stream):
  event by event, each ``message`` event through the injector; the legacy ``endpoint`` event
  is rewritten when it names the upstream absolutely, so POSTs come back through the proxy;
* ``application/json`` (a Streamable HTTP POST answered in JSON): through the injector as one
  message; a dropped answer becomes ``202 Accepted`` with no body;
* anything else: byte for byte.

A client is told apart from others by its MCP session: the ``Mcp-Session-Id`` header, or the
``session_id``/``sessionId`` query parameter of legacy SSE.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import anyio
from aiohttp import web
from multidict import CIMultiDict

from loadtest.core.aio import task_group
from loadtest.core.errors import LoadtestError, UsageError
from loadtest.protocol.transports.sse_parser import SseEvent, SseParser
from loadtest.proxy.engine import Injector, Sink
from loadtest.proxy.faults import FaultSpec, InjectionLog

#: Headers that belong to one connection, or that aiohttp sets itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_CONNECT_TIMEOUT_S = 10.0


def _scope(request: web.Request) -> str | None:
    return (
        request.headers.get("mcp-session-id")
        or request.query.get("session_id")
        or request.query.get("sessionId")
    )


def _abort(request: web.Request) -> None:
    """Reset the client's connection: RST, not an orderly close."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _SseSink(Sink):
    def __init__(self, request: web.Request, response: web.StreamResponse, framing: str) -> None:
        super().__init__()
        self.request = request
        self.response = response
        self.framing = framing

    async def _send(self, data: bytes, meta: Any) -> None:
        await self._write(_frame(data, meta))

    async def _write(self, data: bytes) -> None:
        try:
            await self.response.write(data)
        except (ConnectionError, RuntimeError):
            self.closed = True  # the client has gone

    async def _cut_and_close(self, partial: bytes) -> None:
        await self._write(b"event: message\ndata: " + partial)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.response.write_eof()

    async def _reset(self) -> None:
        _abort(self.request)


def _frame(data: bytes, meta: Any) -> bytes:
    event = meta if isinstance(meta, SseEvent) else None
    out = bytearray(b"event: ")
    out += (event.event if event is not None else "message").encode()
    out += b"\n"
    if event is not None and event.id is not None:
        out += b"id: " + event.id.encode() + b"\n"
    if event is not None and event.retry is not None:
        out += b"retry: %d\n" % event.retry
    for line in data.split(b"\n"):
        out += b"data: " + line + b"\n"
    out += b"\n"
    return bytes(out)


class _JsonSink(Sink):
    framing = "http-json"

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []
        self.partial: bytes | None = None
        self.reset_requested = False

    async def _send(self, data: bytes, meta: Any) -> None:
        self.bodies.append(data)

    async def _cut_and_close(self, partial: bytes) -> None:
        self.partial = partial

    async def _reset(self) -> None:
        self.reset_requested = True

    async def respond(
        self, request: web.Request, status: int, headers: CIMultiDict[str]
    ) -> web.StreamResponse:
        if self.reset_requested:
            _abort(request)
            return web.Response(status=status)
        if self.partial is not None:
            # Announce more than comes, then close: the body ends early, visibly to HTTP.
            response = web.StreamResponse(status=status, headers=headers)
            response.content_length = len(self.partial) * 2 + 1
            await response.prepare(request)
            await response.write(self.partial)
            if request.transport is not None:
                request.transport.close()
            return response
        if not self.bodies:
            # The answer never comes, though the POST was accepted.
            return web.Response(status=202)
        body = self.bodies[0] if len(self.bodies) == 1 else b"[" + b",".join(self.bodies) + b"]"
        return web.Response(status=status, body=body, headers=headers)


def check_upstream(upstream: str) -> None:
    """Raise :class:`UsageError` unless ``upstream`` is an http(s) URL with a host."""
    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--upstream must be an http:// URL such as http://127.0.0.1:8000, got {upstream!r}")


class HttpProxy:
    """An aiohttp application that forwards to ``upstream`` through an :class:`Injector`."""

    def __init__(self, upstream: str, injector: Injector, client: aiohttp.ClientSession) -> None:
        check_upstream(upstream)
        parts = urlsplit(upstream)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.prefix = parts.path.rstrip("/")
        self.host = parts.netloc
        self.injector = injector
        self.client = client

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        scope = _scope(request)
        if request.method == "POST" and body:
            self.injector.track(scope, body)
        headers: CIMultiDict[str] = CIMultiDict(
            (name, value) for name, value in request.headers.items() if name.lower() not in _HOP_BY_HOP
        )
        headers["Host"] = self.host
        if "Origin" in headers:
            headers["Origin"] = self.origin
        url = self.origin + self.prefix + str(request.rel_url)
        try:
            upstream = await self.client.request(
                request.method, url, data=body or None, headers=headers, allow_redirects=False
            )
        except aiohttp.ClientError as exc:
            return web.Response(status=502, text=f"mcp-loadtest proxy: upstream {self.origin} failed: {exc}")
        try:
            out_headers: CIMultiDict[str] = CIMultiDict(
                (name, value) for name, value in upstream.headers.items() if name.lower() not in _HOP_BY_HOP
            )
            if upstream.status == 200 and upstream.content_type == "text/event-stream":
                return await self._relay_sse(request, upstream, out_headers, scope)
            if (
                upstream.status == 200
                and upstream.content_type == "application/json"
                and self.injector.active
            ):
                data = await upstream.read()
                sink = _JsonSink()
                await self.injector.deliver(scope, data, sink)
                await sink.wait_idle()
                return await sink.respond(request, upstream.status, out_headers)
            return await self._relay_raw(request, upstream, out_headers)
        finally:
            upstream.close()

    async def _relay_raw(
        self, request: web.Request, upstream: aiohttp.ClientResponse, headers: CIMultiDict[str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        with contextlib.suppress(aiohttp.ClientError, ConnectionError):
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        return response

    async def _relay_sse(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        headers: CIMultiDict[str],
        scope: str | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(request)
        # A POST's stream is Streamable HTTP; a GET's is legacy SSE if it starts with `endpoint`.
        sink = _SseSink(request, response, "http")
        parser = SseParser()
        first = request.method == "GET"
        try:
            async for chunk in upstream.content.iter_any():
                for event in parser.feed(chunk):
                    if sink.closed:
                        break
                    if first and event.event == "endpoint":
                        sink.framing = "sse"
                        data, scope = self._endpoint(request, event.data)
                        await sink.send(data, event)
                    elif event.event == "message" and event.data:
                        await self.injector.deliver(scope, event.data, sink, event)
                    else:
                        await sink.send(event.data, event)
                    first = False
                if sink.closed:
                    break
        except aiohttp.ClientError:
            # The upstream broke its stream: break ours the same way.
            await sink.reset()
        await sink.wait_idle()
        if not sink.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write_eof()
        return response

    def _endpoint(self, request: web.Request, data: bytes) -> tuple[bytes, str | None]:
        """Point an absolute ``endpoint`` back at the proxy; learn the session it names."""
        text = data.decode("utf-8", "replace").strip()
        if text.startswith(self.origin):
            text = f"{request.scheme}://{request.host}{text[len(self.origin) :]}"
        query = parse_qs(urlsplit(text).query)
        ids = query.get("session_id") or query.get("sessionId")
        return text.encode(), ids[0] if ids else None


async def run_http_proxy(
    listen: tuple[str, int],
    upstream: str,
    specs: tuple[FaultSpec, ...],
    seed: int,
    log: InjectionLog,
    *,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until cancelled."""
    host, port = listen
    check_upstream(upstream)
    async with task_group() as tg:
        injector = Injector(specs, seed, log, tg)
        client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=_CONNECT_TIMEOUT_S, sock_connect=_CONNECT_TIMEOUT_S
            ),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        runner = web.AppRunner(
            HttpProxy(upstream, injector, client).app(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
        )
        try:
            await runner.setup()
            site = web.TCPSite(runner, host, port)
            try:
                await site.start()
            except OSError as exc:
                raise LoadtestError(f"proxy: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            if ready is not None:
                ready(f"http://{host}:{port}")
            await anyio.sleep_forever()
        finally:
            # Shielded and bounded: this runs while being cancelled (Ctrl-C, SIGTERM).
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await runner.cleanup()
                await client.close()
            tg.cancel_scope.cancel()
