"""Streamable HTTP security: Origin and Host validation (DNS rebinding), and a body-size limit."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from loadtest.conformance.http_client import (
    LATEST,
    REF_SECURITY,
    REF_SENDING,
    HttpSession,
    HttpTarget,
    T,
    is_4xx,
    spec,
    verdict,
)
from loadtest.conformance.http_registry import http_step
from loadtest.conformance.model import (
    FROM_2025_11_25,
    STREAMABLE,
    CheckResult,
    Status,
)
from loadtest.conformance.probe import (
    ACCEPT_BOTH,
    Reply,
    initialize_params,
    rpc,
)

#: Body size for the size-limit probe: above the 4 MB the Python SDK accepts.
LARGE_BODY = 8 * 1024 * 1024


ORIGIN = spec(
    "origin-validation",
    "OriginValidation",
    "A request with a foreign Origin is rejected (403 from 2025-11-25)",
    STREAMABLE,
    REF_SECURITY,
)
HOST = spec(
    "host-validation",
    "HostValidation",
    "A request with a foreign Host header is rejected (DNS rebinding)",
    FROM_2025_11_25,
    "basic/security_best_practices#local-mcp-server-compromise",
)
REBINDING = spec(
    "dns-rebinding-rejected",
    "DNSRebindingRejected",
    "A request with a foreign Host and Origin gets 4xx",
    FROM_2025_11_25,
    "basic/security_best_practices#local-mcp-server-compromise",
)
LOCALHOST = spec(
    "localhost-accepted",
    "LocalhostHostAccepted",
    "A request with a localhost Host and Origin is accepted",
    FROM_2025_11_25,
    "basic/security_best_practices#local-mcp-server-compromise",
)
BODY_LIMIT = spec(
    "body-size-limit",
    "RequestBodySizeLimit",
    "An 8 MiB request body is refused (413) or handled, never crashes the server",
    STREAMABLE,
    REF_SENDING,
)


@http_step(ORIGIN, HOST, REBINDING, LOCALHOST, order=140)
async def _dns_rebinding(target: HttpTarget, session: HttpSession) -> list[CheckResult]:
    parts = urlsplit(target.url)
    local = parts.netloc
    evil = "evil.example.com"
    results = []

    async def init(headers: dict[str, str]) -> tuple[Reply, dict[str, Any]]:
        rid = target.next_id()
        reply, ex = await target.prober.send(
            "POST",
            target.url,
            headers={"Accept": ACCEPT_BOTH, **headers},
            body=rpc("initialize", rid, initialize_params(LATEST)),
            await_id=rid,
        )
        return reply, ex

    reply, ex = await init({"Origin": f"http://{evil}"})
    status: Status = "SUCCESS" if reply.status == 403 else ("WARNING" if is_4xx(reply) else "FAILURE")
    results.append(
        ORIGIN.result(
            T,
            status,
            f"Origin {evil} -> {reply.short()}",
            {"exchanges": [ex]},
            None if status == "SUCCESS" else "expected 403",
        )
    )
    reply, ex = await init({"Host": evil})
    results.append(
        HOST.result(
            T,
            verdict(is_4xx(reply)),
            f"Host {evil} -> {reply.short()}",
            {"exchanges": [ex]},
            None if is_4xx(reply) else "expected 4xx",
        )
    )
    reply, ex = await init({"Host": evil, "Origin": f"http://{evil}"})
    results.append(
        REBINDING.result(
            T,
            verdict(is_4xx(reply)),
            f"Host+Origin {evil} -> {reply.short()}",
            {"exchanges": [ex]},
            None if is_4xx(reply) else "expected 4xx",
        )
    )
    reply, ex = await init({"Host": local, "Origin": f"http://{local}"})
    ok = reply.status is not None and 200 <= reply.status < 300
    results.append(
        LOCALHOST.result(
            T,
            verdict(ok),
            f"Host+Origin localhost -> {reply.short()}",
            {"exchanges": [ex]},
            None if ok else "expected 2xx",
        )
    )
    return results


@http_step(BODY_LIMIT, order=170)
async def _body_limit(target: HttpTarget, session: HttpSession) -> CheckResult:
    rid = target.next_id()
    big = rpc("ping", rid, {"_meta": {"padding": "x" * LARGE_BODY}})
    reply, ex = await target.prober.send(
        "POST", target.url, headers=session.headers(), body=big, await_id=rid, timeout=15.0
    )
    # The server must still be alive afterwards, whatever it did with the big body.
    after, ex2, rid2 = await target.request(session, "ping")
    alive = after.answer(rid2) is not None
    # Only the status: whether the headers of an early 413 arrive before the server closes varies.
    outcome = (
        "answered"
        if reply.answer(rid) is not None
        else (str(reply.status) if reply.status else reply.short())
    )
    observed = f"POST 8 MiB -> {outcome}; server {'alive' if alive else 'NOT answering'} after"
    status: Status = "INFO" if alive and (reply.status is not None and reply.status < 500) else "WARNING"
    return BODY_LIMIT.result(
        T,
        status,
        observed,
        {"exchanges": [ex, ex2]},
        None if status == "INFO" else "the server failed on a large body",
    )
