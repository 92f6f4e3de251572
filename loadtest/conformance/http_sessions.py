"""Streamable HTTP sessions: the endpoint, initialize, session ids (issued, missing, unknown), DELETE."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

from loadtest.conformance.http_client import (
    REF_SENDING,
    REF_SESSIONS,
    REF_STREAMABLE,
    HttpSession,
    HttpTarget,
    T,
    spec,
    verdict,
)
from loadtest.conformance.http_registry import http_step
from loadtest.conformance.model import (
    ALL,
    STREAMABLE,
    CheckResult,
    Status,
)
from loadtest.conformance.probe import (
    Prober,
    not_mcp,
    speaks_jsonrpc,
)
from loadtest.core.errors import TargetError

_REDIRECTS = (301, 302, 303, 307, 308)


ENDPOINT = spec(
    "endpoint-path",
    "EndpointPath",
    "The MCP endpoint answers POST at the URL given (redirects are recorded and followed)",
    STREAMABLE,
    REF_STREAMABLE,
)
INITIALIZE = spec(
    "initialize",
    "ServerInitialize",
    "initialize returns a result with protocolVersion, capabilities and serverInfo",
    ALL,
    "basic/lifecycle#initialization",
)
SESSION_ID = spec(
    "session-id-visible-ascii",
    "SessionIdVisibleAscii",
    "A session id, if issued at initialize, is visible ASCII (0x21-0x7E)",
    STREAMABLE,
    REF_SESSIONS,
)
NOTIFICATION_202 = spec(
    "notification-202",
    "NotificationAccepted",
    "A POST carrying only a notification is answered 202 with no body",
    STREAMABLE,
    REF_SENDING,
)
MISSING_SESSION = spec(
    "missing-session-id-400",
    "MissingSessionId",
    "A request without the session id (other than initialize) gets 400",
    STREAMABLE,
    REF_SESSIONS,
)
UNKNOWN_SESSION = spec(
    "unknown-session-id-404",
    "UnknownSessionId",
    "A request with an unknown session id gets 404",
    STREAMABLE,
    REF_SESSIONS,
)
DELETE = spec(
    "delete-session",
    "DeleteSession",
    "DELETE with the session id ends the session (2xx) or is refused with 405",
    STREAMABLE,
    REF_SESSIONS,
)
TERMINATED = spec(
    "terminated-session-404",
    "TerminatedSession",
    "After DELETE, a request with the old session id gets 404",
    STREAMABLE,
    REF_SESSIONS,
)


async def resolve_endpoint(prober: Prober, url: str) -> tuple[str, CheckResult, HttpTarget, HttpSession]:
    """Find the endpoint (following a redirect such as /mcp -> /mcp/) and open the first session."""
    target = HttpTarget(prober, url)
    session = await target.open()
    hops: list[str] = []
    while session.reply.status in _REDIRECTS and "location" in session.reply.headers and len(hops) < 3:
        location = urljoin(target.url, session.reply.headers["location"])
        hops.append(f"{session.reply.status} {urlsplit(location).path}")
        target.url = location
        session = await target.open()
    if session.reply.status is None:
        raise TargetError(f"cannot reach the Streamable HTTP endpoint {url}: {session.reply.error}")
    reply = session.reply
    if not reply.is_sse and not speaks_jsonrpc(reply):
        # A web page, a 404 or a proxy's error page: no check would say anything about MCP,
        # so this is a run that could not be carried out (exit 3), not a list of failures.
        raise TargetError(not_mcp(url, "POST initialize", reply.status, reply.content_type, reply.body))
    path = urlsplit(url).path or "/"
    observed = f"POST {path} -> " + (" -> ".join(hops) if hops else "no redirect")
    details = {"url": url, "resolved": target.url, "exchanges": session.exchanges[:1]}
    status: Status = "INFO" if hops else "SUCCESS"
    return target.url, ENDPOINT.result(T, status, observed, details), target, session


def initialize_check(session: HttpSession) -> CheckResult:
    result = session.result or {}
    problems = []
    if session.result is None:
        problems.append(f"no initialize result ({session.reply.short()})")
    else:
        if not isinstance(result.get("protocolVersion"), str):
            problems.append("protocolVersion missing")
        if not isinstance(result.get("capabilities"), dict):
            problems.append("capabilities missing")
        info = result.get("serverInfo")
        if not (isinstance(info, dict) and info.get("name") and info.get("version")):
            problems.append("serverInfo.name/version missing")
    observed = f"initialize -> {session.reply.short()}" + (
        f", protocolVersion {result.get('protocolVersion')}" if session.result is not None else ""
    )
    details = {"exchanges": session.exchanges[:1], "serverInfo": result.get("serverInfo")}
    return INITIALIZE.result(T, verdict(not problems), observed, details, "; ".join(problems) or None)


def session_id_check(session: HttpSession) -> CheckResult:
    sid = session.session_id
    details: dict[str, Any] = {"exchanges": session.exchanges[:1]}
    if sid is None:
        return SESSION_ID.result(T, "INFO", "no session id (stateless)", details)
    visible = all(0x21 <= ord(c) <= 0x7E for c in sid) and bool(sid)
    details["session_id"] = sid
    observed = f"session id issued: {len(sid)} {'visible-ASCII' if visible else 'NON-visible-ASCII'} chars"
    return SESSION_ID.result(
        T,
        verdict(visible),
        observed,
        details,
        None if visible else "session id has characters outside 0x21-0x7E",
    )


def notification_check(session: HttpSession) -> CheckResult:
    if len(session.exchanges) < 2:
        return NOTIFICATION_202.result(T, "SKIPPED", "no session", {"exchanges": session.exchanges})
    received = session.exchanges[1]["received"]
    ok = received.get("status") == 202 and not received.get("body")
    observed = f"notification -> {received.get('status')}" + (
        "" if not received.get("body") else " with body"
    )
    return NOTIFICATION_202.result(
        T,
        verdict(ok),
        observed,
        {"exchanges": session.exchanges[1:2]},
        None if ok else "expected 202 with no body",
    )


@http_step(MISSING_SESSION, order=50)
async def _missing_session(target: HttpTarget, session: HttpSession) -> CheckResult:
    headers = {k: v for k, v in session.headers().items() if k != "Mcp-Session-Id"}
    reply, ex, _ = await target.request(session, "ping", headers=headers)
    observed = f"no session id -> {reply.short()}"
    if session.session_id is None:
        return MISSING_SESSION.result(
            T, "SKIPPED", observed, {"exchanges": [ex]}, "the server issued no session id"
        )
    ok = reply.status == 400
    return MISSING_SESSION.result(
        T, verdict(ok, "WARNING"), observed, {"exchanges": [ex]}, None if ok else "expected 400 (SHOULD)"
    )


@http_step(UNKNOWN_SESSION, order=60)
async def _unknown_session(target: HttpTarget, session: HttpSession) -> CheckResult:
    headers = {**session.headers(), "Mcp-Session-Id": "loadtest-unknown-session-0000"}
    reply, ex, _ = await target.request(session, "ping", headers=headers)
    observed = f"unknown session id -> {reply.short()}"
    if session.session_id is None:
        return UNKNOWN_SESSION.result(
            T, "SKIPPED", observed, {"exchanges": [ex]}, "the server issued no session id"
        )
    ok = reply.status == 404
    return UNKNOWN_SESSION.result(
        T, verdict(ok), observed, {"exchanges": [ex]}, None if ok else "expected 404 (MUST)"
    )


async def delete_checks(target: HttpTarget, session: HttpSession) -> list[CheckResult]:
    reply, ex = await target.prober.send("DELETE", target.url, headers=session.headers())
    observed = f"DELETE -> {reply.short()}"
    if session.session_id is None:
        return [
            DELETE.result(T, "SKIPPED", observed, {"exchanges": [ex]}, "the server issued no session id"),
            TERMINATED.result(T, "SKIPPED", "no session", {}),
        ]
    ok = reply.status is not None and (200 <= reply.status < 300 or reply.status == 405)
    results = [
        DELETE.result(T, verdict(ok), observed, {"exchanges": [ex]}, None if ok else "expected 2xx or 405")
    ]
    if reply.status is not None and 200 <= reply.status < 300:
        after, ex2, _ = await target.request(session, "ping")
        ok = after.status == 404
        results.append(
            TERMINATED.result(
                T,
                verdict(ok),
                f"after DELETE -> {after.short()}",
                {"exchanges": [ex2]},
                None if ok else "expected 404 (MUST)",
            )
        )
    else:
        results.append(TERMINATED.result(T, "SKIPPED", "session not deleted", {}))
    return results
