"""A near-free MCP server for benchmarks: Streamable HTTP (JSON responses) or stdio; ``echo``, ``ping``.

The bundled reference server (FastMCP) spends about a millisecond of CPU per call; this one
spends a few tens of microseconds (raw asyncio, no framework), so that against it the load
generator, not the server, is the bottleneck. It is what ``--workers`` scaling and the
generator's own ceiling are measured against on a machine without cores to spare.

Not a conformance target: JSON responses only, no GET stream (405), no resumption, no
batches; a session is an id and nothing else.

    python bench/null_server.py --port 8765        # then http://127.0.0.1:8765/mcp
    python bench/null_server.py --transport stdio  # one session on stdin/stdout
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys
from typing import Any

import orjson

_SESSIONS = itertools.count(1)
_LATEST = "2025-11-25"
_TOOLS = {
    "tools": [
        {
            "name": "echo",
            "description": "Returns its text argument.",
            "inputSchema": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
            },
        }
    ]
}


def _response(status: bytes, body: bytes = b"", extra: bytes = b"") -> bytes:
    ctype = b"Content-Type: application/json\r\n" if body else b""
    return b"HTTP/1.1 %s\r\n%sContent-Length: %d\r\n%s\r\n%s" % (status, ctype, len(body), extra, body)


def _answer(message: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The JSON-RPC answer to a request, and extra response headers."""
    method = message.get("method")
    params = message.get("params") or {}
    extra = b""
    result: Any
    if method == "tools/call" and params.get("name") == "echo":
        text = (params.get("arguments") or {}).get("text", "")
        result = {"content": [{"type": "text", "text": text}], "isError": False}
    elif method == "ping":
        result = {}
    elif method == "initialize":
        extra = b"Mcp-Session-Id: null-%d\r\n" % next(_SESSIONS)
        result = {
            "protocolVersion": params.get("protocolVersion") or _LATEST,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "null-server", "version": "0"},
        }
    elif method == "tools/list":
        result = _TOOLS
    else:
        return {
            "jsonrpc": "2.0",
            "id": message.get("id"),
            "error": {"code": -32601, "message": "not here"},
        }, extra
    return {"jsonrpc": "2.0", "id": message.get("id"), "result": result}, extra


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            at = head.lower().find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = self.buffer[end + 4 : total]
            self.buffer = self.buffer[total:]
            assert self.transport is not None
            self.transport.write(self._handle(head[: head.find(b" ")], body))

    @staticmethod
    def _handle(method: bytes, body: bytes) -> bytes:
        if method == b"POST":
            try:
                message = orjson.loads(body)
            except orjson.JSONDecodeError:
                return _response(b"400 Bad Request")
            if not isinstance(message, dict) or "method" not in message or "id" not in message:
                return _response(b"202 Accepted")  # a notification (or a response): nothing to say
            answer, extra = _answer(message)
            return _response(b"200 OK", orjson.dumps(answer), extra)
        if method == b"DELETE":
            return _response(b"200 OK")
        return _response(b"405 Method Not Allowed", extra=b"Allow: POST, DELETE\r\n")


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Connection, host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def serve_stdio() -> None:
    """One session on stdin/stdout, newline-delimited JSON-RPC, until stdin ends."""
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(message, dict) and "method" in message and "id" in message:
            answer, _ = _answer(message)
            out.write(orjson.dumps(answer) + b"\n")
            out.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=["http", "stdio"], default="http")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if args.transport == "stdio":
        serve_stdio()
    else:
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
