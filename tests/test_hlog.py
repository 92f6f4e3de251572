"""The one ``.hlog`` writer and reader, the health-log op entries, and merged client sections."""

from __future__ import annotations

from pathlib import Path

from loadtest.analysis.compare.intervals import read_intervals
from loadtest.core.names import HIGHEST_US
from loadtest.measure.hlog import hlog_path, read_hlog
from loadtest.measure.metrics import Recorder
from loadtest.measure.summary import merge_clients
from loadtest.results.recovery import rebuild_document

MS = 1_000_000
S = 1_000_000_000
T0 = 10 * S


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def _recorded(tmp_path: Path, slowest_ns: int) -> Recorder:
    clock = FakeClock()
    rec = Recorder(tmp_path, clock=clock)
    stats = rec.op("http", "echo")
    for second in range(3):
        for i in range(10):
            stats.record(clock.now, clock.now, clock.now + (i + 1) * MS)
        if second == 2:
            stats.record(clock.now, clock.now, clock.now + slowest_ns)
        clock.now += S
        rec.tick()
    rec.finish()
    return rec


def test_reader_reads_what_the_recorder_wrote(tmp_path: Path) -> None:
    rec = _recorded(tmp_path, 5 * MS)
    path = hlog_path(tmp_path, "http")
    intervals = list(read_hlog(path))
    assert [(i.op, i.uncorrected) for i in intervals[:2]] == [("echo", False), ("echo", True)]
    assert [round(i.start_s - intervals[0].start_s) for i in intervals if not i.uncorrected] == [0, 1, 2, 3]
    total = sum(i.histogram.get_total_count() for i in intervals if not i.uncorrected)
    assert total == rec.sections()["http"].ops["echo"].count == 31
    assert list(read_hlog(tmp_path / "absent.hlog")) == []


def test_a_torn_last_line_ends_the_log(tmp_path: Path) -> None:
    _recorded(tmp_path, 5 * MS)
    path = hlog_path(tmp_path, "http")
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # the kill came in the middle of the last line
    intervals = list(read_hlog(path))
    assert len(intervals) == 7  # of 8: three seconds and the final tick, two tags each


def test_compare_and_recovery_read_the_whole_range(tmp_path: Path) -> None:
    # compare's reader once hard-coded the range; a latency at the top must read the same.
    _recorded(tmp_path, HIGHEST_US * 1000)
    buckets = read_intervals(hlog_path(tmp_path, "http"))["echo"]
    assert sum(b.count for b in buckets) == 31
    rebuilt = rebuild_document(tmp_path).transports["http"].ops["echo"]
    assert rebuilt.latency_us.max is not None
    assert rebuilt.latency_us.max >= HIGHEST_US


def test_health_log_entry_carries_examples_only_when_they_change() -> None:
    rec = Recorder()
    stats = rec.op("stdio", "echo")
    stats.record(0, 0, MS, bytes_in=7, bytes_out=9)
    assert stats.log_entry() == [1, 1, {}, {}, 7, 9, 0]
    stats.record(0, 0, MS, error="jsonrpc", example={"message": "boom"})
    first = stats.log_entry()
    assert first[7:] == [{}, {"jsonrpc": [{"message": "boom"}]}]
    assert len(stats.log_entry()) == 7  # unchanged: not repeated
    rec.reset()
    # The examples were discarded: the log learns it once.
    assert stats.log_entry() == [0, 0, {}, {}, 0, 0, 0, {}, {}]
    assert len(stats.log_entry()) == 7


def test_merged_client_recomputes_cost_per_call() -> None:
    merged = merge_clients(
        [
            {"kind": "builtin", "cpu_s": 1.0, "cpu_per_call_us": 10.0, "calls": 100_000},
            {"kind": "builtin", "cpu_s": 3.0, "cpu_per_call_us": 1000.0, "calls": 3000},
            {},
        ]
    )
    assert merged["kind"] == "builtin"
    assert merged.get("calls") == 103_000
    assert merged["cpu_per_call_us"] == round(4.0 / 103_000 * 1e6, 1)
    assert merge_clients([{}, {}]) == {}
