"""Launching target processes, keeping their stderr, and stopping them for sure.

Every child is started in its own process group, so that wrappers such as ``npx`` or a shell
cannot leave grandchildren behind when we stop them. Stopping escalates on a bounded clock:
close stdin, wait, SIGTERM to the group, wait, SIGKILL to the group. Should we die without
stopping them (SIGKILL, a crash), :mod:`loadtest.core.lifeline` kills them all the same.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import psutil

from loadtest.core.aio import task_group
from loadtest.core.errors import TargetError
from loadtest.core.lifeline import watchdog, with_parent_death

#: How long each step of the stop escalation may take before the next, harsher one.
STOP_GRACE_S = 2.0
TERM_GRACE_S = 2.0
#: Bytes of stderr kept in memory for error messages.
STDERR_TAIL_BYTES = 8192
#: The most a stderr log file grows to, all the processes that write to it together: a
#: chatty server (or a thousand stdio sessions' servers) must not fill the disk on a long run.
STDERR_LOG_LIMIT_BYTES = 16 << 20
#: A line longer than this with no newline yet is written as it is (tagged logs only).
_PARTIAL_LINE_MAX = 1 << 16


def own_cpu_s() -> float:
    """CPU seconds (user + system) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


class StderrLog:
    """Appends one process's stderr to a file that other processes may append to as well.

    The file is opened for appending (``O_APPEND``: each write lands whole at the end, even
    with several writers), and it stops growing at ``limit`` bytes, all writers together,
    with one line saying so. With ``tag``, every line is prefixed with it (the stdio sessions'
    servers of one transport share one log; the prefix says whose line it is).
    """

    def __init__(
        self, path: Path, *, tag: str | None = None, limit: int | None = STDERR_LOG_LIMIT_BYTES
    ) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._prefix = f"[{tag}] ".encode() if tag is not None else None
        self._limit = limit
        self._partial = b""
        self._full = False

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` (a tagged log holds back a last line that has no newline yet)."""
        if self._prefix is not None:
            data = self._partial + chunk
            cut = data.rfind(b"\n") + 1
            if len(data) - cut > _PARTIAL_LINE_MAX:
                cut = len(data)
            self._partial = data[cut:]
            chunk = self._tagged(data[:cut])
        self._append(chunk)

    def _tagged(self, data: bytes) -> bytes:
        prefix = self._prefix or b""
        return b"".join(prefix + line for line in data.splitlines(keepends=True))

    def _append(self, data: bytes) -> None:
        if self._full or not data:
            return
        if self._limit is not None:
            size = os.fstat(self._fd).st_size
            if size >= self._limit:
                self._full = True  # another writer reached the limit and said so
                return
            if size + len(data) > self._limit:
                data = data[: self._limit - size] + (
                    f"\n[mcp-loadtest: this log reached its limit of {self._limit >> 20} MiB;"
                    " later stderr is not kept]\n".encode()
                )
                self._full = True
        with contextlib.suppress(OSError):  # a full disk must not stop the run
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        """Write a held-back last line (a newline added) and close the file."""
        if self._partial:
            self._append(self._tagged(self._partial + b"\n"))
            self._partial = b""
        os.close(self._fd)


async def _drain_stderr(target: TargetProcess, log: StderrLog | None) -> None:
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
    log_tag: bool = False,
) -> AsyncIterator[TargetProcess]:
    """Start ``command``; on exit from the block, stop it (bounded, shielded) whatever happened.

    Its stderr is appended to ``stderr_log`` (bounded, see :class:`StderrLog`); ``log_tag``
    prefixes each line there with the process id, for a log that several processes share.
    The child does not outlive us, whatever way we end (see :mod:`loadtest.core.lifeline`).
    """
    argv = split_command(command)
    full_env = {**os.environ, **(env or {})}
    try:
        process = await _open_process(
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
    # It leads its own group (start_new_session): the watchdog kills the whole group.
    watchdog.watch(process.pid)
    log = None
    if stderr_log is not None:
        try:
            log = StderrLog(stderr_log, tag=f"pid {process.pid}" if log_tag else None)
        except OSError as exc:
            await stop(target)
            watchdog.done(process.pid)
            raise TargetError(
                f"cannot write the server log {str(stderr_log)!r}: {exc.strerror or exc}"
            ) from None
    try:
        async with task_group() as tg:
            tg.start_soon(_drain_stderr, target, log)
            try:
                yield target
            finally:
                await stop(target)
                tg.cancel_scope.cancel()
    finally:
        watchdog.done(process.pid)
        if log is not None:
            log.close()


async def _open_process(
    argv: list[str], *, env: Mapping[str, str], cwd: str | Path | None, **kwargs: Any
) -> anyio.abc.Process:
    """``anyio.open_process`` with a parent-death signal for the child where we can set one.

    With ``setpriv`` the command runs behind it (see :mod:`loadtest.core.lifeline`), so the
    command is looked up first: a missing one must stay our clear error, not setpriv's exit
    code. Otherwise a ``preexec_fn``, which anyio's public function does not take and its
    backend's does (it hands the keywords to asyncio); should that private path change, the
    child starts without the signal and the watchdog alone covers it.
    """
    wrapped, preexec = with_parent_death(argv)
    if wrapped is not argv:
        _check_executable(argv[0], env, cwd)
    if preexec is not None:
        try:
            from anyio._core._eventloop import get_async_backend
        except ImportError:  # pragma: no cover - a future anyio
            pass
        else:
            process: anyio.abc.Process = await get_async_backend().open_process(
                wrapped, env=env, cwd=cwd, preexec_fn=preexec, **kwargs
            )
            return process
    return await anyio.open_process(wrapped, env=env, cwd=cwd, **kwargs)


def _check_executable(program: str, env: Mapping[str, str], cwd: str | Path | None) -> None:
    """Raise as exec would (FileNotFoundError, PermissionError) if ``program`` cannot be run."""
    if os.sep in program:
        path = Path(cwd or ".", program)
        if not path.exists():
            raise FileNotFoundError(program)
        if path.is_dir() or not os.access(path, os.X_OK):
            raise PermissionError(program)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(program)


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
    """Return once ``host:port`` accepts TCP connections; raise if the process dies or time runs out.

    The error at the deadline says which ports the target listens on instead, if any: a
    command that ignores the port it is given is the usual cause.
    """
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
    elsewhere = listening_ports(target.pid)
    if elsewhere:
        where = ", ".join(f"{h}:{p}" for h, p in elsewhere)
        hint = (
            f"; it listens on {where} instead: does its command put the port it is given ({{port}}) to use?"
        )
    else:
        hint = "; it listens on no TCP port"
    tail = target.stderr_tail()
    raise TargetError(
        f"the target did not accept connections on {host}:{port} within {timeout:g}s{hint}"
        + (f"; its stderr ends with:\n    {tail}" if tail else "")
    )


def listening_ports(pid: int) -> list[tuple[str, int]]:
    """The TCP addresses process ``pid`` and its descendants listen on, sorted; [] if unknown."""
    found: set[tuple[str, int]] = set()
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
    for proc in procs:
        try:
            connections = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for conn in connections:
            if conn.status == psutil.CONN_LISTEN and conn.laddr:
                found.add((conn.laddr.ip, conn.laddr.port))
    return sorted(found)
