"""Session sources: where the models get their sessions from, one per client kind.

Both kinds yield a :class:`~loadtest.run.pipeline.ClientSession`: the built-in wire-level
session (:class:`BuiltinSessions`) or an `mcp` SDK's own session in a client worker
(:class:`SdkSessions`). Each records its set-up latency, the negotiated protocol version and,
on stdio, the server process it started; the models never need to know which kind they have.

The built-in client also settles the protocol era (README, "Protocol versions"): the first
session negotiates (``workload.protocol``, ``auto`` by default), later sessions keep its era,
and ops the chosen version removed are skipped (not sent, left out of the gates).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import anyio

from loadtest.core.errors import TargetError
from loadtest.measure.metrics import Recorder
from loadtest.protocol.negotiation import LEGACY, ProbeUnanswered, negotiate
from loadtest.protocol.session import Anomaly, ServerHello, Session, open_session
from loadtest.protocol.transports import connect
from loadtest.protocol.versions import REMOVED_IN_MODERN, is_modern
from loadtest.run.clients.sdk_pool import SdkPool
from loadtest.run.control import REOPEN_BACKOFF_S, Progress, TransportReport
from loadtest.run.guard import TargetGuard
from loadtest.run.pipeline import ClientSession
from loadtest.run.targets.reference import Endpoint
from loadtest.run.timing import sleep_unless
from loadtest.scenario import Op, Workload


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
    """The built-in wire-level client's sessions, in the protocol era the first one settled."""

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
        ops: Sequence[Op],
        progress: Progress,
        reweigh: Callable[[list[float]], None],
    ) -> None:
        super().__init__(transport, endpoint, workload, recorder, report, guard)
        self.http = http
        self.on_anomaly = on_anomaly
        self.ops = ops
        self.progress = progress
        #: Called with the ops' new weights when the protocol removed some of them.
        self.reweigh = reweigh
        #: The protocol the next session asks for: ``auto`` until the first session found the
        #: server's era, then that (the spec asks clients to keep the era per server). A mix
        #: of only ops 2026-07-28 removed (a ping-only run) can run in the handshake era only.
        removed_all = all(op.method in REMOVED_IN_MODERN for op in ops)
        wanted = workload.protocol
        self.protocol = LEGACY if removed_all and wanted == "auto" else wanted
        if transport == "sse" and is_modern(wanted):
            progress.note(f"sse: legacy HTTP+SSE has no {wanted}; it speaks the handshake era")
            self.protocol = LEGACY

    @asynccontextmanager
    async def open(self) -> AsyncIterator[ClientSession]:
        try:
            async with self._wire_session() as session:
                yield session
        except ProbeUnanswered as exc:
            # A stdio server that ignores server/discover (mcp 1.8) is legacy: a new process.
            self.protocol = LEGACY
            self.progress.note(f"{self.transport}: {exc}; speaking the handshake era")
            async with self._wire_session() as session:
                yield session

    def _settle_protocol(self, hello: ServerHello) -> None:
        """Record the first session's version, keep its era, skip ops the version removed."""
        self.recorder.set_protocol_version(self.transport, hello.protocol_version, hello.chosen_by)
        self.report.protocol_chosen_by = hello.chosen_by
        self.protocol = LEGACY if hello.chosen_by == "initialize" else hello.protocol_version
        ops = self.ops
        removed = [i for i, op in enumerate(ops) if op.method in REMOVED_IN_MODERN]
        if is_modern(hello.protocol_version) and removed and len(removed) < len(ops):
            self.reweigh([0.0 if i in removed else op.weight for i, op in enumerate(ops)])
            why = f"removed in {hello.protocol_version}"
            for i in removed:
                self.recorder.skip_op(self.transport, ops[i].name, why)
            names = ", ".join(ops[i].name for i in removed)
            self.progress.note(f"{self.transport}: skipped {names}: {why}")

    @asynccontextmanager
    async def _wire_session(self) -> AsyncIterator[Session]:
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
                    stderr_log=endpoint.stderr_log,
                    get_stream=workload.get_stream,
                    delete_on_close=workload.close_sessions == "delete",
                ) as channel,
                open_session(
                    channel, request_timeout=workload.request_timeout, on_anomaly=self.on_anomaly
                ) as session,
            ):
                timeout = workload.connect_timeout
                hello = await negotiate(
                    session, self.protocol, timeout=timeout, probe_timeout=min(timeout, 10.0)
                )
                self.recorder.record_session(self.transport, time.perf_counter_ns() - started, failed=False)
                if self.report.protocol_version is None:
                    self.report.protocol_version = hello.protocol_version
                    self.report.server_info = hello.server_info
                    self._settle_protocol(hello)
                self.guard.session_opened(session, channel.info.process)
                normally = False
                try:
                    yield session
                    normally = True
                finally:
                    self.guard.session_closing(session, normally=normally)
        except TargetError as exc:
            if not isinstance(exc, ProbeUnanswered):  # no failure: the session is opened anew
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
