"""The stdio proxy: a wrapper command between a client's pipes and a server's.

``mcp-loadtest proxy --stdio -- CMD ARGS...`` starts ``CMD`` with its stdin and stdout on pipes
(stderr passes straight through), copies the client's lines to it unchanged (remembering the
requests), and passes the server's lines back through the injector. The server stays in the
wrapper's process group, so whoever stops the wrapper's group stops the server too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.abc

from loadtest.core.aio import open_pipes, read_lines, task_group
from loadtest.core.errors import UsageError
from loadtest.proxy.engine import Injector, Sink
from loadtest.proxy.faults import FaultSpec, InjectionLog

_CHUNK = 1 << 20
#: How long held messages (delays, swaps) may still go out after the server's output ended.
_FLUSH_S = 10.0
_SCOPE = "stdio"


class _Pipe:
    """Our own stdin/stdout as asyncio pipes (the client's end of the conversation)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls) -> _Pipe:
        # Our own copies of the client's pipe ends; fds 0 and 1 then point at /dev/null, so
        # that closing the copy is a real end-of-file for the client (close_stream, reset).
        fd_in, fd_out = os.dup(0), os.dup(1)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(devnull)
        try:
            pipes = await open_pipes(os.fdopen(fd_in, "rb"), os.fdopen(fd_out, "wb"), limit=1 << 30)
        except ValueError as exc:
            raise UsageError(f"proxy --stdio: stdin and stdout must be pipes ({exc})") from None
        return cls(pipes.reader, pipes.writer)


class _StdoutSink(Sink):
    framing = "stdio"

    def __init__(self, pipe: _Pipe, process: anyio.abc.Process) -> None:
        super().__init__()
        self.pipe = pipe
        self.process = process

    async def _send(self, data: bytes, meta: Any) -> None:
        writer = self.pipe.writer
        try:
            writer.write(data)
            writer.write(b"\n")
            await writer.drain()
        except (ConnectionError, RuntimeError):
            self.closed = True

    async def _cut_and_close(self, partial: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            self.pipe.writer.write(partial)
            await self.pipe.writer.drain()
        self._end()

    async def _reset(self) -> None:
        self._end()

    def _end(self) -> None:
        # As a crashed server would: the process is gone and stdout closes.
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.pipe.writer.close()


async def run_stdio_proxy(
    command: Sequence[str], specs: tuple[FaultSpec, ...], seed: int, log: InjectionLog
) -> int:
    """Run ``command`` behind the proxy until it exits; return its exit code."""
    if not command:
        raise UsageError(
            "proxy --stdio needs the server command after '--', e.g. proxy --stdio -- python server.py"
        )
    pipe = await _Pipe.open()
    try:
        process = await anyio.open_process(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None
        )
    except OSError as exc:
        raise UsageError(f"proxy --stdio: cannot start {command[0]!r}: {exc.strerror or exc}") from None
    ended_by_fault = anyio.Event()
    async with task_group() as tg:
        injector = Injector(specs, seed, log, tg)
        sink = _StdoutSink(pipe, process)
        injector.on_fatal = ended_by_fault.set
        tg.start_soon(_upstream, pipe, process, injector)
        tg.start_soon(_forward_signals, process)
        async with task_group() as down:
            # A fault that ends the stream (close_stream, reset) ends the relaying with it.
            down.start_soon(_cancel_when, ended_by_fault, down.cancel_scope)
            await _downstream(process, injector, sink)
            down.cancel_scope.cancel()
        # Let held messages (delays, swaps) go out before stdout closes; bounded.
        with anyio.move_on_after(_FLUSH_S):
            await sink.wait_idle()
        sink.closed = True
        with contextlib.suppress(ConnectionError, RuntimeError):
            pipe.writer.close()
        with anyio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        tg.cancel_scope.cancel()
    if ended_by_fault.is_set():
        return 1
    code = process.returncode
    return code if code is not None and code >= 0 else 128 - (code or 0)


async def _cancel_when(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _upstream(pipe: _Pipe, process: anyio.abc.Process, injector: Injector) -> None:
    """Client lines to the server, unchanged; requests are remembered on the way."""
    stdin = process.stdin
    assert stdin is not None
    buf = bytearray()
    scan = 0
    try:
        while chunk := await pipe.reader.read(_CHUNK):
            if injector.active:
                buf += chunk
                start = 0
                while (nl := buf.find(b"\n", scan)) >= 0:
                    if nl > start:
                        with memoryview(buf) as view:
                            injector.track(_SCOPE, view[start:nl])
                    start = scan = nl + 1
                if start:
                    del buf[:start]
                scan = len(buf)
            await stdin.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError):
        pass
    finally:
        # The client closed our stdin: close the server's, which asks it to exit.
        with contextlib.suppress(Exception):
            await stdin.aclose()


async def _downstream(process: anyio.abc.Process, injector: Injector, sink: _StdoutSink) -> None:
    """Server lines to the client, through the injector, until the server's stdout ends."""
    stdout = process.stdout
    assert stdout is not None

    async def line(data: memoryview) -> None:
        await injector.deliver(_SCOPE, bytes(data), sink)

    rest = await read_lines(stdout, line)
    if rest:
        # The server's last line had no newline: pass it on as it was, unterminated.
        async with sink._lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                sink.pipe.writer.write(rest)
                await sink.pipe.writer.drain()


async def _forward_signals(process: anyio.abc.Process) -> None:
    """SIGTERM/SIGINT to the wrapper reach the server too (it may run in another group)."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)
            if signum == signal.SIGTERM:
                return
