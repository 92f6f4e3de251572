"""A generator worker process: read its job, drive its share, report every interval."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import IO

import anyio

from loadtest.core.aio import PipeWriter, open_pipes, task_group
from loadtest.core.errors import LoadtestError, TargetError
from loadtest.measure.metrics import Recorder
from loadtest.protocol.session import number_sessions
from loadtest.run.control import RunControl, TransportReport, WorkerShare
from loadtest.run.transport import run_share
from loadtest.run.workers.messages import (
    Done,
    Failed,
    Go,
    Job,
    Message,
    OpInterval,
    OwnTotals,
    Ready,
    Stop,
    Tick,
    decode,
    encode,
)
from loadtest.run.workers.parent import MAX_LINE, SEND_TIMEOUT_S

#: How long a worker waits for its job, and then for the start signal after saying ready.
JOB_TIMEOUT_S = 60.0


class _Pipes:
    """The worker's end: messages in on stdin, out on a private copy of stdout."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, out: PipeWriter) -> None:
        self.reader = reader
        # Kept: a StreamWriter that is garbage-collected closes its pipe.
        self.writer = writer
        self.out = out

    @classmethod
    async def open(cls, out: IO[bytes]) -> _Pipes:
        pipes = await open_pipes(sys.stdin.buffer, out, limit=MAX_LINE)
        return cls(pipes.reader, pipes.writer, pipes.protocol)

    async def receive(self) -> Message | None:
        """The next message from the parent; None at the end of input."""
        line = await self.reader.readline()
        if not line:
            return None
        return decode(line)

    def send(self, message: Message) -> None:
        # The transport buffers; the parent reads all the time, so the buffer stays small.
        if not self.writer.is_closing():
            self.writer.write(encode(message))

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
    if not isinstance(first, Job):
        return 2
    job = first
    try:
        scenario = job.load_scenario()
    except LoadtestError as exc:
        pipes.send(Failed(f"generator worker {job.index}: {exc}", exc.exit_code))
        await pipes.close()
        return exc.exit_code
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
        pipes.send(Ready(report.protocol_version, report.server_info, report.protocol_chosen_by))
        with anyio.move_on_after(JOB_TIMEOUT_S):
            await go.wait()
        if not go.is_set():
            raise TargetError(f"generator worker {job.index}: no start signal from the parent")
        return t0[0]

    def interval(now: int, warming: bool, final: bool) -> None:
        ops: dict[str, OpInterval] = {}
        if not warming:
            for name, stats in recorder.ops_of(job.transport).items():
                hdr, hdr_uncorrected = stats.encoded_interval()
                ops[name] = OpInterval(stats.counts(), hdr, hdr_uncorrected)
        pipes.send(Tick(now, warming, final, ops))

    async def commands() -> None:
        while True:
            message = await pipes.receive()
            if message is None or isinstance(message, Stop):
                # Told to stop, or the parent is gone: end the run, results go out if they can.
                control.interrupted.set()
                begin(time.perf_counter_ns())
                if message is None:
                    return
            elif isinstance(message, Go):
                begin(message.t0_ns)

    share = WorkerShare(job.index, job.count, job.token, job.endpoint(), start, interval)
    code = 0
    async with task_group() as tg:
        tg.start_soon(commands)
        try:
            await run_share(scenario, job.transport, recorder, report, control, share)
        except LoadtestError as exc:
            pipes.send(Failed(str(exc), exc.exit_code))
            code = exc.exit_code
        else:
            pipes.send(_done(job, recorder, report))
        tg.cancel_scope.cancel()
    await pipes.close()
    return code


def _done(job: Job, recorder: Recorder, report: TransportReport) -> Done:
    section = recorder.sections()[job.transport]
    ops = recorder.ops_of(job.transport)
    return Done(
        sessions=recorder.encoded_sessions(job.transport),
        generator=dict(section.generator),
        server=dict(section.server),
        client=dict(section.client),
        error=report.error,
        ops={name: OwnTotals(stats.count, int(stats.total.total_count)) for name, stats in ops.items()},
        examples={name: stats.examples for name, stats in ops.items() if stats.examples},
        error_examples={name: stats.error_examples for name, stats in ops.items() if stats.error_examples},
        setup=report.setup,
        skipped_ops=dict(section.skipped_ops),
    )


def main() -> None:
    """Entry point of a worker process (``python -m loadtest.run.workers``)."""
    # The protocol gets a private copy of stdout; whatever else prints goes to stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.exit(anyio.run(_work, out))


__all__ = ["main"]
