"""No launched process outlives the tester, however the tester ends (even SIGKILL).

Two mechanisms, because each covers what the other cannot:

* **Parent-death signal** (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``): the kernel kills the
  child the moment the tester dies. It reaches only that one process, though: a wrapper's
  children (``npx`` -> ``sh`` -> ``node``, ``uv run`` -> ``python``) live in the child's
  process group but are not its parent's children. The child sets it on itself before it
  runs the command, by way of util-linux's ``setpriv --pdeathsig KILL --`` (an exec of a
  small C program), or, where there is no such ``setpriv``, in a ``preexec_fn``. Measured
  (2 busy cores): the event loop is held ~1-2 ms per launch without either, ~2-3 ms with
  ``setpriv``, 7-13 ms with a ``preexec_fn`` (Python then forks without ``vfork`` and runs
  Python code in the child), on every stdio session's launch.
* **A watchdog**: one small process per launching process, holding the read end of a pipe
  only we can write to. Every launched child leads its own process group; we tell the
  watchdog each group as it starts and ends. When the pipe reaches end-of-file (we exited, by
  any path: the kernel closes our end), the watchdog SIGKILLs every group still listed.

Between the fork and the ``prctl`` there is a moment in which our death would go unnoticed by
the kernel; the watchdog covers it. The parent-death signal fires when the *thread* that forked
the child ends, not the process.
anyio's asyncio backend forks from the event loop's thread, and :func:`loadtest.core.process.launch`
stops its child before its block (and so the loop) can end; a loop run in a worker thread is
therefore fine as long as no launched child is meant to outlive that loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

#: linux/prctl.h
_PR_SET_PDEATHSIG = 1

# The watchdog: a few lines of Python with no imports beyond os/signal/sys, started with -I -S
# so that it costs ~10 ms and no site packages. Lines are "+PGID" (watch) or "-PGID" (done).
_WATCHDOG = """
import os, signal, sys
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line[:1] == "+":
        groups.add(int(line[1:]))
    elif line[:1] == "-":
        groups.discard(int(line[1:]))
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
"""


def _prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


# Looked up once, here, so that the child between fork and exec only calls it (no dlopen,
# no imports: the forked child must not take locks another thread of ours might hold).
_PRCTL = _prctl()


_setpriv: list[str] | None = None
_setpriv_checked = False


def _setpriv_prefix() -> list[str] | None:
    """``setpriv --pdeathsig KILL --``, if this system's setpriv has the option (util-linux 2.33+)."""
    global _setpriv, _setpriv_checked
    if not _setpriv_checked:
        _setpriv_checked = True
        path = shutil.which("setpriv") if sys.platform.startswith("linux") else None
        if path is not None:
            prefix = [path, "--pdeathsig", "KILL", "--"]
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                if (
                    subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False).returncode
                    == 0
                ):
                    _setpriv = prefix
    return _setpriv


def with_parent_death(argv: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """``argv`` to run and a ``preexec_fn`` such that the child gets a parent-death SIGKILL.

    ``argv[0]`` must already be a path to an executable (the caller resolves it, so that a
    missing command is its own clear error rather than the wrapper's). Unchanged, with no
    ``preexec_fn``, where the system has no parent-death signal.
    """
    prefix = _setpriv_prefix()
    if prefix is not None:
        return [*prefix, *argv], None
    return argv, die_with_parent()


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that gives the child a parent-death SIGKILL; None where unsupported."""
    prctl = _PRCTL
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        # We may have died between fork and prctl: the signal would then never come.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


class _Watchdog:
    """Our end of the watchdog's pipe (see the module docstring); started at first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = -1
        self._process: subprocess.Popen[bytes] | None = None

    def _tell(self, line: str) -> None:
        with self._lock:
            if self._process is None or self._pid != os.getpid():
                # First use, or a forked copy of us: a watchdog of our own (the pipe's write end
                # is not inherited across exec, and a fork's copy is not ours to use).
                self._pid = os.getpid()
                try:
                    self._process = subprocess.Popen(
                        [sys.executable, "-I", "-S", "-c", _WATCHDOG],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        # Its own session: Ctrl-C in the terminal must not end it before us.
                        start_new_session=True,
                    )
                except OSError:
                    self._process = None
                    return
            stdin = self._process.stdin
            assert stdin is not None
            with contextlib.suppress(OSError, ValueError):
                stdin.write(line.encode() + b"\n")
                stdin.flush()

    @property
    def pid(self) -> int | None:
        """The watchdog's process id, once started by this process."""
        process = self._process
        return process.pid if process is not None and self._pid == os.getpid() else None

    def watch(self, group: int) -> None:
        """Kill process group ``group`` if we die before :meth:`done` is called for it."""
        self._tell(f"+{group}")

    def done(self, group: int) -> None:
        """``group`` has been stopped: it is no longer the watchdog's concern."""
        self._tell(f"-{group}")


#: The one watchdog of this process.
watchdog = _Watchdog()

__all__ = ["die_with_parent", "watchdog", "with_parent_death"]
