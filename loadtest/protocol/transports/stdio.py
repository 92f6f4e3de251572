"""stdio: newline-delimited JSON-RPC over a child process's pipes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import orjson
from anyio.streams.memory import MemoryObjectSendStream

from loadtest.core.aio import task_group
from loadtest.core.process import TargetProcess, launch
from loadtest.protocol.transports.base import Channel, Incoming, Message, Received, TransportError, deliver

#: Messages buffered between the reader and the session before the reader waits.
_QUEUE = 1024
#: Bytes waiting in the stdin pipe's buffer above which a send waits for it to drain.
_DIRECT_LIMIT = 1 << 16


@asynccontextmanager
async def connect_stdio(
    command: str | Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stderr_log: Path | None = None,
) -> AsyncIterator[Channel]:
    """Launch ``command`` and talk JSON-RPC to it over stdin/stdout.

    The child is stopped (stdin closed, then SIGTERM, then SIGKILL) when the block exits.
    """
    async with launch(command, env=env, cwd=cwd, stderr_log=stderr_log) as target:
        stdin = target.process.stdin
        assert stdin is not None
        send_incoming, incoming = anyio.create_memory_object_stream[Incoming](_QUEUE)
        # anyio's wrapper yields to the event loop twice per write; while the pipe's buffer
        # has room, writing to the asyncio writer beneath it directly is all a send needs.
        writer = getattr(stdin, "_stream", None)
        direct = writer if isinstance(writer, asyncio.StreamWriter) else None

        async def send(message: Message) -> int:
            data = orjson.dumps(message) + b"\n"
            try:
                # No lock needed: the whole line goes into the pipe transport's buffer in one
                # synchronous write, so two messages' bytes never interleave; concurrent
                # senders only share the wait for the buffer to drain.
                if (
                    direct is not None
                    and not direct.is_closing()
                    and direct.transport.get_write_buffer_size() < _DIRECT_LIMIT
                ):
                    direct.write(data)
                else:
                    await stdin.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                await deliver(
                    send_incoming, TransportError("write_failed", f"stdin closed: {exc!r}", message.get("id"))
                )
            return len(data)

        async with task_group() as tg:
            tg.start_soon(_read_stdout, target, send_incoming)
            try:
                yield Channel(send, incoming, {"pid": target.pid, "target": target})
            finally:
                tg.cancel_scope.cancel()
                incoming.close()


async def _read_stdout(target: TargetProcess, out: MemoryObjectSendStream[Incoming]) -> None:
    stdout = target.process.stdout
    assert stdout is not None
    buf = bytearray()
    scan = 0
    async with out:
        while True:
            try:
                chunk = await stdout.receive(1 << 20)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                break
            buf += chunk
            start = 0
            while (nl := buf.find(b"\n", scan)) >= 0:
                if nl > start:
                    with memoryview(buf) as view:
                        await deliver(out, _decode(view[start:nl]))
                start = scan = nl + 1
            if start:
                del buf[:start]
            scan = len(buf)
        if buf.strip():
            await deliver(
                out, TransportError("truncated_line", f"stdout ended inside a message ({len(buf)} bytes)")
            )
        # EOF on stdout: the server is gone or going. Give it a moment to report why.
        with anyio.move_on_after(1.0):
            await target.process.wait()
        await deliver(out, TransportError("server_exit", target.describe_exit(), fatal=True))


def _decode(line: memoryview) -> Incoming:
    try:
        return Received(orjson.loads(line), len(line) + 1)
    except orjson.JSONDecodeError:
        text = bytes(line[:200]).decode("utf-8", "replace")
        return TransportError("non_json", f"stdout line is not JSON: {text!r}")
