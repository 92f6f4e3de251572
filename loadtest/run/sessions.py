"""Session sources: where the models get their sessions from, one per client kind.

Both kinds yield a :class:`~loadtest.run.pipeline.ClientSession`: the built-in wire-level
session (:class:`BuiltinSessions`) or an `mcp` SDK's own session in a client worker
(:class:`SdkSessions`). Each records its set-up latency, the negotiated protocol version and,
on stdio, the server process it started; the models never need to know which kind they have.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import anyio

from loadtest.core.errors import TargetError
from loadtest.measure.metrics import Recorder
from loadtest.protocol.session import Anomaly, open_session
from loadtest.protocol.transports import connect
from loadtest.run.clients.sdk_pool import SdkPool
from loadtest.run.control import REOPEN_BACKOFF_S, TransportReport
from loadtest.run.guard import TargetGuard
from loadtest.run.pipeline import ClientSession
from loadtest.run.targets.reference import Endpoint
from loadtest.run.timing import sleep_unless
from loadtest.scenario.model import Workload


class SessionSource:
    """Opens sessions of one client kind for one transport (see the module docstring)."""

    #: Pause before replacing a session that ended under its user (0: at once).
    reopen_backoff_s = 0.0

    def __init__(
        self,
        transport: str,
        endpoint: Endpoint,
        workload: Workload,
        recorder: Recorder,
        report: TransportReport,
        guard: TargetGuard,
    ) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self.workload = workload
        self.recorder = recorder
        self.report = report
        self.guard = guard

    def open(self) -> AbstractAsyncContextManager[ClientSession]:
        """Connect, initialise, record the set-up latency; the ready session."""
        raise NotImplementedError

    def stale(self, session: ClientSession) -> bool:
        """Whether ``session`` should be replaced: ended, or of a relaunched target's past."""
        return session.ended is not None or self.guard.outdated(session)

    def _hello(self, protocol_version: str, server_info: dict[str, Any]) -> None:
        if self.report.protocol_version is None:
            self.report.protocol_version = protocol_version
            self.report.server_info = server_info
            self.recorder.set_protocol_version(self.transport, protocol_version)

    @asynccontextmanager
    async def reopen(
        self, first: bool, on_error: Callable[[TargetError], None], stopping: anyio.Event
    ) -> AsyncIterator[ClientSession | None]:
        """A model's next session; ``None`` if it could not be opened (counted, retried).

        The very first session of a transport is the readiness check: its failure ends the run.
        """
        if first:
            async with self.open() as session:
                yield session
            return
        try:
            async with self.open() as session:
                yield session
                return
        except TargetError as exc:
            on_error(exc)
        await sleep_unless(stopping, REOPEN_BACKOFF_S)
        yield None


class BuiltinSessions(SessionSource):
    """The built-in wire-level client's sessions."""

    def __init__(
        self,
        transport: str,
        endpoint: Endpoint,
        workload: Workload,
        recorder: Recorder,
        report: TransportReport,
        guard: TargetGuard,
        *,
        http: aiohttp.ClientSession | None,
        on_anomaly: Callable[[Anomaly], None],
    ) -> None:
        super().__init__(transport, endpoint, workload, recorder, report, guard)
        self.http = http
        self.on_anomaly = on_anomaly

    @asynccontextmanager
    async def open(self) -> AsyncIterator[ClientSession]:
        endpoint = self.endpoint
        workload = self.workload
        started = time.perf_counter_ns()
        try:
            async with (
                connect(
                    self.transport,  # type: ignore[arg-type]
                    command=endpoint.command,
                    url=endpoint.url,
                    http=self.http,
                    headers=endpoint.headers,
                    env=endpoint.env,
                    get_stream=workload.get_stream,
                    delete_on_close=workload.close_sessions == "delete",
                ) as channel,
                open_session(
                    channel, request_timeout=workload.request_timeout, on_anomaly=self.on_anomaly
                ) as session,
            ):
                hello = await session.initialize(timeout=workload.connect_timeout)
                self.recorder.record_session(self.transport, time.perf_counter_ns() - started, failed=False)
                self._hello(hello.protocol_version, hello.server_info)
                self.guard.session_opened(session, channel.info.get("target"))
                normally = False
                try:
                    yield session
                    normally = True
                finally:
                    self.guard.session_closing(session, normally=normally)
        except TargetError:
            self.recorder.record_session(self.transport, None, failed=True)
            raise


class SdkSessions(SessionSource):
    """An `mcp` SDK client's sessions, in client worker processes; set-up latency as the
    SDK's ``initialize`` took."""

    # The SDK client's session failed (its transport gave up): open a new one, as an agent
    # would, instead of failing every call at once, but not in a tight loop.
    reopen_backoff_s = REOPEN_BACKOFF_S

    def __init__(
        self,
        transport: str,
        endpoint: Endpoint,
        workload: Workload,
        recorder: Recorder,
        report: TransportReport,
        guard: TargetGuard,
        *,
        pool: SdkPool,
    ) -> None:
        super().__init__(transport, endpoint, workload, recorder, report, guard)
        self.pool = pool

    @asynccontextmanager
    async def open(self) -> AsyncIterator[ClientSession]:
        try:
            async with self.pool.session(
                self.endpoint,
                connect_timeout=self.workload.connect_timeout,
                request_timeout=self.workload.request_timeout,
            ) as (session, hello):
                self.recorder.record_session(self.transport, hello.latency_ns, failed=False)
                self._hello(hello.protocol_version, hello.server_info)
                if self.transport == "stdio":
                    # Every stdio session is a server process the SDK started; the health watch
                    # samples one (it ignores the offer while it watches a live one).
                    pids = self.pool.server_pids()
                    if pids:
                        self.guard.health.offer(pids[0])
                yield session
        except TargetError:
            self.recorder.record_session(self.transport, None, failed=True)
            raise


__all__ = ["BuiltinSessions", "SdkSessions", "SessionSource"]
