"""``health-<transport>.jsonl``: the health samples and events of a run, flushed line by line.

run.json is written once, at the end; a soak that is killed (SIGKILL, a lost machine) never
gets there. This log is appended as the run goes, one JSON object per line, flushed each
time, so that it and the interval logs (``.hlog``) are enough to rebuild the run's picture
(``mcp-loadtest report``). A line cut short by the kill is skipped when reading.

Lines, told apart by their keys:

* the first: ``{"schema": "mcp-loadtest/health/1", "transport", "started" (UTC ISO),
  "sample_every_s", "warmup_s", "per_session"}``;
* samples: ``{"t", "rss", "cpu", "fds", "threads", "sessions", "seg", "gen_rss", "gen_cpu",
  "ops": {op: [count, ok, {error kind: n}, {silent kind: n}, bytes_in, bytes_out, out_of_range,
  (silent_examples, error_examples)]}}`` (the examples only when they changed; logs written
  before bytes were logged have the first four only), server fields ``null`` while no server
  process is watched; ``t`` is seconds since the transport began, as for events;
* events: ``{"t", "at" (UTC ISO), "event", "detail"}``: ``measuring`` (warm-up over),
  ``attach`` (a server process is watched), ``crash``, ``hang``, ``restart``,
  ``restart_failed``, ``idle`` (the load stopped);
* set-up, once, when the clock starts: ``{"setup": {...}}`` (``transports.<t>.setup``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

__all__ = ["HEALTH_SCHEMA", "HealthLog", "HealthRecord", "health_log_path", "read_health_log"]

HEALTH_SCHEMA = "mcp-loadtest/health/1"


def health_log_path(directory: Path, transport: str) -> Path:
    return directory / f"health-{transport}.jsonl"


class HealthLog:
    """Appends lines to a health log; a no-op without a path (runs with no results directory)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def write(self, line: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        if self._file is None:
            self._file = self.path.open("ab")
        self._file.write(orjson.dumps(line) + b"\n")
        # Flushed every line: a killed run must still leave everything up to its last second.
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class HealthRecord:
    """A health log read back."""

    header: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: How opening the planned sessions went (``transports.<t>.setup``), once the clock started.
    setup: dict[str, Any] | None = None


def read_health_log(path: Path) -> HealthRecord:
    """Read ``path``; lines that do not parse (a torn last line) are skipped."""
    record = HealthRecord()
    if not path.is_file():
        return record
    with path.open("rb") as f:
        for raw in f:
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(line, dict):
                continue
            if "schema" in line:
                record.header = line
            elif isinstance(line.get("setup"), dict):
                record.setup = line["setup"]
            elif "event" in line:
                record.events.append(line)
            elif "t" in line:
                record.samples.append(line)
    return record
