"""The ``mcp`` SDK's own client, as a worker process of ``mcp-loadtest run --client sdk``.

A standalone script, like the reference server: it imports only ``mcp``, ``anyio`` (which every
``mcp`` release is built on and requires) and the standard library, so it runs unchanged in any
environment that has ``mcp`` 1.8 or later, 1.x or 2.x, installed. The tester starts it with that
environment's interpreter and talks to it over stdin and stdout, one JSON object per line:

    tester -> worker                                   worker -> tester
    {"t": "hello", "id": n}                            {"t": "hello", "id": n, "now": ns, "mcp": "1.8.0", ...}
    {"t": "open", "id": n, "sid": s, "transport":      {"t": "opened", "id": n, "ok": true, "start": ns,
     "stdio"|"sse"|"http", "command"|"url", "env",      "end": ns, "protocol_version": ..., "server_info": {...}}
     "headers", "timeout": s}                          (or "ok": false, "error": "...")
    {"t": "call", "id": k, "sid": s, "method": ...,     {"t": "done", "id": k, "start": ns, "end": ns,
     "params": {...}, "progress": bool, "timeout": s}   "result": {...} | "error": {kind, detail, silent},
                                                        "progress": n}
    {"t": "close", "id": n, "sid": s}                  {"t": "closed", "id": n}
    {"t": "stats", "id": n}                            {"t": "stats", "id": n, "cpu_s": x, "harness_cpu_s": x, ...}
                                                       {"t": "dead", "sid": s, "error": "..."}  (unasked: a
                                                        session's transport failed)
    end of stdin: close every session (bounded), exit.

Each simulated session is one ``ClientSession`` over that release's ``stdio_client``,
``sse_client`` or Streamable HTTP client (``streamable_http_client`` where it exists, 1.24 on;
``streamablehttp_client`` before), with the SDK's defaults, as an agent would use it. Calls go
through the typed methods an agent calls (``call_tool``, ``read_resource``, ``get_prompt``,
``list_tools``, ``send_ping``); results go back as the SDK parsed them, dumped by alias (the
JSON-RPC field names). Times are this process's ``time.perf_counter_ns()``; the tester maps them
onto its own clock. ``cpu_s`` is this process's CPU; ``harness_cpu_s`` the part of it spent on
this protocol (parsing plans, dumping and writing results), so that the SDK's own cost is the
difference.

The protocol owns the real stdout: anything else printed goes to stderr, which the tester logs
(with the stderr of the stdio servers this client starts).
"""

import asyncio
import inspect
import json
import logging
import os
import platform
import resource
import sys
import time
import warnings
from contextlib import asynccontextmanager, suppress
from typing import Any

# Newer pydantic-settings warns (once, at import) about 1.x's Settings model; harmless here.
warnings.filterwarnings("ignore", module=r"pydantic_settings(\.|$)")
# 1.24+ deprecates streamablehttp_client; we only call it where the new name does not exist.
warnings.filterwarnings("ignore", category=DeprecationWarning)

try:
    import mcp
except ImportError as exc:  # the wrong interpreter: say so in one line, not a traceback
    print(f"sdk_worker: {sys.executable} cannot import mcp: {exc}", file=sys.stderr)
    raise SystemExit(3) from None
import anyio  # noqa: E402  (every mcp release depends on it)
import mcp.client.streamable_http as _streamable  # noqa: E402
from mcp import ClientSession  # noqa: E402
from mcp.client.sse import sse_client  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

try:
    from mcp.shared._httpx_utils import create_mcp_http_client
except ImportError:  # pragma: no cover - every release this supports has it
    create_mcp_http_client = None

PROTOCOL = 1
#: The Streamable HTTP client: the new name (1.24+, 2.x) when it exists, as agents now use.
_HTTP_CLIENT = getattr(_streamable, "streamable_http_client", None)
_HTTP_CLIENT_OLD = getattr(_streamable, "streamablehttp_client", None)
#: How long a session's teardown (transport close, DELETE, server exit) may take.
CLOSE_GRACE_S = 3.0
#: After a call failed like a broken connection: how long to wait for its session's fate, so
#: that the call's error names the cause (say, the SSE event limit) and not just "closed".
CAUSE_GRACE_S = 0.5
#: Exceptions whose message is only a symptom of the session ending.
_CONNECTION_CODE = -32000


def _mcp_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("mcp")
    except importlib.metadata.PackageNotFoundError:
        return ""


def _accepts(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _leaves(exc: BaseException) -> list[BaseException]:
    """The real exceptions inside (nested) exception groups, cancellations left out."""
    inner = getattr(exc, "exceptions", None)
    if isinstance(inner, (list, tuple)):
        out: list[BaseException] = []
        for item in inner:
            out.extend(_leaves(item))
        return out
    if isinstance(exc, (anyio.get_cancelled_exc_class(), asyncio.CancelledError)):
        return []
    return [exc]


def describe(exc: BaseException) -> str:
    """``Type: message`` of the exception that matters (the first real one in a group)."""
    leaves = _leaves(exc) or [exc]
    first = leaves[0]
    text = str(first).strip() or repr(first)
    return f"{type(first).__name__}: {text}"[:500]


def classify(exc: BaseException) -> dict[str, Any]:
    """An error as the tester's loud error kinds: ``jsonrpc_<code>`` for the SDK's McpError /
    MCPError (a JSON-RPC error as the SDK presents it), ``sdk_error`` for any other exception."""
    leaves = _leaves(exc) or [exc]
    first = leaves[0]
    error = getattr(first, "error", None)
    code = getattr(error, "code", None)
    if type(first).__name__ in ("McpError", "MCPError") and isinstance(code, int):
        message = str(getattr(error, "message", "") or first)
        return {"kind": f"jsonrpc_{code}", "detail": message[:500], "silent": False, "code": code}
    return {"kind": "sdk_error", "detail": describe(first), "silent": False}


class Unsupported(Exception):
    """This release's client cannot make the call as planned."""


class Harness:
    """CPU spent on this protocol, so that the tester can tell it from the SDK's own."""

    def __init__(self) -> None:
        self.cpu_s = 0.0

    def __enter__(self) -> "Harness":
        self._t = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_s += time.process_time() - self._t


class Session:
    """One ``ClientSession`` and the calls in flight on it."""

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.client: Any = None
        self.tg: Any = None
        self.scope = anyio.CancelScope()
        self.close_requested = anyio.Event()
        self.ended = anyio.Event()
        #: call id -> what is known of it so far (start, end, error), until it is answered.
        self.pending: dict[int, dict[str, Any]] = {}
        #: Exceptions the transport handed to the session (message_handler), described.
        self.transport_errors: list[str] = []

    async def on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.transport_errors.append(describe(message))
        await anyio.lowlevel.checkpoint()


class Worker:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.write_lock = anyio.Lock()
        self.harness = Harness()
        self.sessions: dict[int, Session] = {}
        self.tg: Any = None

    # -- output -----------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        with self.harness:
            data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
            self.writer.write(data)
        async with self.write_lock:
            await self.writer.drain()

    # -- input ------------------------------------------------------------------------------

    async def serve(self, reader: asyncio.StreamReader) -> None:
        async with anyio.create_task_group() as tg:
            self.tg = tg
            while True:
                line = await reader.readline()
                if not line:
                    break
                with self.harness:
                    message = json.loads(line)
                await self.dispatch(message)
            # End of input: the tester is done (or gone). Close every session, bounded.
            async with anyio.create_task_group() as closing:
                for session in list(self.sessions.values()):
                    closing.start_soon(self.close_session, session)
            tg.cancel_scope.cancel()

    async def dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if kind == "call":
            session = self.sessions.get(message["sid"])
            if session is None or session.tg is None:
                await self.send(
                    {
                        "t": "done",
                        "id": message["id"],
                        "start": time.perf_counter_ns(),
                        "end": time.perf_counter_ns(),
                        "error": {"kind": "sdk_error", "detail": "the session is not open", "silent": False},
                        "progress": 0,
                    }
                )
                return
            session.tg.start_soon(self.run_call, session, message)
        elif kind == "hello":
            await self.send(
                {
                    "t": "hello",
                    "id": message["id"],
                    "now": time.perf_counter_ns(),
                    "protocol": PROTOCOL,
                    "mcp": _mcp_version(),
                    "api": 2 if hasattr(mcp, "MCPError") else 1,
                    "python": platform.python_version(),
                    "pid": os.getpid(),
                    "http_client": "streamable_http_client"
                    if _HTTP_CLIENT is not None
                    else "streamablehttp_client",
                }
            )
        elif kind == "open":
            session = Session(message["sid"])
            self.sessions[session.sid] = session
            self.tg.start_soon(self.run_session, session, message)
        elif kind == "close":
            self.tg.start_soon(self.close_and_reply, message)
        elif kind == "stats":
            times = os.times()
            await self.send(
                {
                    "t": "stats",
                    "id": message["id"],
                    "cpu_s": times.user + times.system,
                    "harness_cpu_s": self.harness.cpu_s,
                    "rss_peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                    "sessions": len(self.sessions),
                }
            )

    # -- sessions ---------------------------------------------------------------------------

    async def run_session(self, session: Session, message: dict[str, Any]) -> None:
        start = time.perf_counter_ns()
        opened = False
        cause = None
        with session.scope:
            try:
                async with (
                    open_streams(message) as streams,
                    ClientSession(streams[0], streams[1], message_handler=session.on_message) as client,
                ):
                    with anyio.fail_after(float(message["timeout"])):
                        hello = await client.initialize()
                    end = time.perf_counter_ns()
                    with self.harness:
                        dumped = hello.model_dump(by_alias=True, mode="json", exclude_none=True)
                    async with anyio.create_task_group() as tg:
                        # Ready for calls before the tester hears that the session is open.
                        session.client = client
                        session.tg = tg
                        await self.send(
                            {
                                "t": "opened",
                                "id": message["id"],
                                "ok": True,
                                "start": start,
                                "end": end,
                                "protocol_version": dumped.get("protocolVersion"),
                                "server_info": dumped.get("serverInfo") or {},
                            }
                        )
                        opened = True
                        await session.close_requested.wait()
                        tg.cancel_scope.cancel()
            except TimeoutError:
                cause = f"initialize got no answer within {float(message['timeout']):g}s"
            except Exception as exc:  # the transport or the session failed: report, never crash
                cause = describe(exc)
        session.tg = None
        session.ended.set()
        if session.close_requested.is_set():
            cause = None  # what happens while closing on purpose is no failure of a call
        if not opened:
            await self.send(
                {"t": "opened", "id": message["id"], "ok": False, "error": cause or "closed before it opened"}
            )
            self.sessions.pop(session.sid, None)
            return
        # First the news that the session is gone (the tester then opens a new one instead of
        # sending more calls here), then the calls its end cut short, with the cause.
        if cause is not None:
            await self.send({"t": "dead", "sid": session.sid, "error": cause})
        for call_id, state in list(session.pending.items()):
            session.pending.pop(call_id, None)
            why = f"session ended: {cause}" if cause else "session closed"
            error = state.get("error")
            if error is not None:
                error = {**error, "detail": f"{error['detail']} ({why})"}
            else:
                error = {"kind": "sdk_error", "detail": why, "silent": False}
            await self.send(
                {
                    "t": "done",
                    "id": call_id,
                    "start": state["start"],
                    "end": state.get("end") or time.perf_counter_ns(),
                    "error": error,
                    "progress": state.get("progress", 0),
                }
            )

    async def close_session(self, session: Session) -> None:
        session.close_requested.set()
        with anyio.move_on_after(CLOSE_GRACE_S):
            await session.ended.wait()
        if not session.ended.is_set():
            # A teardown that hangs (a server that will not exit, a DELETE never answered)
            # is cut off: the tester's own deadline for this close is longer than ours.
            session.scope.cancel()
            with anyio.move_on_after(CLOSE_GRACE_S):
                await session.ended.wait()
        self.sessions.pop(session.sid, None)

    async def close_and_reply(self, message: dict[str, Any]) -> None:
        session = self.sessions.get(message["sid"])
        if session is not None:
            await self.close_session(session)
        await self.send({"t": "closed", "id": message["id"]})

    # -- calls ------------------------------------------------------------------------------

    async def run_call(self, session: Session, message: dict[str, Any]) -> None:
        call_id = message["id"]
        state: dict[str, Any] = {"start": time.perf_counter_ns(), "progress": 0}
        session.pending[call_id] = state
        seen_errors = len(session.transport_errors)
        result = None
        try:
            with anyio.move_on_after(float(message["timeout"])) as deadline:
                answer = await perform(session.client, message, state)
            state["end"] = time.perf_counter_ns()
            if deadline.cancelled_caught:
                noticed = session.transport_errors[seen_errors:]
                if noticed:  # the SDK knew something went wrong, yet the call hung
                    state["error"] = {
                        "kind": "sdk_error",
                        "detail": f"no answer by the deadline after: {noticed[-1]}",
                        "silent": False,
                    }
                else:
                    state["error"] = {
                        "kind": "lost",
                        "detail": "no answer by the deadline, and the SDK raised nothing",
                        "silent": True,
                    }
            else:
                with self.harness:
                    result = answer.model_dump(by_alias=True, mode="json", exclude_none=True)
        except Unsupported as exc:
            state["end"] = time.perf_counter_ns()
            state["error"] = {"kind": "sdk_unsupported", "detail": str(exc), "silent": False}
        except Exception as exc:
            state["end"] = time.perf_counter_ns()
            error = classify(exc)
            code = error.pop("code", None)
            state["error"] = error
            if code == _CONNECTION_CODE or error["kind"] == "sdk_error":
                # If the session is going down, its end cancels us here and answers this call
                # with the cause; otherwise the error stands as it is.
                await anyio.sleep(CAUSE_GRACE_S)
        if session.pending.pop(call_id, None) is None:
            return  # already answered (the session ended)
        reply: dict[str, Any] = {
            "t": "done",
            "id": call_id,
            "start": state["start"],
            "end": state["end"],
            "progress": state["progress"],
        }
        if "error" in state:
            reply["error"] = state["error"]
        else:
            reply["result"] = result
        await self.send(reply)


async def perform(client: Any, message: dict[str, Any], state: dict[str, Any]) -> Any:
    """One call through the SDK's typed method for it, as an agent would make it."""
    method = message["method"]
    params = message.get("params") or {}
    if method == "tools/call":
        kwargs: dict[str, Any] = {}
        if message.get("progress"):
            if not _accepts(client.call_tool, "progress_callback"):
                raise Unsupported(f"mcp {_mcp_version()}'s ClientSession.call_tool has no progress_callback")

            async def on_progress(*_args: Any, **_kwargs: Any) -> None:
                state["progress"] += 1

            kwargs["progress_callback"] = on_progress
        return await client.call_tool(params["name"], params.get("arguments"), **kwargs)
    if method == "resources/read":
        return await client.read_resource(params["uri"])
    if method == "prompts/get":
        return await client.get_prompt(params["name"], params.get("arguments"))
    if method == "tools/list":
        return await client.list_tools()
    if method == "prompts/list":
        return await client.list_prompts()
    if method == "resources/list":
        return await client.list_resources()
    if method == "ping":
        return await client.send_ping()
    raise Unsupported(f"the SDK-client mode does not make {method!r} calls")


@asynccontextmanager
async def open_streams(message: dict[str, Any]) -> Any:
    """This release's client transport for the session: yields its (read, write, ...) tuple."""
    transport = message["transport"]
    headers = message.get("headers") or None
    if transport == "stdio":
        argv = message["command"]
        env = {**os.environ, **(message.get("env") or {})}
        params = StdioServerParameters(command=argv[0], args=list(argv[1:]), env=env)
        # The server's stderr goes to ours, which the tester keeps in its log.
        async with stdio_client(params, errlog=sys.stderr) as streams:
            yield streams
    elif transport == "sse":
        async with sse_client(message["url"], headers=headers) as streams:
            yield streams
    elif _HTTP_CLIENT is not None:
        if headers and create_mcp_http_client is not None:
            async with (
                create_mcp_http_client(headers=headers) as http,
                _HTTP_CLIENT(message["url"], http_client=http) as streams,
            ):
                yield streams
        else:
            async with _HTTP_CLIENT(message["url"]) as streams:
                yield streams
    else:
        async with _HTTP_CLIENT_OLD(message["url"], headers=headers) as streams:
            yield streams


async def main() -> None:
    loop = asyncio.get_running_loop()
    # The protocol gets the real stdout; fd 1 becomes stderr, so that a stray print anywhere
    # (the SDK, a library) can never corrupt it.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    try:
        await Worker(writer).serve(reader)
    finally:
        transport.close()


if __name__ == "__main__":
    logging.basicConfig(level="WARNING", stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    with suppress(KeyboardInterrupt, BrokenPipeError, ConnectionResetError):
        anyio.run(main)
