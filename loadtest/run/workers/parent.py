"""The parent of the generator workers: launch the target and the workers, start them
together, read and merge their figures, stop them."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

import loadtest
from loadtest.core.aio import task_group
from loadtest.core.errors import LoadtestError, TargetError
from loadtest.core.process import TargetProcess, launch, own_cpu_s
from loadtest.measure.metrics import Recorder
from loadtest.run.control import Progress, RunControl, TransportReport
from loadtest.run.guard import open_target
from loadtest.run.targets.monitor import ProcessMonitor
from loadtest.run.timing import either
from loadtest.run.workers.merge import Merge, WorkerView
from loadtest.run.workers.messages import (
    Done,
    Failed,
    Go,
    Job,
    Message,
    Ready,
    Stop,
    Tick,
    decode,
    encode,
)
from loadtest.run.workers.split import check_workers, share_scenario
from loadtest.scenario import Scenario

#: A worker's start-up (interpreter, imports) on top of its first session's connect timeout.
START_MARGIN_S = 30.0
#: A worker ticks every second; one silent this long is hung and is given up on.
SILENCE_S = 60.0
#: The common start is set this far ahead, so that every worker hears of it before it comes.
GO_AHEAD_NS = 50_000_000
#: Longest wait for a pipe write to a worker (it reads all the time; a full pipe means trouble).
SEND_TIMEOUT_S = 5.0
MAX_LINE = 256 << 20


@dataclass(eq=False)
class _Worker(WorkerView):
    """The parent's view of one worker process."""

    target: TargetProcess | None = None
    reader: BufferedByteReceiveStream | None = None

    async def send(self, message: Message) -> None:
        stdin = self.target.process.stdin if self.target is not None else None
        if stdin is None:
            return
        # A worker that has gone (and so reads no more) must not stall the parent.
        with (
            anyio.move_on_after(SEND_TIMEOUT_S),
            contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError),
        ):
            await stdin.send(encode(message))


async def run_transport_in_workers(
    transport: str,
    scenario: Scenario,
    recorder: Recorder,
    report: TransportReport,
    progress: Progress,
    control: RunControl,
    python: str,
    log_dir: Path | None,
    count: int,
) -> None:
    """Run ``transport`` of ``scenario`` with ``count`` worker processes into ``recorder``.

    Raises :class:`TargetError` when the target cannot be started or a worker cannot open its
    first session, like a run without workers.
    """
    check_workers(scenario, count)
    await _Parent(transport, scenario, recorder, report, progress, control, python, log_dir, count).run()


class _Parent:
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
        count: int,
    ) -> None:
        self.transport = transport
        self.scenario = scenario
        self.recorder = recorder
        self.report = report
        self.progress = progress
        self.control = control
        self.python = python
        self.log_dir = log_dir
        self.count = count
        self.workers: list[_Worker] = []
        self.merge = Merge(transport, recorder, progress, self.workers)
        self.all_ready = anyio.Event()
        self.all_finished = anyio.Event()
        self.monitor = ProcessMonitor()
        self.monitored = False
        self.start_timeout = scenario.workload.connect_timeout + START_MARGIN_S

    async def run(self) -> None:
        transport = self.transport
        # Handles first, in the scenario's order, so that the hlog tags are those of a run
        # without workers.
        for op in self.scenario.ops:
            self.recorder.op(transport, op.name)
        cpu_start = own_cpu_s()
        wall_start = time.perf_counter()
        token = secrets.token_hex(3)
        width = len(str(self.count - 1))
        async with (
            open_target(transport, self.scenario, self.python, self.log_dir) as endpoint,
            task_group() as tg,
        ):
            if endpoint.process is not None:
                self.monitored = True
                tg.start_soon(self.monitor.run, endpoint.process.pid)
            async with AsyncExitStack() as stack:
                for index in range(self.count):
                    target = await stack.enter_async_context(
                        launch(_worker_argv(), env=_worker_env(), stdin=True, stdout=True)
                    )
                    assert target.process.stdout is not None
                    worker = _Worker(
                        index, target=target, reader=BufferedByteReceiveStream(target.process.stdout)
                    )
                    self.workers.append(worker)
                    job = Job.of(
                        share_scenario(self.scenario, index, self.count),
                        transport,
                        index,
                        self.count,
                        # Same width in every worker: no nonce is a prefix of another.
                        f"{token}w{index:0{width}d}",
                        endpoint,
                    )
                    await worker.send(job)
                    tg.start_soon(self._read, worker)
                await self._start(tg)
                await self.all_finished.wait()
            tg.cancel_scope.cancel()
        self.merge.finish(self.report, own_cpu_s() - cpu_start, time.perf_counter() - wall_start)
        self._server()
        self.progress.transport_done(transport)
        lost = [w for w in self.workers if w.done is None]
        if lost:
            # What the others measured is kept (and written), but it is not the planned load.
            raise LoadtestError(
                f"{lost[0].error or 'a generator worker failed'}; the results of {transport} are partial"
            )

    def _server(self) -> None:
        if self.monitored:
            self.recorder.set_server(self.transport, self.monitor.summary())
            return
        # stdio: worker 0 sampled the server of its first session, as a lone generator does.
        first = self.workers[0].done if self.workers else None
        if first is not None and first.server:
            self.recorder.set_server(self.transport, first.server)

    # -- start ------------------------------------------------------------------------------

    async def _start(self, tg: Any) -> None:
        """Wait until every worker's first session is up, then give them the common start."""
        with anyio.move_on_after(self.start_timeout):
            await either(self.all_ready, self.control.interrupted)
        interrupted = self.control.interrupted.is_set()
        unready = [w for w in self.workers if w.hello is None]
        if unready and not interrupted:
            first = unready[0]
            raise TargetError(
                first.error
                or f"generator worker {first.index} did not open its first session within {self.start_timeout:g}s"
            )
        hello = next((w.hello for w in self.workers if w.hello is not None), None)
        if hello is not None:
            self.report.protocol_version = hello.protocol_version
            self.report.server_info = hello.server_info or {}
            self.report.protocol_chosen_by = hello.protocol_chosen_by
            self.recorder.set_protocol_version(
                self.transport, self.report.protocol_version, self.report.protocol_chosen_by
            )
        t0 = time.perf_counter_ns() + GO_AHEAD_NS
        workload = self.scenario.workload
        self.merge.measure_start_ns = t0 + int(workload.warmup * 1e9)
        self.recorder.reset(self.merge.measure_start_ns, transport=self.transport)
        self.progress.transport_started(self.transport, workload.total_duration, workload.requests or None)
        for worker in self.workers:
            await worker.send(Go(t0))
        tg.start_soon(self._forward_interrupt)

    async def _forward_interrupt(self) -> None:
        await self.control.interrupted.wait()
        self.control.was_interrupted = True
        for worker in self.workers:
            await worker.send(Stop())

    def _check_events(self) -> None:
        if all(w.hello is not None or w.finished for w in self.workers):
            self.all_ready.set()
        if all(w.finished for w in self.workers):
            self.all_finished.set()

    # -- messages ---------------------------------------------------------------------------

    async def _read(self, worker: _Worker) -> None:
        assert worker.reader is not None
        assert worker.target is not None
        limit = self.start_timeout
        try:
            while worker.done is None and worker.error is None:
                limit = self.start_timeout if worker.hello is None else SILENCE_S
                with anyio.fail_after(limit):
                    line = await worker.reader.receive_until(b"\n", MAX_LINE)
                self._handle(worker, decode(line))
        except TimeoutError:
            worker.error = f"generator worker {worker.index} sent nothing for {limit:g}s and was stopped"
        except (
            anyio.IncompleteRead,
            anyio.EndOfStream,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
            anyio.DelimiterNotFound,
            ValueError,
        ):
            with anyio.move_on_after(2.0):
                await worker.target.process.wait()
            worker.error = (
                f"generator worker {worker.index} ended unexpectedly: {worker.target.describe_exit()}"
            )
        finally:
            worker.finished = True
            self.merge.intervals()
            self._check_events()

    def _handle(self, worker: _Worker, message: Message) -> None:
        if isinstance(message, Ready):
            worker.hello = message
            self._check_events()
        elif isinstance(message, Tick):
            worker.intervals.append(message)
            worker.final = worker.final or message.final
            self.merge.intervals()
        elif isinstance(message, Done):
            worker.done = message
        elif isinstance(message, Failed):
            worker.error = message.message


def _worker_argv() -> list[str]:
    # The tester's own interpreter (the target's may be another environment's).
    return [sys.executable, "-m", "loadtest.run.workers"]


def _worker_env() -> dict[str, str]:
    # The worker imports this very package, installed or not.
    root = str(Path(loadtest.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": root if not path else root + os.pathsep + path}


__all__ = ["run_transport_in_workers"]
