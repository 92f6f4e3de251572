"""Legacy HTTP+SSE checks (spec 2024-11-05, ``basic/transports#http-with-sse``).

A session is a GET stream whose first event, ``endpoint``, names the URI for POSTs; answers
come back as ``message`` events on the stream. The checks open streams with raw aiohttp and
record what the endpoint accepts: known, unknown, malformed and missing session ids, a foreign
Origin, and POSTs after the client dropped its stream.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import aiohttp
import anyio
import orjson

from loadtest.conformance.model import (
    ALL,
    FUTURE_VERSION,
    LEGACY_SSE,
    SPEC_VERSIONS,
    CheckResult,
    CheckSpec,
    Status,
)
from loadtest.conformance.probe import (
    BODY_PREVIEW,
    PROBE_TIMEOUT_S,
    Prober,
    Reply,
    initialize_params,
    not_mcp,
    preview,
    rpc,
)
from loadtest.core.errors import TargetError
from loadtest.protocol.transports.http import describe_client_error, new_client_session
from loadtest.protocol.transports.sse_parser import SseEvent, SseParser

T = "sse"
_REF = "basic/transports#http-with-sse"
LATEST = SPEC_VERSIONS[-1]


def _spec(
    id: str, name: str, description: str, ref: str = _REF, versions: tuple[str, ...] = LEGACY_SSE
) -> CheckSpec:
    return CheckSpec(f"{T}-{id}", name, description, versions, ref)


ENDPOINT_FIRST = _spec(
    "endpoint-event-first",
    "EndpointEventFirst",
    "The first event on the GET stream is `endpoint`, whose data is the URI for POSTs",
)
POST_ACCEPTED = _spec(
    "post-accepted",
    "PostAccepted",
    "A POST to the endpoint URI is accepted (2xx) and its answer arrives as a `message` event",
)
INITIALIZE = _spec(
    "initialize",
    "ServerInitialize",
    "initialize returns a result with protocolVersion, capabilities and serverInfo",
    "basic/lifecycle#initialization",
    ALL,
)
PING = _spec("ping", "Ping", "ping is answered with an empty result", "basic/utilities/ping", ALL)
UNKNOWN = _spec(
    "unknown-session-id",
    "UnknownSessionId",
    "A POST naming a session that does not exist is rejected (recorded)",
)
MALFORMED = _spec(
    "malformed-session-id", "MalformedSessionId", "A POST with a malformed session id is rejected (recorded)"
)
MISSING = _spec(
    "missing-session-id", "MissingSessionId", "A POST without a session id is rejected (recorded)"
)
AFTER_DROP = _spec(
    "post-after-stream-closed",
    "PostAfterStreamClosed",
    "A POST after the client dropped its stream (recorded: rejected, or accepted and lost)",
)
ORIGIN = _spec(
    "origin-validation",
    "OriginValidation",
    "A GET with a foreign Origin is rejected (servers MUST validate Origin)",
    "basic/transports#security-warning",
)
NEGOTIATE_FUTURE = _spec(
    "negotiate-future",
    "VersionNegotiationFuture",
    f"initialize asking for {FUTURE_VERSION}: the server answers a version it supports",
    "basic/lifecycle#version-negotiation",
    ALL,
)
NEGOTIATE_LATEST = _spec(
    f"negotiate-{LATEST}",
    f"VersionNegotiation{LATEST.replace('-', '')}",
    f"initialize asking for {LATEST}",
    "basic/lifecycle#version-negotiation",
    ALL,
)


@dataclass
class Stream:
    """An open legacy SSE session: the GET response and what arrived on it."""

    response: aiohttp.ClientResponse
    parser: SseParser = field(default_factory=SseParser)
    events: list[SseEvent] = field(default_factory=list)
    endpoint: str | None = None

    backlog: list[SseEvent] = field(default_factory=list)

    async def next_event(self, timeout: float = PROBE_TIMEOUT_S) -> SseEvent | None:
        """The next event, or None when the stream ends or nothing comes within ``timeout``."""
        with anyio.move_on_after(timeout):
            while not self.backlog:
                chunk = await self.response.content.readany()
                if not chunk:
                    return None
                fresh = self.parser.feed(chunk)
                self.events.extend(fresh)
                self.backlog.extend(fresh)
        return self.backlog.pop(0) if self.backlog else None

    async def answer(self, request_id: Any, timeout: float = PROBE_TIMEOUT_S) -> dict[str, Any] | None:
        """The ``message`` event answering ``request_id``, skipping others."""
        with anyio.move_on_after(timeout):
            while (event := await self.next_event(timeout)) is not None:
                if event.event != "message":
                    continue
                with contextlib.suppress(orjson.JSONDecodeError):
                    message = orjson.loads(event.data)
                    if isinstance(message, dict) and message.get("id") == request_id:
                        return message
        return None


@contextlib.asynccontextmanager
async def open_stream(
    client: aiohttp.ClientSession, url: str, headers: Mapping[str, str]
) -> AsyncIterator[Stream]:
    async with client.get(
        url, headers={**headers, "Accept": "text/event-stream"}, allow_redirects=False
    ) as resp:
        stream = Stream(resp)
        # Only an event stream is read as one: any other body is kept for the error line.
        if resp.status == 200 and _content_type(resp) == "text/event-stream":
            first = await stream.next_event()
            if first is not None and first.event == "endpoint":
                stream.endpoint = urljoin(url, first.data.decode("utf-8", "replace").strip())
        yield stream


def _normalise(endpoint: str) -> str:
    """The endpoint URI with the session id replaced by ``<id>``: stable across runs."""
    parts = urlsplit(endpoint)
    query = "&".join(f"{k}=<id>" for k, _ in parse_qsl(parts.query))
    return parts.path + (f"?{query}" if query else "")


def _with_session(endpoint: str, value: str | None) -> str:
    """``endpoint`` with its session query parameter set to ``value`` (dropped when None)."""
    parts = urlsplit(endpoint)
    pairs = parse_qsl(parts.query)
    key = next((k for k, _ in pairs if re.search("session", k, re.I)), pairs[0][0] if pairs else "session_id")
    rest = [(k, v) for k, v in pairs if k != key]
    if value is not None:
        rest.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(rest)))


def _verdict(ok: bool, otherwise: Status = "FAILURE") -> Status:
    return "SUCCESS" if ok else otherwise


def _rejected(reply: Reply) -> bool:
    return reply.status is not None and 400 <= reply.status < 500


def _content_type(response: aiohttp.ClientResponse) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


async def _body_start(response: aiohttp.ClientResponse) -> bytes:
    """The start of a body that is not an event stream, for the error line."""
    with anyio.move_on_after(PROBE_TIMEOUT_S):
        return await response.content.read(BODY_PREVIEW)
    return b""


async def run_sse_checks(url: str, headers: Mapping[str, str] | None = None) -> list[CheckResult]:
    """Every legacy SSE check against the stream at ``url``."""
    base = dict(headers or {})
    results: list[CheckResult] = []
    async with new_client_session() as client:
        prober = Prober(client, base)
        try:
            async with open_stream(client, url, base) as stream:
                status = stream.response.status
                first = stream.events[0] if stream.events else None
                sent = {"method": "GET", "url": url, "headers": {**base, "Accept": "text/event-stream"}}
                received = {
                    "status": status,
                    "content_type": stream.response.headers.get("content-type"),
                    "events": [{"event": e.event, "data": preview(e.data)} for e in stream.events[:2]],
                }
                details = {"exchanges": [{"sent": sent, "received": received}]}
                content_type = _content_type(stream.response)
                if stream.endpoint is None and content_type != "text/event-stream":
                    # Not an event stream at all: a web page, a 404. Nothing to check (exit 3).
                    raise TargetError(
                        not_mcp(url, "GET", status, content_type, await _body_start(stream.response))
                    )
                if stream.endpoint is None:
                    observed = f"GET -> {status}, first event: {first.event if first else 'none'}"
                    results.append(
                        ENDPOINT_FIRST.result(T, "FAILURE", observed, details, "no endpoint event first")
                    )
                    if status != 200:
                        raise TargetError(f"the legacy SSE endpoint {url} answered GET with HTTP {status}")
                    return results
                results.append(
                    ENDPOINT_FIRST.result(
                        T, "SUCCESS", f"first event: endpoint {_normalise(stream.endpoint)}", details
                    )
                )
                results += await _session_checks(prober, stream)
                dropped_endpoint = stream.endpoint
        except (aiohttp.ClientError, OSError) as exc:
            raise TargetError(
                f"cannot reach the legacy SSE endpoint {url}: {describe_client_error(exc)}"
            ) from None
        results.append(await _after_drop(prober, dropped_endpoint))
        results.append(await _origin(client, url, base))
    return results


async def _post(
    prober: Prober, stream: Stream, message: dict[str, Any]
) -> tuple[Reply, dict[str, Any], dict[str, Any] | None]:
    assert stream.endpoint is not None
    reply, ex = await prober.send("POST", stream.endpoint, body=message)
    answer = None
    if "id" in message and reply.status is not None and 200 <= reply.status < 300:
        answer = reply.answer(message["id"]) or await stream.answer(message["id"])
    ex["answer_on_stream"] = preview(orjson.dumps(answer)) if answer else None
    return reply, ex, answer


async def _session_checks(prober: Prober, stream: Stream) -> list[CheckResult]:
    assert stream.endpoint is not None
    results = []
    reply, ex, answer = await _post(prober, stream, rpc("initialize", 1, initialize_params(LATEST)))
    accepted = reply.status is not None and 200 <= reply.status < 300
    ok = accepted and answer is not None
    observed = f"POST -> {reply.short()}; answer " + ("on stream" if answer else "missing")
    results.append(
        POST_ACCEPTED.result(
            T, _verdict(ok), observed, {"exchanges": [ex]}, None if ok else "POST not accepted or no answer"
        )
    )
    result = (answer or {}).get("result")
    version = result.get("protocolVersion") if isinstance(result, dict) else None
    init_ok = (
        isinstance(result, dict)
        and isinstance(version, str)
        and isinstance(result.get("capabilities"), dict)
        and isinstance(result.get("serverInfo"), dict)
    )
    results.append(
        INITIALIZE.result(
            T,
            _verdict(init_ok),
            f"initialize -> protocolVersion {version}",
            {"exchanges": [ex]},
            None if init_ok else "no valid initialize result",
        )
    )
    results.append(
        NEGOTIATE_LATEST.result(T, "SUCCESS" if version else "FAILURE", f"asked {LATEST} -> {version}", {})
    )
    await prober.send("POST", stream.endpoint, body=rpc("notifications/initialized"))
    reply, ex, answer = await _post(prober, stream, rpc("ping", 2))
    ok = answer is not None and answer.get("result") == {}
    results.append(
        PING.result(
            T,
            _verdict(ok),
            f"ping -> {reply.status}, " + ("result {}" if ok else "no empty result"),
            {"exchanges": [ex]},
        )
    )

    probes = (
        (UNKNOWN, _with_session(stream.endpoint, "0" * 32), "unknown session id"),
        (MALFORMED, _with_session(stream.endpoint, "not a session!"), "malformed session id"),
        (MISSING, _with_session(stream.endpoint, None), "no session id"),
    )
    for spec, endpoint, what in probes:
        # Short deadline: some servers never answer these (server-everything 2026.8.31 hangs).
        reply, ex = await prober.send("POST", endpoint, body=rpc("ping", 3), timeout=2.0)
        status: Status = "SUCCESS" if _rejected(reply) else "WARNING"
        results.append(
            spec.result(
                T,
                status,
                f"{what} -> {reply.short()}",
                {"exchanges": [ex]},
                None if status == "SUCCESS" else "not rejected with 4xx",
            )
        )
    return results


async def _after_drop(prober: Prober, endpoint: str | None) -> CheckResult:
    if endpoint is None:
        return AFTER_DROP.result(T, "SKIPPED", "no endpoint", {})
    # The server notices the dropped stream when it next writes or polls; give it a moment.
    await anyio.sleep(0.3)
    reply, ex = await prober.send("POST", endpoint, body=rpc("ping", 4), timeout=2.0)
    lost = reply.status is not None and 200 <= reply.status < 300
    observed = f"POST after stream closed -> {reply.short()}" + (
        " (accepted, answer has nowhere to go)" if lost else ""
    )
    return AFTER_DROP.result(
        T,
        "INFO" if not lost else "WARNING",
        observed,
        {"exchanges": [ex]},
        "accepted a message whose answer is lost" if lost else None,
    )


async def _origin(client: aiohttp.ClientSession, url: str, headers: Mapping[str, str]) -> CheckResult:
    evil = "http://evil.example.com"
    sent = {
        "method": "GET",
        "url": url,
        "headers": {**headers, "Origin": evil, "Accept": "text/event-stream"},
    }
    received: dict[str, Any] = {}
    try:
        with anyio.move_on_after(PROBE_TIMEOUT_S):
            async with client.get(url, headers=sent["headers"], allow_redirects=False) as resp:
                received = {"status": resp.status, "content_type": resp.headers.get("content-type")}
    except (aiohttp.ClientError, OSError) as exc:
        received = {"error": describe_client_error(exc)}
    status_code = received.get("status")
    ok = isinstance(status_code, int) and 400 <= status_code < 500
    observed = f"Origin evil.example.com -> {status_code if status_code else received.get('error')}"
    return ORIGIN.result(
        T,
        _verdict(ok),
        observed,
        {"exchanges": [{"sent": sent, "received": received}]},
        None if ok else "stream opened for a foreign Origin",
    )
