"""Streamable HTTP error envelopes: an unknown method, a body that is not JSON."""

from __future__ import annotations

from typing import Any

from loadtest.conformance.http_client import (
    HttpSession,
    HttpTarget,
    T,
    is_4xx,
    spec,
)
from loadtest.conformance.http_registry import http_step
from loadtest.conformance.model import (
    ALL,
    STREAMABLE,
    CheckResult,
    Status,
)

ERROR_METHOD = spec(
    "error-unknown-method",
    "ErrorEnvelopeUnknownMethod",
    "An unknown method gets a JSON-RPC error (-32601) carrying the request's id",
    ALL,
    "basic#responses",
)
ERROR_PARSE = spec(
    "error-parse",
    "ErrorEnvelopeParseError",
    "A body that is not JSON gets an HTTP 4xx with a JSON-RPC error (id null)",
    STREAMABLE,
    "basic#responses",
)


def _error_shape(error: Any) -> bool:
    return (
        isinstance(error, dict)
        and isinstance(error.get("code"), int)
        and isinstance(error.get("message"), str)
    )


@http_step(ERROR_METHOD, order=120)
async def _error_method(target: HttpTarget, session: HttpSession) -> CheckResult:
    reply, ex, rid = await target.request(session, "loadtest/no-such-method")
    answer = reply.answer(rid)
    error = (answer or {}).get("error")
    ok = answer is not None and _error_shape(error) and answer.get("jsonrpc") == "2.0"
    code = error.get("code") if isinstance(error, dict) else None
    observed = f"unknown method -> {reply.short()}, " + (
        f"error {code}, id echoed" if answer else "no JSON-RPC answer"
    )
    status: Status = "SUCCESS" if ok and code == -32601 else ("WARNING" if ok else "FAILURE")
    return ERROR_METHOD.result(
        T,
        status,
        observed,
        {"exchanges": [ex]},
        None if status == "SUCCESS" else "expected error -32601 with the request's id",
    )


@http_step(ERROR_PARSE, order=150)
async def _error_parse(target: HttpTarget, session: HttpSession) -> CheckResult:
    reply, ex = await target.prober.send(
        "POST", target.url, headers=session.headers(), raw=b'{"jsonrpc": "2.0", "id": 1, "method": '
    )
    message = reply.messages[0] if reply.messages and isinstance(reply.messages[0], dict) else None
    error = (message or {}).get("error")
    code = error.get("code") if isinstance(error, dict) else None
    ok = is_4xx(reply)
    observed = f"malformed JSON -> {reply.short()}" + (
        f", error {code}, id {message.get('id')!r}" if message else ", no JSON-RPC error"
    )
    status: Status = (
        "SUCCESS"
        if ok and _error_shape(error) and message and message.get("id") is None
        else ("WARNING" if ok else "FAILURE")
    )
    return ERROR_PARSE.result(
        T,
        status,
        observed,
        {"exchanges": [ex]},
        None if status == "SUCCESS" else "expected 4xx with a JSON-RPC error whose id is null",
    )
