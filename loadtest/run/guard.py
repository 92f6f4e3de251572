"""The target guard: launch the target, watch its health, and deal with crashes and hangs.

A launched target that dies or hangs is recorded with its time; with ``target.restart`` it is
launched again (for stdio: the next session's server) and every session of the old one is
replaced, otherwise the transport's run ends there, its results kept.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from loadtest.core.process import TargetProcess, signal_group
from loadtest.core.units import format_duration
from loadtest.protocol.session import Session
from loadtest.results.health_log import HealthLog, health_log_path
from loadtest.run.control import Progress, RunControl, TransportReport
from loadtest.run.health_watch import HealthWatch
from loadtest.run.targets.reference import Endpoint, free_port, start_target, target_command
from loadtest.run.targets.supervisor import TargetEvent
from loadtest.run.timing import sleep_unless
from loadtest.scenario import Scenario


@asynccontextmanager
async def open_target(
    transport: str, scenario: Scenario, python: str, log_dir: Path | None
) -> AsyncIterator[Endpoint]:
    """Start (or find) ``scenario``'s target for ``transport``; stop it on leaving."""
    target = scenario.target
    port = free_port() if transport != "stdio" else None
    stderr_log = log_dir / f"server-{transport}.log" if log_dir is not None else None
    async with start_target(
        transport,
        command=target_command(scenario, transport, python, port),
        url=None if target.reference else scenario.url_for(transport),
        env=scenario.env_for(transport, port, python),
        headers=target.headers,
        ready_timeout=target.ready_timeout,
        stderr_log=stderr_log,
        port=port,
        restart=target.restart,
    ) as endpoint:
        yield endpoint


class TargetGuard:
    """One transport's target: its health watch, its server processes, its crashes and hangs.

    ``stop`` ends the transport's run (the target is gone for good); ``stopping`` tells
    whether the run is ending anyway (then a closing session is no crash).
    """

    def __init__(
        self,
        transport: str,
        scenario: Scenario,
        report: TransportReport,
        *,
        log_dir: Path | None,
        sessions: Callable[[], int],
        counters: Callable[[], dict[str, list[Any]]],
        stop: Callable[[], None],
        stopping: Callable[[], bool],
    ) -> None:
        self.transport = transport
        self.restart = scenario.target.restart
        self.report = report
        self._stop = stop
        self._stopping = stopping
        settings = scenario.health
        workload = scenario.workload
        self.idle_s = settings.idle
        self.health = HealthWatch(
            transport,
            HealthLog(health_log_path(log_dir, transport) if log_dir is not None else None),
            sample_every=settings.sample_every,
            warmup_s=settings.warmup_for(workload),
            hang_after_s=settings.hang_after_for(workload),
            per_session=transport != "stdio",
            sessions=sessions,
            counters=counters,
            servers=self._session_servers,
        )
        self.endpoint: Endpoint | None = None
        #: Bumped when the target is relaunched: sessions of an older generation are replaced.
        self.generation = 0
        #: Open built-in sessions: their generation and, on stdio, their own server process.
        self.live: dict[Session, tuple[int, TargetProcess | None]] = {}
        #: stdio sessions whose server we killed (it hung): their end is no crash.
        self.killed: set[Session] = set()
        #: stdio: crashes whose relaunch (the next session) is still to be counted.
        self.pending_restarts = 0
        #: The load is over and the server idles (``health.idle``).
        self.idling = False

    @property
    def supervisor(self) -> Any:
        return self.endpoint.supervisor if self.endpoint is not None else None

    def attach(self, endpoint: Endpoint) -> bool:
        """Watch ``endpoint``'s launched server; True if there is one (then run :meth:`end_when_gone`)."""
        self.endpoint = endpoint
        supervisor = endpoint.supervisor
        if supervisor is None or supervisor.process is None:
            return False
        supervisor.on_event = self._on_target_event
        self.health.offer(supervisor.process.pid)
        return True

    def _session_servers(self) -> list[int]:
        """Server processes that could be watched: the launched one, or the open stdio sessions'."""
        supervisor = self.supervisor
        if supervisor is not None and supervisor.process is not None:
            return [supervisor.process.pid]
        return [p.pid for _, p in self.live.values() if p is not None and p.returncode is None]

    def _on_target_event(self, event: TargetEvent) -> None:
        """The supervisor of a launched HTTP server saw it die, or relaunched it."""
        self.health.event(event.kind, event.detail)
        supervisor = self.supervisor
        if event.kind == "restart" and supervisor is not None and supervisor.process is not None:
            # Sessions of the old server are unknown to the new one: replace them all.
            self.generation += 1
            self.health.hang.reset()
            self.health.offer(supervisor.process.pid, replace=True)

    async def end_when_gone(self) -> None:
        supervisor = self.supervisor
        assert supervisor is not None
        await supervisor.gone.wait()
        self.give_up("the target is gone")

    def give_up(self, why: str, *, ending: bool = False) -> None:
        """The target died or hangs and is not relaunched: this transport's run ends here.

        ``ending``: name it even when the run is ending anyway (a hang found while the last
        calls drain is still the reason they never came back).
        """
        if not self._stopping() or (ending and self.report.error is None):
            hint = "" if self.restart else "; set target.restart = true to relaunch it"
            self.report.error = (
                f"{why} at +{self.health.now_s():.0f}s; the run of {self.transport} ended there{hint}"
            )
            self._stop()

    def on_hang(self, why: str) -> None:
        if not self.restart:
            self.give_up(f"the target hung ({why})", ending=True)
            return
        supervisor = self.supervisor
        if supervisor is not None:
            supervisor.kill()  # relaunched by the supervisor, which then reports the restart
            return
        # stdio: every session has its own server; replace them all, killing the hung ones.
        for session, (_, process) in self.live.items():
            if process is not None and process.returncode is None:
                self.killed.add(session)
                signal_group(process.pid, signal.SIGKILL)
        self.pending_restarts += 1

    def final_check(self, now_ns: int) -> None:
        """After the last calls drained: a hang the periodic check had no time to see.

        The calls under way when a server stops answering are lost at their deadline, often
        just as the run drains; the periodic check may then never run again. Here even one
        lost call counts when nothing was answered for the whole hang period: no more calls
        will come to make it three.
        """
        hang = self.health.hang
        why = hang.check(now_ns)
        silent_ns = now_ns - hang.last_answer_ns
        if why is None and not hang.paused and hang.lost and silent_ns >= hang.after_ns:
            hang.paused = True
            why = f"no answer for {silent_ns / 1e9:.0f}s; {hang.lost} calls lost meanwhile"
        if why is None:
            return
        self.health.event("hang", why)
        if not self.restart:
            self.give_up(f"the target hung ({why})", ending=True)

    def session_opened(self, session: Session, process: TargetProcess | None) -> None:
        """A built-in session is up; on stdio ``process`` is its own server."""
        if process is not None:
            # stdio: every session is its own server process; sample one at a time.
            self.health.offer(process.pid)
            if self.pending_restarts:
                self.pending_restarts -= 1
                self.health.event("restart", f"a new session's server, pid {process.pid}")
                self.health.hang.reset()
        self.live[session] = (self.generation, process)

    def session_closing(self, session: Session, *, normally: bool) -> None:
        """A built-in session is closing; ``normally``: its user let go of it (not an error)."""
        if normally:
            self._session_ended(session)
        self.live.pop(session, None)
        self.killed.discard(session)

    def _session_ended(self, session: Session) -> None:
        """A session whose channel closed under it: on stdio, its server died."""
        if session.closed is None or self.transport != "stdio" or self._stopping():
            return
        if session in self.killed:
            self.killed.discard(session)
            return
        self.health.event("crash", f"a session's server {session.closed.detail}")
        if self.restart:
            self.pending_restarts += 1
        else:
            self.give_up("the target crashed")

    def outdated(self, session: object) -> bool:
        """Whether ``session`` belongs to a relaunched target's past."""
        entry = self.live.get(session)  # type: ignore[call-overload]
        return entry is not None and entry[0] < self.generation

    async def idle(self, control: RunControl, progress: Progress) -> None:
        """``health.idle``: after the load, the server stays up so long, still sampled."""
        launched = self.supervisor is not None
        # stdio servers end with their sessions: there is nothing left to idle.
        if self.idle_s <= 0 or not launched or not self.health.watching or control.interrupted.is_set():
            return
        self.health.idle(self.idle_s)
        self.idling = True
        progress.note(
            f"{self.transport}: load done; the server idles {format_duration(self.idle_s)}, still sampled"
        )
        await sleep_unless(control.interrupted, self.idle_s)
        self.health.sample()


__all__ = ["TargetGuard", "open_target"]
