"""Launching and stopping targets: clear errors, and no process left behind."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from loadtest.core.errors import TargetError
from loadtest.core.lifeline import watchdog
from loadtest.core.process import launch, wait_for_port
from loadtest.protocol.session import open_session
from loadtest.protocol.transports import connect

pytestmark = pytest.mark.anyio


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_missing_command_is_one_clear_error() -> None:
    with pytest.raises(TargetError, match=r"command 'no-such-mcp-server-xyz' not found"):
        async with launch(["no-such-mcp-server-xyz", "--flag"]):
            pass


async def test_command_that_is_not_executable_is_one_clear_error(tmp_path: Path) -> None:
    script = tmp_path / "server.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(TargetError, match=r"is not executable"):
        async with launch([str(script)]):
            pass


async def test_unwritable_server_log_is_one_clear_error_and_stops_the_process(tmp_path: Path) -> None:
    log = tmp_path / "no-such-dir" / "server.log"
    with pytest.raises(TargetError, match=r"cannot write the server log .*server\.log'"):
        async with launch([sys.executable, "-c", "import time; time.sleep(600)"], stderr_log=log):
            pass
    test_no_zombie_children_of_this_process()


async def _initialize_error(script: str) -> str:
    """What initialising a session with the stdio server ``script`` fails with."""
    with pytest.raises(TargetError) as caught:
        async with (
            connect("stdio", command=[sys.executable, "-c", script]) as channel,
            open_session(channel) as session,
        ):
            await session.initialize(timeout=60)
    return str(caught.value)


async def test_server_that_exits_at_start_reports_its_stderr() -> None:
    script = "import sys; print('boom: missing config', file=sys.stderr); sys.exit(4)"
    message = await _initialize_error(script)
    assert "exited with code 4" in message
    assert "boom: missing config" in message


async def test_stdio_server_that_writes_hello_fails_saying_so() -> None:
    # Was: "initialize failed: lost" at the deadline, with no word of what the server wrote.
    message = await _initialize_error("import sys; print('hello', flush=True); sys.stdin.read()")
    assert message.startswith("initialize failed: non_json: before any JSON-RPC message")
    assert "wrote on stdout 'hello'" in message
    assert "\n" not in message


async def test_stdio_server_that_writes_hello_and_exits_says_what_it_wrote() -> None:
    message = await _initialize_error("print('hello')")
    assert "exited with code 0; all it wrote on stdout was not JSON-RPC, starting 'hello'" in message


async def test_http_server_that_dies_before_listening_is_reported() -> None:
    script = "import sys; sys.stderr.write('cannot bind\\n'); sys.exit(2)"
    with pytest.raises(TargetError, match="cannot bind"):
        async with launch([sys.executable, "-c", script], stdin=False, stdout=False) as target:
            await wait_for_port(target, "127.0.0.1", 9, timeout=10)


async def test_garbage_on_stdout_is_reported_not_crashed_on() -> None:
    script = textwrap.dedent(
        """
        import sys, json
        print("this is not json", flush=True)
        line = sys.stdin.readline()
        msg = json.loads(line)
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "x"}}}), flush=True)
        sys.stdin.read()
        """
    )
    seen: list[Any] = []
    async with (
        connect("stdio", command=[sys.executable, "-c", script]) as channel,
        open_session(channel, on_anomaly=seen.append) as session,
    ):
        hello = await session.initialize(timeout=10)
    assert hello.protocol_version == "2025-06-18"
    assert [a.kind for a in seen] == ["non_json"]
    assert not seen[0].silent


async def test_stubborn_process_group_is_killed() -> None:
    # Ignores stdin EOF and SIGTERM, and has a child of its own: all of it must go.
    script = textwrap.dedent(
        """
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        print(child.pid, flush=True)
        time.sleep(600)
        """
    )
    async with launch([sys.executable, "-c", script]) as target:
        assert target.process.stdout is not None
        line = await target.process.stdout.receive()
        child_pid = int(line.split()[0])
        pid = target.pid
    assert _gone(pid)
    with anyio.fail_after(5):
        while not _gone(child_pid):  # noqa: ASYNC110 - a grandchild's exit has no event to wait on
            await anyio.sleep(0.05)


async def test_cancelled_run_leaves_no_process() -> None:
    pids: list[int] = []
    with anyio.move_on_after(1.0):
        async with launch([sys.executable, "-c", "import time; time.sleep(600)"]) as target:
            pids.append(target.pid)
            await anyio.sleep(600)
    assert pids
    assert _gone(pids[0])


async def test_unreachable_url_is_one_clear_error() -> None:
    for transport, path in (("sse", "/sse"), ("http", "/mcp")):
        with pytest.raises(
            TargetError, match=r"127\.0\.0\.1:9.*(refused|unreachable)|initialize failed: connection"
        ):
            async with (
                connect(transport, url=f"http://127.0.0.1:9{path}") as channel,  # type: ignore[arg-type]
                open_session(channel) as session,
            ):
                await session.initialize(timeout=10)


def test_no_zombie_children_of_this_process() -> None:
    # The watchdog lives as long as we do, by design (see loadtest.core.lifeline).
    children = [
        p
        for p in psutil.Process(os.getpid()).children(recursive=True)
        if p.status() != psutil.STATUS_ZOMBIE and p.pid != watchdog.pid
    ]
    assert children == []
