"""stdio: newline-delimited JSON-RPC over a child process's pipes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
from anyio.abc import ByteReceiveStream, TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from loadtest.core.aio import read_lines, task_group
from loadtest.core.process import TargetProcess, launch
from loadtest.protocol.transports.base import (
    Channel,
    ChannelInfo,
    Incoming,
    Message,
    Received,
    TransportError,
    deliver,
)

#: Messages buffered between the reader and the session before the reader waits.
_QUEUE = 1024
#: Bytes waiting in the stdin pipe's buffer above which a send waits for it to drain.
_DIRECT_LIMIT = 1 << 16
#: How long a server that wrote something other than JSON-RPC on stdout before its first
#: message has to send a real one before its first request fails (see ``_Reader``). The SDKs'
#: clients skip such a line and go on, so a banner must not fail a server that then works;
#: 5 s lets one finish starting on a busy machine, and is still far short of a request deadline.
NON_JSON_GRACE_S = 5.0


@asynccontextmanager
async def connect_stdio(
    command: str | Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stderr_log: Path | None = None,
) -> AsyncIterator[Channel]:
    """Launch ``command`` and talk JSON-RPC to it over stdin/stdout.

    The server's stderr is appended to ``stderr_log``, each line prefixed with its pid (the
    servers of many sessions may share one log). The child is stopped (stdin closed, then
    SIGTERM, then SIGKILL) when the block exits.
    """
    async with launch(command, env=env, cwd=cwd, stderr_log=stderr_log, log_tag=True) as target:
        stdin = target.process.stdin
        assert stdin is not None
        send_incoming, incoming = anyio.create_memory_object_stream[Incoming](_QUEUE)
        reader = _Reader(target, send_incoming)
        # anyio's wrapper yields to the event loop twice per write; while the pipe's buffer
        # has room, writing to the asyncio writer beneath it directly is all a send needs.
        writer = getattr(stdin, "_stream", None)
        direct = writer if isinstance(writer, asyncio.StreamWriter) else None

        async def send(message: Message) -> int:
            data = orjson.dumps(message) + b"\n"
            if reader.first_request is None and "method" in message and "id" in message:
                reader.first_request = message["id"]
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
            reader.tg = tg
            tg.start_soon(reader.run)
            try:
                yield Channel(send, incoming, ChannelInfo(process=target, stderr_log=stderr_log))
            finally:
                tg.cancel_scope.cancel()
                incoming.close()


class _Reader:
    """Reads the server's stdout into JSON-RPC messages for the session.

    What a server writes on stdout that is not JSON is reported as a transport error. If that
    comes before its first message (a banner, a debug print), the server gets
    :data:`NON_JSON_GRACE_S` to send a real one; without it, the first request fails at once
    with what the server wrote, instead of being ``lost`` at its deadline with no clue why.
    """

    def __init__(self, target: TargetProcess, out: MemoryObjectSendStream[Incoming]) -> None:
        self.target = target
        self.out = out
        self.tg: TaskGroup | None = None
        #: The id of the first request sent (``initialize``), the one a garbled start fails.
        self.first_request: Any = None
        self.seen_message = False
        #: The first bytes of the first non-JSON line, while no message has come.
        self.garbage: str | None = None

    async def run(self) -> None:
        async with self.out:
            rest = await read_lines(self._stdout(), self._line)
            if rest.strip():
                await deliver(
                    self.out,
                    TransportError("truncated_line", f"stdout ended inside a message ({len(rest)} bytes)"),
                )
            # EOF on stdout: the server is gone or going. Give it a moment to report why.
            with anyio.move_on_after(1.0):
                await self.target.process.wait()
            detail = self.target.describe_exit()
            if self.garbage is not None and not self.seen_message:
                detail += f"; all it wrote on stdout was not JSON-RPC, starting {self.garbage}"
            await deliver(self.out, TransportError("server_exit", detail, fatal=True))

    def _stdout(self) -> ByteReceiveStream:
        stdout = self.target.process.stdout
        assert stdout is not None
        return stdout

    async def _line(self, line: memoryview) -> None:
        try:
            item: Incoming = Received(orjson.loads(line), len(line) + 1)
        except orjson.JSONDecodeError:
            text = _first_bytes(line)
            item = TransportError("non_json", f"stdout line is not JSON: {text}")
            if not self.seen_message and self.garbage is None:
                self.garbage = text
                if self.tg is not None:
                    self.tg.start_soon(self._garbled_start)
        else:
            self.seen_message = True
        await deliver(self.out, item)

    async def _garbled_start(self) -> None:
        await anyio.sleep(NON_JSON_GRACE_S)
        if self.seen_message:
            return
        detail = (
            f"before any JSON-RPC message the server wrote on stdout {self.garbage}, and no message"
            f" followed within {NON_JSON_GRACE_S:g}s (an MCP stdio server writes only JSON-RPC"
            " messages on stdout; logs go to stderr)"
        )
        request = self.first_request
        await deliver(self.out, TransportError("non_json", detail, request, fatal=request is None))


def _first_bytes(line: memoryview) -> str:
    """The start of ``line`` as one printable line: a repr, cut at 200 bytes."""
    text = bytes(line[:200]).decode("utf-8", "replace")
    return repr(text) + (f" (+{len(line) - 200} bytes)" if len(line) > 200 else "")
