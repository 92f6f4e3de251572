"""Running the conformance checks against a launched target.

:func:`run_checks` is what ``check`` and ``matrix`` call: it starts the scenario's target per
transport exactly as ``run`` does (the reference server with ``python``'s ``mcp``, a command, or
a URL) and runs that transport's checks.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loadtest.conformance.http_checks import run_http_checks
from loadtest.conformance.model import CheckResult
from loadtest.conformance.sse_checks import run_sse_checks
from loadtest.conformance.stdio_checks import run_stdio_checks
from loadtest.run.targets.reference import free_port, start_target, target_command
from loadtest.scenario import Scenario


async def check_target(
    transport: str,
    *,
    command: Sequence[str] | None = None,
    url: str | None = None,
    env: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    port: int | None = None,
    ready_timeout: float = 20.0,
    stderr_log: Path | None = None,
    relaunch: Any = None,
) -> list[CheckResult]:
    """The checks of one transport against ``command`` (launched here) or a running ``url``.

    For sse/http with a command, ``port`` is the port the command listens on; ``relaunch``
    (``() -> (command, env, port)``) gives a fresh command line when the server must be
    restarted because a probe broke it.
    """
    if transport == "stdio":
        if command is None:
            raise ValueError("stdio checks need a command")
        return await run_stdio_checks(command, env, stderr_log=stderr_log)
    if transport == "sse":
        async with start_target(
            "sse",
            command=command,
            url=url,
            env=env,
            headers=headers,
            port=port,
            ready_timeout=ready_timeout,
            stderr_log=stderr_log,
        ) as endpoint:
            assert endpoint.url is not None
            return await run_sse_checks(endpoint.url, headers)
    async with contextlib.AsyncExitStack() as stack:
        endpoint = await stack.enter_async_context(
            start_target(
                "http",
                command=command,
                url=url,
                env=env,
                headers=headers,
                port=port,
                ready_timeout=ready_timeout,
                stderr_log=stderr_log,
            )
        )
        assert endpoint.url is not None
        restart = None
        if command is not None and relaunch is not None:
            holder = {"stack": stack}

            async def restart_target() -> str:
                # The broken server is stopped before its successor starts (ports, CPU).
                await holder["stack"].aclose()
                fresh = contextlib.AsyncExitStack()
                holder["stack"] = fresh
                stack.push_async_callback(fresh.aclose)
                new_command, new_env, new_port = relaunch()
                again = await fresh.enter_async_context(
                    start_target(
                        "http",
                        command=new_command,
                        url=None,
                        env=new_env,
                        headers=headers,
                        port=new_port,
                        ready_timeout=ready_timeout,
                        stderr_log=stderr_log,
                    )
                )
                assert again.url is not None
                return again.url

            restart = restart_target
        return await run_http_checks(endpoint.url, headers, restart=restart)
    raise AssertionError("unreachable")  # pragma: no cover


async def run_checks(
    scenario: Scenario,
    *,
    python: str = sys.executable,
    transports: Sequence[str] | None = None,
    log_dir: Path | None = None,
) -> list[CheckResult]:
    """Run the conformance checks of every transport of ``scenario`` (or ``transports``).

    The target is started per transport as ``run`` starts it: the bundled reference server on
    ``python`` (an SDK environment's interpreter, for ``matrix``), the scenario's command with
    its placeholders filled, or its URL. Raises :class:`~loadtest.core.errors.TargetError` when the
    target cannot be started or reached.
    """
    results: list[CheckResult] = []
    target = scenario.target
    for transport in transports or scenario.transports:

        def launch_args(transport: str = transport) -> tuple[list[str] | None, dict[str, str], int | None]:
            port = free_port() if transport != "stdio" else None
            command = target_command(scenario, transport, python, port)
            return command, scenario.env_for(transport, port, python), port

        command, env, port = launch_args()
        url = None if target.reference else scenario.url_for(transport)
        results += await check_target(
            transport,
            command=command,
            url=url if command is None else None,
            env=env,
            headers=target.headers,
            port=port,
            ready_timeout=target.ready_timeout,
            stderr_log=log_dir / f"server-check-{transport}.log" if log_dir is not None else None,
            relaunch=launch_args if command is not None else None,
        )
    return results
