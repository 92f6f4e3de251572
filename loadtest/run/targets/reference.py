"""Where targets come from: the bundled reference server, a user's command, or a URL.

:func:`start_target` yields an :class:`Endpoint` for one transport: for HTTP transports a URL
(with the server process, when we launched one), for stdio the command each session launches.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.core.names import DEFAULT_PATHS, LOOPBACK, SERVER_TRANSPORT_NAMES
from loadtest.core.process import TargetProcess, free_port
from loadtest.run.targets.supervisor import Supervisor, supervise
from loadtest.scenario import Scenario

#: The standalone reference server script; it imports only `mcp` and the standard library.
REFERENCE_SERVER = Path(__file__).with_name("reference_server.py")


def reference_command(
    transport: str,
    *,
    python: str = sys.executable,
    port: int | None = None,
    json_response: bool = False,
    stateless: bool = False,
    delay_ms: float = 0.0,
    leak_kb_per_session: int = 0,
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line that starts the reference server for ``transport``.

    ``leak_kb_per_session`` applies to the HTTP transports only (a stdio server has one
    session per process); it is left out for stdio.
    """
    argv = [python, str(REFERENCE_SERVER), "--transport", SERVER_TRANSPORT_NAMES[transport]]
    if port is not None:
        argv += ["--host", LOOPBACK, "--port", str(port)]
    if json_response:
        argv.append("--json-response")
    if stateless:
        argv.append("--stateless")
    if delay_ms:
        argv += ["--delay-ms", f"{delay_ms:g}"]
    if leak_kb_per_session and transport != "stdio":
        argv += ["--leak-kb-per-session", str(leak_kb_per_session)]
    return [*argv, *extra]


def target_command(scenario: Scenario, transport: str, python: str, port: int | None) -> list[str] | None:
    """The command that starts ``scenario``'s target for ``transport`` (None for a URL)."""
    target = scenario.target
    if target.reference:
        return reference_command(
            transport,
            python=python,
            port=port,
            json_response=target.json_response,
            stateless=target.stateless,
            delay_ms=target.delay_ms,
            leak_kb_per_session=target.leak_kb_per_session,
        )
    return scenario.command_for(transport, port, python)


@dataclass(frozen=True)
class Endpoint:
    """How the sessions of one transport reach the target."""

    transport: str
    #: stdio: the command each session launches.
    command: list[str] | None = None
    #: sse / http: the URL to connect to.
    url: str | None = None
    #: The server process we launched for HTTP transports (None for a URL or stdio); the
    #: first one, see ``supervisor`` for the current one.
    process: TargetProcess | None = None
    #: What keeps the launched HTTP server (None for a URL or stdio).
    supervisor: Supervisor | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    #: stdio: the file every session's server appends its stderr to (lines tagged with its
    #: pid). One file per transport, not per session: with churn a run opens thousands of
    #: sessions. Bounded, like the HTTP server's (see ``loadtest.core.process.StderrLog``).
    stderr_log: Path | None = None


@asynccontextmanager
async def start_target(
    transport: str,
    *,
    command: Sequence[str] | None,
    url: str | None,
    env: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    ready_timeout: float = 20.0,
    stderr_log: Path | None = None,
    port: int | None = None,
    restart: bool = False,
) -> AsyncIterator[Endpoint]:
    """Launch ``command`` for an HTTP transport and wait until it listens; or use ``url``.

    For stdio nothing is launched here: each session starts its own server process, whose
    stderr goes to ``stderr_log`` too. A launched server that dies is relaunched when
    ``restart`` (see :mod:`loadtest.run.targets.supervisor`).
    """
    env = dict(env or {})
    headers = dict(headers or {})
    if transport == "stdio":
        assert command is not None
        yield Endpoint(transport, command=list(command), env=env, stderr_log=stderr_log)
        return
    if command is None:
        assert url is not None
        yield Endpoint(transport, url=url, headers=headers)
        return
    assert port is not None
    supervisor = Supervisor(
        command, port=port, env=env, ready_timeout=ready_timeout, stderr_log=stderr_log, restart=restart
    )
    async with supervise(supervisor):
        yield Endpoint(
            transport,
            url=url or f"http://{LOOPBACK}:{port}{DEFAULT_PATHS[transport]}",
            process=supervisor.process,
            supervisor=supervisor,
            env=env,
            headers=headers,
        )


__all__ = ["REFERENCE_SERVER", "Endpoint", "free_port", "reference_command", "start_target", "target_command"]
