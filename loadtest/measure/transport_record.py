"""What the recorder keeps per transport, and the live figures it shows of one.

:class:`TransportRecord` is the recorder's state for one transport (its ops' statistics, its
sessions, the sections other parts set, its interval clock and ``.hlog`` writer);
:class:`LiveStats` is what the progress display reads of it. Only
:class:`~loadtest.measure.recorder.Recorder` changes a record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from loadtest.measure.histograms import new_histogram
from loadtest.measure.hlog import UNCORRECTED_SUFFIX, HlogWriter
from loadtest.measure.opstats import OpStats

_TAG_UNSAFE = re.compile(r"[,\s\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class LiveStats:
    """What the progress display shows for one transport."""

    #: Calls recorded so far.
    calls: int
    #: Calls per second over the last completed interval.
    rate: float
    #: p99 (corrected, µs) over the last completed interval, across ops; ``None`` if no samples.
    p99_us: int | None
    errors: int
    silent: int
    #: Seconds since measurement started (or the last reset).
    elapsed_s: float


class TransportRecord:
    """What the recorder keeps of one transport: its ops, sessions, sections and clock."""

    __slots__ = (
        "calls_at_tick",
        "client",
        "done",
        "generator",
        "live_p99",
        "live_rate",
        "log",
        "log_fresh",
        "name",
        "ops",
        "origin_ns",
        "protocol_chosen_by",
        "protocol_version",
        "scratch",
        "server",
        "sessions_failed",
        "sessions_opened",
        "setup",
        "skipped_ops",
        "start_ns",
        "tags",
        "ticked_ns",
    )

    def __init__(self, name: str, now_ns: int) -> None:
        self.name = name
        #: Measurement of this transport has ended; later ticks leave it alone.
        self.done = False
        self.ops: dict[str, OpStats] = {}
        self.tags: set[str] = set()
        self.sessions_opened = 0
        self.sessions_failed = 0
        self.setup = new_histogram()
        self.protocol_version: str | None = None
        self.protocol_chosen_by: str | None = None
        self.skipped_ops: dict[str, str] = {}
        self.generator: dict[str, Any] = {}
        self.server: dict[str, Any] = {}
        self.client: dict[str, Any] = {}
        self.scratch = new_histogram()
        self.log: HlogWriter | None = None
        #: Whether the next opening of the log starts it afresh (header) or appends.
        self.log_fresh = True
        self.restart(now_ns)

    def restart(self, now_ns: int) -> None:
        self.origin_ns = now_ns
        self.start_ns = now_ns
        self.ticked_ns: int | None = None
        self.calls_at_tick = 0
        self.live_rate = 0.0
        self.live_p99: int | None = None

    def unique_tag(self, op: str) -> str:
        base = _TAG_UNSAFE.sub("_", op) or "_"
        tag, n = base, 1
        while tag in self.tags or tag + UNCORRECTED_SUFFIX in self.tags:
            n += 1
            tag = f"{base}~{n}"
        self.tags.update((tag, tag + UNCORRECTED_SUFFIX))
        return tag


__all__ = ["LiveStats", "TransportRecord"]
