"""Watching one transport's target while it runs: samples, events, hangs, the health log.

The driver creates one :class:`HealthWatch` per transport and runs :meth:`HealthWatch.run` in
the transport's task group. Every ``sample_every`` it samples the server process (when one
is watched: the launched HTTP server, or the current stdio session's server), the generator's
own memory and CPU, and the call counters, and appends them to the health log. Crashes,
restarts and hangs are recorded with their time as they happen. :meth:`HealthWatch.sections`
gives what goes into run.json at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import anyio

from loadtest.measure.health import Sample
from loadtest.measure.health_section import EVENT_KINDS, health_section
from loadtest.results.health_log import HEALTH_SCHEMA, HealthLog
from loadtest.run.targets.monitor import BoundedSeries, ProcessMonitor, self_usage

__all__ = ["MAX_EVENTS", "HangDetector", "HealthWatch", "samples_of"]

#: Events kept in run.json (the counts and the health log have them all).
MAX_EVENTS = 100


class HangDetector:
    """A server that stopped answering: nothing answered for ``after_s`` while calls were lost.

    One lost call is a silent failure, not a hang; :data:`MIN_LOST` in a row, with no answer
    for ``after_s``, is. Calls that fail loudly (connection refused: the server is gone) are
    neither: a dead server is a crash, seen elsewhere.
    """

    MIN_LOST = 3

    def __init__(self, after_s: float) -> None:
        self.after_ns = int(after_s * 1e9)
        self.last_answer_ns = time.perf_counter_ns()
        self.lost = 0
        #: A hang was found and is being dealt with (the server relaunched): not another one.
        self.paused = False

    def answered(self, now_ns: int) -> None:
        self.last_answer_ns = now_ns
        self.lost = 0

    def lost_one(self) -> None:
        self.lost += 1

    def check(self, now_ns: int) -> str | None:
        """Why the server hangs (then paused until :meth:`reset`), or None."""
        silent_ns = now_ns - self.last_answer_ns
        if not self.paused and self.lost >= self.MIN_LOST and silent_ns >= self.after_ns:
            self.paused = True
            return f"no answer for {silent_ns / 1e9:.0f}s; {self.lost} calls lost meanwhile"
        return None

    def reset(self) -> None:
        """Start afresh (a relaunched server, the start of measurement)."""
        self.answered(time.perf_counter_ns())
        self.paused = False


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class HealthWatch:
    """See the module docstring.

    ``sessions`` tells how many sessions were opened so far; ``counters`` the call counters per
    op (``{op: [count, ok, {error kind: n}, {silent kind: n}]}``); ``per_session`` is False for stdio, where each
    server process holds one session; ``servers`` gives the pids of server processes that
    could be watched next, when the one watched is gone (stdio: the other sessions' servers).
    """

    def __init__(
        self,
        transport: str,
        log: HealthLog,
        *,
        sample_every: float,
        warmup_s: float,
        hang_after_s: float,
        per_session: bool,
        sessions: Callable[[], int],
        counters: Callable[[], Mapping[str, list[Any]]],
        servers: Callable[[], Iterable[int]] = tuple,
    ) -> None:
        self.transport = transport
        self.log = log
        self.sample_every = sample_every
        self.warmup_s = warmup_s
        self.per_session = per_session
        self.origin = time.monotonic()
        self.monitor = ProcessMonitor(count=sessions, origin=self.origin)
        self._sessions = sessions
        self._servers = servers
        self.hang = HangDetector(hang_after_s)
        self._counters = counters
        self._attached = False
        self.counts = dict.fromkeys(EVENT_KINDS, 0)
        self.events: list[dict[str, Any]] = []
        self._generator = BoundedSeries()
        self._gen_rss: list[int] = []  # start, peak, end
        self.measure_start_s: float | None = None
        self.idle_start_s: float | None = None
        self._idle_before: list[Any] | None = None
        log.write(
            {
                "schema": HEALTH_SCHEMA,
                "transport": transport,
                "started": _utc_now(),
                "sample_every_s": sample_every,
                "warmup_s": warmup_s,
                "per_session": per_session,
            }
        )

    def now_s(self) -> float:
        return round(time.monotonic() - self.origin, 3)

    @property
    def watching(self) -> bool:
        """Whether a server process is being sampled now."""
        return self._attached and not self.monitor.ended

    @property
    def generator_rss(self) -> int | None:
        """The generator's RSS at the last sample."""
        return self._gen_rss[2] if self._gen_rss else None

    def offer(self, pid: int, *, replace: bool = False) -> None:
        """A server process of this target: watched from now on unless one already is.

        ``replace``: the one watched is known to be gone (relaunched), whether or not a sample
        has noticed yet.
        """
        if self.watching and not replace:
            return
        if self.monitor.attach(pid):
            self._attached = True
            self.event("attach", f"pid {pid}")
            self.monitor.sample_now()

    def event(self, kind: str, detail: str) -> None:
        """Record that ``kind`` happened now (see :mod:`loadtest.results.health_log` for the kinds)."""
        line = {"t": self.now_s(), "at": _utc_now(), "event": kind, "detail": detail}
        self.log.write(line)
        if kind in self.counts:
            self.counts[kind] += 1
            if len(self.events) < MAX_EVENTS:
                self.events.append(line)

    def measuring(self) -> None:
        self.measure_start_s = self.now_s()
        self.event("measuring", "warm-up over")

    def idle(self, seconds: float) -> None:
        """The load stopped; what follows (``seconds`` of it) is the idle period."""
        self.idle_start_s = self.now_s()
        self._idle_before = self.monitor.last
        self.event("idle", f"load stopped; idle for {seconds:g}s")

    def sample(self) -> None:
        """One sample of everything, appended to the log."""
        row: list[Any] | None = None
        if self._attached and self.monitor.ended:
            for pid in self._servers():
                self.offer(pid)
                if self.watching:
                    break
        if self._attached and not self.monitor.ended and self.monitor.sample_now():
            row = self.monitor.last
        gen_cpu, gen_rss = self_usage()
        t = self.now_s()
        self._generator.add([t, gen_rss])
        if not self._gen_rss:
            self._gen_rss = [gen_rss, gen_rss, gen_rss]
        self._gen_rss[1] = max(self._gen_rss[1], gen_rss)
        self._gen_rss[2] = gen_rss
        self.log.write(
            {
                "t": t,
                "rss": row[1] if row else None,
                "cpu": row[2] if row else None,
                "fds": row[3] if row else None,
                "threads": row[4] if row else None,
                "sessions": row[5] if row else self._sessions(),
                "seg": row[6] if row else None,
                "gen_rss": gen_rss,
                "gen_cpu": round(gen_cpu, 3),
                "ops": dict(self._counters()),
            }
        )

    async def run(self, on_hang: Callable[[str], None] | None = None) -> None:
        """Sample every ``sample_every`` until cancelled; ``on_hang(why)`` when the server hangs."""
        deadline = anyio.current_time()
        while True:
            self.sample()
            if on_hang is not None and (why := self.hang.check(time.perf_counter_ns())) is not None:
                self.event("hang", why)
                on_hang(why)
            deadline = max(deadline + self.sample_every, anyio.current_time())
            await anyio.sleep_until(deadline)

    # -- results ----------------------------------------------------------------------------

    def sections(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(server, generator)`` additions for run.json: the monitor's summary with ``health``."""
        server: dict[str, Any] = self.monitor.summary() if self._attached else {}
        idle = None
        if self.idle_start_s is not None:
            idle = (
                self.idle_start_s,
                _sample(self._idle_before),
                _sample(self.monitor.last),
                self.now_s() - self.idle_start_s,
            )
        server["health"] = health_section(
            samples_of(server),
            sample_every_s=self.sample_every,
            warmup_s=self.warmup_s,
            per_session=self.per_session,
            watched=self._attached,
            measure_start_s=self.measure_start_s,
            counts=self.counts,
            events=self.events,
            idle=idle,
        )
        generator: dict[str, Any] = {}
        if self._gen_rss:
            start, peak, end = self._gen_rss
            generator = {
                "rss_start_bytes": start,
                "rss_peak_bytes": peak,
                "rss_end_bytes": end,
                "rss_samples": [list(row) for row in self._generator.rows],
            }
        return server, generator


def _sample(row: list[Any] | None) -> Sample | None:
    """A monitor row (see ``ProcessMonitor.last``) as an analysis sample."""
    if row is None:
        return None
    return Sample(float(row[0]), int(row[1]), row[3], row[4], row[5], int(row[6]))


def samples_of(server: Mapping[str, Any]) -> list[Sample]:
    """The monitor's rows in run.json's ``server`` section as analysis samples."""
    rows = server.get("samples") or []
    sessions = server.get("sample_sessions") or [None] * len(rows)
    segments = server.get("sample_segments") or [0] * len(rows)
    out = []
    for row, count, segment in zip(rows, sessions, segments, strict=False):
        if len(row) < 5 or row[1] is None:
            continue
        out.append(Sample(float(row[0]), int(row[1]), row[3], row[4], count, int(segment or 0)))
    return out
