"""Set-up: opening the planned sessions before anything is measured.

The measured window (and the warm-up before it) starts when every planned session is open,
or when the set-up deadline passes, whichever comes first. Until then no call is made, so
that a slow session start never lands in the latencies as server time. What set-up took is
reported on its own (``transports.<t>.setup``): the sessions planned and open at the start,
attempts that failed, and sessions that came late, by how much.
"""

from __future__ import annotations

from typing import Any


class SetUp:
    """Counts the planned sessions as they open; times are ``perf_counter_ns`` values."""

    def __init__(self, planned: int, deadline_s: float, began_ns: int) -> None:
        self.planned = planned
        self.deadline_s = deadline_s
        self.began_ns = began_ns
        #: Which sessions (by their worker or slot index) have opened at least once.
        self.opened: set[int] = set()
        #: Attempts to open a session that failed before the clock started.
        self.failed = 0
        #: When the clock started (0: not yet), and how many sessions were open then.
        self.started_ns = 0
        self.open_at_start = 0
        #: The latest a session opened after the clock started, past the start.
        self.late_by_ns = 0

    @property
    def deadline_ns(self) -> int:
        return self.began_ns + int(self.deadline_s * 1e9)

    def opened_one(self, index: int, now_ns: int) -> bool:
        """Session ``index`` is up; True when that makes every planned session open."""
        if index in self.opened:
            return False
        self.opened.add(index)
        if self.started_ns:
            self.late_by_ns = max(self.late_by_ns, now_ns - self.started_ns)
            return False
        return len(self.opened) >= self.planned

    @property
    def complete(self) -> bool:
        return len(self.opened) >= self.planned

    def failed_one(self) -> None:
        if not self.started_ns:
            self.failed += 1

    def start(self, now_ns: int) -> None:
        """The clock starts now."""
        self.started_ns = now_ns
        self.open_at_start = len(self.opened)

    def section(self) -> dict[str, Any]:
        """``transports.<t>.setup`` of run.json."""
        late = self.planned - self.open_at_start
        return {
            "planned_sessions": self.planned,
            "open_at_start": self.open_at_start,
            # Sessions not open when the clock started: they opened later, or never.
            "late": late,
            "never_opened": self.planned - len(self.opened),
            "late_by_s": round(self.late_by_ns / 1e9, 3) if late and self.late_by_ns else None,
            "failed_attempts": self.failed,
            "setup_s": round((self.started_ns - self.began_ns) / 1e9, 3) if self.started_ns else None,
            "deadline_s": self.deadline_s,
            "deadline_hit": bool(late),
        }


def merge_setups(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The set-up of several generator workers, as one (counts added, times the longest)."""
    merged: dict[str, Any] = {}
    for key in ("planned_sessions", "open_at_start", "late", "never_opened", "failed_attempts"):
        merged[key] = sum(int(part.get(key) or 0) for part in parts)
    for key in ("late_by_s", "setup_s"):
        values = [part[key] for part in parts if part.get(key) is not None]
        merged[key] = max(values) if values else None
    merged["deadline_s"] = max((part.get("deadline_s") or 0.0 for part in parts), default=0.0)
    merged["deadline_hit"] = any(part.get("deadline_hit") for part in parts)
    return merged


def describe(setup: dict[str, Any], transport: str) -> str:
    """One line for the progress display: how set-up went."""
    planned = setup["planned_sessions"]
    took = setup.get("setup_s")
    line = f"{transport}: {setup['open_at_start']} of {planned} sessions open after {took or 0:.1f}s"
    if setup.get("late"):
        line += f" (set-up deadline {setup['deadline_s']:g}s); {setup['late']} late, measuring without them"
    if setup.get("failed_attempts"):
        line += f"; {setup['failed_attempts']} failed attempts"
    return line


__all__ = ["SetUp", "describe", "merge_setups"]
