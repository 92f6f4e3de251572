"""The bundled reference MCP server: a standalone script for every ``mcp`` release from 1.8.0 on.

It imports only ``mcp`` and the standard library, so it runs unchanged in any environment that
has just ``mcp`` installed (``python reference_server.py --transport stdio``). It picks the
SDK's API at import time: ``mcp.server.mcpserver.MCPServer`` (2.x) when that exists, else
``mcp.server.fastmcp.FastMCP`` (1.x), and passes only the options the installed release knows.

Tools: ``echo``, ``blob``, ``sleep``, ``fail``, ``progress``; resource templates ``blob://{n}``
and ``blob://{n}/{seed}``; prompt ``greet``. Every result is plain text content (no
``structuredContent``), identical across releases. ``--delay-ms`` adds a server-side delay at
the start of every tool, resource and prompt handler.

Faults for soak and health tests, off by default: ``--leak-kb-per-session N`` keeps N KiB for
every ``initialize`` it receives over HTTP (legacy SSE and Streamable HTTP, stateless
included) and never gives it back, as SDK bugs that never deregister sessions do;
``--exit-after-calls N`` exits (code 70) on the Nth handler call and ``--hang-after-calls N``
stops answering from the Nth on (its event loop blocks while the process stays alive).

stdout belongs to the stdio transport: this script never prints; it logs to stderr at WARNING.
"""

import argparse
import asyncio
import contextlib
import importlib.metadata
import inspect
import logging
import os
import re
import sys
import time
import warnings
from typing import Any

# Newer pydantic-settings warns (once, at import) about 1.x FastMCP's Settings model; harmless.
warnings.filterwarnings("ignore", module=r"pydantic_settings(\.|$)")

try:  # mcp 2.x
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver import MCPServer as _Server
    from mcp.server.mcpserver.exceptions import ToolError

    SDK_API = 2
except ModuleNotFoundError as exc:  # mcp 1.x (any other import failure is a real error: re-raise)
    if exc.name != "mcp.server.mcpserver":
        raise
    from mcp.server.fastmcp import Context  # type: ignore[no-redef]
    from mcp.server.fastmcp import FastMCP as _Server  # type: ignore[assignment]
    from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]

    SDK_API = 1

SERVER_NAME = "mcp-loadtest-reference"
LOG_LEVEL = "WARNING"
#: Blobs at least this large are generated in a worker thread, so that one big request does
#: not hold the event loop (and every other session's traffic) for the whole generation.
_THREAD_THRESHOLD = 1 << 20

# --- payload: a copy of loadtest/run/payload.py's generator (a test keeps the two identical) ---

RECORD_SIZE = 64
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_FILL = 43
_DOUBLE = ALPHABET + ALPHABET
_FILLS = tuple(_DOUBLE[k : k + _FILL] for k in range(len(ALPHABET)))
SEED_MASK = 0xFFFFFFFF


def _records(seed: int, first: int, count: int) -> str:
    s = seed & SEED_MASK
    return "".join(f"{s:08x}:{i:010x}:{_FILLS[(s + i) % 62]}\n" for i in range(first, first + count))


def blob_text(n_bytes: int, seed: int = 0) -> str:
    """Return exactly ``n_bytes`` of the deterministic pattern for ``seed``."""
    if n_bytes < 0:
        raise ValueError("n_bytes must be >= 0")
    full, rest = divmod(n_bytes, RECORD_SIZE)
    text = _records(seed, 0, full + (1 if rest else 0))
    return text[:n_bytes]


# --- version-tolerant plumbing ---


def _params(fn: Any) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def _accepts_var_kwargs(fn: Any) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def _supported(fn: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """The items of ``wanted`` that ``fn`` names as parameters."""
    names = _params(fn)
    return {k: v for k, v in wanted.items() if k in names}


def _settings_fields() -> set[str]:
    """1.x: the names ``FastMCP(**settings)`` understands (its ``Settings`` model's fields)."""
    names = set(_params(_Server.__init__))
    if _accepts_var_kwargs(_Server.__init__):
        module = sys.modules.get(_Server.__module__)
        settings_cls = getattr(module, "Settings", None)
        fields = getattr(settings_cls, "model_fields", None) or {}
        names |= set(fields)
    return names


def _mcp_version() -> str:
    try:
        return importlib.metadata.version("mcp")
    except importlib.metadata.PackageNotFoundError:
        return ""


async def _blob(n_bytes: int, seed: int) -> str:
    if n_bytes >= _THREAD_THRESHOLD:
        return await asyncio.to_thread(blob_text, n_bytes, seed)
    return blob_text(n_bytes, seed)


class _Unsupported(Exception):
    pass


#: ``--leak-kb-per-session``: what the "leak" holds on to, never released.
_LEAKED: list[bytes] = []
#: A session starts with ``initialize``, or (2026-07-28, no handshake) ``server/discover``.
_INITIALIZE = re.compile(rb'"method"\s*:\s*"(?:initialize|server/discover)"')


def _leak_per_session(kb: int) -> None:
    """Keep ``kb`` KiB per HTTP session start, forever, whatever the SDK does with the session.

    Every ``mcp`` release from 1.8 on serves HTTP through ``uvicorn.Config(app, ...)``, so the
    ASGI app is wrapped there: the one place that is the same across releases and sees every
    request of both HTTP transports. ``uvicorn`` is a dependency of ``mcp`` itself.
    """
    import uvicorn

    size = kb * 1024
    original = uvicorn.Config.__init__

    def wrap(app: Any) -> Any:
        async def leaky(scope: Any, receive: Any, send: Any) -> None:
            if scope.get("type") != "http" or scope.get("method") != "POST":
                await app(scope, receive, send)
                return
            seen = False

            async def peek() -> Any:
                nonlocal seen
                message = await receive()
                if (
                    not seen
                    and message.get("type") == "http.request"
                    and _INITIALIZE.search(message.get("body", b""))
                ):
                    seen = True
                    # Written, not just reserved: untouched pages would not count in RSS.
                    _LEAKED.append(b"L" * size)
                return message

            await app(scope, peek, send)

        return leaky

    def init(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        original(self, wrap(app), *args, **kwargs)

    uvicorn.Config.__init__ = init  # type: ignore[method-assign]


def build_server(
    *,
    transport: str,
    host: str,
    port: int,
    json_response: bool,
    stateless: bool,
    delay_ms: float,
    exit_after_calls: int = 0,
    hang_after_calls: int = 0,
    leak_kb_per_session: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """The configured server and the keyword arguments for its ``run(transport, ...)``."""
    http_opts: dict[str, Any] = {"host": host, "port": port}
    if transport == "streamable-http":
        if json_response:
            http_opts["json_response"] = True
        if stateless:
            http_opts["stateless_http"] = True
    elif json_response or stateless:
        raise _Unsupported("--json-response and --stateless apply to --transport streamable-http only")
    if leak_kb_per_session > 0:
        if transport == "stdio":
            raise _Unsupported(
                "--leak-kb-per-session applies to sse and streamable-http (stdio has one session per process)"
            )
        _leak_per_session(leak_kb_per_session)

    run_kwargs: dict[str, Any] = {}
    if SDK_API == 2:
        # 2.x leaves serverInfo.version empty unless told; 1.x reports the mcp version itself.
        server = _Server(
            SERVER_NAME, **_supported(_Server.__init__, {"log_level": LOG_LEVEL, "version": _mcp_version()})
        )
        if transport != "stdio":
            runner = server.run_sse_async if transport == "sse" else server.run_streamable_http_async
            names = _params(runner)
            missing = sorted(set(http_opts) - names)
            if missing:
                raise _Unsupported(f"this mcp release's {transport} transport lacks: {', '.join(missing)}")
            run_kwargs = http_opts
    else:
        names = _settings_fields()
        settings: dict[str, Any] = {"log_level": LOG_LEVEL} if "log_level" in names else {}
        if transport != "stdio":
            missing = sorted(set(http_opts) - names)
            if missing:
                raise _Unsupported(f"this mcp release's {transport} transport lacks: {', '.join(missing)}")
            settings.update(http_opts)
        server = _Server(SERVER_NAME, **settings)

    delay = max(0.0, delay_ms) / 1000.0
    calls = 0

    async def pause() -> None:
        nonlocal calls
        calls += 1
        if exit_after_calls and calls >= exit_after_calls:
            logging.getLogger(SERVER_NAME).error("--exit-after-calls %d: exiting", exit_after_calls)
            os._exit(70)
        if hang_after_calls and calls >= hang_after_calls:
            logging.getLogger(SERVER_NAME).error("--hang-after-calls %d: hanging", hang_after_calls)
            while True:  # blocks the event loop: alive, listening, answering nothing
                time.sleep(3600)  # noqa: ASYNC251 - blocking is the point
        if delay:
            await asyncio.sleep(delay)

    tool_opts = _supported(server.tool, {"structured_output": False})

    def tool() -> Any:
        return server.tool(**tool_opts)

    @tool()
    async def echo(text: str) -> str:
        """Return ``text`` unchanged."""
        await pause()
        return text

    @tool()
    async def blob(n_bytes: int, seed: int = 0) -> str:
        """Return ``n_bytes`` of the self-checking payload for ``seed``."""
        await pause()
        return await _blob(n_bytes, seed)

    @tool()
    async def sleep(ms: float, nonce: str = "") -> str:
        """Sleep ``ms`` milliseconds, then say so."""
        await pause()
        await asyncio.sleep(max(0.0, ms) / 1000.0)
        return f"slept {ms:g} {nonce}"

    @tool()
    async def fail(nonce: str = "") -> str:
        """Always fail: the result has isError true."""
        await pause()
        raise ToolError(f"fail requested {nonce}")

    @tool()
    async def progress(steps: int, ctx: Context, nonce: str = "") -> str:  # type: ignore[type-arg]
        """Send ``steps`` progress notifications (when the caller gave a progressToken)."""
        await pause()
        for i in range(1, steps + 1):
            await ctx.report_progress(i, steps)
        return f"progress {steps} {nonce}"

    @server.resource("blob://{n}", mime_type="text/plain")
    async def blob_resource(n: str) -> str:
        """``n`` bytes of the payload with seed 0."""
        await pause()
        return await _blob(int(n), 0)

    @server.resource("blob://{n}/{seed}", mime_type="text/plain")
    async def blob_seed_resource(n: str, seed: str) -> str:
        """``n`` bytes of the payload with ``seed``."""
        await pause()
        return await _blob(int(n), int(seed))

    @server.prompt()
    async def greet(name: str) -> str:
        """A one-message greeting."""
        await pause()
        return f"Hello, {name}!"

    return server, run_kwargs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The mcp-loadtest reference MCP server.")
    parser.add_argument("--transport", choices=("stdio", "sse", "streamable-http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--json-response", action="store_true", help="Streamable HTTP: answer with application/json, not SSE"
    )
    parser.add_argument("--stateless", action="store_true", help="stateless Streamable HTTP")
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="delay added at the start of every handler"
    )
    parser.add_argument(
        "--leak-kb-per-session", type=int, default=0, help="HTTP: keep this many KiB per session, forever"
    )
    parser.add_argument(
        "--exit-after-calls", type=int, default=0, help="exit (code 70) on the Nth handler call"
    )
    parser.add_argument(
        "--hang-after-calls", type=int, default=0, help="stop answering from the Nth handler call"
    )
    return parser.parse_args(argv)


def _configure_logging() -> None:
    logging.basicConfig(level=LOG_LEVEL, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _configure_logging()
    try:
        server, run_kwargs = build_server(
            transport=args.transport,
            host=args.host,
            port=args.port,
            json_response=args.json_response,
            stateless=args.stateless,
            delay_ms=args.delay_ms,
            exit_after_calls=args.exit_after_calls,
            hang_after_calls=args.hang_after_calls,
            leak_kb_per_session=args.leak_kb_per_session,
        )
    except _Unsupported as exc:
        print(f"reference_server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    with contextlib.suppress(KeyboardInterrupt):
        server.run(args.transport, **run_kwargs)


if __name__ == "__main__":
    main()
