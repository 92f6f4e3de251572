"""The wire-level client against the real reference server, over real pipes and sockets."""

from __future__ import annotations

import pytest

from loadtest.protocol.session import open_session
from loadtest.protocol.transports.base import PROTOCOL_VERSIONS
from loadtest.run.payload import check_blob
from tests.conftest import MODES, reference_channel

pytestmark = pytest.mark.anyio
ALL_MODES = list(MODES)


def _text(result: dict) -> str:  # type: ignore[type-arg]
    return "".join(c["text"] for c in result["content"] if c["type"] == "text")


@pytest.mark.parametrize("mode", ALL_MODES)
async def test_every_tool_prompt_and_resource(mode: str) -> None:
    async with reference_channel(mode) as channel, open_session(channel, request_timeout=30) as session:
        hello = await session.initialize()
        assert hello.protocol_version in PROTOCOL_VERSIONS
        assert hello.server_info["name"] == "mcp-loadtest-reference"

        tools = await session.request("tools/list")
        assert {t["name"] for t in tools.result["tools"]} >= {"echo", "blob", "sleep", "fail", "progress"}

        echo = await session.request("tools/call", {"name": "echo", "arguments": {"text": "héllo ✓ nonce-1"}})
        assert _text(echo.result) == "héllo ✓ nonce-1"
        assert echo.result.get("isError") is not True

        blob = await session.request(
            "tools/call", {"name": "blob", "arguments": {"n_bytes": 5000, "seed": 42}}
        )
        assert check_blob(_text(blob.result), 5000, 42).verdict == "ok"

        slept = await session.request("tools/call", {"name": "sleep", "arguments": {"ms": 20, "nonce": "n1"}})
        assert _text(slept.result) == "slept 20 n1"
        assert slept.latency_ns >= 20_000_000

        failed = await session.request("tools/call", {"name": "fail", "arguments": {"nonce": "n2"}})
        assert failed.error is None
        assert failed.result["isError"] is True
        assert "n2" in _text(failed.result)

        progress = await session.request(
            "tools/call", {"name": "progress", "arguments": {"steps": 4}}, progress=True
        )
        assert _text(progress.result).startswith("progress 4")
        # A JSON response cannot carry notifications ahead of it; every streaming mode must.
        assert progress.progress == (0 if mode == "http-json" else 4)

        prompt = await session.request("prompts/get", {"name": "greet", "arguments": {"name": "Ada"}})
        assert prompt.result["messages"][0]["content"]["text"] == "Hello, Ada!"

        unknown = await session.request("no/such/method")
        assert unknown.error is not None
        assert unknown.error.kind == "jsonrpc_-32601"
        assert not unknown.error.silent

        assert (await session.request("ping")).result == {}


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("size", [1024, 1 << 20, 32 << 20])
async def test_blob_resources_arrive_byte_identical(mode: str, size: int) -> None:
    async with reference_channel(mode) as channel, open_session(channel, request_timeout=60) as session:
        await session.initialize()
        outcome = await session.request("resources/read", {"uri": f"blob://{size}/7"})
        assert outcome.error is None
        (content,) = outcome.result["contents"]
        assert content["mimeType"] == "text/plain"
        assert check_blob(content["text"], size, 7).verdict == "ok"
        assert outcome.nbytes > size


@pytest.mark.parametrize("mode", ["stdio", "sse", "http"])
async def test_concurrent_requests_on_one_session_are_answered_by_id(mode: str) -> None:
    import anyio

    answers: dict[int, str] = {}
    async with reference_channel(mode) as channel, open_session(channel) as session:
        await session.initialize()

        async def one(i: int) -> None:
            outcome = await session.request(
                "tools/call", {"name": "echo", "arguments": {"text": f"nonce-{i}"}}
            )
            answers[i] = _text(outcome.result)

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(one, i)
    assert answers == {i: f"nonce-{i}" for i in range(50)}
