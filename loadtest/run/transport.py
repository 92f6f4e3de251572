"""One transport's run, in one process: target, sessions, model, clock, and its figures.

:class:`TransportRun` puts the parts together: the target guard (:mod:`loadtest.run.guard`),
a session source per client kind (:mod:`loadtest.run.sessions`), the call pipeline
(:mod:`loadtest.run.pipeline`), the closed or open model, the ticker and lag probe
(:mod:`loadtest.run.ticker`), and at the end the generator's and client's own cost.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from loadtest.core.aio import task_group
from loadtest.core.process import own_cpu_s
from loadtest.measure.metrics import Recorder
from loadtest.protocol.session import Anomaly
from loadtest.protocol.transports.http import new_client_session
from loadtest.run.bottleneck import bottleneck, is_own
from loadtest.run.clients.config import BUILTIN, ClientConfig
from loadtest.run.clients.sdk_pool import SdkPool, open_sdk_pool
from loadtest.run.closed_model import run_closed
from loadtest.run.control import (
    GENERATOR_BUSY_LIMIT,
    Progress,
    RunControl,
    TransportReport,
    WorkerShare,
)
from loadtest.run.guard import TargetGuard, open_target
from loadtest.run.open_model import run_open
from loadtest.run.pipeline import CallPipeline, Flight
from loadtest.run.plan import LoadPlan, Window
from loadtest.run.sessions import BuiltinSessions, SdkSessions, SessionSource
from loadtest.run.setup import SetUp, describe
from loadtest.run.state import RunState
from loadtest.run.targets.reference import Endpoint
from loadtest.run.ticker import LagProbe, Ticker
from loadtest.run.workload import OpPicker
from loadtest.scenario import Scenario

#: A set-up this long is worth a line in the progress display, even when every session opened.
SETUP_NOTE_S = 1.0


class TransportRun:
    """Runs ``scenario``'s workload on ``transport`` into ``recorder`` (see the module docstring).

    ``share`` makes this process one generator worker of several (:mod:`loadtest.run.workers`):
    the parent launched the target and starts the clock.
    """

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
        self.scenario = scenario
        self.recorder = recorder
        self.report = report
        self.progress = progress
        self.control = control
        self.python = python
        self.log_dir = log_dir
        self.client = client
        self.share = share
        self.plan = LoadPlan.of(scenario.workload)
        self.stopping = anyio.Event()
        self.flight = Flight(self.stopping)
        self.lag = LagProbe()
        #: (wall clock, our CPU, the SDK workers' cost) when measurement began.
        self._cost_start: tuple[float, float, Any] | None = None
        self.pool: SdkPool | None = None
        self.guard = TargetGuard(
            transport,
            scenario,
            report,
            log_dir=log_dir,
            sessions=lambda: recorder.live_sessions(transport),
            counters=lambda: self.pipeline.counters(),
            stop=lambda: self.state.stop(),
            stopping=self.stopping.is_set,
        )
        self.pipeline = CallPipeline(
            scenario.ops,
            recorder,
            transport,
            token=share.token if share is not None else None,
            hang=self.guard.health.hang,
            flight=self.flight,
            measuring=lambda intended_ns: self.state.measuring(intended_ns),
        )

    def _target(self) -> AbstractAsyncContextManager[Endpoint]:
        if self.share is not None:
            # A worker: the parent launched the target once for all workers.
            return nullcontext(self.share.endpoint)
        return open_target(self.transport, self.scenario, self.python, self.log_dir)

    def _source(self, endpoint: Endpoint, http: aiohttp.ClientSession | None) -> SessionSource:
        args = (self.transport, endpoint, self.scenario.workload, self.recorder, self.report, self.guard)
        if self.pool is not None:
            return SdkSessions(*args, pool=self.pool)
        return BuiltinSessions(
            *args,
            http=http,
            on_anomaly=self._on_anomaly,
            ops=self.scenario.ops,
            progress=self.progress,
            reweigh=lambda weights: self.state.reweigh(weights),
        )

    async def run(self) -> None:
        transport = self.transport
        cpu_start = own_cpu_s()
        wall_start = time.perf_counter()
        client_log = self.log_dir / f"client-{transport}.log" if self.log_dir is not None else None
        health = self.guard.health
        try:
            async with (
                self._target() as endpoint,
                _http_client(transport if not self.client.is_sdk else "stdio") as http,
                _client_pool(self.client, client_log) as pool,
                task_group() as tg,
            ):
                self.pool = pool
                self.tg = tg
                self.state = RunState(
                    transport=transport,
                    workload=self.scenario.workload,
                    plan=self.plan,
                    control=self.control,
                    report=self.report,
                    pipeline=self.pipeline,
                    source=self._source(endpoint, http),
                    # Workers draw different op sequences; together they keep the weights.
                    picker=OpPicker(
                        [op.weight for op in self.scenario.ops], seed=self.share.index if self.share else 0
                    ),
                    flight=self.flight,
                    stopping=self.stopping,
                    start_clock=self._start_clock,
                    # Set-up begins now that the target is up; the deadline is the time one
                    # session may take to connect and initialise.
                    setup=SetUp(
                        self.plan.max_sessions, self.scenario.workload.connect_timeout, time.perf_counter_ns()
                    ),
                    share=self.share,
                )
                if self.guard.attach(endpoint):
                    tg.start_soon(self.guard.end_when_gone)
                tg.start_soon(health.run, self.guard.on_hang)
                if self.plan.model == "open":
                    await run_open(self.state)
                else:
                    await run_closed(self.state)
                self.guard.final_check(time.perf_counter_ns())
                await self._record_client_cost()
                # Measurement ends with the load; an idle period after it is the server's alone.
                end_ns = self.state.measured_end_ns(time.perf_counter_ns())
                window = self.state.window
                if self.share is not None:
                    self.share.interval(end_ns, window is None or not window.measuring(end_ns), True)
                self.recorder.finish_transport(transport, end_ns)
                used_s = own_cpu_s() - cpu_start
                wall_s = time.perf_counter() - wall_start
                await self.guard.idle(self.control, self.progress)
                tg.cancel_scope.cancel()
        finally:
            health.log.close()
        self.report.setup = self.state.setup.section()
        self._record_generator(used_s, wall_s)
        server, generator = health.sections()
        self.recorder.set_server(transport, server)
        self.recorder.set_generator_memory(transport, generator)
        self.progress.transport_done(transport)

    async def _start_clock(self) -> Window:
        """The clock starts, warm-up begins.

        A worker's clock starts when the parent says, at the same instant for every worker.
        """
        t0 = await self.share.start() if self.share is not None else time.perf_counter_ns()
        window = Window.starting(t0, self.plan)
        # Warm-up calls never reach the recorder (the pipeline drops them), so its clock for
        # this transport can start now, set to the end of warm-up, before any call exists.
        self.recorder.reset(window.measure_start_ns, transport=self.transport)
        setup = self.state.setup.section()
        # In the health log too, so that a run killed later is rebuilt with its set-up.
        self.guard.health.log.write({"setup": setup})
        if setup["late"] or (setup["setup_s"] or 0.0) >= SETUP_NOTE_S:
            self.progress.note(describe(setup, self.transport))
        self.progress.transport_started(self.transport, self.plan.planned_s, self.plan.request_limit or None)
        self.guard.health.hang.reset()
        tg = self.tg
        tg.start_soon(self._at_measure_start, window)
        soak = self.scenario.soak
        ticker = Ticker(
            self.state,
            self.recorder,
            self.progress,
            self.guard,
            soak.status_every if soak is not None else 0.0,
        )
        tg.start_soon(ticker.run_ticks)
        tg.start_soon(self.lag.run)
        tg.start_soon(self._watch_interrupt)
        return window

    async def _at_measure_start(self, window: Window) -> None:
        """At the end of warm-up: health measures from now, and so does the clients' cost."""
        await anyio.sleep(max(0.0, (window.measure_start_ns - time.perf_counter_ns()) / 1e9))
        self.guard.health.measuring()
        cost = await self.pool.cost() if self.pool is not None else None
        self._cost_start = (time.perf_counter(), own_cpu_s(), cost)

    async def _watch_interrupt(self) -> None:
        await self.control.interrupted.wait()
        self.control.was_interrupted = True
        self.state.stop()

    def _on_anomaly(self, anomaly: Anomaly) -> None:
        if not self.state.measuring(time.perf_counter_ns()):
            return
        self.recorder.record_anomaly(
            self.transport, anomaly.method, anomaly.kind, anomaly.silent, anomaly.detail
        )

    # -- the generator's and client's own cost ------------------------------------------------

    def _record_generator(self, used_s: float, wall_s: float) -> None:
        lag = self.lag.lag
        lag_p99_us = int(lag.get_value_at_percentile(99.0))
        own_lag_p99_us = int(self.lag.own.get_value_at_percentile(99.0))
        busy = used_s / wall_s if wall_s > 0 else 0.0
        # One event loop is one core: near it, or late to wake because of its own work, the
        # generator sends late and its own delays land in the latencies (DESIGN: it must say
        # so, and only then).
        found = bottleneck(busy, lag_p99_us, own_lag_p99_us)
        self.recorder.set_generator(
            self.transport,
            round(used_s, 3),
            lag_p99_us,
            wall_s=round(wall_s, 3),
            cpu_busy=round(busy, 3),
            saturated=is_own(found),
            bottleneck=found,
            own_lag_p99_us=own_lag_p99_us,
            lag_max_us=lag.get_max_value(),
            in_flight_max=self.flight.in_flight_max,
            # A worker's parent merges the lag histograms exactly (see loadtest.run.workers).
            **(
                {
                    "lag_hdr": lag.encode().decode("ascii"),
                    "own_lag_hdr": self.lag.own.encode().decode("ascii"),
                }
                if self.share is not None
                else {}
            ),
        )

    async def _record_client_cost(self) -> None:
        """``transports.<t>.client``: which client made the calls, and its CPU per measured call."""
        calls = self.pipeline.calls()
        section: dict[str, Any] = self.client.meta()
        section.pop("freeze", None)
        if self._cost_start is not None:
            wall_start, cpu_start, cost_start = self._cost_start
            wall_s = time.perf_counter() - wall_start
            used_s = own_cpu_s() - cpu_start
            if self.pool is None:
                section["cpu_s"], section["cpu_per_call_us"] = _cpu_figures(used_s, calls)
            else:
                section["tester_cpu_s"], section["tester_cpu_per_call_us"] = _cpu_figures(used_s, calls)
                cost_end = await self.pool.cost()
                if cost_start is not None and cost_end is not None:
                    harness = cost_end.harness_cpu_s - cost_start.harness_cpu_s
                    sdk = cost_end.cpu_s - cost_start.cpu_s - harness
                    section["cpu_s"], section["cpu_per_call_us"] = _cpu_figures(sdk, calls)
                    section["harness_cpu_s"] = round(harness, 3)
                    section["rss_peak_bytes"] = cost_end.rss_peak_bytes
                    # Each worker is one event loop, one core at most: near it, the SDK client
                    # is what limits the rate (as it would for an agent at this load).
                    busy = (sdk + harness) / wall_s / len(self.pool.workers) if wall_s > 0 else 0.0
                    section["cpu_busy"] = round(busy, 3)
                    section["saturated"] = busy > GENERATOR_BUSY_LIMIT
        section["calls"] = calls
        self.recorder.set_client(self.transport, section)


async def run_share(
    scenario: Scenario,
    transport: str,
    recorder: Recorder,
    report: TransportReport,
    control: RunControl,
    share: WorkerShare,
) -> None:
    """A generator worker's part of one transport: ``scenario`` already holds its share."""
    runner = TransportRun(
        transport, scenario, recorder, report, Progress(), control, sys.executable, None, share=share
    )
    await runner.run()


def _cpu_figures(cpu_s: float, calls: int) -> tuple[float, float | None]:
    """CPU seconds as written (ms) and per call, from the written figure: as the merge of
    several workers' does (``measure.summary.merge_clients``), so one reads like the other."""
    written = round(cpu_s, 3)
    return written, (round(written / calls * 1e6, 1) if calls else None)


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
        # Shielded and bounded: closing must happen even when the run is cancelled, and must
        # not hang the run's end on a connector that will not close.
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await http.close()


__all__ = ["TransportRun", "run_share"]
