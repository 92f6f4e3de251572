"""Launching target processes, keeping their stderr, and stopping them for sure.

Every child is started in its own process group, so that wrappers such as ``npx`` or a shell
cannot leave grandchildren behind when we stop them. Stopping escalates on a bounded clock:
close stdin, wait, SIGTERM to the group, wait, SIGKILL to the group.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio
import anyio.abc

from loadtest.core.aio import task_group
from loadtest.core.errors import TargetError

#: How long each step of the stop escalation may take before the next, harsher one.
STOP_GRACE_S = 2.0
TERM_GRACE_S = 2.0
#: Bytes of stderr kept in memory for error messages.
STDERR_TAIL_BYTES = 8192


def split_command(command: str | Sequence[str]) -> list[str]:
    """A command line as argv; a string is split like a POSIX shell would."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise TargetError("the target command is empty")
    return argv


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(eq=False)
class TargetProcess:
    """A launched child process whose stderr is being drained."""

    argv: list[str]
    process: anyio.abc.Process
    stderr_log: Path | None = None
    #: Set when all of stderr has been read (the process closed it, usually by exiting).
    stderr_done: anyio.Event = field(default_factory=anyio.Event)
    _tail: deque[bytes] = field(default_factory=deque)
    _tail_size: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def stderr_tail(self, max_lines: int = 15) -> str:
        """The last lines the process wrote to stderr, for error messages."""
        text = b"".join(self._tail).decode("utf-8", "replace")
        return "\n".join(text.strip().splitlines()[-max_lines:])

    def describe_exit(self) -> str:
        """One line saying that and how the process ended, with its stderr tail indented."""
        code = self.process.returncode
        how = f"exited with code {code}" if code is None or code >= 0 else f"was killed by signal {-code}"
        tail = self.stderr_tail()
        where = f"{shlex.join(self.argv)!r} {how}"
        return f"{where}; its stderr ends with:\n    " + tail.replace("\n", "\n    ") if tail else where

    def _keep(self, chunk: bytes) -> None:
        self._tail.append(chunk)
        self._tail_size += len(chunk)
        while self._tail_size > STDERR_TAIL_BYTES and len(self._tail) > 1:
            self._tail_size -= len(self._tail.popleft())


async def _drain_stderr(target: TargetProcess, log: IO[bytes] | None) -> None:
    # A child that fills its stderr pipe blocks on the next write; drain it for the whole run.
    stream = target.process.stderr
    try:
        if stream is None:
            return
        with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            while True:
                chunk = await stream.receive(65536)
                target._keep(chunk)
                if log is not None:
                    log.write(chunk)
                    log.flush()
    finally:
        target.stderr_done.set()


@asynccontextmanager
async def launch(
    command: str | Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stdin: bool = True,
    stdout: bool = True,
    stderr_log: Path | None = None,
) -> AsyncIterator[TargetProcess]:
    """Start ``command``; on exit from the block, stop it (bounded, shielded) whatever happened."""
    argv = split_command(command)
    full_env = {**os.environ, **(env or {})}
    try:
        process = await anyio.open_process(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise TargetError(f"cannot start the target: command {argv[0]!r} not found") from None
    except PermissionError:
        raise TargetError(f"cannot start the target: {argv[0]!r} is not executable") from None
    except OSError as exc:
        raise TargetError(f"cannot start the target {shlex.join(argv)!r}: {exc.strerror or exc}") from None
    target = TargetProcess(argv, process, stderr_log)
    log = stderr_log.open("ab") if stderr_log is not None else None
    try:
        async with task_group() as tg:
            tg.start_soon(_drain_stderr, target, log)
            try:
                yield target
            finally:
                await stop(target)
                tg.cancel_scope.cancel()
    finally:
        if log is not None:
            log.close()


async def stop(target: TargetProcess) -> None:
    """Close stdin, then SIGTERM, then SIGKILL the process group; never takes much over 4 s."""
    process = target.process
    # Shielded: this runs while the caller is being cancelled (Ctrl-C, a failed run), and a
    # child left running is exactly what must not happen then. Each step has its own deadline.
    with anyio.CancelScope(shield=True):
        if process.returncode is None and process.stdin is not None:
            with contextlib.suppress(Exception):
                await process.stdin.aclose()
            with anyio.move_on_after(STOP_GRACE_S):
                await process.wait()
        for sig, grace in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, 5.0)):
            if process.returncode is not None:
                break
            signal_group(process.pid, sig)
            with anyio.move_on_after(grace):
                await process.wait()
        # The leader is gone; make sure nothing it started lingers in its group.
        signal_group(process.pid, signal.SIGKILL)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                with contextlib.suppress(Exception):
                    await stream.aclose()


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``pid`` leads (our children lead their own); no error if gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def wait_for_port(target: TargetProcess, host: str, port: int, timeout: float) -> None:
    """Return once ``host:port`` accepts TCP connections; raise if the process dies or time runs out."""
    with anyio.move_on_after(timeout):
        while True:
            if target.returncode is not None:
                raise TargetError(f"the target {target.describe_exit()}")
            try:
                stream = await anyio.connect_tcp(host, port)
            except OSError:
                await anyio.sleep(0.05)
                continue
            await stream.aclose()
            return
    raise TargetError(
        f"the target did not accept connections on {host}:{port} within {timeout:g}s"
        + (f"; its stderr ends with:\n    {target.stderr_tail()}" if target.stderr_tail() else "")
    )
