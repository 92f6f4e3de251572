"""Live progress on stderr: one redrawn line on a terminal, plain periodic lines elsewhere.

Plain lines are for CI logs and ``--no-progress``: one when a transport starts, one every
``plain_every_s`` seconds, one when it ends; nothing that needs a terminal to read. A soak
adds a status line every ``soak.status_every`` (on a terminal too): time, calls, failures,
sessions, the server's memory, descriptors and threads, crashes and restarts, and the
generator's own memory, so that an hours-long job's log tells how it went.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from typing import Any, TextIO

from loadtest.core.units import format_duration, format_latency_us
from loadtest.measure.metrics import Recorder
from loadtest.run.control import Progress

_BAR = 20


class TerminalProgress(Progress):
    def __init__(
        self, stream: TextIO = sys.stderr, *, live: bool | None = None, plain_every_s: float = 5.0
    ) -> None:
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self.plain_every_s = plain_every_s
        self._planned_s: float | None = None
        self._planned_calls: int | None = None
        self._last_plain = 0.0
        self._drawn = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def transport_started(self, transport: str, planned_s: float | None, planned_calls: int | None) -> None:
        self._planned_s = planned_s
        self._planned_calls = planned_calls
        self._last_plain = time.monotonic()
        plan = []
        if planned_s is not None:
            plan.append(format_duration(planned_s))
        if planned_calls:
            plan.append(f"{planned_calls} calls")
        self.note(f"{transport}: running ({' or '.join(plan) or 'until interrupted'})")

    def tick(self, transport: str, elapsed_s: float, warming: bool, recorder: Recorder) -> None:
        live = recorder.live(transport)
        if warming:
            head = f"{transport:<5} warming up {format_duration(max(0.0, -elapsed_s))} left"
        else:
            head = f"{transport:<5} {self._where(elapsed_s, live.calls)}"
        p99 = format_latency_us(live.p99_us) if live.p99_us else "-"
        line = f"{head}  {live.calls} calls  {live.rate:.0f}/s  p99 {p99}  errors {live.errors}  silent {live.silent}"
        if self.live:
            self._write("\r\033[K" + line)
            self._drawn = True
        elif time.monotonic() - self._last_plain >= self.plain_every_s:
            self._last_plain = time.monotonic()
            self._write(line + "\n")

    def _where(self, elapsed_s: float, calls: int) -> str:
        fraction = None
        if self._planned_s:
            fraction = elapsed_s / self._planned_s
        if self._planned_calls:
            by_calls = calls / self._planned_calls
            fraction = by_calls if fraction is None else max(fraction, by_calls)
        clock = format_duration(max(0.0, elapsed_s))
        if fraction is None:
            return clock
        fraction = min(1.0, max(0.0, fraction))
        filled = round(fraction * _BAR)
        bar = "#" * filled + "." * (_BAR - filled) if not self.live else "█" * filled + "░" * (_BAR - filled)
        total = f"/{format_duration(self._planned_s)}" if self._planned_s else ""
        return f"[{bar}] {clock}{total}"

    def transport_done(self, transport: str) -> None:
        self._clear()
        self.note(f"{transport}: done")

    def note(self, text: str) -> None:
        self._clear()
        self._write(text + "\n")

    def status(self, transport: str, figures: dict[str, Any]) -> None:
        self.note(format_status(transport, figures))

    def _clear(self) -> None:
        if self._drawn:
            self._write("\r\033[K")
            self._drawn = False


def _mib(value: Any) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def format_status(transport: str, f: dict[str, Any]) -> str:
    """One soak status line: ``[status <UTC>] http +12m0s/1h0m0s calls 60 (0.1/s) ...``."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    planned = f"/{format_duration(f['planned_s'])}" if f.get("planned_s") else ""
    parts = [
        f"[status {now}] {transport} +{format_duration(max(0.0, f['elapsed_s']))}{planned}",
        f"calls {f['calls']} ({f['rate']:.2f}/s)",
        f"errors {f['errors']}",
        f"silent {f['silent']}",
        f"sessions {f['sessions']}",
    ]
    if f.get("server_rss") is not None:
        fds = "-" if f.get("server_fds") is None else f["server_fds"]
        parts.append(f"server RSS {_mib(f['server_rss'])} fds {fds} threads {f.get('server_threads')}")
    parts.append(f"crashes {f['crashes']} hangs {f['hangs']} restarts {f['restarts']}")
    parts.append(f"generator RSS {_mib(f.get('generator_rss'))}")
    return "  ".join(parts)
