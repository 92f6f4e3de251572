"""Launched targets: their stderr is kept, they never outlive the tester, and a start that goes
wrong says why (what a stdio server wrote instead of JSON-RPC, where an HTTP server listens)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from loadtest.core.errors import TargetError
from loadtest.core.process import StderrLog, free_port, launch, wait_for_port
from loadtest.measure.metrics import Recorder
from loadtest.run.driver import run_scenario
from loadtest.run.targets.reference import REFERENCE_SERVER
from loadtest.scenario import load_scenario

pytestmark = pytest.mark.anyio

#: A stdio server that says who it is on stderr, then is the reference server.
_CHATTY_SERVER = textwrap.dedent(
    f"""
    import os, runpy, sys
    print(f"chatty server pid {{os.getpid()}} starting", file=sys.stderr, flush=True)
    sys.argv = [{str(REFERENCE_SERVER)!r}, "--transport", "stdio"]
    runpy.run_path(sys.argv[0], run_name="__main__")
    """
)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- stdio runs keep their servers' stderr ------------------------------------------------------


async def test_stdio_run_keeps_every_sessions_server_stderr(tmp_path: Path) -> None:
    server = tmp_path / "chatty.py"
    server.write_text(_CHATTY_SERVER)
    path = tmp_path / "scenario.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            transports = ["stdio"]
            [target]
            command = ["{{python}}", {str(server)!r}]
            [workload]
            sessions = 1
            churn = 10
            requests = 25
            warmup = "0s"
            [[ops]]
            method = "ping"
            """
        )
    )
    recorder = Recorder(out_dir=tmp_path)
    await run_scenario(load_scenario(path), recorder, log_dir=tmp_path)
    recorder.finish()
    assert recorder.summary()["stdio"]["ops"]["ping"]["ok"] == 25
    lines = (tmp_path / "server-stdio.log").read_text().splitlines()
    said = [line for line in lines if "chatty server pid" in line]
    # A new session (and server) every 10 calls: three servers, each line tagged with the
    # pid that wrote it, all in the one file.
    assert len(said) == 3, lines
    for line in said:
        pid = line.split()[-2]
        assert line == f"[pid {pid}] chatty server pid {pid} starting"
    assert len({line.split()[1] for line in said}) == 3


def test_shared_stderr_log_is_bounded_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    a = StderrLog(path, tag="pid 1", limit=100)
    b = StderrLog(path, tag="pid 2", limit=100)
    a.write(b"first line\nhalf a li")
    b.write(b"other writer\n")
    a.write(b"ne\n" + b"x" * 200 + b"\n")
    b.write(b"never kept\n")
    a.close()
    b.close()
    text = path.read_text()
    assert text.startswith("[pid 1] first line\n[pid 2] other writer\n[pid 1] half a line\n")
    assert text.endswith("[mcp-loadtest: this log reached its limit of 0 MiB; later stderr is not kept]\n")
    assert text.count("this log reached its limit") == 1
    assert "never kept" not in text


# -- nothing outlives the tester ----------------------------------------------------------------


def _until(condition: Callable[[], bool], within_s: float) -> bool:
    """Poll ``condition`` (another process's state has no event to wait on) until true or time is up."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def spawn() -> Iterator[Callable[[list[str]], subprocess.Popen[bytes]]]:
    """Start a process with its stdout on a pipe; killed and closed after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _child_with(parent: psutil.Process, marker: str) -> psutil.Process | None:
    for child in parent.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if marker in " ".join(child.cmdline()):
                return child
    return None


def _listens(process: psutil.Process) -> bool:
    return any(c.status == psutil.CONN_LISTEN for c in process.net_connections(kind="tcp"))


def test_sigkilled_tester_leaves_no_http_server(
    tmp_path: Path, spawn: Callable[[list[str]], subprocess.Popen[bytes]]
) -> None:
    out = str(tmp_path / "results")
    run = spawn(
        [sys.executable, "-m", "loadtest", "run", "--transport", "http", "--duration", "120s", "--out", out]
    )
    tester = psutil.Process(run.pid)
    assert _until(lambda: _child_with(tester, "reference_server.py") is not None, 60)
    server = _child_with(tester, "reference_server.py")
    assert server is not None
    # The server leads its own process group, so a signal to the tester's group misses it.
    assert os.getpgid(server.pid) != os.getpgid(run.pid)
    assert _until(lambda: _listens(server), 60)  # killed mid-run, not mid-start-up
    run.kill()
    run.wait()
    assert _until(lambda: _gone(server.pid), 15), "the HTTP server outlived the SIGKILLed tester"


def test_sigkilled_launcher_leaves_no_grandchild(
    spawn: Callable[[list[str]], subprocess.Popen[bytes]],
) -> None:
    # A wrapper (a shell here; npx and `uv run` alike) whose own child is what serves: the
    # parent-death signal reaches the wrapper only; the watchdog takes the whole group.
    script = textwrap.dedent(
        """
        import sys, anyio
        from loadtest.core.process import launch

        async def main():
            async with launch(["sh", "-c", "sleep 300 & echo $!; wait"]) as target:
                line = await target.process.stdout.receive()
                print(target.pid, line.decode().strip(), flush=True)
                await anyio.sleep(300)

        anyio.run(main)
        """
    )
    launcher = spawn([sys.executable, "-c", script])
    assert launcher.stdout is not None
    wrapper, sleeper = (int(word) for word in launcher.stdout.readline().split())
    assert psutil.Process(sleeper).ppid() == wrapper
    launcher.kill()
    launcher.wait()
    assert _until(lambda: _gone(wrapper), 15), "the launched process outlived its SIGKILLed launcher"
    assert _until(lambda: _gone(sleeper), 15), "the launched process's child outlived the SIGKILLed launcher"


def test_parent_death_signal_alone_ends_the_child(
    spawn: Callable[[list[str]], subprocess.Popen[bytes]],
) -> None:
    # The watchdog silenced: the kernel's parent-death signal must end the child by itself.
    script = textwrap.dedent(
        """
        import anyio
        from loadtest.core import lifeline
        from loadtest.core.process import launch

        lifeline.watchdog._tell = lambda line: None

        async def main():
            async with launch(["sleep", "300"]) as target:
                print(target.pid, flush=True)
                await anyio.sleep(300)

        anyio.run(main)
        """
    )
    launcher = spawn([sys.executable, "-c", script])
    assert launcher.stdout is not None
    child = int(launcher.stdout.readline())
    assert not _gone(child)
    launcher.kill()
    launcher.wait()
    assert _until(lambda: _gone(child), 15), "no parent-death signal reached the launched process"


# -- a start that goes wrong says why -----------------------------------------------------------


async def test_http_server_ignoring_its_port_is_named_with_the_port_it_took() -> None:
    expected, actual = free_port(), free_port()
    script = textwrap.dedent(
        f"""
        import socket, time
        s = socket.socket()
        s.bind(("127.0.0.1", {actual}))
        s.listen()
        print("listening", flush=True)
        time.sleep(300)
        """
    )
    async with launch([sys.executable, "-c", script], stdin=False) as target:
        assert target.process.stdout is not None
        await target.process.stdout.receive()
        with pytest.raises(TargetError) as caught:
            await wait_for_port(target, "127.0.0.1", expected, timeout=1)
    message = str(caught.value)
    assert f"did not accept connections on 127.0.0.1:{expected} within 1s" in message
    assert f"it listens on 127.0.0.1:{actual} instead" in message
    assert "{port}" in message


async def test_http_server_listening_nowhere_says_so() -> None:
    async with launch(
        [sys.executable, "-c", "import time; time.sleep(300)"], stdin=False, stdout=False
    ) as target:
        with pytest.raises(TargetError, match="within 1s; it listens on no TCP port"):
            await wait_for_port(target, "127.0.0.1", free_port(), timeout=1)
