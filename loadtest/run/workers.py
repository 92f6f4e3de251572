"""``--workers N``: one transport's load spread over N generator processes.

One Python event loop is at most one core. When a generator needs more than that (a fast
server with cores to spare, thousands of sessions), ``run --workers N`` starts N worker
processes, one event loop each, driving shares of the one workload against the one target:

* The parent launches the target once (for stdio every session starts its own server, in
  whichever worker opens it), then the workers, ``python -m loadtest.run.workers``.
* Closed model: the sessions, each stage's sessions and a request limit are split between the
  workers. Open model: worker ``i`` sends arrivals ``i, i+N, i+2N, ...`` of the one schedule
  on its share of the sessions, so together they send exactly what one process would have.
* Every worker opens its first session (the readiness check), says so, and starts its clock at
  the common instant the parent names (``perf_counter_ns`` is the system-wide monotonic clock),
  so that warm-up, intervals and the end fall at the same moments in every worker.
* At every interval each worker sends its interval histograms (HdrHistogram V2, encoded) and
  its counters; the parent adds them into its one :class:`~loadtest.measure.metrics.Recorder`, which
  writes the interval logs and feeds the progress display as without workers. HdrHistograms
  of one configuration add exactly, so the merged results are those of one big recorder;
  each worker's own totals come along at the end and are checked against the merge.
* Request ids stay unique across workers (worker ``i`` numbers its sessions ``i+1, i+1+N,
  ...``) and so do nonces (the worker's index is part of the nonce token).

The pipe protocol is JSON lines. Parent to worker, on stdin: ``{"job": <pickled Job, base64>}``,
then ``{"go": t0_ns}`` and ``{"stop": true}``; end of input means stop. Worker to parent, on
stdout: ``ready``, ``tick`` (every interval, warm-up included, so silence means trouble),
then ``done`` or ``error``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import pickle
import secrets
import sys
import time
from collections import deque
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import anyio
import orjson
from anyio.streams.buffered import BufferedByteReceiveStream
from hdrh.histogram import HdrHistogram

import loadtest
from loadtest.core.aio import PipeWriter, open_pipes, task_group
from loadtest.core.errors import LoadtestError, TargetError, UsageError
from loadtest.core.names import LAG_RANGE
from loadtest.core.process import TargetProcess, launch, own_cpu_s
from loadtest.measure.metrics import Recorder
from loadtest.measure.summary import merge_clients
from loadtest.protocol.session import number_sessions
from loadtest.run.driver import (
    GENERATOR_BUSY_LIMIT,
    GENERATOR_LAG_LIMIT_US,
    Progress,
    RunControl,
    TransportReport,
    WorkerShare,
    open_target,
    run_share,
)
from loadtest.run.targets.monitor import ProcessMonitor
from loadtest.run.targets.reference import Endpoint
from loadtest.scenario import Scenario

#: More worker processes than this is a typo, not a plan.
MAX_WORKERS = 64
#: A worker's start-up (interpreter, imports) on top of its first session's connect timeout.
START_MARGIN_S = 30.0
#: A worker ticks every second; one silent this long is hung and is given up on.
SILENCE_S = 60.0
#: The common start is set this far ahead, so that every worker hears of it before it comes.
GO_AHEAD_NS = 50_000_000
#: Longest wait for a pipe write to a worker (it reads all the time; a full pipe means trouble).
SEND_TIMEOUT_S = 5.0
#: How long a worker waits for its job, and then for the start signal after saying ready.
JOB_TIMEOUT_S = 60.0
_MAX_LINE = 256 << 20
# The lag histogram of the driver: 1 µs .. 60 s, 2 digits.


@dataclass(frozen=True)
class Job:
    """What the parent tells worker ``index`` of ``count``: its share of one transport's run."""

    scenario: Scenario
    transport: str
    index: int
    count: int
    token: str
    endpoint: Endpoint


# -- splitting the workload -----------------------------------------------------------------


def check_workers(scenario: Scenario, count: int) -> None:
    """Raise :class:`UsageError` unless ``scenario`` can be split over ``count`` workers."""
    if count < 1:
        raise UsageError(f"--workers {count}: must be at least 1")
    if count > MAX_WORKERS:
        raise UsageError(f"--workers {count}: at most {MAX_WORKERS}")
    if count == 1:
        return
    if scenario.target.restart:
        raise UsageError(
            f"--workers {count}: target.restart relaunches a target one process watches; use one worker"
        )
    workload = scenario.workload
    if count > workload.sessions:
        raise UsageError(
            f"--workers {count}: more workers than the {workload.sessions} sessions"
            " (each worker drives at least one session); raise --sessions or lower --workers"
        )
    if workload.requests and count > workload.requests:
        raise UsageError(f"--workers {count}: more workers than the {workload.requests} requests")


def split(total: int, index: int, count: int) -> int:
    """Worker ``index``'s part of ``total`` when ``count`` workers share it as evenly as can be."""
    return total // count + (1 if index < total % count else 0)


def share_scenario(scenario: Scenario, index: int, count: int) -> Scenario:
    """``scenario`` with worker ``index``'s share of the sessions and requests.

    The rates stay whole: an open-model worker takes every ``count``-th arrival of the whole
    schedule (see :class:`~loadtest.run.driver.WorkerShare`), not a schedule of its own.
    """
    workload = scenario.workload
    stages = tuple(
        replace(stage, sessions=split(stage.sessions, index, count)) if stage.sessions is not None else stage
        for stage in workload.stages
    )
    shared = replace(
        workload,
        sessions=split(workload.sessions, index, count),
        requests=split(workload.requests, index, count),
        stages=stages,
    )
    return replace(scenario, workload=shared)


# -- the parent -----------------------------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    """The parent's view of one worker process."""

    index: int
    target: TargetProcess
    reader: BufferedByteReceiveStream
    hello: dict[str, Any] | None = None
    #: Interval messages not yet merged (the others' for the same interval are still to come).
    intervals: deque[dict[str, Any]] = field(default_factory=deque)
    #: The counters (per op) of its last merged interval: cumulative, so the latest wins.
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Its last interval is queued.
    final: bool = False
    #: Nothing more will come from it (done, error, or gone).
    finished: bool = False
    done: dict[str, Any] | None = None
    error: str | None = None
    last_ns: int = 0

    async def send(self, message: Mapping[str, Any]) -> None:
        stdin = self.target.process.stdin
        if stdin is None:
            return
        # A worker that has gone (and so reads no more) must not stall the parent.
        with (
            anyio.move_on_after(SEND_TIMEOUT_S),
            contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError),
        ):
            await stdin.send(orjson.dumps(message) + b"\n")


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
        self.all_ready = anyio.Event()
        self.all_finished = anyio.Event()
        self.measure_start_ns = 0
        self.measured = False
        self.transport_finished = False
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
            # The workers reach the target; the process handle stays here.
            shared = replace(endpoint, process=None, supervisor=None)
            async with AsyncExitStack() as stack:
                for index in range(self.count):
                    target = await stack.enter_async_context(
                        launch(_worker_argv(), env=_worker_env(), stdin=True, stdout=True)
                    )
                    assert target.process.stdout is not None
                    worker = _Worker(index, target, BufferedByteReceiveStream(target.process.stdout))
                    self.workers.append(worker)
                    job = Job(
                        share_scenario(self.scenario, index, self.count),
                        transport,
                        index,
                        self.count,
                        # Same width in every worker: no nonce is a prefix of another.
                        f"{token}w{index:0{width}d}",
                        shared,
                    )
                    await worker.send({"job": base64.b64encode(pickle.dumps(job)).decode("ascii")})
                    tg.start_soon(self._read, worker)
                await self._start(tg)
                await self.all_finished.wait()
            tg.cancel_scope.cancel()
        self._finish(own_cpu_s() - cpu_start, time.perf_counter() - wall_start)
        lost = [w for w in self.workers if w.done is None]
        if lost:
            # What the others measured is kept (and written), but it is not the planned load.
            raise LoadtestError(
                f"{lost[0].error or 'a generator worker failed'}; the results of {transport} are partial"
            )

    # -- start ------------------------------------------------------------------------------

    async def _start(self, tg: Any) -> None:
        """Wait until every worker's first session is up, then give them the common start."""
        with anyio.move_on_after(self.start_timeout):
            await _either(self.all_ready, self.control.interrupted)
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
            self.report.protocol_version = hello.get("protocol_version")
            self.report.server_info = hello.get("server_info") or {}
            self.report.protocol_chosen_by = hello.get("protocol_chosen_by")
            self.recorder.set_protocol_version(
                self.transport, self.report.protocol_version, self.report.protocol_chosen_by
            )
        t0 = time.perf_counter_ns() + GO_AHEAD_NS
        self.measure_start_ns = t0 + int(self.scenario.workload.warmup * 1e9)
        self.recorder.reset(self.measure_start_ns, transport=self.transport)
        workload = self.scenario.workload
        self.progress.transport_started(self.transport, workload.total_duration, workload.requests or None)
        for worker in self.workers:
            await worker.send({"go": t0})
        tg.start_soon(self._forward_interrupt)

    async def _forward_interrupt(self) -> None:
        await self.control.interrupted.wait()
        self.control.was_interrupted = True
        for worker in self.workers:
            await worker.send({"stop": True})

    def _check_events(self) -> None:
        if all(w.hello is not None or w.finished for w in self.workers):
            self.all_ready.set()
        if all(w.finished for w in self.workers):
            self.all_finished.set()

    # -- messages ---------------------------------------------------------------------------

    async def _read(self, worker: _Worker) -> None:
        limit = self.start_timeout
        try:
            while worker.done is None and worker.error is None:
                limit = self.start_timeout if worker.hello is None else SILENCE_S
                with anyio.fail_after(limit):
                    line = await worker.reader.receive_until(b"\n", _MAX_LINE)
                self._handle(worker, orjson.loads(line))
        except TimeoutError:
            worker.error = f"generator worker {worker.index} sent nothing for {limit:g}s and was stopped"
        except (
            anyio.IncompleteRead,
            anyio.EndOfStream,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
            anyio.DelimiterNotFound,
            orjson.JSONDecodeError,
        ):
            with anyio.move_on_after(2.0):
                await worker.target.process.wait()
            worker.error = (
                f"generator worker {worker.index} ended unexpectedly: {worker.target.describe_exit()}"
            )
        finally:
            worker.finished = True
            self._merge()
            self._check_events()

    def _handle(self, worker: _Worker, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if kind == "ready":
            worker.hello = message
            self._check_events()
        elif kind == "tick":
            worker.intervals.append(message)
            worker.final = worker.final or bool(message["final"])
            self._merge()
        elif kind == "done":
            worker.done = message
        elif kind == "error":
            worker.error = str(message.get("message"))

    def _merge(self) -> None:
        """Merge every interval all workers have sent (a finished worker no longer counts)."""
        recorder = self.recorder
        transport = self.transport
        while not self.transport_finished:
            active = [w for w in self.workers if w.intervals or not (w.final or w.finished)]
            if not active or any(not w.intervals for w in active):
                return
            parts = [(w, w.intervals.popleft()) for w in active]
            now = max(part["now"] for _, part in parts)
            measured = [(w, part) for w, part in parts if not part["warming"]]
            for w, part in measured:
                w.last_ns = part["now"]
                for name, op in part["ops"].items():
                    recorder.op(transport, name).add_interval(op["hdr"], op["hdr_uncorrected"])
                    w.counts[name] = op["counts"]
            elapsed = (now - self.measure_start_ns) / 1e9
            if not measured:
                self.progress.tick(transport, elapsed, True, recorder)
                continue
            self.measured = True
            names = {name for w in self.workers for name in w.counts}
            for name in names:
                recorder.op(transport, name).set_counts(
                    w.counts[name] for w in self.workers if name in w.counts
                )
            if all((w.final or w.finished) and not w.intervals for w in self.workers):
                recorder.finish_transport(transport, now)
                self.transport_finished = True
            else:
                recorder.tick(now, transport=transport)
            self.progress.tick(transport, elapsed, False, recorder)

    # -- end --------------------------------------------------------------------------------

    def _finish(self, parent_cpu_s: float, wall_s: float) -> None:
        transport = self.transport
        recorder = self.recorder
        if not self.transport_finished:
            ends = [w.last_ns for w in self.workers if w.last_ns]
            recorder.finish_transport(transport, max(ends) if ends else time.perf_counter_ns())
            self.transport_finished = True
        errors: list[str] = []
        lag = HdrHistogram(*LAG_RANGE)
        per_worker: list[dict[str, Any]] = []
        cpu_s = parent_cpu_s
        busy_max = 0.0
        lag_max = 0
        in_flight = 0
        saturated = False
        own_calls: dict[str, int] = {}
        own_recorded: dict[str, int] = {}
        clients: list[Mapping[str, Any]] = []
        for worker in self.workers:
            if worker.error:
                errors.append(worker.error)
            done = worker.done
            if done is None:
                per_worker.append({"index": worker.index, "error": worker.error or "no results"})
                continue
            if done.get("error"):
                errors.append(str(done["error"]))
            recorder.add_sessions(transport, **done["sessions"])
            for name, kinds in done["examples"].items():
                stats = recorder.op(transport, name)
                for kind, examples in kinds.items():
                    for example in examples:
                        stats.add_example(kind, example)
            for name, kinds in done.get("error_examples", {}).items():
                stats = recorder.op(transport, name)
                for kind, examples in kinds.items():
                    for example in examples:
                        stats.add_error_example(kind, example)
            clients.append(done.get("client") or {})
            generator = dict(done["generator"])
            encoded_lag = generator.pop("lag_hdr", None)
            if encoded_lag:
                lag.decode_and_add(encoded_lag)
            cpu_s += generator.get("cpu_s") or 0.0
            busy_max = max(busy_max, generator.get("cpu_busy") or 0.0)
            lag_max = max(lag_max, generator.get("lag_max_us") or 0)
            in_flight += generator.get("in_flight_max") or 0
            saturated = saturated or bool(generator.get("saturated"))
            calls = recorded = 0
            for name, own in done["ops"].items():
                own_calls[name] = own_calls.get(name, 0) + own["count"]
                own_recorded[name] = own_recorded.get(name, 0) + own["recorded"]
                calls += own["count"]
                recorded += own["recorded"]
            per_worker.append(
                {
                    "index": worker.index,
                    "calls": calls,
                    "recorded": recorded,
                    "sessions_opened": done["sessions"]["opened"],
                    **{
                        key: generator.get(key)
                        for key in (
                            "cpu_s",
                            "cpu_busy",
                            "lag_p99_us",
                            "lag_max_us",
                            "in_flight_max",
                            "saturated",
                        )
                    },
                }
            )
        merged = recorder.ops_of(transport)
        mismatched = sorted(
            name
            for name in set(own_calls) | set(merged)
            if own_calls.get(name, 0) != (merged[name].count if name in merged else 0)
            or own_recorded.get(name, 0) != (int(merged[name].total.total_count) if name in merged else 0)
        )
        if mismatched and all(w.done is not None for w in self.workers):
            errors.append(
                f"generator workers: merged figures differ from the workers' own for {', '.join(mismatched)}"
            )
        if errors and self.report.error is None:
            self.report.error = "; ".join(dict.fromkeys(errors))
        lag_p99 = int(lag.get_value_at_percentile(99.0)) if lag.get_total_count() else 0
        recorder.set_generator(
            transport,
            round(cpu_s, 3),
            lag_p99,
            wall_s=round(wall_s, 3),
            # Each worker is one event loop on at most one core: the busiest one is the limit.
            cpu_busy=round(busy_max, 3),
            cpu_busy_total=round(cpu_s / wall_s, 3) if wall_s > 0 else 0.0,
            saturated=saturated or busy_max > GENERATOR_BUSY_LIMIT or lag_p99 > GENERATOR_LAG_LIMIT_US,
            lag_max_us=lag_max,
            # The sum of each worker's peak: an upper bound of the run's peak.
            in_flight_max=in_flight,
            workers=self.count,
            parent_cpu_s=round(parent_cpu_s, 3),
            per_worker=per_worker,
        )
        recorder.set_client(transport, merge_clients(clients))
        if self.monitored:
            recorder.set_server(transport, self.monitor.summary())
        else:
            # stdio: worker 0 sampled the server of its first session, as a lone generator does.
            first = self.workers[0].done if self.workers else None
            if first is not None and first.get("server"):
                recorder.set_server(transport, first["server"])
        self.progress.transport_done(transport)


async def _either(a: anyio.Event, b: anyio.Event) -> None:
    """Return once ``a`` or ``b`` is set."""
    async with task_group() as tg:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(wait, a)
        tg.start_soon(wait, b)


def _worker_argv() -> list[str]:
    # The tester's own interpreter (the target's may be another environment's).
    return [sys.executable, "-m", "loadtest.run.workers"]


def _worker_env() -> dict[str, str]:
    # The worker imports this very package, installed or not.
    root = str(Path(loadtest.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": root if not path else root + os.pathsep + path}


# -- the worker -----------------------------------------------------------------------------


class _Pipes:
    """The worker's end: JSON lines in on stdin, out on a private copy of stdout."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, out: PipeWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.out = out

    @classmethod
    async def open(cls, out: IO[bytes]) -> _Pipes:
        pipes = await open_pipes(sys.stdin.buffer, out, limit=_MAX_LINE)
        return cls(pipes.reader, pipes.writer, pipes.protocol)

    async def receive(self) -> dict[str, Any] | None:
        """The next message from the parent; None at the end of input."""
        line = await self.reader.readline()
        if not line:
            return None
        message: dict[str, Any] = orjson.loads(line)
        return message

    def send(self, message: Mapping[str, Any]) -> None:
        # The transport buffers; the parent reads all the time, so the buffer stays small.
        if not self.writer.is_closing():
            self.writer.write(orjson.dumps(message) + b"\n")

    async def close(self) -> None:
        # close() sends what is buffered first; wait for that, bounded (the parent may be gone).
        self.writer.close()
        with anyio.move_on_after(SEND_TIMEOUT_S):
            await self.out.closed.wait()
        if not self.out.closed.is_set():
            self.writer.transport.abort()


async def _work(out: IO[bytes]) -> int:
    pipes = await _Pipes.open(out)
    with anyio.fail_after(JOB_TIMEOUT_S):
        first = await pipes.receive()
    if first is None or "job" not in first:
        return 2
    job: Job = pickle.loads(base64.b64decode(first["job"]))
    number_sessions(job.index + 1, job.count)
    recorder = Recorder()
    report = TransportReport()
    control = RunControl()
    go = anyio.Event()
    t0 = [0]

    def begin(at: int) -> None:
        if not go.is_set():
            t0[0] = at
            go.set()

    async def start() -> int:
        pipes.send(
            {
                "t": "ready",
                "protocol_version": report.protocol_version,
                "protocol_chosen_by": report.protocol_chosen_by,
                "server_info": report.server_info,
            }
        )
        with anyio.move_on_after(JOB_TIMEOUT_S):
            await go.wait()
        if not go.is_set():
            raise TargetError(f"generator worker {job.index}: no start signal from the parent")
        return t0[0]

    def interval(now: int, warming: bool, final: bool) -> None:
        ops: dict[str, Any] = {}
        if not warming:
            for name, stats in recorder.ops_of(job.transport).items():
                hdr, hdr_uncorrected = stats.encoded_interval()
                ops[name] = {"counts": stats.counts(), "hdr": hdr, "hdr_uncorrected": hdr_uncorrected}
        pipes.send({"t": "tick", "now": now, "warming": warming, "final": final, "ops": ops})

    async def commands() -> None:
        while True:
            message = await pipes.receive()
            if message is None or message.get("stop"):
                # Told to stop, or the parent is gone: end the run, results go out if they can.
                control.interrupted.set()
                begin(time.perf_counter_ns())
                if message is None:
                    return
            elif "go" in message:
                begin(int(message["go"]))

    share = WorkerShare(job.index, job.count, job.token, job.endpoint, start, interval)
    code = 0
    async with task_group() as tg:
        tg.start_soon(commands)
        try:
            await run_share(job.scenario, job.transport, recorder, report, control, share)
        except LoadtestError as exc:
            pipes.send({"t": "error", "message": str(exc), "exit_code": exc.exit_code})
            code = exc.exit_code
        else:
            pipes.send(_done(job, recorder, report))
        tg.cancel_scope.cancel()
    await pipes.close()
    return code


def _done(job: Job, recorder: Recorder, report: TransportReport) -> dict[str, Any]:
    section = recorder.sections()[job.transport]
    ops = recorder.ops_of(job.transport)
    return {
        "t": "done",
        "sessions": recorder.encoded_sessions(job.transport),
        "generator": section.generator,
        "server": section.server,
        "client": section.client,
        "error": report.error,
        # The worker's own totals, against which the parent checks its merge.
        "ops": {
            name: {"count": stats.count, "recorded": int(stats.total.total_count)}
            for name, stats in ops.items()
        },
        "examples": {name: stats.examples for name, stats in ops.items() if stats.examples},
        "error_examples": {name: stats.error_examples for name, stats in ops.items() if stats.error_examples},
    }


def main() -> None:
    """Entry point of a worker process (``python -m loadtest.run.workers``)."""
    # The protocol gets a private copy of stdout; whatever else prints goes to stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.exit(anyio.run(_work, out))


if __name__ == "__main__":
    main()


__all__ = ["MAX_WORKERS", "Job", "check_workers", "run_transport_in_workers", "share_scenario", "split"]
