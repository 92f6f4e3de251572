"""Streamable HTTP checks (spec 2025-03-26 and later, ``basic/transports#streamable-http``).

Every check talks raw HTTP through a :class:`~loadtest.conformance.probe.Prober` and records
what it sent and what came back. Where the spec allows several answers (DELETE -> 200 or 405,
GET -> SSE or 405, JSON or SSE responses) the status says whether the answer is allowed and
``observed`` says which one it was, so that two SDK versions can be diffed.

The checks live by spec area (``http_sessions``, ``http_streams``, ``http_versions``,
``http_security``, ``http_errors``), each registering its probe steps with
:func:`~loadtest.conformance.http_registry.http_step`; this module runs them in their declared
order under :func:`~loadtest.conformance.survival.run_surviving`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

# The area modules are imported for their registrations (the decorator fills the registry).
from loadtest.conformance import http_errors, http_security, http_streams, http_versions  # noqa: F401
from loadtest.conformance.http_client import REF_STREAMABLE, HttpSession, HttpTarget, T, spec
from loadtest.conformance.http_registry import HttpProbe, registered_steps
from loadtest.conformance.http_sessions import (
    delete_checks,
    initialize_check,
    notification_check,
    resolve_endpoint,
    session_id_check,
)
from loadtest.conformance.model import STREAMABLE, CheckResult
from loadtest.conformance.probe import Prober
from loadtest.conformance.survival import run_surviving
from loadtest.protocol.transports.http import new_client_session

__all__ = ["Restart", "run_http_checks"]

SURVIVES = spec(
    "server-survives",
    "ServerSurvivesProbes",
    "The server keeps answering after every probe (none of them breaks it)",
    STREAMABLE,
    REF_STREAMABLE,
)
#: Restarts a launched target and returns its (new) URL; None for a server we did not start.
Restart = Callable[[], Awaitable[str]]


async def run_http_checks(
    url: str, headers: Mapping[str, str] | None = None, *, restart: Restart | None = None
) -> list[CheckResult]:
    """Every Streamable HTTP check against the endpoint at ``url``.

    After each step a ping on the first session tells whether the server still answers. When a
    probe has broken it (``mcp`` 1.8 dies on an unknown method), ``http-server-survives``
    names the probe; a launched target is restarted (``restart``) so that the remaining checks
    still say something, and a server we did not start leaves them SKIPPED.
    """
    async with new_client_session() as client:
        prober = Prober(client, dict(headers or {}))
        _, endpoint, target, session = await resolve_endpoint(prober, url)
        results = [
            endpoint,
            initialize_check(session),
            session_id_check(session),
            notification_check(session),
        ]

        async def alive(probe: HttpProbe) -> bool:
            # No session (initialize failed): nothing to ask on, so nothing to conclude.
            return probe.session.result is None or await _alive(probe.target, probe.session)

        reopen: Callable[[], Awaitable[HttpProbe]] | None = None
        if restart is not None:
            restart_target = restart

            async def restarted() -> HttpProbe:
                _, _, target, session = await resolve_endpoint(prober, await restart_target())
                return HttpProbe(target, session)

            reopen = restarted

        survival = await run_surviving(
            registered_steps(), HttpProbe(target, session), transport=T, alive=alive, reopen=reopen
        )
        results.extend(survival.results)
        target, session = survival.context.target, survival.context.session
        results.extend(await delete_checks(target, session))
        results.append(survival.result(SURVIVES, T))
        return results


async def _alive(target: HttpTarget, session: HttpSession) -> bool:
    reply, _, rid = await target.request(session, "ping", timeout=3.0)
    return reply.answer(rid) is not None
