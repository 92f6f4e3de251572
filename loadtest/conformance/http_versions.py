"""Streamable HTTP versioning: the MCP-Protocol-Version header, version negotiation, JSON-RPC batches."""

from __future__ import annotations

from typing import Any

from loadtest.conformance.http_client import (
    LATEST,
    REF_NEGOTIATION,
    REF_VERSION_HEADER,
    HttpSession,
    HttpTarget,
    T,
    spec,
    verdict,
)
from loadtest.conformance.http_registry import http_step
from loadtest.conformance.model import (
    ALL,
    FROM_2025_06_18,
    FUTURE_VERSION,
    SPEC_VERSIONS,
    V2025_03_26,
    CheckResult,
    Status,
)
from loadtest.conformance.probe import (
    rpc,
)

PV_ACCEPTED = spec(
    "protocol-version-accepted",
    "ProtocolVersionHeaderAccepted",
    "MCP-Protocol-Version with the negotiated version is accepted",
    FROM_2025_06_18,
    REF_VERSION_HEADER,
)
PV_UNSUPPORTED = spec(
    "protocol-version-unsupported-400",
    "ProtocolVersionHeaderUnsupported",
    "An unsupported MCP-Protocol-Version gets 400",
    FROM_2025_06_18,
    REF_VERSION_HEADER,
)
PV_ABSENT = spec(
    "protocol-version-absent",
    "ProtocolVersionHeaderAbsent",
    "Without MCP-Protocol-Version the server assumes 2025-03-26 and answers",
    FROM_2025_06_18,
    REF_VERSION_HEADER,
)
BATCH = spec(
    "batch-2025-03-26",
    "BatchReceived",
    "A session at 2025-03-26 accepts a JSON-RPC batch (the only version with batches)",
    (V2025_03_26,),
    "basic#batching",
)
BATCH_LATEST = spec(
    "batch-latest",
    "BatchAtLatest",
    "A JSON-RPC batch on a session at the newest version (batches were removed in 2025-06-18)",
    FROM_2025_06_18,
    "basic#json-rpc-messages",
)
NEGOTIATE = {
    v: spec(
        f"negotiate-{v}" if v != FUTURE_VERSION else "negotiate-future",
        f"VersionNegotiation{v.replace('-', '')}" if v != FUTURE_VERSION else "VersionNegotiationFuture",
        f"initialize asking for {v}: the same version back if supported, else another the server supports"
        if v != FUTURE_VERSION
        else f"initialize asking for an unknown future version ({v}): the server answers one it supports",
        ALL,
        REF_NEGOTIATION,
    )
    for v in (*SPEC_VERSIONS, FUTURE_VERSION)
}


@http_step(PV_ACCEPTED, order=90)
async def _pv_accepted(target: HttpTarget, session: HttpSession) -> CheckResult:
    version = session.negotiated or LATEST
    reply, ex, rid = await target.request(
        session, "ping", headers={**session.headers(), "MCP-Protocol-Version": version}
    )
    ok = reply.answer(rid) is not None
    return PV_ACCEPTED.result(
        T,
        verdict(ok),
        f"MCP-Protocol-Version {version} -> {reply.short()}",
        {"exchanges": [ex]},
        None if ok else "request not answered",
    )


@http_step(PV_UNSUPPORTED, order=100)
async def _pv_unsupported(target: HttpTarget, session: HttpSession) -> CheckResult:
    reply, ex, _ = await target.request(
        session, "ping", headers={**session.headers(), "MCP-Protocol-Version": "1999-01-01"}
    )
    ok = reply.status == 400
    return PV_UNSUPPORTED.result(
        T,
        verdict(ok),
        f"MCP-Protocol-Version 1999-01-01 -> {reply.short()}",
        {"exchanges": [ex]},
        None if ok else "expected 400 (MUST from 2025-06-18)",
    )


@http_step(PV_ABSENT, order=110)
async def _pv_absent(target: HttpTarget, session: HttpSession) -> CheckResult:
    reply, ex, rid = await target.request(session, "ping", headers=session.headers(version=False))
    ok = reply.answer(rid) is not None
    return PV_ABSENT.result(
        T,
        verdict(ok, "WARNING"),
        f"no MCP-Protocol-Version -> {reply.short()}",
        {"exchanges": [ex]},
        None if ok else "expected the request to be answered (as 2025-03-26)",
    )


@http_step(*NEGOTIATE.values(), order=130)
async def _negotiation(target: HttpTarget, session: HttpSession) -> list[CheckResult]:
    results = []
    for version, check in NEGOTIATE.items():
        # Not DELETEd: mcp 1.8's session manager sometimes dies on a DELETE (a race), which would
        # make every later observation depend on timing. The server drops them when it exits.
        opened = await target.open(version)
        details = {"exchanges": opened.exchanges[:1]}
        got = opened.negotiated
        observed = f"asked {version} -> {got or opened.reply.short()}"
        if got is None:
            answer = opened.reply.answer(opened.init_id) or {}
            status: Status = "FAILURE" if version != FUTURE_VERSION else "WARNING"
            error: str | None = (
                f"no initialize result ({opened.reply.short()}) {answer.get('error', '')}".strip()
            )
        elif version == FUTURE_VERSION:
            status = verdict(got != FUTURE_VERSION)
            error = (
                None if status == "SUCCESS" else "the server claims to speak a version that does not exist"
            )
        else:
            status, error = "SUCCESS", None
        results.append(check.result(T, status, observed, details, error))
    return results


@http_step(BATCH, BATCH_LATEST, order=160)
async def _batch(target: HttpTarget, session: HttpSession) -> list[CheckResult]:
    results = []
    old = await target.open(V2025_03_26)
    ids = [target.next_id(), target.next_id()]
    batch = [rpc("ping", ids[0]), rpc("ping", ids[1])]
    details: dict[str, Any] = {"exchanges": old.exchanges[:1]}
    if old.negotiated != V2025_03_26:
        results.append(
            BATCH.result(T, "SKIPPED", f"2025-03-26 not supported (answered {old.negotiated})", details)
        )
    else:
        reply, ex = await target.prober.send(
            "POST", target.url, headers=old.headers(), body=batch, await_id=ids[1]
        )
        answered = sum(1 for i in ids if reply.answer(i) is not None)
        details["exchanges"].append(ex)
        ok = answered == 2
        results.append(
            BATCH.result(
                T,
                verdict(ok),
                f"batch of 2 -> {reply.short()}, {answered} answered",
                details,
                None if ok else "2025-03-26 servers MUST accept batches",
            )
        )
    ids = [target.next_id(), target.next_id()]
    batch = [rpc("ping", ids[0]), rpc("ping", ids[1])]
    reply, ex = await target.prober.send(
        "POST", target.url, headers=session.headers(), body=batch, await_id=ids[1], timeout=3.0
    )
    answered = sum(1 for i in ids if reply.answer(i) is not None)
    results.append(
        BATCH_LATEST.result(
            T,
            "INFO",
            f"batch of 2 at {session.negotiated} -> {reply.short()}, {answered} answered",
            {"exchanges": [ex]},
        )
    )
    return results
