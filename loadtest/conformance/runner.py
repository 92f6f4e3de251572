"""Running the checks against a target, and diffing two sets of results.

:func:`run_checks` is what ``check`` and ``matrix`` call: it starts the scenario's target per
transport exactly as ``run`` does (the reference server with ``python``'s ``mcp``, a command, or
a URL) and runs that transport's checks. :func:`diff_checks` lists every check whose status or
observed behaviour differs between two runs, for the comparison report.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.conformance.http_checks import run_http_checks
from loadtest.conformance.model import CheckResult
from loadtest.conformance.sse_checks import run_sse_checks
from loadtest.conformance.stdio_checks import run_stdio_checks
from loadtest.scenario import Scenario
from loadtest.targets.reference import free_port, reference_command, start_target


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
    its placeholders filled, or its URL. Raises :class:`~loadtest.errors.TargetError` when the
    target cannot be started or reached.
    """
    results: list[CheckResult] = []
    target = scenario.target
    for transport in transports or scenario.transports:

        def launch_args(transport: str = transport) -> tuple[list[str] | None, dict[str, str], int | None]:
            port = free_port() if transport != "stdio" else None
            if target.reference:
                command: list[str] | None = reference_command(
                    transport,
                    python=python,
                    port=port,
                    json_response=target.json_response,
                    stateless=target.stateless,
                    delay_ms=target.delay_ms,
                )
            else:
                command = scenario.command_for(transport, port, python)
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


@dataclass(frozen=True)
class CheckDiff:
    """One check that differs between run A and run B (None: absent from that run)."""

    id: str
    name: str
    status_a: str | None
    status_b: str | None
    observed_a: str | None
    observed_b: str | None

    @property
    def status_changed(self) -> bool:
        return self.status_a != self.status_b

    @property
    def observed_changed(self) -> bool:
        return self.observed_a != self.observed_b

    def __str__(self) -> str:
        """``http-delete-session: DELETE -> 405 => DELETE -> 200 [SUCCESS]``."""
        observed = (
            f"{self.observed_a or '(absent)'} => {self.observed_b or '(absent)'}"
            if self.observed_changed
            else (self.observed_a or "")
        )
        status = f"{self.status_a} -> {self.status_b}" if self.status_changed else str(self.status_a)
        return f"{self.id}: {observed} [{status}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": [self.status_a, self.status_b],
            "observed": [self.observed_a, self.observed_b],
            "line": str(self),
        }


def _as_results(checks: Sequence[CheckResult | Mapping[str, Any]]) -> dict[str, CheckResult]:
    out: dict[str, CheckResult] = {}
    for item in checks:
        result = item if isinstance(item, CheckResult) else CheckResult.from_dict(item)
        out[result.id] = result
    return out


def diff_checks(
    a: Sequence[CheckResult | Mapping[str, Any]], b: Sequence[CheckResult | Mapping[str, Any]]
) -> list[CheckDiff]:
    """Every check whose status or observed behaviour differs between ``a`` and ``b``.

    Either side may be :class:`CheckResult` objects or run.json ``checks`` entries. A check
    present on one side only is a difference too. Order: A's checks, then B's new ones.
    """
    left, right = _as_results(a), _as_results(b)
    diffs = []
    for check_id in [*left, *(k for k in right if k not in left)]:
        x, y = left.get(check_id), right.get(check_id)
        sa, sb = (x.status if x else None), (y.status if y else None)
        oa, ob = (x.observed if x else None), (y.observed if y else None)
        if sa != sb or oa != ob:
            diffs.append(CheckDiff(check_id, (x or y).name if (x or y) else check_id, sa, sb, oa, ob))  # type: ignore[union-attr]
    return diffs
