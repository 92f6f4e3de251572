"""MCP 2026-07-28 beside the handshake era, against real servers over real pipes and sockets.

The reference server on the installed ``mcp`` (2.3.0) speaks 2026-07-28: ``auto`` must reach it
through ``server/discover`` and stay stateless; pinned ``2025-11-25`` must reach the same server
through ``initialize``. A 1.x release predates ``server/discover``: ``auto`` falls back to the
handshake. Two tiny raw servers (one stdio script, one aiohttp app on loopback) play a modern
server that answers without ``resultType``, the known-bad case for ``malformed``, and record
exactly what the client put on the wire.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from loadtest.core.errors import TargetError, UsageError
from loadtest.envs import ensure_env
from loadtest.measure.metrics import Recorder
from loadtest.protocol.negotiation import LEGACY, ProbeUnanswered, negotiate
from loadtest.protocol.session import Anomaly, open_session
from loadtest.protocol.transports import connect
from loadtest.protocol.versions import (
    CLIENT_CAPABILITIES_KEY,
    CLIENT_INFO_KEY,
    PROTOCOL_VERSION_KEY,
    header_value,
    parse_protocol,
    result_problem,
)
from loadtest.run.driver import run_scenario
from loadtest.run.execute import execute
from loadtest.run.payload import check_blob
from loadtest.scenario import load_scenario
from loadtest.scenario.threshold_eval import evaluate
from tests.conftest import reference_channel

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]
MODERN = "2026-07-28"
#: A 1.x release that predates server/discover (its own answer to the probe is -32602).
LEGACY_SDK = "1.23.1"
#: The oldest release the reference server runs on, which ignores the probe.
OLDEST_SDK = "1.8.0"
FOUR_MB = 4 << 20


def _text(result: dict[str, Any]) -> str:
    return "".join(c["text"] for c in result["content"] if c["type"] == "text")


@pytest.mark.parametrize("mode", ["stdio", "http", "http-json", "http-stateless"])
async def test_auto_reaches_the_newest_mcp_statelessly_through_discover(mode: str) -> None:
    async with reference_channel(mode) as channel, open_session(channel, request_timeout=60) as session:
        hello = await negotiate(session)
        assert (hello.protocol_version, hello.chosen_by) == (MODERN, "discover")
        assert MODERN in hello.supported_versions
        assert hello.server_info["name"] == "mcp-loadtest-reference"

        tools = await session.request("tools/list")
        assert tools.error is None, tools.error
        assert {t["name"] for t in tools.result["tools"]} >= {"echo", "blob", "sleep", "fail", "progress"}
        echo = await session.request("tools/call", {"name": "echo", "arguments": {"text": "héllo ✓ n-1"}})
        assert echo.error is None, echo.error
        assert _text(echo.result) == "héllo ✓ n-1"
        assert echo.result["resultType"] == "complete"
        blob = await session.request(
            "tools/call", {"name": "blob", "arguments": {"n_bytes": 5000, "seed": 4}}
        )
        assert blob.error is None
        assert check_blob(_text(blob.result), 5000, 4).verdict == "ok"
        slept = await session.request("tools/call", {"name": "sleep", "arguments": {"ms": 5, "nonce": "n2"}})
        assert slept.error is None
        assert _text(slept.result) == "slept 5 n2"
        failed = await session.request("tools/call", {"name": "fail", "arguments": {"nonce": "n3"}})
        assert failed.error is None
        assert failed.result["isError"] is True
        prompt = await session.request("prompts/get", {"name": "greet", "arguments": {"name": "Ada"}})
        assert prompt.error is None
        assert prompt.result["messages"][0]["content"]["text"] == "Hello, Ada!"
        read = await session.request("resources/read", {"uri": f"blob://{FOUR_MB}/7"})
        assert read.error is None, read.error
        (content,) = read.result["contents"]
        assert check_blob(content["text"], FOUR_MB, 7).verdict == "ok"
        progress = await session.request(
            "tools/call", {"name": "progress", "arguments": {"steps": 4}}, progress=True
        )
        assert progress.error is None
        assert _text(progress.result).startswith("progress 4")
        # A JSON reply cannot carry notifications ahead of it; the streaming modes must.
        assert progress.progress == (0 if mode == "http-json" else 4)

        unknown = await session.request("no/such/method")
        assert unknown.error is not None
        assert unknown.error.kind == "jsonrpc_-32601"
        assert not unknown.error.silent
        # ping is gone in 2026-07-28: a modern server does not know it.
        ping = await session.request("ping")
        assert ping.error is not None
        assert ping.error.kind == "jsonrpc_-32601"
    # Stateless: no session id learned, so no DELETE at close; no GET stream either.
    assert channel.info.session_id is None
    assert channel.info.delete_status is None
    assert channel.info.get_stream_status is None


@pytest.mark.parametrize("mode", ["stdio", "http"])
async def test_pinned_2025_11_25_uses_the_handshake_on_the_same_server(mode: str) -> None:
    async with reference_channel(mode) as channel, open_session(channel) as session:
        hello = await negotiate(session, "2025-11-25")
        assert (hello.protocol_version, hello.chosen_by) == ("2025-11-25", "pinned")
        assert session.envelope is None
        echo = await session.request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
        assert echo.error is None
        assert _text(echo.result) == "x"
        assert (await session.request("ping")).result == {}
    if mode == "http":
        assert channel.info.session_id is not None


async def test_legacy_sse_stays_in_the_handshake_era() -> None:
    async with reference_channel("sse") as channel, open_session(channel) as session:
        hello = await negotiate(session)
        assert (hello.protocol_version, hello.chosen_by) == ("2025-11-25", "initialize")
        assert session.envelope is None
        assert (await session.request("ping")).result == {}
        with pytest.raises(TargetError, match="not spoken over the legacy HTTP"):
            await negotiate(session, MODERN)


@pytest.mark.parametrize("mode", ["stdio", "http"])
async def test_auto_falls_back_to_initialize_on_a_1x_server(mode: str, env_cache: Path) -> None:
    env = ensure_env(LEGACY_SDK, cache_dir=env_cache)
    async with reference_channel(mode, python=str(env.python)) as channel, open_session(channel) as session:
        hello = await negotiate(session)
        assert (hello.protocol_version, hello.chosen_by) == ("2025-11-25", "initialize")
        assert hello.server_info["version"] == LEGACY_SDK
        assert session.envelope is None
        echo = await session.request("tools/call", {"name": "echo", "arguments": {"text": "old"}})
        assert echo.error is None
        assert _text(echo.result) == "old"


async def test_a_stdio_server_that_ignores_the_probe_is_reconnected_as_legacy(env_cache: Path) -> None:
    # mcp 1.8 logs the unknown server/discover and never answers it, then dies at initialize:
    # auto gives that process up with ProbeUnanswered, and a new one is spoken to as legacy.
    env = ensure_env(OLDEST_SDK, cache_dir=env_cache)
    async with (
        reference_channel("stdio", python=str(env.python)) as channel,
        open_session(channel) as session,
    ):
        with pytest.raises(ProbeUnanswered, match="did not answer server/discover"):
            await negotiate(session, probe_timeout=8.0)
    async with (
        reference_channel("stdio", python=str(env.python)) as channel,
        open_session(channel) as session,
    ):
        hello = await negotiate(session, LEGACY)
        assert (hello.protocol_version, hello.chosen_by) == ("2024-11-05", "initialize")
        echo = await session.request("tools/call", {"name": "echo", "arguments": {"text": "older"}})
        assert echo.error is None
        assert _text(echo.result) == "older"


async def test_the_oldest_1x_over_http_falls_back_without_anomalies(env_cache: Path) -> None:
    # mcp 1.8 answers the probe's POST with 400 and an error whose id is "server-error": that
    # is the fallback signal, not a misrouted answer.
    env = ensure_env(OLDEST_SDK, cache_dir=env_cache)
    anomalies: list[Anomaly] = []
    async with (
        reference_channel("http", python=str(env.python)) as channel,
        open_session(channel, on_anomaly=anomalies.append) as session,
    ):
        hello = await negotiate(session)
        assert (hello.protocol_version, hello.chosen_by) == ("2024-11-05", "initialize")
        echo = await session.request("tools/call", {"name": "echo", "arguments": {"text": "y"}})
        assert echo.error is None
    assert anomalies == []


async def test_pinned_2026_on_a_1x_server_fails_in_one_line(env_cache: Path) -> None:
    env = ensure_env(LEGACY_SDK, cache_dir=env_cache)
    async with (
        reference_channel("stdio", python=str(env.python)) as channel,
        open_session(channel) as session,
    ):
        with pytest.raises(TargetError, match="does not speak 2026-07-28: server/discover: jsonrpc_-32602"):
            await negotiate(session, MODERN)


# -- known-bad: a modern server whose results lack resultType ---------------------------------------

#: A stdio server that discovers correctly, then answers tools/call without ``resultType`` unless
#: the tool is ``good``; it echoes the request's _meta back so the test sees what was sent.
_RAW_STDIO = """
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    p = m.get("params") or {}
    if m["method"] == "server/discover":
        r = {"resultType": "complete", "supportedVersions": ["2026-07-28"], "capabilities": {},
             "ttlMs": 0, "cacheScope": "public",
             "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "raw", "version": "0"}}}
    else:
        r = {"content": [{"type": "text", "text": json.dumps(p.get("_meta"))}]}
        if p.get("name") == "good":
            r["resultType"] = "complete"
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": r}) + "\\n")
    sys.stdout.flush()
"""


async def test_a_result_without_result_type_is_malformed_on_stdio(tmp_path: Path) -> None:
    script = tmp_path / "raw_server.py"
    script.write_text(_RAW_STDIO)
    async with (
        connect("stdio", command=[sys.executable, str(script)]) as channel,
        open_session(channel) as session,
    ):
        hello = await negotiate(session)
        assert (hello.protocol_version, hello.chosen_by, hello.server_info["name"]) == (
            MODERN,
            "discover",
            "raw",
        )
        good = await session.request("tools/call", {"name": "good", "arguments": {}}, progress=True)
        assert good.error is None
        meta = json.loads(_text(good.result))
        assert meta[PROTOCOL_VERSION_KEY] == MODERN
        assert meta[CLIENT_CAPABILITIES_KEY] == {}
        assert meta[CLIENT_INFO_KEY]["name"] == "mcp-loadtest"
        assert meta["progressToken"] == good.request_id  # the caller's own _meta is kept
        bad = await session.request("tools/call", {"name": "bad", "arguments": {}})
        assert bad.error is not None
        assert (bad.error.kind, bad.error.silent) == ("malformed", True)
        assert "resultType" in bad.error.detail


@asynccontextmanager
async def _raw_http(seen: list[tuple[str, dict[str, str], Any]]) -> AsyncIterator[str]:
    """A modern HTTP server on loopback recording (method, headers, body) of every request."""
    never = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            seen.append((request.method, dict(request.headers), None))
            return web.Response(status=405)
        body: dict[str, Any] = await request.json()
        seen.append((request.method, dict(request.headers), body))
        if "id" not in body:
            return web.Response(status=202)
        params = body.get("params") or {}
        if body["method"] == "server/discover":
            result: dict[str, Any] = {
                "resultType": "complete",
                "supportedVersions": [MODERN],
                "capabilities": {},
                "ttlMs": 0,
                "cacheScope": "private",
            }
        elif body["method"] == "tools/list":
            result = {"resultType": "complete", "tools": []}  # no ttlMs / cacheScope
        elif params.get("name") == "dropped":
            return web.Response(status=202)  # accepted, and never answered
        elif params.get("name") == "slow":
            await never.wait()
            raise AssertionError("unreachable")
        else:
            result = {"resultType": "complete", "content": [{"type": "text", "text": "ok"}]}
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})

    app = web.Application()
    app.router.add_route("*", "/mcp", handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        await runner.cleanup()


async def test_http_sends_what_2026_requires_and_nothing_it_removed() -> None:
    seen: list[tuple[str, dict[str, str], Any]] = []
    async with _raw_http(seen) as url:
        async with (
            connect("http", url=url, get_stream=True) as channel,
            open_session(channel, request_timeout=0.5) as session,
        ):
            hello = await negotiate(session)
            assert (hello.protocol_version, hello.chosen_by) == (MODERN, "discover")
            call = await session.request("tools/call", {"name": "héllo", "arguments": {}})
            assert call.error is None
            read = await session.request("resources/read", {"uri": "blob://1/2"})
            assert read.error is not None
            assert read.error.kind == "malformed"
            listed = await session.request("tools/list")
            assert listed.error is not None
            assert listed.error.kind == "malformed"
            assert "ttlMs" in listed.error.detail
            slow = await session.request("tools/call", {"name": "slow", "arguments": {}})
            assert slow.error is not None
            assert slow.error.kind == "lost"
        methods = [(verb, (body or {}).get("method")) for verb, _, body in seen]
    # Only POSTs of requests: no initialize, no GET stream, no DELETE, no cancel notification.
    assert methods == [
        ("POST", "server/discover"),
        ("POST", "tools/call"),
        ("POST", "resources/read"),
        ("POST", "tools/list"),
        ("POST", "tools/call"),
    ]
    for _, headers, body in seen:
        lowered = {k.lower(): v for k, v in headers.items()}
        assert lowered["mcp-protocol-version"] == MODERN
        assert lowered["mcp-method"] == body["method"]
        assert "mcp-session-id" not in lowered
        assert body["params"]["_meta"][PROTOCOL_VERSION_KEY] == MODERN
    names = [{k.lower(): v for k, v in h.items()}.get("mcp-name") for _, h, _ in seen]
    assert names == [None, header_value("héllo"), "blob://1/2", None, "slow"]
    assert names[1] == "=?base64?aMOpbGxv?="


async def test_an_accepted_but_unanswered_request_is_lost_not_a_loud_error() -> None:
    async with (
        _raw_http([]) as url,
        connect("http", url=url) as channel,
        open_session(channel, request_timeout=0.5) as session,
    ):
        await negotiate(session)
        dropped = await session.request("tools/call", {"name": "dropped", "arguments": {}})
        assert dropped.error is not None
        assert (dropped.error.kind, dropped.error.silent) == ("lost", True)


async def test_a_modern_error_over_http_arrives_as_that_error() -> None:
    # The reference server on 2.3.0 answers a header/body mismatch with 400 and -32020; a
    # request whose Mcp-Name cannot match (set by hand) must surface that code, not "http_400".
    async with reference_channel("http") as channel, open_session(channel) as session:
        await negotiate(session)
        url = channel.info.url
        assert url is not None
        async with aiohttp.ClientSession() as http:
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "x"}, "_meta": session.envelope},
            }
            headers = {
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": MODERN,
                "Mcp-Method": "tools/call",
                "Mcp-Name": "blob",
            }
            async with http.post(url, json=body, headers=headers) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"]["code"] == -32020
        # The same request through the session carries matching headers and succeeds.
        echo = await session.request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
        assert echo.error is None


# -- the rules themselves ----------------------------------------------------------------------------


def test_result_rules_of_2026() -> None:
    ok = {"resultType": "complete", "content": []}
    assert result_problem("tools/call", ok) is None
    assert result_problem("tools/call", {"content": []}) is not None
    assert result_problem("tools/call", {**ok, "resultType": "done"}) is not None
    assert result_problem("tools/call", {"resultType": "input_required", "inputRequests": {}}) is None
    cached = {"resultType": "complete", "tools": [], "ttlMs": 0, "cacheScope": "public"}
    assert result_problem("tools/list", cached) is None
    assert result_problem("tools/list", {**cached, "ttlMs": -1}) is not None
    assert result_problem("tools/list", {**cached, "ttlMs": True}) is not None
    assert result_problem("tools/list", {**cached, "cacheScope": "shared"}) is not None
    assert result_problem("tools/call", {**ok, "_meta": []}) is not None
    assert result_problem("tools/call", {**ok, "_meta": {"-bad/key": 1}}) is not None
    info = "io.modelcontextprotocol/serverInfo"
    assert result_problem("tools/call", {**ok, "_meta": {info: {"name": "s"}}}) is not None
    assert result_problem("tools/call", {**ok, "_meta": {info: {"name": "s", "version": "1"}}}) is None
    assert result_problem("tools/call", {**ok, "_meta": {"com.example/x": 1, "progressToken": 2}}) is None


def test_protocol_choices_and_header_encoding() -> None:
    assert parse_protocol("auto") == "auto"
    assert parse_protocol(" 2025-06-18") == "2025-06-18"
    with pytest.raises(ValueError, match="unknown protocol '2027-01-01'"):
        parse_protocol("2027-01-01")
    assert header_value("get_weather") == "get_weather"
    assert header_value(" padded ") == "=?base64?IHBhZGRlZCA=?="
    assert header_value("=?base64?literal?=") == "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
    assert header_value("Hello, 世界") == "=?base64?SGVsbG8sIOS4lueVjA==?="


# -- a run: the version each transport used, how it was chosen, ops the version removed -------------


class _Notes:
    """A Progress that keeps the notes (the driver's other calls are ignored)."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


async def test_a_run_records_the_version_and_skips_ping_on_2026(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'transports = ["stdio", "sse", "http"]\n[workload]\nsessions = 2\nrequests = 30\nwarmup = "0s"\n'
        '[[ops]]\ntool = "echo"\narguments = { text = "{nonce}" }\nexpect = { text = "{nonce}" }\n'
        '[[ops]]\nmethod = "ping"\n'
    )
    recorder = Recorder(out_dir=tmp_path)
    notes = _Notes()
    await run_scenario(load_scenario(path), recorder, progress=notes)  # type: ignore[arg-type]
    recorder.finish()
    summary = recorder.summary()
    seen = {t: (s["negotiated_protocol_version"], s["protocol_chosen_by"]) for t, s in summary.items()}
    assert seen == {
        "stdio": (MODERN, "discover"),
        "sse": ("2025-11-25", "initialize"),
        "http": (MODERN, "discover"),
    }
    for transport in ("stdio", "http"):
        ops = summary[transport]["ops"]
        assert ops["ping"]["count"] == 0
        assert ops["echo"]["count"] == ops["echo"]["ok"] == 30
        assert sum(ops["echo"]["silent"].values()) == sum(ops["echo"]["errors"].values()) == 0
    assert summary["sse"]["ops"]["ping"]["ok"] > 0
    # Not sent by design: said in run.json, and no gate fails it for "no data".
    assert {t: s.get("skipped_ops") for t, s in summary.items()} == {
        "stdio": {"ping": f"removed in {MODERN}"},
        "sse": None,
        "http": {"ping": f"removed in {MODERN}"},
    }
    gates = evaluate(["silent_failures == 0", "error_rate == 0"], summary)
    assert [(g.passed, g.reason) for g in gates] == [(True, ""), (True, "")]
    assert [n for n in notes.notes if "skipped ping" in n] == [
        f"stdio: skipped ping: removed in {MODERN}",
        f"http: skipped ping: removed in {MODERN}",
    ]


async def test_a_ping_only_run_stays_in_the_handshake_era(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'transports = ["http"]\n[workload]\nrequests = 10\nwarmup = "0s"\n[[ops]]\nmethod = "ping"\n'
    )
    recorder = Recorder(out_dir=tmp_path)
    await run_scenario(load_scenario(path), recorder)
    recorder.finish()
    http = recorder.summary()["http"]
    assert (http["negotiated_protocol_version"], http["protocol_chosen_by"]) == ("2025-11-25", "initialize")
    assert http["ops"]["ping"]["ok"] == 10


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtest", *args],
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_protocol_option_pins_the_version_and_refuses_unknown_ones(tmp_path: Path) -> None:
    bad = _cli("run", "--protocol", "2027-01-01", "--transport", "http", "--out", str(tmp_path))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "mcp-loadtest: error: (from the command line) workload.protocol: unknown protocol "
        "'2027-01-01': use auto or one of 2026-07-28, 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05"
    ]
    done = _cli(
        "run", "--protocol", "2025-11-25", "--transport", "http", "--requests", "60", "--json", "--no-progress",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    http = json.loads(done.stdout)["transports"]["http"]
    assert (http["negotiated_protocol_version"], http["protocol_chosen_by"]) == ("2025-11-25", "pinned")
    assert http["ops"]["ping"]["ok"] > 0  # not removed in 2025-11-25


def test_scenario_key_protocol(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[workload]\nprotocol = "2025-06-18"\n[[ops]]\nmethod = "tools/list"\n')
    assert load_scenario(path).workload.protocol == "2025-06-18"
    assert load_scenario(path).workload.to_dict()["protocol"] == "2025-06-18"
    path.write_text('[[ops]]\nmethod = "tools/list"\n')
    assert "protocol" not in load_scenario(path).workload.to_dict()  # scenario hashes unchanged
    path.write_text('[workload]\nprotocol = 2026\n[[ops]]\nmethod = "tools/list"\n')
    with pytest.raises(UsageError, match=r"s\.toml: workload\.protocol: unknown protocol '2026'"):
        load_scenario(path)


async def test_generator_workers_report_how_the_version_was_chosen(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'transports = ["http"]\n[workload]\nsessions = 2\nrequests = 20\nwarmup = "0s"\n'
        '[[ops]]\ntool = "echo"\narguments = { text = "{nonce}" }\nexpect = { text = "{nonce}" }\n'
    )
    directory = tmp_path / "run"
    directory.mkdir()
    outcome = await execute(load_scenario(path), directory, workers=2)
    assert outcome.failure is None
    http = outcome.document["transports"]["http"]
    assert (http["negotiated_protocol_version"], http["protocol_chosen_by"]) == (MODERN, "discover")
