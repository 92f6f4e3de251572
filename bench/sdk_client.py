"""The `mcp` SDK's own client doing the benchmark's closed loop: the yardstick for generator cost.

Standalone: imports only `mcp`, anyio and the standard library, so it runs in any environment
that has the SDK (``bench/generator_cost.py`` runs it in the tester's venv, pinned to the
generator's core, against a fresh reference server). ``N`` sessions each call
``tools/call echo`` with a unique text and check the answer, back to back, like the
generator's closed loop with ``expect = { text = ... }``.

It talks to its parent on stdout, one JSON object per line, so the parent can sample the
server's CPU over exactly the window measured here:

    {"event": "ready", "sessions": N}                  all sessions initialised, warm-up begins
    {"event": "start"}                                 measurement begins (after warm-up)
    {"event": "end", "calls": n, "errors": n, "cpu_s": x, "wall_s": x}

Usage::

    python bench/sdk_client.py --transport http --url http://127.0.0.1:8000/mcp --sessions 16
    python bench/sdk_client.py --transport stdio --sessions 4 -- python server.py --transport stdio
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp import ClientSession


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def cpu_s() -> float:
    # Process CPU (all threads), user + system: what the parent compares with the server's.
    times = os.times()
    return times.user + times.system


@asynccontextmanager
async def open_streams(args: argparse.Namespace) -> AsyncIterator[Any]:
    if args.transport == "stdio":
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(command=args.command[0], args=list(args.command[1:]))
        # The server logs at WARNING only; whatever it says goes to our stderr (the parent drains it).
        async with stdio_client(params, errlog=sys.stderr) as streams:
            yield streams
    elif args.transport == "sse":
        from mcp.client.sse import sse_client

        async with sse_client(args.url, timeout=30.0) as streams:
            yield streams
    else:
        from mcp.client.streamable_http import streamable_http_client

        async with streamable_http_client(args.url) as streams:
            yield streams


class Loop:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.calls = 0
        self.errors = 0
        self.ready = 0
        self.all_ready = anyio.Event()
        self.stop = anyio.Event()
        self.failures: list[str] = []

    async def worker(self, index: int) -> None:
        try:
            async with open_streams(self.args) as streams, ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                self.ready += 1
                if self.ready == self.args.sessions:
                    self.all_ready.set()
                k = 0
                while not self.stop.is_set():
                    k += 1
                    text = f"sdk-{index}-{k:010d}"
                    result = await session.call_tool("echo", {"text": text})
                    content = result.content
                    # The same check the generator makes (exact text): the answer is ours.
                    if result.is_error or not content or getattr(content[0], "text", None) != text:
                        self.errors += 1
                    self.calls += 1
        except Exception as exc:  # a session that fails is reported, the others go on
            self.failures.append(f"session {index}: {type(exc).__name__}: {exc}")
            self.ready += 1  # do not wait for it forever
            if self.ready >= self.args.sessions:
                self.all_ready.set()

    async def run(self) -> None:
        args = self.args
        async with anyio.create_task_group() as tg:
            for index in range(args.sessions):
                tg.start_soon(self.worker, index)
            with anyio.fail_after(args.connect_timeout):
                await self.all_ready.wait()
            emit(event="ready", sessions=args.sessions - len(self.failures))
            await anyio.sleep(args.warmup)
            calls0, errors0, cpu0, wall0 = self.calls, self.errors, cpu_s(), time.perf_counter()
            emit(event="start")
            await anyio.sleep(args.duration)
            calls1, errors1, cpu1, wall1 = self.calls, self.errors, cpu_s(), time.perf_counter()
            emit(
                event="end",
                calls=calls1 - calls0,
                errors=errors1 - errors0,
                cpu_s=round(cpu1 - cpu0, 6),
                wall_s=round(wall1 - wall0, 6),
                failures=self.failures[:5],
            )
            self.stop.set()
            # Teardown is not measured (the parent stops waiting for it after a few seconds).
            tg.cancel_scope.cancel()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=("stdio", "sse", "http"), required=True)
    parser.add_argument("--url", help="sse / http: the server's endpoint")
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    parser.add_argument("command", nargs="*", help="stdio: the server command (after --)")
    args = parser.parse_args(argv)
    if args.transport == "stdio" and not args.command:
        parser.error("stdio needs the server command after --")
    if args.transport != "stdio" and not args.url:
        parser.error("--url is needed for sse and http")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        anyio.run(Loop(args).run)
    except TimeoutError:
        emit(event="error", detail=f"sessions not ready within {args.connect_timeout}s")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
