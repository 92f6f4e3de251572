"""Our SDK-independent client against a server built on another SDK: the TypeScript
``@modelcontextprotocol/server-everything`` from npm, on stdio, legacy SSE and Streamable HTTP.

The server is installed once (pinned) by :mod:`tests.npm_servers`; these tests skip when node or
npm is missing, unless ``MCP_LOADTEST_REQUIRE_NPM=1`` makes that a failure.

What the server does, as read from its dist/ (2026.8.31, on @modelcontextprotocol/sdk 1.x):
``node dist/index.js stdio|sse|streamableHttp``; the HTTP transports listen on ``$PORT`` (default
3001) at ``/sse`` + ``/message?sessionId=`` and ``/mcp``. It binds every interface, so
:data:`~tests.npm_servers.LOOPBACK_IMPORT` pins it to 127.0.0.1. On stdio it writes only JSON-RPC
to stdout (its banner goes to stderr); the Streamable HTTP server logs every request to stdout,
which the launcher discards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from loadtest.protocol.session import Anomaly, Session, open_session
from loadtest.protocol.transports import Channel, connect
from loadtest.protocol.transports.base import LATEST_PROTOCOL_VERSION, PROTOCOL_VERSIONS
from loadtest.run.targets.reference import Endpoint, free_port, start_target
from tests.npm_servers import everything_command, require_everything

pytestmark = [pytest.mark.anyio, pytest.mark.npm]
TRANSPORTS = ["stdio", "sse", "http"]
STREAMING = ["sse", "http"]


@pytest.fixture(scope="module")
def everything_argv() -> list[str]:
    """The argv that starts server-everything, minus the transport (installs it on first use)."""
    return require_everything()


@asynccontextmanager
async def everything_endpoint(argv: list[str], transport: str) -> AsyncIterator[Endpoint]:
    """server-everything for ``transport``: listening on a free loopback port, or the stdio command."""
    port = None if transport == "stdio" else free_port()
    env = {"PORT": str(port)} if port is not None else {}
    async with start_target(
        transport, command=everything_command(argv, transport), url=None, env=env, port=port
    ) as endpoint:
        yield endpoint


@asynccontextmanager
async def everything_session(
    endpoint: Endpoint, anomalies: list[Anomaly], **connect_options: Any
) -> AsyncIterator[tuple[Channel, Session]]:
    async with (
        connect(
            endpoint.transport,  # type: ignore[arg-type]
            command=endpoint.command,
            url=endpoint.url,
            env=endpoint.env,
            **connect_options,
        ) as channel,
        open_session(channel, request_timeout=30, on_anomaly=anomalies.append) as session,
    ):
        yield channel, session


def _text(result: dict[str, Any]) -> str:
    return "".join(c["text"] for c in result["content"] if c["type"] == "text")


def _docs_dir(argv: list[str]) -> Path:
    """The installed package's docs/, which it serves as static resources."""
    return Path(argv[-1]).parent / "docs"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tools_resources_prompts_and_errors(everything_argv: list[str], transport: str) -> None:
    anomalies: list[Anomaly] = []
    async with (
        everything_endpoint(everything_argv, transport) as endpoint,
        everything_session(endpoint, anomalies) as (_, session),
    ):
        hello = await session.initialize()
        assert hello.protocol_version == LATEST_PROTOCOL_VERSION
        assert hello.server_info["name"] == "mcp-servers/everything"
        assert {"tools", "resources", "prompts"} <= set(hello.capabilities)

        tools = await session.request("tools/list")
        assert tools.error is None
        assert {t["name"] for t in tools.result["tools"]} >= {
            "echo",
            "get-sum",
            "trigger-long-running-operation",
        }

        # Its echo takes `message` (not `text`) and prefixes the answer.
        echo = await session.request(
            "tools/call", {"name": "echo", "arguments": {"message": "héllo ✓ nonce-1"}}
        )
        assert echo.error is None
        assert echo.result.get("isError") is not True
        assert _text(echo.result) == "Echo: héllo ✓ nonce-1"

        total = await session.request("tools/call", {"name": "get-sum", "arguments": {"a": 2, "b": 3}})
        assert _text(total.result) == "The sum of 2 and 3 is 5."

        # This SDK reports a bad tool call as an isError result, not a JSON-RPC error.
        bad = await session.request("tools/call", {"name": "echo", "arguments": {}})
        assert bad.error is None
        assert bad.result["isError"] is True
        assert "message" in _text(bad.result)

        resources = await session.request("resources/list")
        uris = {r["uri"] for r in resources.result["resources"]}
        uri = "demo://resource/static/document/instructions.md"
        assert uri in uris
        read = await session.request("resources/read", {"uri": uri})
        assert read.error is None
        (content,) = read.result["contents"]
        assert content["mimeType"] == "text/markdown"
        assert content["text"] == (_docs_dir(everything_argv) / "instructions.md").read_text(encoding="utf-8")
        assert read.nbytes > len(content["text"].encode())

        dynamic = await session.request("resources/read", {"uri": "demo://resource/dynamic/text/7"})
        assert dynamic.result["contents"][0]["text"].startswith("Resource 7: This is a plaintext resource")

        missing = await session.request("resources/read", {"uri": "demo://resource/nope"})
        assert missing.error is not None
        assert missing.error.kind == "jsonrpc_-32602"

        prompts = await session.request("prompts/list")
        assert {p["name"] for p in prompts.result["prompts"]} >= {"simple-prompt", "args-prompt"}
        simple = await session.request("prompts/get", {"name": "simple-prompt"})
        assert simple.result["messages"][0]["content"]["text"] == "This is a simple prompt without arguments."
        args = await session.request("prompts/get", {"name": "args-prompt", "arguments": {"city": "Paris"}})
        assert args.result["messages"][0]["content"]["text"] == "What's weather in Paris?"

        assert (await session.request("ping")).result == {}

        unknown = await session.request("no/such/method")
        assert unknown.error is not None
        assert unknown.error.kind == "jsonrpc_-32601"
        assert not unknown.error.silent
    assert anomalies == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_long_running_operation_sends_progress(everything_argv: list[str], transport: str) -> None:
    anomalies: list[Anomaly] = []
    async with (
        everything_endpoint(everything_argv, transport) as endpoint,
        everything_session(endpoint, anomalies) as (_, session),
    ):
        await session.initialize()
        params = {"name": "trigger-long-running-operation", "arguments": {"duration": 0.4, "steps": 4}}
        outcome = await session.request("tools/call", params, progress=True)
        assert outcome.error is None
        assert _text(outcome.result) == "Long running operation completed. Duration: 0.4 seconds, Steps: 4."
        # Every step's notification arrives before the result, on each transport.
        assert outcome.progress == 4
        assert outcome.latency_ns >= 400_000_000

        quiet = await session.request("tools/call", {**params, "arguments": {"duration": 0.1, "steps": 2}})
        assert quiet.error is None
        assert quiet.progress == 0  # no progress token, no notifications
    assert anomalies == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_concurrent_echoes_on_one_session_are_answered_by_id(
    everything_argv: list[str], transport: str
) -> None:
    anomalies: list[Anomaly] = []
    answers: dict[int, str] = {}
    async with (
        everything_endpoint(everything_argv, transport) as endpoint,
        everything_session(endpoint, anomalies) as (_, session),
    ):
        await session.initialize()

        async def one(i: int) -> None:
            outcome = await session.request(
                "tools/call", {"name": "echo", "arguments": {"message": f"nonce-{i}"}}
            )
            assert outcome.error is None, outcome.error
            answers[i] = _text(outcome.result)

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(one, i)
    assert answers == {i: f"Echo: nonce-{i}" for i in range(50)}
    assert anomalies == []


@pytest.mark.parametrize("transport", STREAMING)
async def test_parallel_sessions_on_one_server_are_kept_apart(
    everything_argv: list[str], transport: str
) -> None:
    anomalies: list[Anomaly] = []
    answers: dict[tuple[int, int], str] = {}
    async with everything_endpoint(everything_argv, transport) as endpoint:

        async def client(s: int) -> None:
            async with everything_session(endpoint, anomalies) as (_, session):
                await session.initialize()
                for i in range(10):
                    outcome = await session.request(
                        "tools/call", {"name": "echo", "arguments": {"message": f"s{s}-{i}"}}
                    )
                    answers[s, i] = _text(outcome.result)

        async with anyio.create_task_group() as tg:
            for s in range(8):
                tg.start_soon(client, s)
    assert answers == {(s, i): f"Echo: s{s}-{i}" for s in range(8) for i in range(10)}
    assert anomalies == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_protocol_version_we_speak_is_accepted(
    everything_argv: list[str], transport: str
) -> None:
    anomalies: list[Anomaly] = []
    async with everything_endpoint(everything_argv, transport) as endpoint:
        for version in PROTOCOL_VERSIONS:
            async with everything_session(endpoint, anomalies) as (_, session):
                hello = await session.initialize(version)
                assert hello.protocol_version == version
                # On HTTP every later request carries MCP-Protocol-Version, which the server checks.
                echo = await session.request(
                    "tools/call", {"name": "echo", "arguments": {"message": version}}
                )
                assert _text(echo.result) == f"Echo: {version}"
    assert anomalies == []


@pytest.mark.parametrize("transport", STREAMING)
async def test_http_servers_listen_on_loopback_only(everything_argv: list[str], transport: str) -> None:
    """Left to itself the server binds every interface; the preload must keep it on 127.0.0.1."""
    async with everything_endpoint(everything_argv, transport) as endpoint:
        assert endpoint.process is not None
        listening = [
            c.laddr
            for c in psutil.Process(endpoint.process.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
    assert listening
    assert {addr.ip for addr in listening} == {"127.0.0.1"}


async def test_http_get_stream_and_delete(everything_argv: list[str]) -> None:
    """The optional GET stream opens, and closing the session DELETEs it."""
    anomalies: list[Anomaly] = []
    async with everything_endpoint(everything_argv, "http") as endpoint:
        async with everything_session(endpoint, anomalies, get_stream=True) as (channel, session):
            await session.initialize()
            assert (await session.request("ping")).result == {}
            for _ in range(250):  # the GET goes out after `initialized`; give it up to 5 s to answer
                if channel.info.get_stream_status is not None:
                    break
                await anyio.sleep(0.02)
            assert channel.info.get_stream_status == 200
            assert channel.info.session_id
        assert channel.info.delete_status == 200
    assert anomalies == []
