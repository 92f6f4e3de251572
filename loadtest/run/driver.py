"""The load generator: runs a scenario's workload on each transport and feeds the recorder.

Transports run one after another, each against its own fresh target, so that they never
compete for the machine's two cores. Within a transport:

* closed model: ``sessions`` workers, each sending its next call when the last returned
  (plus think time);
* open model: one scheduler releases calls at their intended times (``workload.arrivals``),
  each on the next session in turn, never waiting for earlier calls; latency is measured from
  the intended time (corrected for coordinated omission) and from the actual send.

Calls whose intended time falls in the warm-up are made but not recorded.

The target's health is watched throughout (:mod:`loadtest.run.health_watch`). A launched target that
dies or hangs is recorded with its time; with ``target.restart`` it is launched again (for
stdio: the next session's server) and every session of the old one is replaced, otherwise the
transport's run ends there, its results kept.
"""

from __future__ import annotations

import itertools
import math
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from anyio.abc import TaskStatus
from hdrh.histogram import HdrHistogram

from loadtest.core.aio import LightTaskGroup, light_task_group, task_group
from loadtest.core.errors import TargetError
from loadtest.core.names import LAG_RANGE
from loadtest.core.process import TargetProcess, own_cpu_s, signal_group
from loadtest.core.units import format_duration
from loadtest.measure.metrics import OpStats, Recorder
from loadtest.protocol.negotiation import LEGACY, ProbeUnanswered, negotiate
from loadtest.protocol.session import Anomaly, ServerHello, Session, open_session
from loadtest.protocol.transports import connect
from loadtest.protocol.transports.http import new_client_session
from loadtest.protocol.versions import REMOVED_IN_MODERN, is_modern
from loadtest.results.health_log import HealthLog, health_log_path
from loadtest.run.check import Checker
from loadtest.run.clients.config import BUILTIN, ClientConfig
from loadtest.run.clients.sdk_pool import SdkPool, SdkSession, open_sdk_pool
from loadtest.run.health_watch import HealthWatch
from loadtest.run.targets.reference import Endpoint, free_port, start_target, target_command
from loadtest.run.targets.supervisor import TargetEvent
from loadtest.run.workload import OpPicker, arrivals, rate_stages
from loadtest.scenario import Scenario

#: How long in-flight calls may finish after an interrupt before they are abandoned.
INTERRUPT_GRACE_S = 2.0
#: Open model: gaps up to this long are slept through without watching for a stop.
_SHORT_SLEEP_S = 0.05
#: Pause before reopening a session that failed mid-run, so a dead server is not hammered.
REOPEN_BACKOFF_S = 0.2
_SEED_MASK = 0xFFFFFFFF
#: Above this share of one core, or this event-loop lag, the generator may be the bottleneck.
GENERATOR_BUSY_LIMIT = 0.8
GENERATOR_LAG_LIMIT_US = 5_000

#: A session of either client: the built-in one, or an `mcp` SDK's in a worker process.
AnySession = Session | SdkSession


class Progress:
    """What the driver tells whoever displays progress (see ``loadtest.present.progress``)."""

    def transport_started(
        self, transport: str, planned_s: float | None, planned_calls: int | None
    ) -> None: ...

    def tick(self, transport: str, elapsed_s: float, warming: bool, recorder: Recorder) -> None: ...

    def transport_done(self, transport: str) -> None: ...

    def note(self, text: str) -> None: ...

    def status(self, transport: str, figures: dict[str, Any]) -> None:
        """Soak mode: a periodic status (see ``_TransportRun._status`` for the figures)."""


@dataclass
class RunControl:
    """Shared between the driver and whoever may stop it (signal handler, tests)."""

    interrupted: anyio.Event = field(default_factory=anyio.Event)
    #: Set when the run ended early because of an interrupt.
    was_interrupted: bool = False


@dataclass
class WorkerShare:
    """This process is generator worker ``index`` of ``count`` (see :mod:`loadtest.run.workers`).

    The parent launched the target and split the workload; the worker drives its share
    against ``endpoint`` and reports every interval through ``interval``.
    """

    index: int
    count: int
    #: Nonce prefix, unique to this worker and the same width in every worker.
    token: str
    endpoint: Endpoint
    #: Waits for the parent's common start time (a ``perf_counter_ns`` value) and returns it,
    #: so that every worker's warm-up, intervals and end fall at the same instants.
    start: Callable[[], Awaitable[int]]
    #: Called at every interval boundary before the recorder folds the interval into the
    #: totals: ``(now_ns, warming, final)``.
    interval: Callable[[int, bool, bool], None]


@dataclass
class TransportReport:
    """What a transport's run learned besides the recorder's numbers."""

    protocol_version: str | None = None
    #: How the version was chosen: discover, initialize or pinned.
    protocol_chosen_by: str | None = None
    server_info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


async def run_scenario(
    scenario: Scenario,
    recorder: Recorder,
    *,
    python: str = sys.executable,
    log_dir: Path | None = None,
    progress: Progress | None = None,
    control: RunControl | None = None,
    client: ClientConfig = BUILTIN,
    workers: int = 1,
) -> dict[str, TransportReport]:
    """Run every transport of ``scenario``; stop early (keeping results) when interrupted.

    ``client`` makes the calls: the built-in wire-level client, or an ``mcp`` SDK's own client
    in worker processes (``loadtest.run.clients``); either way every answer is checked here.
    ``workers`` > 1 splits each transport's workload over that many generator processes
    (:mod:`loadtest.run.workers`, built-in client only), whose figures are merged into ``recorder``.

    Raises :class:`TargetError` when a target cannot be started or reached; the reports of the
    transports that ran before are kept in ``recorder``.
    """
    progress = progress or Progress()
    control = control or RunControl()
    reports: dict[str, TransportReport] = {}
    for transport in scenario.transports:
        if control.interrupted.is_set():
            break
        report = reports[transport] = TransportReport()
        if workers > 1:
            from loadtest.run.workers import run_transport_in_workers

            await run_transport_in_workers(
                transport, scenario, recorder, report, progress, control, python, log_dir, workers
            )
            continue
        runner = _TransportRun(
            transport, scenario, recorder, report, progress, control, python, log_dir, client
        )
        await runner.run()
    return reports


async def run_share(
    scenario: Scenario,
    transport: str,
    recorder: Recorder,
    report: TransportReport,
    control: RunControl,
    share: WorkerShare,
) -> None:
    """A generator worker's part of one transport: ``scenario`` already holds its share."""
    runner = _TransportRun(
        transport, scenario, recorder, report, Progress(), control, sys.executable, None, share=share
    )
    await runner.run()


@asynccontextmanager
async def open_target(
    transport: str, scenario: Scenario, python: str, log_dir: Path | None
) -> AsyncIterator[Endpoint]:
    """Start (or find) ``scenario``'s target for ``transport``; stop it on leaving."""
    target = scenario.target
    port = free_port() if transport != "stdio" else None
    stderr_log = log_dir / f"server-{transport}.log" if log_dir is not None else None
    async with start_target(
        transport,
        command=target_command(scenario, transport, python, port),
        url=None if target.reference else scenario.url_for(transport),
        env=scenario.env_for(transport, port, python),
        headers=target.headers,
        ready_timeout=target.ready_timeout,
        stderr_log=stderr_log,
        port=port,
        restart=target.restart,
    ) as endpoint:
        yield endpoint


class _TransportRun:
    def __init__(
        self,
        transport: str,
        scenario: Scenario,
        recorder: Recorder,
        report: TransportReport,
        progress: Progress,
        control: RunControl,
        python: str,
        log_dir: Path | None,
        client: ClientConfig = BUILTIN,
        share: WorkerShare | None = None,
    ) -> None:
        self.transport = transport
        self.client = client
        self.share = share
        self.pool: SdkPool | None = None
        #: (wall clock, our CPU, the SDK workers' cost) when measurement began, for the
        #: client's figures.
        self._cost_start: tuple[float, float, Any] | None = None
        self.scenario = scenario
        self.workload = scenario.workload
        self.recorder = recorder
        self.report = report
        self.progress = progress
        self.control = control
        self.python = python
        self.log_dir = log_dir
        ops = scenario.ops
        self.ops = ops
        self.stats: list[OpStats] = [recorder.op(transport, op.name) for op in ops]
        self.checkers = [Checker(op) for op in ops]
        # Workers draw different op sequences; together they keep the weights.
        self.picker = OpPicker([op.weight for op in ops], seed=share.index if share else 0)
        #: The protocol the next session asks for: ``auto`` until the first session found the
        #: server's era, then that (the spec asks clients to keep the era per server). A mix
        #: of only ops 2026-07-28 removed (a ping-only run) can run in the handshake era only.
        removed_all = all(op.method in REMOVED_IN_MODERN for op in ops)
        wanted = self.workload.protocol
        self.protocol = LEGACY if removed_all and wanted == "auto" else wanted
        if transport == "sse" and is_modern(wanted):
            progress.note(f"sse: legacy HTTP+SSE has no {wanted}; it speaks the handshake era")
            self.protocol = LEGACY
        self.token = share.token if share else secrets.token_hex(3)
        self.counter = itertools.count(1)
        self.seed_base = secrets.randbits(32)
        self.stopping = anyio.Event()
        self.in_flight = 0
        #: Open model: calls dispatched to a session but still waiting for room on it.
        self.queued = 0
        #: The most calls on the wire at once (closed model: at most ``sessions``).
        self.in_flight_max = 0
        self.drained = anyio.Event()
        self.measured_calls = 0
        self.request_limit = self.workload.requests or 0
        warmup = self.workload.warmup
        self.t0_ns = 0  # set when the first session is up
        self.warmup_ns = int(warmup * 1e9)
        self.planned_s = self._planned_duration()
        self.http: aiohttp.ClientSession | None = None
        self.endpoint: Endpoint | None = None
        self.lag = HdrHistogram(*LAG_RANGE)
        settings = scenario.health
        self.health = HealthWatch(
            transport,
            HealthLog(health_log_path(log_dir, transport) if log_dir is not None else None),
            sample_every=settings.sample_every,
            warmup_s=settings.warmup_for(self.workload),
            hang_after_s=settings.hang_after_for(self.workload),
            per_session=transport != "stdio",
            sessions=lambda: self.recorder.live_sessions(transport),
            counters=self._counters,
            servers=self._session_servers,
        )
        #: Bumped when the target is relaunched: sessions of an older generation are replaced.
        self.generation = 0
        #: Open sessions: their generation and, on stdio, their own server process.
        self.live: dict[Session, tuple[int, TargetProcess | None]] = {}
        #: stdio sessions whose server we killed (it hung): their end is no crash.
        self.killed: set[Session] = set()
        #: stdio: crashes whose relaunch (the next session) is still to be counted.
        self.pending_restarts = 0
        #: The load is over and the server idles (``health.idle``).
        self.idling = False
        #: Open model: sessions that may have room for another call (see _schedule).
        self.room: deque[_Slot] = deque()

    # -- plan -------------------------------------------------------------------------------

    def _planned_duration(self) -> float | None:
        workload = self.workload
        if workload.stages:
            return sum(stage.duration for stage in workload.stages)
        return workload.duration or None

    @property
    def measure_start_ns(self) -> int:
        return self.t0_ns + self.warmup_ns

    def _active_sessions(self, now_ns: int) -> int:
        """Closed model with stages: how many sessions should be sending now."""
        stages = self.workload.stages
        if not stages:
            return self.workload.sessions
        t = max(0.0, (now_ns - self.measure_start_ns) / 1e9)
        for stage in stages:
            if t < stage.duration:
                return self._stage_sessions(stage)
            t -= stage.duration
        return self._stage_sessions(stages[-1])

    def _stage_sessions(self, stage: Any) -> int:
        # A stage of 0 sessions is idle (and a worker's share of a small stage may be 0).
        return int(stage.sessions) if stage.sessions is not None else self.workload.sessions

    # -- the run ----------------------------------------------------------------------------

    def _target(self) -> AbstractAsyncContextManager[Endpoint]:
        if self.share is not None:
            # A worker: the parent launched the target once for all workers.
            return nullcontext(self.share.endpoint)
        return open_target(self.transport, self.scenario, self.python, self.log_dir)

    async def run(self) -> None:
        transport = self.transport
        cpu_start = own_cpu_s()
        wall_start = time.perf_counter()
        client_log = self.log_dir / f"client-{transport}.log" if self.log_dir is not None else None
        try:
            async with (
                self._target() as endpoint,
                _http_client(transport if not self.client.is_sdk else "stdio") as http,
                _client_pool(self.client, client_log) as pool,
                task_group() as tg,
            ):
                self.endpoint = endpoint
                self.http = http
                self.pool = pool
                self.tg = tg
                supervisor = endpoint.supervisor
                if supervisor is not None and supervisor.process is not None:
                    supervisor.on_event = self._on_target_event
                    self.health.offer(supervisor.process.pid)
                    tg.start_soon(self._end_when_gone)
                tg.start_soon(self.health.run, self._on_hang)
                if self.workload.model == "open":
                    await self._run_open()
                else:
                    await self._run_closed()
                await self._record_client_cost()
                # Measurement ends with the load; an idle period after it is the server's alone.
                end_ns = time.perf_counter_ns()
                if self.share is not None:
                    self.share.interval(end_ns, end_ns < self.measure_start_ns, True)
                self.recorder.finish_transport(transport, end_ns)
                cpu_s = own_cpu_s() - cpu_start
                wall_s = time.perf_counter() - wall_start
                await self._idle()
                tg.cancel_scope.cancel()
        finally:
            self.health.log.close()
        lag_p99_us = self.lag.get_value_at_percentile(99.0)
        busy = cpu_s / wall_s if wall_s > 0 else 0.0
        self.recorder.set_generator(
            transport,
            round(cpu_s, 3),
            lag_p99_us,
            wall_s=round(wall_s, 3),
            cpu_busy=round(busy, 3),
            # One event loop is one core: near it, or late to wake, the generator sends late
            # and its own delays land in the latencies (DESIGN: it must say so).
            saturated=busy > GENERATOR_BUSY_LIMIT or lag_p99_us > GENERATOR_LAG_LIMIT_US,
            lag_max_us=self.lag.get_max_value(),
            in_flight_max=self.in_flight_max,
            # A worker's parent merges the lag histograms exactly (see loadtest.run.workers).
            **({"lag_hdr": self.lag.encode().decode("ascii")} if self.share is not None else {}),
        )
        server, generator = self.health.sections()
        self.recorder.set_server(transport, server)
        self.recorder.set_generator_memory(transport, generator)
        self.progress.transport_done(transport)

    async def _ready(self) -> None:
        """The first session is up: the clock starts, warm-up begins.

        A worker's clock starts when the parent says, at the same instant for every worker.
        """
        self.t0_ns = await self.share.start() if self.share is not None else time.perf_counter_ns()
        # Warm-up calls never reach the recorder (_call drops them), so its clock for this
        # transport can start now, set to the end of warm-up, before any call exists to race.
        self.recorder.reset(self.measure_start_ns, transport=self.transport)
        self.progress.transport_started(self.transport, self.planned_s, self.request_limit or None)
        self.health.hang.reset()
        self.tg.start_soon(self._mark_measuring)
        self.tg.start_soon(self._ticker)
        self.tg.start_soon(self._lag_probe)
        self.tg.start_soon(self._watch_interrupt)
        self.tg.start_soon(self._mark_cost)

    async def _mark_measuring(self) -> None:
        await anyio.sleep(max(0.0, (self.measure_start_ns - time.perf_counter_ns()) / 1e9))
        self.health.measuring()

    def _counters(self) -> dict[str, list[Any]]:
        return {stats.name: stats.log_entry() for stats in self.stats}

    # -- the target's health ----------------------------------------------------------------

    def _session_servers(self) -> list[int]:
        """Server processes that could be watched: the launched one, or the open stdio sessions'."""
        supervisor = self.endpoint.supervisor if self.endpoint is not None else None
        if supervisor is not None and supervisor.process is not None:
            return [supervisor.process.pid]
        return [p.pid for _, p in self.live.values() if p is not None and p.returncode is None]

    def _on_target_event(self, event: TargetEvent) -> None:
        """The supervisor of a launched HTTP server saw it die, or relaunched it."""
        self.health.event(event.kind, event.detail)
        supervisor = self.endpoint.supervisor if self.endpoint is not None else None
        if event.kind == "restart" and supervisor is not None and supervisor.process is not None:
            # Sessions of the old server are unknown to the new one: replace them all.
            self.generation += 1
            self.health.hang.reset()
            self.health.offer(supervisor.process.pid, replace=True)

    async def _end_when_gone(self) -> None:
        supervisor = self.endpoint.supervisor if self.endpoint is not None else None
        assert supervisor is not None
        await supervisor.gone.wait()
        self._give_up("the target is gone")

    def _give_up(self, why: str) -> None:
        """The target died or hangs and is not relaunched: this transport's run ends here."""
        if not self.stopping.is_set():
            hint = "" if self.scenario.target.restart else "; set target.restart = true to relaunch it"
            self.report.error = (
                f"{why} at +{self.health.now_s():.0f}s; the run of {self.transport} ended there{hint}"
            )
            self.stopping.set()

    def _on_hang(self, why: str) -> None:
        if not self.scenario.target.restart:
            self._give_up(f"the target hung ({why})")
            return
        supervisor = self.endpoint.supervisor if self.endpoint is not None else None
        if supervisor is not None:
            supervisor.kill()  # relaunched by the supervisor, which then reports the restart
            return
        # stdio: every session has its own server; replace them all, killing the hung ones.
        for session, (_, process) in self.live.items():
            if process is not None and process.returncode is None:
                self.killed.add(session)
                signal_group(process.pid, signal.SIGKILL)
        self.pending_restarts += 1

    def _session_ended(self, session: Session) -> None:
        """A session whose channel closed under it: on stdio, its server died."""
        if session.closed is None or self.transport != "stdio" or self.stopping.is_set():
            return
        if session in self.killed:
            self.killed.discard(session)
            return
        self.health.event("crash", f"a session's server {session.closed.detail}")
        if self.scenario.target.restart:
            self.pending_restarts += 1
        else:
            self._give_up("the target crashed")

    def _stale(self, session: AnySession) -> bool:
        """Whether a worker should replace ``session``: closed (an SDK session: its transport
        failed), or of a relaunched target's past."""
        if isinstance(session, SdkSession):
            return session.dead is not None
        entry = self.live.get(session)
        return session.closed is not None or (entry is not None and entry[0] < self.generation)

    async def _idle(self) -> None:
        """``health.idle``: after the load, the server stays up so long, still sampled."""
        idle = self.scenario.health.idle
        launched = self.endpoint is not None and self.endpoint.supervisor is not None
        # stdio servers end with their sessions: there is nothing left to idle.
        if idle <= 0 or not launched or not self.health.watching or self.control.interrupted.is_set():
            return
        self.health.idle(idle)
        self.idling = True
        self.progress.note(
            f"{self.transport}: load done; the server idles {format_duration(idle)}, still sampled"
        )
        await _sleep_unless(self.control.interrupted, idle)
        self.health.sample()

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AnySession]:
        """Connect, initialise, record the set-up latency; yield the ready session."""
        if self.pool is not None:
            async with self._sdk_session(self.pool) as sdk_session:
                yield sdk_session
            return
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
        removed = [i for i, op in enumerate(self.ops) if op.method in REMOVED_IN_MODERN]
        if is_modern(hello.protocol_version) and removed and len(removed) < len(self.ops):
            weights = [0.0 if i in removed else op.weight for i, op in enumerate(self.ops)]
            self.picker = OpPicker(weights, seed=self.share.index if self.share else 0)
            names = ", ".join(self.ops[i].name for i in removed)
            for i in removed:
                self.recorder.skip_op(
                    self.transport, self.ops[i].name, f"removed in {hello.protocol_version}"
                )
            self.progress.note(f"{self.transport}: skipped {names}: removed in {hello.protocol_version}")

    @asynccontextmanager
    async def _wire_session(self) -> AsyncIterator[Session]:
        endpoint = self.endpoint
        assert endpoint is not None
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
                    get_stream=self.workload.get_stream,
                    delete_on_close=self.workload.close_sessions == "delete",
                ) as channel,
                open_session(
                    channel, request_timeout=self.workload.request_timeout, on_anomaly=self._on_anomaly
                ) as session,
            ):
                timeout = self.workload.connect_timeout
                hello = await negotiate(
                    session, self.protocol, timeout=timeout, probe_timeout=min(timeout, 10.0)
                )
                self.recorder.record_session(self.transport, time.perf_counter_ns() - started, failed=False)
                if self.report.protocol_version is None:
                    self.report.protocol_version = hello.protocol_version
                    self.report.server_info = hello.server_info
                    self._settle_protocol(hello)
                process = channel.info.process
                if process is not None:
                    # stdio: every session is its own server process; sample one at a time.
                    self.health.offer(process.pid)
                    if self.pending_restarts:
                        self.pending_restarts -= 1
                        self.health.event("restart", f"a new session's server, pid {process.pid}")
                        self.health.hang.reset()
                self.live[session] = (self.generation, process)
                try:
                    yield session
                    self._session_ended(session)
                finally:
                    self.live.pop(session, None)
                    self.killed.discard(session)
        except TargetError as exc:
            if not isinstance(exc, ProbeUnanswered):  # no failure: the session is opened anew
                self.recorder.record_session(self.transport, None, failed=True)
            raise

    @asynccontextmanager
    async def _sdk_session(self, pool: SdkPool) -> AsyncIterator[SdkSession]:
        """The SDK client's session in a worker; set-up latency as the SDK's ``initialize`` took."""
        assert self.endpoint is not None
        try:
            async with pool.session(
                self.endpoint,
                connect_timeout=self.workload.connect_timeout,
                request_timeout=self.workload.request_timeout,
            ) as (session, hello):
                self.recorder.record_session(self.transport, hello.latency_ns, failed=False)
                if self.report.protocol_version is None:
                    self.report.protocol_version = hello.protocol_version
                    self.report.server_info = hello.server_info
                    self.recorder.set_protocol_version(self.transport, hello.protocol_version)
                if self.transport == "stdio":
                    # Every stdio session is a server process the SDK started; the health watch
                    # samples one (it ignores the offer while it watches a live one).
                    pids = pool.server_pids()
                    if pids:
                        self.health.offer(pids[0])
                yield session
        except TargetError:
            self.recorder.record_session(self.transport, None, failed=True)
            raise

    async def _mark_cost(self) -> None:
        """At the end of warm-up: the clients' CPU so far, so that their cost per call counts
        measured calls only."""
        await anyio.sleep(max(0.0, (self.measure_start_ns - time.perf_counter_ns()) / 1e9))
        cost = await self.pool.cost() if self.pool is not None else None
        self._cost_start = (time.perf_counter(), own_cpu_s(), cost)

    async def _record_client_cost(self) -> None:
        """``transports.<t>.client``: which client made the calls, and its CPU per measured call."""
        calls = sum(stats.count for stats in self.stats)
        section: dict[str, Any] = self.client.meta()
        section.pop("freeze", None)
        if self._cost_start is not None:
            wall_start, cpu_start, cost_start = self._cost_start
            wall_s = time.perf_counter() - wall_start
            cpu_s = own_cpu_s() - cpu_start
            if self.pool is None:
                section["cpu_s"] = round(cpu_s, 3)
                section["cpu_per_call_us"] = round(cpu_s / calls * 1e6, 1) if calls else None
            else:
                section["tester_cpu_s"] = round(cpu_s, 3)
                section["tester_cpu_per_call_us"] = round(cpu_s / calls * 1e6, 1) if calls else None
                cost_end = await self.pool.cost()
                if cost_start is not None and cost_end is not None:
                    harness = cost_end.harness_cpu_s - cost_start.harness_cpu_s
                    sdk = cost_end.cpu_s - cost_start.cpu_s - harness
                    section["cpu_s"] = round(sdk, 3)
                    section["cpu_per_call_us"] = round(sdk / calls * 1e6, 1) if calls else None
                    section["harness_cpu_s"] = round(harness, 3)
                    section["rss_peak_bytes"] = cost_end.rss_peak_bytes
                    # Each worker is one event loop, one core at most: near it, the SDK client
                    # is what limits the rate (as it would for an agent at this load).
                    busy = (sdk + harness) / wall_s / len(self.pool.workers) if wall_s > 0 else 0.0
                    section["cpu_busy"] = round(busy, 3)
                    section["saturated"] = busy > GENERATOR_BUSY_LIMIT
        section["calls"] = calls
        self.recorder.set_client(self.transport, section)

    def _on_anomaly(self, anomaly: Anomaly) -> None:
        if time.perf_counter_ns() < self.measure_start_ns:
            return
        self.recorder.record_anomaly(
            self.transport, anomaly.method, anomaly.kind, anomaly.silent, anomaly.detail
        )

    # -- calls ------------------------------------------------------------------------------

    def _ticket(self, intended_ns: int) -> bool:
        """May a call intended at ``intended_ns`` go out? Counts measured calls against the limit."""
        if self.stopping.is_set():
            return False
        if intended_ns >= self.measure_start_ns:
            if self.planned_s is not None and intended_ns >= self.measure_start_ns + int(
                self.planned_s * 1e9
            ):
                self.stopping.set()
                return False
            if self.request_limit:
                if self.measured_calls >= self.request_limit:
                    self.stopping.set()
                    return False
                self.measured_calls += 1
        return True

    async def _call(self, session: AnySession, index: int, intended_ns: int) -> None:
        op = self.ops[index]
        k = next(self.counter)
        # Fixed width, so that no nonce is a prefix of another: a cut-short answer then never
        # reads as another call's, nor another call's answer as a cut-short one.
        nonce = f"nonce-{self.token}-{k:010d}"
        seed = (self.seed_base + k) & _SEED_MASK
        params = op.render(nonce, seed)
        self.in_flight += 1
        if self.in_flight > self.in_flight_max:
            self.in_flight_max = self.in_flight
        try:
            outcome = await session.request(op.method, params, progress=op.progress, label=op.name)
        finally:
            self.in_flight -= 1
            self._maybe_drained()
        error = outcome.error
        if error is None or error.kind.startswith("jsonrpc_"):
            self.health.hang.answered(outcome.done_ns)
        elif error.kind == "lost":
            self.health.hang.lost_one()
        if intended_ns < self.measure_start_ns:
            return
        verdict = self.checkers[index].check(outcome, params, nonce, seed)
        example = None
        if not verdict.ok:
            example = {
                "request_id": outcome.request_id,
                "op": op.name,
                "nonce": nonce,
                "detail": verdict.detail,
                # What was expected and what came, shortened by the recorder when kept.
                "expected": op.expected_text(nonce, seed) or op.expect.to_dict(),
                "got": outcome.result if outcome.error is None else None,
            }
        self.stats[index].record(
            intended_ns,
            outcome.sent_ns,
            0 if verdict.silent == "lost" else outcome.done_ns,
            error=verdict.error,
            silent=verdict.silent,
            bytes_in=outcome.nbytes,
            bytes_out=outcome.nbytes_out,
            example=example,
        )

    # -- closed model -----------------------------------------------------------------------

    async def _run_closed(self) -> None:
        async with task_group() as tg:
            # The first session is the readiness check: if it cannot be opened, nothing can.
            await tg.start(self._closed_worker, 0)
            for index in range(1, self._max_sessions()):
                tg.start_soon(self._closed_worker, index)
            await self.stopping.wait()
            await self._drain()
            tg.cancel_scope.cancel()

    def _max_sessions(self) -> int:
        stages = self.workload.stages
        counts = [stage.sessions for stage in stages if stage.sessions] if stages else []
        return max([self.workload.sessions, *counts])

    async def _closed_worker(
        self, index: int, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        churn = self.workload.churn
        think = self.workload.think_time
        # Worker 0's first session is the readiness check and starts the clock.
        first = index == 0
        while not self.stopping.is_set():
            async with self._reopen(first) as session:
                if session is None:
                    continue
                if first:
                    first = False
                    await self._ready()
                    task_status.started()
                calls = 0
                while churn == 0 or calls < churn:
                    now = time.perf_counter_ns()
                    if index >= self._active_sessions(now):
                        await _sleep_unless(self.stopping, 0.05)
                        if self.stopping.is_set():
                            return
                        continue
                    if not self._ticket(now):
                        return
                    await self._call(session, self.picker.pick(), now)
                    calls += 1
                    if self._stale(session):
                        if _ended(session):
                            # The SDK client's session failed (its transport gave up): open a
                            # new one, as an agent would, instead of failing every call at once.
                            await _sleep_unless(self.stopping, REOPEN_BACKOFF_S)
                        break
                    if think:
                        await _sleep_unless(self.stopping, think)

    @asynccontextmanager
    async def _reopen(self, first: bool) -> AsyncIterator[AnySession | None]:
        """A worker's next session; ``None`` if it could not be opened (counted, retried).

        The very first session of a transport is the readiness check: its failure ends the run.
        """
        if first:
            async with self._session() as session:
                yield session
            return
        try:
            async with self._session() as session:
                yield session
                return
        except TargetError as exc:
            self.report.error = str(exc)
        await _sleep_unless(self.stopping, REOPEN_BACKOFF_S)
        yield None

    # -- open model -------------------------------------------------------------------------

    async def _run_open(self) -> None:
        cap = self.workload.max_in_flight
        n = self.workload.sessions
        churn = self.workload.churn
        # The calls go round the sessions in turn, so with churn they would all reach their
        # last call together and reconnect at once, leaving no session for the calls then
        # due. Their first sessions retire early by different amounts, which spreads it out.
        slots = [
            _Slot(limiter=anyio.CapacityLimiter(cap or math.inf), head_start=k * churn // n) for k in range(n)
        ]
        async with task_group() as tg:
            await tg.start(self._slot_worker, slots[0], True)
            for slot in slots[1:]:
                tg.start_soon(self._slot_worker, slot, False)
            # One task per call: the light kind (see loadtest.core.aio).
            async with light_task_group() as calls:
                await self._schedule(slots, calls)
                self.stopping.set()
                await self._drain()
                calls.cancel()
            tg.cancel_scope.cancel()

    def _rate_stages(self) -> list[Any]:
        workload = self.workload
        if workload.stages:
            stages = [(stage.duration, stage.rate or 0.0) for stage in workload.stages]
        else:
            duration = workload.duration or math.inf
            stages = [(duration, workload.rate or 0.0)]
        warmup = [(workload.warmup, stages[0][1])] if workload.warmup else []
        return rate_stages(warmup + stages)

    async def _schedule(self, slots: list[_Slot], calls: LightTaskGroup) -> None:
        cap = self.workload.max_in_flight or math.inf
        turn = 0
        end_ns = self.measure_start_ns + int(self.planned_s * 1e9) if self.planned_s is not None else None
        schedule: Iterator[float] = arrivals(self._rate_stages())
        if self.share is not None:
            # Worker i of n sends arrivals i, i+n, i+2n...: together exactly the one schedule.
            schedule = itertools.islice(schedule, self.share.index, None, self.share.count)
        for t in schedule:
            intended = self.t0_ns + int(t * 1e9)
            if end_ns is not None and intended >= end_ns:
                break
            delay = (intended - time.perf_counter_ns()) / 1e9
            if delay > _SHORT_SLEEP_S:
                await _sleep_unless(self.stopping, delay)
            elif delay > 0:
                # The usual gap between two calls: a plain sleep is several times cheaper than
                # one that a stop can interrupt, and _ticket sees the stop right after.
                await anyio.sleep(delay)
            if not self._ticket(intended):
                return
            # The next open session with room for another call; if all are full, the next
            # open one in turn, where the call waits (its intended time keeps running).
            # Sessions with room queue up in ``self.room`` (entries are checked when taken), so
            # that choosing stays O(1) with a thousand sessions all busy.
            chosen = None
            room = self.room
            while room:
                slot = room.popleft()
                if slot.session is not None and slot.in_flight < cap:
                    chosen = slot
                    if slot.in_flight + 1 < cap:
                        room.append(slot)  # still room after this call: back of the queue
                    break
            else:
                for step in range(len(slots)):
                    slot = slots[(turn + step) % len(slots)]
                    if slot.session is not None:
                        chosen = slot
                        turn += step + 1
                        break
            if chosen is None:
                # No session is open (all reconnecting): the call cannot go out at all.
                self.stats[self.picker.pick()].record(intended, intended, 0, error="no_session")
                continue
            session = chosen.session
            assert session is not None
            chosen.in_flight += 1
            self.queued += 1
            calls.start_soon(self._slot_call, chosen, session, self.picker.pick(), intended)
        if end_ns is not None:
            # No call is due before the end: hold until then (at 300/h the next call could be
            # 12 s later), so that the measured time is the planned one.
            await _sleep_unless(self.stopping, (end_ns - time.perf_counter_ns()) / 1e9)

    async def _slot_call(self, slot: _Slot, session: AnySession, index: int, intended_ns: int) -> None:
        # in_flight counts calls assigned to the slot (queued or sent); the limiter lets
        # max_in_flight of them onto the wire at once.
        slot.calls += 1
        if self.workload.churn and slot.calls >= self.workload.churn:
            slot.session = None
            slot.retire.set()
        try:
            async with slot.limiter:
                self.queued -= 1
                await self._call(session, index, intended_ns)
            if slot.session is session and self._stale(session):
                slot.session = None  # reopened by the slot's worker
                slot.retire.set()
        finally:
            slot.in_flight -= 1
            if slot.in_flight == 0:
                slot.idle.set()
            if slot.session is not None and slot.in_flight + 1 == (self.workload.max_in_flight or math.inf):
                self.room.append(slot)  # it was full and has room again

    async def _slot_worker(
        self, slot: _Slot, first: bool, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        started = False
        first_slot = first
        while not self.stopping.is_set():
            async with self._reopen(first) as session:
                first = False
                if session is None:
                    continue
                slot.session = session
                slot.calls, slot.head_start = slot.head_start, 0
                self.room.append(slot)
                if not started and first_slot:
                    started = True
                    await self._ready()
                    task_status.started()
                async with task_group() as waiter:
                    waiter.start_soon(_set_when, self.stopping, slot.retire)
                    await slot.retire.wait()
                    waiter.cancel_scope.cancel()
                slot.session = None
                # Let the calls still out on this session finish before closing it.
                while slot.in_flight:
                    slot.idle = anyio.Event()
                    await slot.idle.wait()
                slot.retire = anyio.Event()
        if not started and first_slot:
            task_status.started()

    # -- ending -----------------------------------------------------------------------------

    def _maybe_drained(self) -> None:
        if self.in_flight == 0 and self.queued == 0 and self.stopping.is_set():
            self.drained.set()

    async def _drain(self) -> None:
        """Give outstanding calls their deadline (or the interrupt grace) to finish."""
        grace = (
            INTERRUPT_GRACE_S if self.control.interrupted.is_set() else self.workload.request_timeout + 1.0
        )
        with anyio.move_on_after(grace):
            while self.in_flight or self.queued:
                self.drained = anyio.Event()
                await self.drained.wait()

    async def _watch_interrupt(self) -> None:
        await self.control.interrupted.wait()
        self.control.was_interrupted = True
        self.stopping.set()

    async def _ticker(self) -> None:
        interval_ns = 1_000_000_000
        next_tick = self.t0_ns + interval_ns
        soak = self.scenario.soak
        status_ns = int(soak.status_every * 1e9) if soak is not None else 0
        next_status = self.measure_start_ns + status_ns
        calls_at_status = 0
        while True:
            await anyio.sleep(max(0.0, (next_tick - time.perf_counter_ns()) / 1e9))
            now = time.perf_counter_ns()
            measuring = now >= self.measure_start_ns
            if self.share is not None:
                self.share.interval(now, not measuring, False)
            if measuring:
                self.recorder.tick(now, transport=self.transport)
            if (
                self.workload.model == "closed"
                and self.planned_s is not None
                and now >= self.measure_start_ns + int(self.planned_s * 1e9)
            ):
                # Also ends a closed run in which no call was due (idle stages). The open
                # model's schedule ends itself, so no call due before the end is refused.
                self.stopping.set()
            if not self.idling:
                self.progress.tick(
                    self.transport, (now - self.measure_start_ns) / 1e9, not measuring, self.recorder
                )
            if status_ns and now >= next_status:
                figures = self._status(now, calls_at_status, status_ns + now - next_status)
                calls_at_status = figures["calls"]
                self.progress.status(self.transport, figures)
                next_status = max(next_status + status_ns, now)
            next_tick += interval_ns

    def _status(self, now_ns: int, calls_before: int, period_ns: int) -> dict[str, Any]:
        """What a soak's status line says: progress, failures, server and generator health."""
        live = self.recorder.live(self.transport)
        server = self.health.monitor.last if self.health.watching else None
        counts = self.health.counts
        return {
            "elapsed_s": (now_ns - self.measure_start_ns) / 1e9,
            "planned_s": self.planned_s,
            "calls": live.calls,
            "rate": (live.calls - calls_before) / (period_ns / 1e9) if period_ns > 0 else 0.0,
            "errors": live.errors,
            "silent": live.silent,
            "sessions": self.recorder.live_sessions(self.transport),
            "server_rss": server[1] if server else None,
            "server_fds": server[3] if server else None,
            "server_threads": server[4] if server else None,
            "crashes": counts["crash"],
            "hangs": counts["hang"],
            "restarts": counts["restart"],
            "generator_rss": self.health.generator_rss,
        }

    async def _lag_probe(self) -> None:
        # The event loop's scheduling lag: how late a 10 ms sleep wakes up. A generator whose
        # loop is late sends late, and the corrected histogram then blames the server.
        period_ns = 10_000_000
        while True:
            before = time.perf_counter_ns()
            await anyio.sleep(period_ns / 1e9)
            late_us = max(0, (time.perf_counter_ns() - before - period_ns) // 1000)
            self.lag.record_value(min(late_us, LAG_RANGE[1]))


@dataclass
class _Slot:
    """One session of the open model, replaced after ``churn`` calls."""

    session: AnySession | None = None
    calls: int = 0
    #: Calls counted against the first session before it makes any (see ``_run_open``).
    head_start: int = 0
    in_flight: int = 0
    retire: anyio.Event = field(default_factory=anyio.Event)
    idle: anyio.Event = field(default_factory=anyio.Event)
    limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))


async def _sleep_unless(event: anyio.Event, seconds: float) -> None:
    with anyio.move_on_after(seconds):
        await event.wait()


async def _set_when(source: anyio.Event, target: anyio.Event) -> None:
    await source.wait()
    target.set()


def _ended(session: AnySession) -> bool:
    """An SDK session whose transport failed (built-in sessions run on, as they always did)."""
    return isinstance(session, SdkSession) and session.dead is not None


@asynccontextmanager
async def _client_pool(client: ClientConfig, stderr_log: Path | None) -> AsyncIterator[SdkPool | None]:
    if not client.is_sdk:
        yield None
        return
    async with open_sdk_pool(client, stderr_log=stderr_log) as pool:
        yield pool


@asynccontextmanager
async def _http_client(transport: str) -> AsyncIterator[aiohttp.ClientSession | None]:
    if transport == "stdio":
        yield None
        return
    http = new_client_session()
    try:
        yield http
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await http.close()


__all__ = [
    "Progress",
    "RunControl",
    "TransportReport",
    "WorkerShare",
    "open_target",
    "run_scenario",
    "run_share",
    "target_command",
]
