"""``<transport>.hlog``: the one writer and the one reader of the HdrHistogram interval logs.

The standard interval-log format (log format version 1.3), one line per op and interval:
``Tag=<op>`` holds latency from the intended send time (corrected for coordinated omission),
``Tag=<op>.uncorrected`` from the actual send time. Values are microseconds, ``Interval_Max``
milliseconds. The writer flushes every interval, so a killed run leaves a usable log; the
reader stops at a line cut short by the kill.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from hdrh.log import HistogramLogReader

from loadtest.core.names import HLOG_SUFFIX
from loadtest.measure.histograms import encode_histogram, new_histogram

#: Suffix of the hlog tag of an op's uncorrected (from actual send) histogram.
UNCORRECTED_SUFFIX = ".uncorrected"

_FILE_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def hlog_path(directory: Path, transport: str) -> Path:
    """Where ``transport``'s interval log lives in a run directory."""
    return directory / f"{_FILE_UNSAFE.sub('_', transport) or '_'}{HLOG_SUFFIX}"


class HlogWriter:
    """Writes one transport's interval log: a header when started afresh, then interval lines."""

    def __init__(self, path: Path, transport: str, *, fresh: bool, start_epoch_s: float) -> None:
        """Open ``path``, truncating it and writing the header if ``fresh``, else appending.

        ``start_epoch_s`` is the wall-clock time interval start stamps count from.
        """
        self.path = path
        self._file: IO[str] = path.open("w" if fresh else "a", encoding="ascii", newline="\n")
        if fresh:
            self._file.write(_header(transport, start_epoch_s))

    def write(self, tag: str, start_s: float, length_s: float, hist: Any) -> None:
        """One interval of one tag; ``start_s`` counts from the log's start time."""
        self._file.write(
            f"Tag={tag},{start_s:.3f},{length_s:.3f},{hist.get_max_value() / 1000:.3f},{encode_histogram(hist)}\n"
        )

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _header(transport: str, start: float) -> str:
    iso = datetime.fromtimestamp(start, timezone.utc).isoformat(timespec="milliseconds")
    return (
        f"#[mcp-loadtest interval log, transport {transport}: values in microseconds, Interval_Max in"
        f" milliseconds; Tag=<op> is latency from the intended send time (corrected),"
        f" Tag=<op>{UNCORRECTED_SUFFIX} from the actual send time]\n"
        "#[Histogram log format version 1.3]\n"
        f"#[StartTime: {start:.3f} (seconds since epoch), {iso}]\n"
        f"#[BaseTime: {start:.3f} (seconds since epoch)]\n"
        '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n'
    )


def epoch_of(clock_ns: int, origin_ns: int) -> float:
    """The wall-clock time (s since epoch) of ``origin_ns`` on a clock now reading ``clock_ns``."""
    return time.time() - (clock_ns - origin_ns) / 1e9


@dataclass(frozen=True, slots=True)
class Interval:
    """One line of an interval log."""

    #: The op (the tag without :data:`UNCORRECTED_SUFFIX`).
    op: str
    #: Latency from the actual send time (the ``.uncorrected`` tag) rather than the intended.
    uncorrected: bool
    #: Seconds since the log's base time.
    start_s: float
    end_s: float
    #: The interval's histogram (the project's range and precision).
    histogram: Any


def read_hlog(path: Path) -> Iterator[Interval]:
    """The intervals of an interval log, in file order; nothing if there is no such file.

    A torn last line (a run killed while writing it) ends the log.
    """
    if not path.is_file():
        return
    reader = HistogramLogReader(str(path), new_histogram())
    try:
        while True:
            try:
                interval = reader.get_next_interval_histogram()
            except (ValueError, TypeError):  # the torn last line of a killed run
                return
            if interval is None:
                return
            tag = interval.get_tag() or ""
            uncorrected = tag.endswith(UNCORRECTED_SUFFIX)
            yield Interval(
                op=tag[: -len(UNCORRECTED_SUFFIX)] if uncorrected else tag,
                uncorrected=uncorrected,
                start_s=interval.get_start_time_stamp() / 1000,
                end_s=interval.get_end_time_stamp() / 1000,
                histogram=interval,
            )
    finally:
        reader.close()


__all__ = ["UNCORRECTED_SUFFIX", "HlogWriter", "Interval", "epoch_of", "hlog_path", "read_hlog"]
