"""The conformance checks' own Streamable HTTP client: raw probes, one session at a time.

Not the load-testing client (:mod:`loadtest.protocol`): it sends exactly what a check asks for
and records every exchange. :class:`HttpSession` is a session opened by probes, named so that
it is not mistaken for the protocol layer's ``Session``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadtest.conformance.model import SPEC_VERSIONS, CheckSpec, Status
from loadtest.conformance.probe import ACCEPT_BOTH, Prober, Reply, initialize_params, rpc

T = "http"
#: Spec references (pages and anchors below the version in the spec's URL).
REF_SESSIONS = "basic/transports#session-management"
REF_STREAMABLE = "basic/transports#streamable-http"
REF_SENDING = "basic/transports#sending-messages-to-the-server"
REF_LISTENING = "basic/transports#listening-for-messages-from-the-server"
REF_VERSION_HEADER = "basic/transports#protocol-version-header"
REF_SECURITY = "basic/transports#security-warning"
REF_NEGOTIATION = "basic/lifecycle#version-negotiation"
LATEST = SPEC_VERSIONS[-1]


def spec(id: str, name: str, description: str, versions: tuple[str, ...], ref: str) -> CheckSpec:
    """A Streamable HTTP check: its id gets the ``http-`` prefix."""
    return CheckSpec(f"{T}-{id}", name, description, versions, ref)


@dataclass
class HttpSession:
    """A session opened by :meth:`HttpTarget.open` (initialize, then notifications/initialized)."""

    version_asked: str
    reply: Reply
    exchanges: list[dict[str, Any]]
    init_id: int = 0
    session_id: str | None = None
    negotiated: str | None = None
    result: dict[str, Any] | None = None

    def headers(self, *, version: bool = True) -> dict[str, str]:
        out = {"Accept": ACCEPT_BOTH}
        if self.session_id is not None:
            out["Mcp-Session-Id"] = self.session_id
        if version and self.negotiated is not None and self.negotiated >= "2025-06-18":
            out["MCP-Protocol-Version"] = self.negotiated
        return out


@dataclass
class HttpTarget:
    """The endpoint under test and the probes sent to it."""

    prober: Prober
    url: str
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    _ids: int = 0

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    async def open(self, version: str = LATEST) -> HttpSession:
        """initialize (asking for ``version``) and notifications/initialized."""
        rid = self.next_id()
        reply, ex = await self.prober.send(
            "POST",
            self.url,
            headers={"Accept": ACCEPT_BOTH},
            body=rpc("initialize", rid, initialize_params(version)),
            await_id=rid,
        )
        session = HttpSession(version, reply, [ex], init_id=rid, session_id=session_header(reply))
        answer = reply.answer(rid)
        if answer is not None and isinstance(answer.get("result"), dict):
            session.result = answer["result"]
            negotiated = answer["result"].get("protocolVersion")
            session.negotiated = negotiated if isinstance(negotiated, str) else None
            _, ex2 = await self.prober.send(
                "POST", self.url, headers=session.headers(), body=rpc("notifications/initialized")
            )
            session.exchanges.append(ex2)
        return session

    async def request(
        self, session: HttpSession, method: str, params: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[Reply, dict[str, Any], int]:
        rid = self.next_id()
        headers = kw.pop("headers", None) or session.headers()
        reply, ex = await self.prober.send(
            "POST", self.url, headers=headers, body=rpc(method, rid, params), await_id=rid, **kw
        )
        return reply, ex, rid


def session_header(reply: Reply) -> str | None:
    """The session id the server issued, if any."""
    return reply.headers.get("mcp-session-id")


def verdict(ok: bool, otherwise: Status = "FAILURE") -> Status:
    """SUCCESS, or ``otherwise``."""
    return "SUCCESS" if ok else otherwise


def is_4xx(reply: Reply) -> bool:
    """An HTTP client error: how a server refuses what it cannot accept."""
    return reply.status is not None and 400 <= reply.status < 500


def empty_202(reply: Reply) -> bool:
    """202 Accepted with no body: the answer to a POST carrying no request."""
    return reply.status == 202 and not reply.body.strip()
