"""A launched HTTP target under watch: its death is noticed at once, and it may be relaunched.

One task owns the server's process for the whole run (a launch is a context manager, and only
the task that entered it may leave it): it launches, waits until the port accepts connections,
waits for the process to end, and then either relaunches it on the same port (``restart``) or
reports the target gone. Whoever finds the server hung asks :meth:`Supervisor.kill`; its end is
then not reported as a crash.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc

from loadtest.core.aio import task_group
from loadtest.core.errors import TargetError
from loadtest.core.names import LOOPBACK
from loadtest.core.process import TargetProcess, launch, signal_group, wait_for_port

#: Pause before relaunching a server that died, so that one that dies at once is not spun.
RESTART_BACKOFF_S = 0.5


@dataclass(frozen=True)
class TargetEvent:
    """Something that happened to the target: ``crash``, ``restart`` or ``restart_failed``."""

    kind: str
    detail: str


class Supervisor:
    """Keeps one launched server; see the module's docstring. Use :func:`supervise`."""

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        port: int,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 20.0,
        stderr_log: Path | None = None,
        restart: bool = False,
    ) -> None:
        self.command = command
        self.port = port
        self.env = dict(env or {})
        self.ready_timeout = ready_timeout
        self.stderr_log = stderr_log
        self.restart = restart
        #: The current (or last) server process.
        self.process: TargetProcess | None = None
        self.restarts = 0
        #: Set once the target is down for good (it died and is not to be, or could not be, relaunched).
        self.gone = anyio.Event()
        #: Told of every crash and restart; set by whoever records them.
        self.on_event: Callable[[TargetEvent], None] | None = None
        self._killed = False

    def kill(self) -> None:
        """Kill the current server (it hangs); relaunched if ``restart``, and not called a crash."""
        process = self.process
        if process is not None and process.returncode is None:
            self._killed = True
            signal_group(process.pid, signal.SIGKILL)

    def _say(self, kind: str, detail: str) -> None:
        if self.on_event is not None:
            self.on_event(TargetEvent(kind, detail))

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Launch, watch, relaunch; ready (``tg.start``) once the first launch listens.

        A first launch that fails raises :class:`TargetError`; a relaunch that fails is
        reported (``restart_failed``) and leaves the target gone.
        """
        started = False
        while True:
            try:
                async with launch(
                    self.command, env=self.env, stdin=False, stdout=False, stderr_log=self.stderr_log
                ) as process:
                    await wait_for_port(process, LOOPBACK, self.port, self.ready_timeout)
                    self.process = process
                    if started:
                        self.restarts += 1
                        self._say("restart", f"relaunched as pid {process.pid}")
                    else:
                        started = True
                        task_status.started()
                    await process.process.wait()
                    if not self._killed:
                        self._say("crash", f"the target {process.describe_exit()}")
                    self._killed = False
            except TargetError as exc:
                if not started:
                    raise
                self._say("restart_failed", str(exc))
                self.gone.set()
                return
            if not self.restart:
                self.gone.set()
                return
            await anyio.sleep(RESTART_BACKOFF_S)


@asynccontextmanager
async def supervise(supervisor: Supervisor) -> AsyncIterator[Supervisor]:
    """Launch ``supervisor``'s command and yield once it listens; stop it (bounded) at exit."""
    async with task_group() as tg:
        await tg.start(supervisor.run)
        try:
            yield supervisor
        finally:
            # The launch inside run() stops the server, shielded and bounded, as it is cancelled.
            tg.cancel_scope.cancel()


__all__ = ["RESTART_BACKOFF_S", "Supervisor", "TargetEvent", "supervise"]
