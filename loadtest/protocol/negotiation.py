"""Choosing a session's protocol version the way a dual-era client does.

``auto`` (the default) first asks ``server/discover`` in the newest version this client
speaks. A server that answers is modern: the session continues statelessly on the newest
version both sides list. A server that answers with anything that is not a modern error (an
unknown method, invalid params, an HTTP 400 without a modern error body) or not at all within
the probe deadline predates 2026-07-28: the session falls back to the ``initialize``
handshake, which picks a legacy version (2026-07-28 ``basic/versioning``, backward
compatibility). A pinned legacy version goes straight to ``initialize``; a pinned modern
version asks ``server/discover`` for the server's identity and fails plainly if the server
does not speak it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from loadtest.core.errors import TargetError
from loadtest.protocol.session import Outcome, ServerHello, Session
from loadtest.protocol.transports.base import LATEST_PROTOCOL_VERSION
from loadtest.protocol.versions import (
    MODERN_VERSIONS,
    SERVER_INFO_KEY,
    ChosenBy,
    envelope,
    is_modern,
    is_modern_error,
    newest_common,
)

#: ``protocol`` for a session to a server an earlier ``auto`` session found to predate
#: 2026-07-28: the handshake straight away, recorded as chosen by ``initialize``. The spec asks
#: clients to keep the era per server (stdio: per command; HTTP: per origin).
LEGACY = "legacy"


class ProbeUnanswered(TargetError):
    """A stdio server ignored ``server/discover``. Some 1.x servers (``mcp`` 1.8) then die at
    the ``initialize`` that follows, so the process is given up: reconnect with :data:`LEGACY`."""


async def negotiate(
    session: Session,
    protocol: str = "auto",
    *,
    timeout: float = 20.0,
    probe_timeout: float | None = None,
) -> ServerHello:
    """Settle ``session`` on a protocol version: ``auto``, a version, or :data:`LEGACY`.

    Returns (and sets as ``session.hello``) what the server said, with ``chosen_by`` naming
    how the version was chosen. ``probe_timeout`` (default ``timeout``) bounds the wait for
    ``server/discover``; on stdio it includes the server's start-up, so keep it generous.
    Raises :class:`TargetError` (one line) when the server cannot be talked to at all, or
    does not speak a pinned modern version; :class:`ProbeUnanswered` (see there).
    """
    if _legacy_transport(session) and protocol in ("auto", *MODERN_VERSIONS):
        if protocol != "auto":
            raise TargetError(f"{protocol} is not spoken over the legacy HTTP+SSE transport")
        protocol = LEGACY
    if protocol != "auto" and not is_modern(protocol):
        legacy = protocol == LEGACY
        hello = await session.initialize(LATEST_PROTOCOL_VERSION if legacy else protocol, timeout)
        session.hello = dataclasses.replace(hello, chosen_by="initialize" if legacy else "pinned")
        return session.hello
    wanted = MODERN_VERSIONS[0] if protocol == "auto" else protocol
    session.envelope = envelope(wanted)
    probe = await session.request(
        "server/discover", timeout=timeout if probe_timeout is None or protocol != "auto" else probe_timeout
    )
    # A result of the wrong shape (say, without resultType) is still read: its flaw is the
    # server's, and every later answer is checked and counted by the run.
    result = probe.result if isinstance(probe.result, dict) else None
    offered = result.get("supportedVersions") if result is not None else None
    chosen = newest_common(offered)
    if protocol != "auto":
        if result is None:
            raise TargetError(_refused(session, probe, wanted))
        if isinstance(offered, list) and wanted not in offered:
            raise TargetError(f"the server does not speak {wanted}; server/discover lists {offered}")
        return _stateless(session, wanted, result, probe, "pinned")
    if chosen is not None and is_modern(chosen):
        assert result is not None
        return _stateless(session, chosen, result, probe, "discover")
    if result is None and probe.error is not None and is_modern_error(probe.error.kind):
        # A modern server that refuses our only modern version: initialize would not help.
        raise TargetError(_refused(session, probe, wanted))
    session.envelope = None
    if probe.error is not None and probe.error.kind == "lost" and _stdio(session):
        raise ProbeUnanswered(
            f"the server did not answer server/discover: it predates 2026-07-28 "
            f"(reconnect with protocol {LEGACY!r}, or pin a version such as {LATEST_PROTOCOL_VERSION})"
        )
    hello = await session.initialize(chosen or LATEST_PROTOCOL_VERSION, timeout)
    session.hello = dataclasses.replace(
        hello,
        chosen_by="discover" if chosen is not None else "initialize",
        supported_versions=tuple(offered) if isinstance(offered, list) else (),
    )
    return session.hello


def _legacy_transport(session: Session) -> bool:
    # Legacy HTTP+SSE (its channel names the POST endpoint) stays in the handshake era: the
    # 2026-07-28 revision defines no stateless exchange over it.
    return session.channel.info.endpoint is not None


def _stdio(session: Session) -> bool:
    # A stdio channel names its server's process.
    return session.channel.info.process is not None


def _stateless(
    session: Session, version: str, result: dict[str, Any], probe: Outcome, chosen_by: ChosenBy
) -> ServerHello:
    session.envelope = envelope(version)
    meta = result.get("_meta")
    info = meta.get(SERVER_INFO_KEY) if isinstance(meta, dict) else None
    capabilities = result.get("capabilities")
    offered = result.get("supportedVersions")
    session.hello = ServerHello(
        version,
        info if isinstance(info, dict) else {},
        capabilities if isinstance(capabilities, dict) else {},
        probe.latency_ns,
        chosen_by,
        tuple(v for v in offered if isinstance(v, str)) if isinstance(offered, list) else (),
    )
    return session.hello


def _refused(session: Session, probe: Outcome, wanted: str) -> str:
    url = session.channel.info.url
    where = f" ({url})" if url is not None else ""
    if probe.error is None:
        return f"server/discover{where} answered without a result object: {str(probe.result)[:200]}"
    if url is not None and probe.error.kind == "connection":
        return f"cannot reach {url}: {probe.error.detail}"
    return f"the server{where} does not speak {wanted}: server/discover: {probe.error.kind}: {probe.error.detail}"
