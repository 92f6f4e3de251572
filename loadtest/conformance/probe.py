"""Raw HTTP probes for the checks: full control of headers, status and body, everything recorded.

The load-testing transports hide what a check needs to see (they follow the protocol); a probe
sends exactly the bytes it is told to, does not follow redirects, and returns a :class:`Reply`
with the status, the headers that matter, the start of the body and the JSON-RPC messages it
carried (a JSON body, or the ``data`` of SSE events, read until the awaited answer arrives).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import orjson

from loadtest.protocol.transports.http import describe_client_error
from loadtest.protocol.transports.sse_parser import SseEvent, SseParser

#: Bytes of a body kept in ``details``.
BODY_PREVIEW = 300
#: Deadline of one probe, unless the check says otherwise.
PROBE_TIMEOUT_S = 5.0
#: Largest body read into memory from a non-SSE response.
_READ_LIMIT = 1 << 20
#: Response headers worth recording.
_INTERESTING = (
    "content-type",
    "content-length",
    "location",
    "mcp-session-id",
    "mcp-protocol-version",
    "allow",
    "www-authenticate",
)
ACCEPT_BOTH = "application/json, text/event-stream"


def preview(data: bytes | str | None) -> str:
    """The first :data:`BODY_PREVIEW` bytes, as text."""
    if data is None:
        return ""
    raw = data.encode() if isinstance(data, str) else data
    text = raw[:BODY_PREVIEW].decode("utf-8", "replace")
    return text + (f"... ({len(raw)} bytes)" if len(raw) > BODY_PREVIEW else "")


@dataclass
class Reply:
    """What came back for one request."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    events: list[SseEvent] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)
    #: Why there is no (complete) answer: connection refused, timeout, stream cut.
    error: str | None = None
    #: The SSE stream was still open when we stopped reading.
    open_stream: bool = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def is_sse(self) -> bool:
        return self.content_type == "text/event-stream"

    def answer(self, request_id: Any) -> dict[str, Any] | None:
        """The JSON-RPC response to ``request_id`` among the messages, if one came."""
        for message in self.messages:
            for item in message if isinstance(message, list) else [message]:
                if (
                    isinstance(item, dict)
                    and item.get("id") == request_id
                    and ("result" in item or "error" in item)
                ):
                    return item
        return None

    def short(self) -> str:
        """``405``, ``200 text/event-stream``, ``error: connection refused``."""
        if self.status is None:
            # Reset, broken pipe, closed: which one depends on timing; the observation is the same.
            timed_out = self.error is not None and "timed out" in self.error
            return "error: timed out" if timed_out else "error: connection dropped"
        return f"{self.status} {self.content_type}".strip()

    def record(self) -> dict[str, Any]:
        """For ``details``: status, content type, relevant headers, the start of the body."""
        out: dict[str, Any] = {"status": self.status}
        if self.headers:
            out["headers"] = self.headers
        if self.events:
            out["events"] = [
                {"event": e.event, "id": e.id, "retry": e.retry, "data": preview(e.data)}
                for e in self.events[:5]
            ]
        elif self.body:
            out["body"] = preview(self.body)
        if self.error:
            out["error"] = self.error
        return out


def speaks_jsonrpc(reply: Reply) -> bool:
    """Whether any message in ``reply`` is JSON-RPC 2.0 (a result, an error, a request)."""
    for message in reply.messages:
        for item in message if isinstance(message, list) else [message]:
            if isinstance(item, dict) and item.get("jsonrpc") == "2.0":
                return True
    return False


def not_mcp(url: str, what: str, status: int | None, content_type: str, body: bytes) -> str:
    """One line saying why ``url`` is not an MCP endpoint, quoting what it answered instead."""
    start = " ".join(preview(body[:60]).split())
    answered = f"{what} -> {status} {content_type}".strip() + (f": {start!r}" if start else "")
    if status in (401, 403):
        return (
            f"{url} refused to start an MCP session ({answered}); if it wants authorization, "
            "give it in target.headers"
        )
    return f"{url} is not an MCP server ({answered})"


def _sent(method: str, url: str, headers: dict[str, str], body: bytes | None) -> dict[str, Any]:
    out: dict[str, Any] = {"method": method, "url": url, "headers": headers}
    if body is not None:
        out["body"] = preview(body)
    return out


def rpc(method: str, request_id: Any = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-RPC request (or a notification, without ``request_id``)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if request_id is not None:
        message["id"] = request_id
    if params is not None:
        message["params"] = params
    return message


def initialize_params(version: str) -> dict[str, Any]:
    return {
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "mcp-loadtest-check", "version": "1"},
    }


class Prober:
    """Sends probes with one aiohttp client and keeps every exchange for ``details``."""

    def __init__(self, client: aiohttp.ClientSession, base_headers: dict[str, str] | None = None) -> None:
        self.client = client
        self.base_headers = dict(base_headers or {})

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        raw: bytes | None = None,
        await_id: Any = None,
        timeout: float = PROBE_TIMEOUT_S,
        linger: float = 0.0,
    ) -> tuple[Reply, dict[str, Any]]:
        """Send one request; returns the reply and ``{"sent": ..., "received": ...}`` for details.

        An SSE response is read until the answer to ``await_id`` arrives, or for ``linger``
        seconds (a GET stream), or until the stream ends, whichever comes first.
        """
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        sent_headers = {**self.base_headers, **(headers or {})}
        if data is not None and not any(k.lower() == "content-type" for k in sent_headers):
            sent_headers["Content-Type"] = "application/json"
        reply = Reply(status=None)
        with anyio.move_on_after(timeout) as scope:
            try:
                # aiohttp warns (and blocks the loop) on a large raw-bytes body; a file object streams.
                payload: Any = io.BytesIO(data) if data is not None and len(data) > _READ_LIMIT else data
                async with self.client.request(
                    method, url, data=payload, headers=sent_headers, allow_redirects=False
                ) as resp:
                    reply.status = resp.status
                    reply.headers = {k: resp.headers[k] for k in _INTERESTING if k in resp.headers}
                    if reply.is_sse:
                        await self._read_sse(resp, reply, await_id, linger)
                    else:
                        reply.body = await resp.content.read(_READ_LIMIT)
                        if reply.body and reply.content_type.endswith("json"):
                            with contextlib.suppress(orjson.JSONDecodeError):
                                reply.messages.append(orjson.loads(reply.body))
            except (aiohttp.ClientError, OSError) as exc:
                reply.error = describe_client_error(exc)
        if scope.cancelled_caught:
            if reply.is_sse:
                reply.open_stream = True
                if await_id is not None and reply.answer(await_id) is None:
                    reply.error = f"no answer on the SSE stream within {timeout:g}s"
            else:
                reply.error = f"timed out after {timeout:g}s"
        exchange = {"sent": _sent(method, url, sent_headers, data), "received": reply.record()}
        return reply, exchange

    async def _read_sse(
        self, resp: aiohttp.ClientResponse, reply: Reply, await_id: Any, linger: float
    ) -> None:
        parser = SseParser()
        with anyio.move_on_after(linger) if await_id is None and linger > 0 else contextlib.nullcontext():
            async for chunk in resp.content.iter_any():
                reply.body += chunk[: max(0, BODY_PREVIEW * 4 - len(reply.body))]
                for event in parser.feed(chunk):
                    reply.events.append(event)
                    if event.data.strip():
                        with contextlib.suppress(orjson.JSONDecodeError):
                            reply.messages.append(orjson.loads(event.data))
                if await_id is not None and reply.answer(await_id) is not None:
                    reply.open_stream = True
                    return
                if await_id is None and linger <= 0 and reply.events:
                    reply.open_stream = True
                    return
            return
        reply.open_stream = True
