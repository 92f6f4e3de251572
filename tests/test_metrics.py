"""The recorder: histograms, counters, intervals and the interval log, read back with hdrh."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from time import perf_counter_ns as time_ns
from typing import Any

import anyio
import orjson
import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from loadtest.measure.metrics import (
    HIGHEST_US,
    MAX_EXAMPLES,
    UNATTRIBUTED,
    Recorder,
    latency_summary,
    mean,
    new_histogram,
    percentiles,
)

MS = 1_000_000  # ns
S = 1_000_000_000  # ns
T0 = 10 * S  # an arbitrary clock origin, as perf_counter_ns would give


class FakeClock:
    """A settable nanosecond clock, so intervals and rates are exact."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def read_hlog(path: Path) -> tuple[HistogramLogReader, list[Any]]:
    reader = HistogramLogReader(str(path), new_histogram())
    intervals = []
    while (hist := reader.get_next_interval_histogram()) is not None:
        intervals.append(hist)
    reader.close()
    return reader, intervals


def merged_by_tag(intervals: list[Any]) -> dict[str, Any]:
    merged: dict[str, Any] = defaultdict(new_histogram)
    for hist in intervals:
        if hist.get_total_count():
            merged[hist.get_tag()].add(hist)
        else:
            merged.setdefault(hist.get_tag(), new_histogram())
    return dict(merged)


def same_counts(a: Any, b: Any) -> bool:
    if a.get_total_count() != b.get_total_count():
        return False
    return all(a.get_count_at_index(i) == b.get_count_at_index(i) for i in range(a.counts_len))


def test_percentiles_and_mean_agree_with_hdrh() -> None:
    rng = random.Random(7)
    hist = new_histogram()
    for _ in range(20_000):
        hist.record_value(int(rng.lognormvariate(7, 1.5)))
    hist.record_value(0)
    wanted = [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]
    fast = percentiles(hist, wanted)
    assert fast is not None
    for pct in wanted:
        assert fast[pct] == hist.get_value_at_percentile(pct), pct
    assert mean(hist) == pytest.approx(hist.get_mean_value())
    assert percentiles(new_histogram(), [50.0]) is None
    assert latency_summary(new_histogram()) == dict.fromkeys(("p50", "p90", "p99", "p999", "max", "mean"))


def test_counts_and_percentiles_of_known_values() -> None:
    clock = FakeClock()
    rec = Recorder(clock=clock)
    stats = rec.op("stdio", "tools/call:echo")
    assert rec.op("stdio", "tools/call:echo") is stats
    # 1..1000 ms, sent 1 ms late each: corrected = uncorrected + 1 ms.
    for i in range(1, 1001):
        intended = T0 + i * MS
        stats.record(intended, intended + MS, intended + (i + 1) * MS, bytes_in=100, bytes_out=10)
    rec.record_call("stdio", "tools/call:echo", T0, T0, T0 + 5 * MS, error="jsonrpc_error")
    rec.record_call("stdio", "tools/call:echo", T0, T0, T0 + 5 * MS, silent="truncated", example={"id": 1})
    rec.record_call("stdio", "tools/call:echo", T0, T0, 0, silent="lost")  # no answer: no latency
    clock.now = T0 + 2 * S
    rec.finish()

    op = rec.summary()["stdio"]["ops"]["tools/call:echo"]
    assert op["count"] == 1003
    assert op["ok"] == 1000
    assert op["errors"] == {"jsonrpc_error": 1}
    assert op["silent"] == {"truncated": 1, "lost": 1}
    assert op["silent_examples"] == {"truncated": [{"id": 1}]}
    assert op["bytes_in"] == 100_000
    assert op["bytes_out"] == 10_000
    assert op["out_of_range"] == 0
    assert op["rate"] == pytest.approx(1003 / 2)
    lat = op["latency_us"]
    # Corrected latencies are 2..1001 ms plus two 5 ms answers; 3 significant digits.
    assert lat["p50"] == pytest.approx(501_000, rel=2e-3)
    assert lat["p90"] == pytest.approx(901_000, rel=2e-3)
    assert lat["p99"] == pytest.approx(991_000, rel=2e-3)
    assert lat["p999"] == pytest.approx(1_000_000, rel=2e-3)
    assert lat["max"] == pytest.approx(1_001_000, rel=1e-3)
    assert lat["mean"] == pytest.approx(sum(range(2, 1002)) * 1000 / 1002 + 10 * 1000 / 1002, rel=1e-3)
    assert all(isinstance(lat[k], int) for k in ("p50", "p90", "p99", "p999", "max"))
    corrected = HdrHistogram.decode(op["hdr"])
    uncorrected = HdrHistogram.decode(op["hdr_uncorrected"])
    assert corrected.get_total_count() == uncorrected.get_total_count() == 1002
    assert uncorrected.get_value_at_percentile(50) == pytest.approx(500_000, rel=2e-3)
    assert rec.totals() == {"calls": 1003, "errors": 1, "silent_failures": 2}


def test_out_of_range_is_clamped_and_counted_never_dropped() -> None:
    rec = Recorder(clock=FakeClock())
    stats = rec.op("http", "ping")
    stats.record(T0, T0, T0 + 2 * HIGHEST_US * 1000)
    stats.record(T0, T0 + 10, T0 + 500)  # sub-microsecond: recorded as 0
    stats.record(T0 + S, T0 + S, T0)  # a clock that ran backwards: 0, not lost
    rec.finish()
    op = rec.summary()["http"]["ops"]["ping"]
    assert op["out_of_range"] == 1
    hist = HdrHistogram.decode(op["hdr"])
    assert hist.get_total_count() == 3
    assert hist.get_max_value() >= HIGHEST_US
    assert hist.get_count_at_value(0) == 2


def test_examples_are_capped_and_kept_small() -> None:
    rec = Recorder(clock=FakeClock())
    stats = rec.op("sse", "resources/read")
    for i in range(12):
        stats.record(T0, T0, T0 + MS, silent="corrupt", example={"request_id": i, "got": "x" * 10_000})
    stats.record(T0, T0, T0 + MS, silent="misrouted", example={"request_id": 99, "got": b"\xff\x00raw"})
    examples = rec.summary()["sse"]["ops"]["resources/read"]["silent_examples"]
    assert [e["request_id"] for e in examples["corrupt"]] == list(range(MAX_EXAMPLES))
    assert len(examples["corrupt"][0]["got"]) < 400
    assert examples["misrouted"][0]["got"].endswith("raw")


def test_anomalies_count_as_failures_not_calls() -> None:
    rec = Recorder(clock=FakeClock())
    rec.op("stdio", "tools/call").record(T0, T0, T0 + MS)
    rec.record_anomaly("stdio", "tools/call", "duplicate", True, "id 7 answered twice")
    rec.record_anomaly("stdio", None, "misrouted", True, "unknown id 99")
    rec.record_anomaly("stdio", None, "server_exit", False, "exit code 1")
    ops = rec.summary()["stdio"]["ops"]
    assert ops["tools/call"]["count"] == 1
    assert ops["tools/call"]["ok"] == 1
    assert ops["tools/call"]["silent"] == {"duplicate": 1}
    assert ops["tools/call"]["silent_examples"]["duplicate"][0]["detail"] == "id 7 answered twice"
    assert ops[UNATTRIBUTED]["count"] == 0
    assert ops[UNATTRIBUTED]["silent"] == {"misrouted": 1}
    assert ops[UNATTRIBUTED]["errors"] == {"server_exit": 1}
    assert rec.totals() == {"calls": 1, "errors": 1, "silent_failures": 2}


def test_sessions_version_generator_server() -> None:
    rec = Recorder(clock=FakeClock())
    for ms in (10, 20, 30, 40):
        rec.record_session("http", ms * MS, failed=False)
    rec.record_session("http", None, failed=True)
    rec.set_protocol_version("http", "2025-06-18")
    rec.set_generator("http", 1.5, 250)
    rec.set_server("http", {"rss_peak_bytes": 123, "cpu_s": 2.0})
    t = rec.summary()["http"]
    assert t["negotiated_protocol_version"] == "2025-06-18"
    assert t["sessions"]["opened"] == 4
    assert t["sessions"]["failed"] == 1
    setup = t["sessions"]["setup_latency_us"]
    assert setup["p50"] == pytest.approx(20_000, rel=1e-3)
    assert setup["p99"] == pytest.approx(40_000, rel=1e-3)
    assert setup["max"] == pytest.approx(40_000, rel=1e-3)
    assert t["generator"] == {"cpu_s": 1.5, "lag_p99_us": 250}
    assert t["server"] == {"rss_peak_bytes": 123, "cpu_s": 2.0}
    assert t["ops"] == {}


def test_reset_discards_calls_keeps_sessions_and_handles() -> None:
    clock = FakeClock()
    rec = Recorder(clock=clock)
    stats = rec.op("stdio", "ping")
    rec.record_session("stdio", 5 * MS)
    for _ in range(50):
        stats.record(T0, T0, T0 + 50 * MS, error="boom")
    clock.now = T0 + 3 * S
    rec.reset()
    for _ in range(10):
        stats.record(clock.now, clock.now, clock.now + MS)
    clock.now += 2 * S
    rec.finish()
    t = rec.summary()["stdio"]
    op = t["ops"]["ping"]
    assert (op["count"], op["ok"], op["errors"]) == (10, 10, {})
    assert op["latency_us"]["max"] == pytest.approx(1000, rel=1e-3)
    assert t["measured_s"] == pytest.approx(2.0)
    assert op["rate"] == pytest.approx(5.0)
    assert t["sessions"]["opened"] == 1


def test_live_stats_per_interval() -> None:
    clock = FakeClock()
    rec = Recorder(clock=clock)
    a, b = rec.op("http", "a"), rec.op("http", "b")
    for _ in range(90):
        a.record(clock.now, clock.now, clock.now + MS)
    for _ in range(10):
        b.record(clock.now, clock.now, clock.now + 100 * MS, silent="corrupt")
    clock.now += S // 2
    rec.tick()
    live = rec.live("http")
    assert live.calls == 100
    assert live.rate == pytest.approx(200.0)
    assert live.p99_us == pytest.approx(100_000, rel=1e-3)
    assert (live.errors, live.silent) == (0, 10)
    assert live.elapsed_s == pytest.approx(0.5)
    clock.now += S
    rec.tick()
    assert rec.live("http").rate == 0.0
    assert rec.live("http").p99_us is None
    assert rec.live("nope").calls == 0


def test_interval_log_reads_back_and_matches_summary(tmp_path: Path) -> None:
    clock = FakeClock()
    rec = Recorder(tmp_path, clock=clock)
    rng = random.Random(3)
    ops = ["tools/call:echo", "resources/read, big blob", "ping"]  # the second needs sanitising
    handles = [rec.op("stdio", op) for op in ops]
    for _ in range(5):
        for stats in handles:
            for _ in range(rng.randint(50, 200)):
                sent = clock.now + rng.randint(0, 5 * MS)
                stats.record(clock.now, sent, sent + rng.randint(10_000, 80 * MS))
        clock.now += S
        rec.tick()
    handles[2].record(clock.now, clock.now, clock.now + MS)  # in the last, partial interval
    clock.now += S // 4
    rec.finish()
    summary = rec.summary()["stdio"]["ops"]

    text = (tmp_path / "stdio.hlog").read_text()
    assert text.startswith("#[mcp-loadtest interval log")
    assert "#[Histogram log format version 1.3]\n" in text
    assert '\n"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n' in text
    reader, intervals = read_hlog(tmp_path / "stdio.hlog")
    assert reader.observed_start_time
    assert reader.observed_base_time
    assert reader.base_time_sec == reader.start_time_sec > 1e9  # relative timestamps
    assert len(intervals) == 6 * len(ops) * 2
    merged = merged_by_tag(intervals)
    tags = {summary[op]["hlog_tag"] for op in ops}
    assert tags == {"tools/call:echo", "resources/read__big_blob", "ping"}
    assert set(merged) == tags | {tag + ".uncorrected" for tag in tags}
    for op in ops:
        tag = summary[op]["hlog_tag"]
        total = HdrHistogram.decode(summary[op]["hdr"])
        total_uncorrected = HdrHistogram.decode(summary[op]["hdr_uncorrected"])
        assert total.get_total_count() == summary[op]["count"]
        assert same_counts(merged[tag], total)
        assert same_counts(merged[tag + ".uncorrected"], total_uncorrected)
        assert merged[tag].get_value_at_percentile(99) == summary[op]["latency_us"]["p99"]
    # Interval timestamps are relative to the start and follow each other.
    first = [h for h in intervals if h.get_tag() == "ping"]
    starts = [h.get_start_time_stamp() / 1000 - reader.start_time_sec for h in first]
    assert starts == pytest.approx([0, 1, 2, 3, 4, 5], abs=2e-3)
    assert (first[-1].get_end_time_stamp() - first[-1].get_start_time_stamp()) / 1000 == pytest.approx(0.25)


def test_reset_restarts_the_interval_log(tmp_path: Path) -> None:
    clock = FakeClock()
    rec = Recorder(tmp_path, clock=clock)
    stats = rec.op("http", "ping")
    for _ in range(3):
        stats.record(clock.now, clock.now, clock.now + 90 * MS)  # warm-up
        clock.now += S
        rec.tick()
    rec.reset()
    stats.record(clock.now, clock.now, clock.now + MS)
    clock.now += S
    rec.finish()
    _, intervals = read_hlog(tmp_path / "http.hlog")
    assert len(intervals) == 2
    assert sum(h.get_total_count() for h in intervals if h.get_tag() == "ping") == 1
    assert (tmp_path / "http.hlog").read_text().count("#[StartTime:") == 1


def test_log_is_flushed_each_tick(tmp_path: Path) -> None:
    clock = FakeClock()
    with Recorder(tmp_path, clock=clock) as rec:
        rec.op("sse", "ping").record(clock.now, clock.now, clock.now + MS)
        clock.now += S
        rec.tick()
        # Not finished, not closed: what a killed run leaves behind must already be readable.
        _, intervals = read_hlog(tmp_path / "sse.hlog")
        assert [(h.get_tag(), h.get_total_count()) for h in intervals] == [
            ("ping", 1),
            ("ping.uncorrected", 1),
        ]


def test_summary_is_json_and_contract_shaped() -> None:
    rec = Recorder(clock=FakeClock())
    rec.op("stdio", "ping").record(T0, T0, T0 + MS, silent="corrupt", example={"got": {"a": [1, 2]}})
    rec.op("stdio", "all-lost").record(T0, T0, 0, silent="lost")
    rec.finish()
    summary = rec.summary()
    assert orjson.loads(orjson.dumps(summary)) == summary
    t = summary["stdio"]
    assert list(t) == [
        "negotiated_protocol_version",
        "sessions",
        "ops",
        "server",
        "generator",
        "client",
        "measured_s",
        "server_info",
    ]
    op = t["ops"]["ping"]
    for key in (
        "count",
        "ok",
        "errors",
        "silent",
        "latency_us",
        "hdr",
        "hdr_uncorrected",
        "bytes_in",
        "bytes_out",
    ):
        assert key in op
    assert t["ops"]["all-lost"]["latency_us"]["p99"] is None
    assert HdrHistogram.decode(t["ops"]["all-lost"]["hdr"]).get_total_count() == 0


@pytest.mark.anyio
async def test_run_intervals_ticks_until_cancelled(tmp_path: Path) -> None:
    class Observed(Recorder):
        ticks = 0

        def __init__(self, out_dir: Path) -> None:
            super().__init__(out_dir, interval_s=0.01)
            self.third = anyio.Event()

        def tick(self, now_ns: int | None = None, *, transport: str | None = None) -> None:
            super().tick(now_ns, transport=transport)
            self.ticks += 1
            if self.ticks == 3:
                self.third.set()

    rec = Observed(tmp_path)
    now = time_ns()
    rec.op("stdio", "ping").record(now, now, now + MS)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(rec.run_intervals)
            await rec.third.wait()
            tg.cancel_scope.cancel()
    rec.finish()
    _, intervals = read_hlog(tmp_path / "stdio.hlog")
    assert len(intervals) >= 2 * 4
    assert sum(h.get_total_count() for h in intervals if h.get_tag() == "ping") == 1
