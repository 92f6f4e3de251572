"""Resource usage of a launched target (its whole process tree) and of the generator itself.

A target is often more than one process: ``npx`` runs a shell that runs node, ``uv run``
runs python. Memory, threads and descriptors are summed over the tree at each sample. CPU is
cumulative, so processes that exit must not take their share with them: each process's last
reading is remembered, and a process that disappears while its parent is alive has been
reaped by that parent, whose ``children_user/children_system`` times now hold all of it.

One monitor may follow a target through several processes (:meth:`ProcessMonitor.attach`
again): a restarted server, or the next stdio session's server. The series goes on with the
same clock and cumulative CPU; each row says which process (``segment``) it belongs to.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import psutil

from loadtest.core.process import own_cpu_s

#: Most points kept in the time series; when full, every other point is dropped.
MAX_SAMPLES = 3600

_GONE = (psutil.NoSuchProcess, psutil.AccessDenied)  # ZombieProcess is a NoSuchProcess


class BoundedSeries:
    """A time series that never holds more than ``max_rows`` rows, however long the run.

    When full, every other row is dropped and from then on only one new row in two (four,
    eight...) is kept: the series stays evenly spread over the whole run, first row included.
    """

    def __init__(self, max_rows: int = MAX_SAMPLES) -> None:
        if max_rows < 2:
            raise ValueError("max_rows must be at least 2")
        self._max_rows = max_rows
        self.rows: list[list[Any]] = []
        #: Keep one row in ``_stride`` (doubles at every downsampling).
        self._stride = 1
        self._skipped = 0

    def add(self, row: list[Any]) -> None:
        self._skipped += 1
        if self._skipped < self._stride and self.rows:
            return
        self._skipped = 0
        self.rows.append(row)
        if len(self.rows) >= self._max_rows:
            del self.rows[1::2]
            self._stride *= 2


@dataclass(slots=True)
class _Seen:
    """The last reading of one process of the tree."""

    ppid: int
    #: user + system CPU seconds of the process itself.
    own_s: float
    #: CPU seconds of its children that it has reaped (they are no longer in the tree).
    reaped_s: float


class ProcessMonitor:
    """Samples a process and its descendants; :meth:`summary` goes into run.json's ``server``.

    ``count``, when given, is read at every sample and stored with it (the driver passes the
    number of sessions opened so far, so memory can be set against sessions).
    """

    def __init__(
        self,
        *,
        max_samples: int = MAX_SAMPLES,
        count: Callable[[], int] | None = None,
        origin: float | None = None,
    ) -> None:
        """``origin`` is the ``time.monotonic()`` value sample times count from (default: the first sample)."""
        self._series = BoundedSeries(max_samples)
        self._count = count
        #: Which process of the target the samples are from: 0 for the first, +1 per attach.
        self.segment = -1
        #: The latest sample, stored or not: ``[t_s, rss, cpu_s, fds, threads, count, segment]``.
        self.last: list[Any] | None = None
        self._root: psutil.Process | None = None
        self._ended = False
        self._seen: dict[tuple[int, float], _Seen] = {}
        #: CPU seconds of processes that left the tree with nobody in it to account for them.
        self._departed_s = 0.0
        self._t0: float | None = origin
        self._cpu0: float | None = None
        self._rss_start: int | None = None
        self._rss_peak: int | None = None
        self._rss_end: int | None = None
        self._cpu_s = 0.0
        self._fds_peak: int | None = None
        self._threads_peak: int | None = None
        self._procs_peak = 0

    @property
    def ended(self) -> bool:
        """Whether the process is gone (or never was); no further samples will be taken."""
        return self._ended

    def attach(self, pid: int) -> bool:
        """Watch ``pid`` from now on; False (and :attr:`ended`) if there is no such process.

        Attaching again follows the target into its next process: the previous one must be
        gone (its last CPU reading is kept), and the samples go on in a new ``segment``.
        """
        # Whatever was seen of the previous process is final: it has exited.
        self._departed_s += sum(seen.own_s + seen.reaped_s for seen in self._seen.values())
        self._seen = {}
        self.segment += 1
        try:
            self._root = psutil.Process(pid)
        except _GONE:
            self._root = None
            self._ended = True
            return False
        self._ended = False
        return True

    async def run(
        self,
        pid: int,
        *,
        interval_s: float = 1.0,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Sample ``pid`` now and every ``interval_s`` until cancelled or the process is gone.

        Signals readiness (``tg.start``) after the first sample, so a start value exists.
        """
        if self.attach(pid):
            self.sample_now()
        task_status.started()
        while not self._ended:
            await anyio.sleep(interval_s)
            self.sample_now()

    def sample_now(self) -> bool:
        """Take one sample synchronously; False once the process is gone (what was kept stays)."""
        root = self._root
        if root is None or self._ended:
            return False
        try:
            if root.status() == psutil.STATUS_ZOMBIE:
                raise psutil.ZombieProcess(root.pid)
            procs = [root, *root.children(recursive=True)]
        except _GONE:
            self._ended = True
            return False
        now = time.monotonic()
        rss = threads = 0
        fds: int | None = None
        alive: dict[tuple[int, float], _Seen] = {}
        for proc in procs:
            try:
                with proc.oneshot():
                    key = (proc.pid, proc.create_time())
                    times = proc.cpu_times()
                    seen = _Seen(
                        proc.ppid(), times.user + times.system, times.children_user + times.children_system
                    )
                    rss += proc.memory_info().rss
                    threads += proc.num_threads()
                    with contextlib.suppress(psutil.AccessDenied):
                        fds = (fds or 0) + proc.num_fds()
            except _GONE:
                if proc is root:
                    self._ended = True
                    return False
                continue  # exited between listing and reading: accounted below as departed
            alive[key] = seen
        if rss == 0:
            # Every page unmapped: the tree is exiting (not yet a zombie). Not a reading.
            self._ended = True
            return False
        alive_pids = {pid for pid, _ in alive}
        for key, seen in self._seen.items():
            # Gone with its parent still here: the parent reaped it and its reaped_s holds
            # all of it. Gone otherwise (orphaned, or its parent went too): keep its last reading.
            if key not in alive and seen.ppid not in alive_pids:
                self._departed_s += seen.own_s + seen.reaped_s
        self._seen = alive
        cpu_total = self._departed_s + sum(s.own_s + s.reaped_s for s in alive.values())
        self._store(now, rss, cpu_total, fds, threads, len(alive))
        return True

    def _store(
        self, now: float, rss: int, cpu_total: float, fds: int | None, threads: int, procs: int
    ) -> None:
        if self._cpu0 is None:
            self._t0 = now if self._t0 is None else self._t0
            self._cpu0 = cpu_total
            self._rss_start = rss
        assert self._t0 is not None
        # max(): a misattributed exit (see sample_now) must not make cumulative CPU go back.
        self._cpu_s = max(self._cpu_s, cpu_total - self._cpu0)
        self._rss_end = rss
        self._rss_peak = rss if self._rss_peak is None else max(self._rss_peak, rss)
        if fds is not None:
            self._fds_peak = fds if self._fds_peak is None else max(self._fds_peak, fds)
        self._threads_peak = threads if self._threads_peak is None else max(self._threads_peak, threads)
        self._procs_peak = max(self._procs_peak, procs)
        count = self._count() if self._count is not None else None
        row = [round(now - self._t0, 3), rss, round(self._cpu_s, 3), fds, threads, count, self.segment]
        self.last = row
        self._series.add(row)

    def summary(self) -> dict[str, Any]:
        """Start, peak and end RSS, CPU seconds since the first sample, peaks, and the series.

        ``samples`` rows are ``[t_s, rss_bytes, cpu_s, fds, threads]``; ``fds`` is ``None``
        where the system would not tell. ``sample_sessions`` and ``sample_segments`` are two
        more columns of the same rows, kept apart so that readers of the five columns are
        unaffected: ``count`` (see the constructor; ``None`` without one) and ``segment`` (see
        :meth:`attach`). Values are ``None`` if no sample was ever taken.
        """
        return {
            "rss_start_bytes": self._rss_start,
            "rss_peak_bytes": self._rss_peak,
            "rss_end_bytes": self._rss_end,
            "cpu_s": round(self._cpu_s, 3) if self._cpu0 is not None else None,
            "fds_peak": self._fds_peak,
            "threads_peak": self._threads_peak,
            "processes_peak": self._procs_peak,
            "samples": [row[:5] for row in self._series.rows],
            "sample_sessions": [row[5] for row in self._series.rows],
            "sample_segments": [row[6] for row in self._series.rows],
        }


_self_process: psutil.Process | None = None


def self_usage() -> tuple[float, int]:
    """The generator's own ``(cpu_s, rss_bytes)``: CPU since start, current resident memory."""
    global _self_process
    if _self_process is None:
        _self_process = psutil.Process()
    return own_cpu_s(), _self_process.memory_info().rss


__all__ = ["MAX_SAMPLES", "BoundedSeries", "ProcessMonitor", "self_usage"]
