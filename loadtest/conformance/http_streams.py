"""Streamable HTTP messages and responses: 202s, JSON or SSE replies, priming events, GET streams, Accept."""

from __future__ import annotations

from typing import Any

import anyio

from loadtest.conformance.http_client import (
    REF_LISTENING,
    REF_SENDING,
    HttpSession,
    HttpTarget,
    T,
    empty_202,
    is_4xx,
    spec,
    verdict,
)
from loadtest.conformance.http_registry import http_step
from loadtest.conformance.model import (
    ALL,
    FROM_2025_11_25,
    STREAMABLE,
    CheckResult,
    Status,
)
from loadtest.conformance.probe import (
    Reply,
)

RESPONSE_202 = spec(
    "response-202",
    "ResponseAccepted",
    "A POST carrying only a JSON-RPC response is answered 202 with no body, or an HTTP error status",
    STREAMABLE,
    REF_SENDING,
)
PING = spec("ping", "Ping", "ping is answered with an empty result", ALL, "basic/utilities/ping")
RESPONSE_TYPE = spec(
    "response-content-type",
    "ResponseContentType",
    "A POST carrying a request is answered application/json or text/event-stream",
    STREAMABLE,
    REF_SENDING,
)
PRIMING = spec(
    "sse-priming-event",
    "ServerSendsPrimingEvent",
    "An SSE response starts with a priming event (an event id, empty data)",
    FROM_2025_11_25,
    REF_SENDING,
)
CONCURRENT = spec(
    "concurrent-posts",
    "ServerAcceptsMultiplePostStreams",
    "Concurrent POSTs of one session are all answered",
    STREAMABLE,
    REF_SENDING,
)
GET_STREAM = spec(
    "get-stream",
    "GetStream",
    "GET with Accept: text/event-stream opens an SSE stream or is answered 405",
    STREAMABLE,
    REF_LISTENING,
)
SECOND_GET = spec(
    "second-get-stream",
    "SecondGetStream",
    "A second GET stream while the first is open (recorded)",
    STREAMABLE,
    REF_LISTENING,
)
ACCEPT = spec(
    "accept-406",
    "AcceptHeader",
    "A POST whose Accept names neither JSON nor SSE is rejected (406)",
    STREAMABLE,
    REF_SENDING,
)


@http_step(RESPONSE_202, order=10)
async def _response_202(target: HttpTarget, session: HttpSession) -> CheckResult:
    message = {"jsonrpc": "2.0", "id": "loadtest-unsolicited-response", "result": {}}
    reply, ex = await target.prober.send("POST", target.url, headers=session.headers(), body=message)
    if empty_202(reply):
        status: Status = "SUCCESS"
    elif is_4xx(reply):
        status = "SUCCESS"  # "If the server cannot accept the input, it MUST return an HTTP error status"
    elif reply.status is not None and reply.status >= 500:
        status = "WARNING"
    else:
        status = "FAILURE"
    observed = f"response -> {reply.status}" + (
        " with body" if reply.body.strip() and reply.status == 202 else ""
    )
    return RESPONSE_202.result(
        T, status, observed, {"exchanges": [ex]}, None if status == "SUCCESS" else f"got {reply.short()}"
    )


@http_step(PING, order=20)
async def _ping(target: HttpTarget, session: HttpSession) -> CheckResult:
    reply, ex, rid = await target.request(session, "ping")
    answer = reply.answer(rid)
    ok = answer is not None and answer.get("result") == {}
    observed = f"ping -> {reply.short()}, " + ("result {}" if ok else f"{answer!r}"[:80])
    return PING.result(
        T, verdict(ok), observed, {"exchanges": [ex]}, None if ok else "expected an empty result"
    )


@http_step(RESPONSE_TYPE, PRIMING, order=30)
async def _content_type_and_priming(target: HttpTarget, session: HttpSession) -> list[CheckResult]:
    reply, ex, rid = await target.request(session, "tools/list")
    ok = reply.content_type in ("application/json", "text/event-stream") and reply.answer(rid) is not None
    first = reply.events[0] if reply.events else None
    results = [
        RESPONSE_TYPE.result(
            T,
            verdict(ok),
            f"request -> {reply.short()}",
            {"exchanges": [ex]},
            None if ok else "no answer as JSON or SSE",
        )
    ]
    if not reply.is_sse:
        results.append(PRIMING.result(T, "SKIPPED", "JSON response (no SSE stream)", {"exchanges": [ex]}))
    else:
        primed = first is not None and first.id is not None and not first.data.strip()
        observed = (
            "first SSE event: priming (id, empty data)"
            if primed
            else (
                f"first SSE event: {first.event!r} id={'yes' if first and first.id else 'none'}, data"
                if first
                else "no events"
            )
        )
        if primed and first is not None and first.retry is not None:
            observed += ", retry"
        results.append(
            PRIMING.result(
                T,
                verdict(primed, "WARNING"),
                observed,
                {"exchanges": [ex]},
                None if primed else "no priming event (SHOULD from 2025-11-25)",
            )
        )
    return results


@http_step(CONCURRENT, order=40)
async def _concurrent(target: HttpTarget, session: HttpSession) -> CheckResult:
    replies: list[tuple[Reply, dict[str, Any], int]] = []

    async def one() -> None:
        replies.append(await target.request(session, "tools/list"))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(one)
    answered = sum(1 for reply, _, rid in replies if reply.answer(rid) is not None)
    ok = answered == 3
    kinds = sorted({r.short() for r, _, _ in replies})
    observed = f"3 concurrent POSTs -> {' / '.join(kinds)}, {answered} answered"
    return CONCURRENT.result(
        T,
        verdict(ok),
        observed,
        {"exchanges": [ex for _, ex, _ in replies]},
        None if ok else "not every request was answered",
    )


@http_step(GET_STREAM, SECOND_GET, order=70)
async def _get_streams(target: HttpTarget, session: HttpSession) -> list[CheckResult]:
    headers = {**session.headers(), "Accept": "text/event-stream"}
    results: list[CheckResult] = []
    # The first GET stays open while the second one is tried: "multiple streams" is the point.
    async with anyio.create_task_group() as tg:
        first_done = anyio.Event()
        release = anyio.Event()
        first: dict[str, Any] = {}

        async def hold_first() -> None:
            async with target.prober.client.get(
                target.url, headers={**target.prober.base_headers, **headers}, allow_redirects=False
            ) as resp:
                first["status"] = resp.status
                first["content_type"] = resp.headers.get("content-type", "")
                first["headers"] = {
                    k: resp.headers[k]
                    for k in ("content-type", "allow", "mcp-session-id")
                    if k in resp.headers
                }
                first_done.set()
                with anyio.move_on_after(5.0):
                    await release.wait()

        async def guarded() -> None:
            try:
                await hold_first()
            except Exception as exc:  # a refused connection is an observation here
                first["error"] = str(exc) or type(exc).__name__
            finally:
                first_done.set()

        tg.start_soon(guarded)
        with anyio.move_on_after(5.0):
            await first_done.wait()
        second, ex2 = await target.prober.send("GET", target.url, headers=headers, linger=0.3, timeout=3.0)
        release.set()
    ct = first.get("content_type", "").split(";")[0].strip()
    ex1 = {"sent": {"method": "GET", "url": target.url, "headers": headers}, "received": first}
    status_code = first.get("status")
    first_short = f"{status_code} {ct}".strip() if status_code else f"error: {first.get('error')}"
    ok = (status_code == 200 and ct == "text/event-stream") or status_code == 405
    results.append(
        GET_STREAM.result(
            T,
            verdict(ok),
            f"GET -> {first_short}",
            {"exchanges": [ex1]},
            None if ok else "expected 200 text/event-stream or 405",
        )
    )
    if status_code == 200:
        results.append(SECOND_GET.result(T, "INFO", f"second GET -> {second.short()}", {"exchanges": [ex2]}))
    else:
        results.append(
            SECOND_GET.result(
                T, "SKIPPED", f"second GET -> {second.short()}", {"exchanges": [ex2]}, "no first GET stream"
            )
        )
    return results


@http_step(ACCEPT, order=80)
async def _accept(target: HttpTarget, session: HttpSession) -> CheckResult:
    exchanges = []
    parts = []
    reject = None
    for accept in ("text/plain", "application/json", "text/event-stream"):
        reply, ex, _ = await target.request(session, "ping", headers={**session.headers(), "Accept": accept})
        exchanges.append(ex)
        parts.append(f"Accept {accept} -> {reply.status}")
        if accept == "text/plain":
            reject = reply
    assert reject is not None
    ok = reject.status == 406
    status: Status = "SUCCESS" if ok else "WARNING"
    return ACCEPT.result(
        T,
        status,
        "; ".join(parts),
        {"exchanges": exchanges},
        None if ok else "Accept text/plain was not answered 406",
    )
