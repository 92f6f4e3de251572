"""The one recorder: samples in, HdrHistograms, counters and interval logs out.

Transports and sessions produce samples; only this module turns them into statistics. Per
transport and op it keeps two *interval* histograms (latency from the intended send time,
corrected for coordinated omission, and from the actual send time). ``tick()``, once per
interval, folds them into the totals, appends them to the transport's ``.hlog`` and clears
them, so a call costs two ``record_value`` calls and a few counter increments.

Latencies are microseconds, 1 µs .. 1 h at 3 significant digits. Sub-microsecond (and,
should the clock ever run backwards, negative) latencies are recorded as 0; latencies above
one hour are recorded as one hour and counted in ``out_of_range``, never dropped.
"""

from __future__ import annotations

import ctypes
import re
import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import accumulate
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import anyio
from hdrh.histogram import HdrHistogram

#: Histogram range and precision (see the measurement rules in DESIGN.md).
LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3
#: The op that anomalies not tied to a request are counted under.
UNATTRIBUTED = "(unattributed)"
#: Examples kept per (transport, op, silent kind).
MAX_EXAMPLES = 5
#: Suffix of the hlog tag of an op's uncorrected (from actual send) histogram.
UNCORRECTED_SUFFIX = ".uncorrected"
#: Percentiles reported in ``latency_us``, by key.
PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))
#: Longest string kept in a stored example; a truncated blob must not bloat run.json.
_EXAMPLE_STR_MAX = 300

_TAG_UNSAFE = re.compile(r"[,\s\x00-\x1f\x7f]")
_FILE_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def new_histogram() -> Any:
    """An empty latency histogram with the project's range and precision."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def _clear(hist: Any) -> None:
    # hdrh's reset() zeroes the 23k counters in a Python loop (~1.3 ms); this runs per op
    # per tick on a generator that must stay cheap, so zero the ctypes array in one call.
    counts = hist.counts
    ctypes.memset(ctypes.addressof(counts), 0, ctypes.sizeof(counts))
    hist.total_count = 0
    hist.min_value = sys.maxsize
    hist.max_value = 0


def percentiles(hist: Any, wanted: Iterable[float]) -> dict[float, int] | None:
    """Values at the given percentiles, as hdrh's ``get_value_at_percentile`` reports them.

    hdrh walks all 23k counters in Python for every percentile; one cumulative sum up to the
    highest recorded value and a bisection per percentile is ~20x faster. ``None`` when empty.
    """
    total = int(hist.total_count)
    if not total:
        return None
    last = int(hist.get_counts_array_index(hist.max_value))
    cumulative = list(accumulate(hist.counts[: last + 1]))
    out: dict[float, int] = {}
    for pct in wanted:
        target = int(hist.get_target_count_at_percentile(pct))
        index = min(bisect_left(cumulative, target), last)
        value = hist.get_value_from_index(index)
        out[pct] = int(
            hist.get_highest_equivalent_value(value) if pct else hist.get_lowest_equivalent_value(value)
        )
    return out


def mean(hist: Any) -> float | None:
    """The mean as hdrh computes it (median of each bucket), without its slow iterator."""
    total = int(hist.total_count)
    if not total:
        return None
    last = int(hist.get_counts_array_index(hist.max_value))
    acc = 0
    for index, count in enumerate(hist.counts[: last + 1]):
        if count:
            value = hist.get_value_from_index(index)
            low = int(hist.get_lowest_equivalent_value(value))
            high = int(hist.get_highest_equivalent_value(value))
            acc += count * (low + ((high - low + 1) >> 1))
    return acc / total


def latency_summary(hist: Any) -> dict[str, Any]:
    """``{"p50","p90","p99","p999","max","mean"}`` in µs; all ``None`` for an empty histogram.

    ``None`` rather than 0: an op whose every call was lost has no latency, and a 0 would read
    as infinitely fast to whatever compares runs.
    """
    values = percentiles(hist, [p for _, p in PERCENTILES])
    if values is None:
        return {**{key: None for key, _ in PERCENTILES}, "max": None, "mean": None}
    out: dict[str, Any] = {key: values[p] for key, p in PERCENTILES}
    out["max"] = int(hist.get_max_value())
    avg = mean(hist)
    out["mean"] = None if avg is None else round(avg, 1)
    return out


def encode_histogram(hist: Any) -> str:
    """A histogram as HdrHistogram V2 base64 text (run.json's ``hdr``, the interval logs)."""
    return str(hist.encode().decode("ascii"))


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A copy of an example that orjson can write and that stays small."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        if len(value) <= _EXAMPLE_STR_MAX:
            return value
        return f"{value[:_EXAMPLE_STR_MAX]}… (+{len(value) - _EXAMPLE_STR_MAX} chars)"
    if depth < 4 and isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if depth < 4 and isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value[:20]]
    return _jsonable(repr(value), depth + 1)


class OpStats:
    """Histograms and counters of one op on one transport; get it with :meth:`Recorder.op`.

    The handle stays valid across :meth:`Recorder.reset`, so a driver fetches it once.
    """

    __slots__ = (
        "_record_corrected",
        "_record_uncorrected",
        "bytes_in",
        "bytes_out",
        "count",
        "error_examples",
        "errors",
        "examples",
        "interval",
        "interval_uncorrected",
        "name",
        "ok",
        "out_of_range",
        "silent",
        "tag",
        "total",
        "total_uncorrected",
        "transport",
    )

    def __init__(self, transport: str, name: str, tag: str) -> None:
        self.transport = transport
        self.name = name
        #: The name this op's histograms carry in the interval log (sanitised, unique).
        self.tag = tag
        self.interval = new_histogram()
        self.interval_uncorrected = new_histogram()
        self.total = new_histogram()
        self.total_uncorrected = new_histogram()
        # Bound once: the histogram objects live as long as this handle (clearing is in place).
        self._record_corrected: Callable[[int], bool] = self.interval.record_value
        self._record_uncorrected: Callable[[int], bool] = self.interval_uncorrected.record_value
        self.count = 0
        self.ok = 0
        self.errors: dict[str, int] = {}
        self.silent: dict[str, int] = {}
        self.bytes_in = 0
        self.bytes_out = 0
        self.out_of_range = 0
        self.examples: dict[str, list[dict[str, Any]]] = {}
        #: The first few loud errors of each kind: their message is often the whole story (an
        #: SDK client's exception, say).
        self.error_examples: dict[str, list[dict[str, Any]]] = {}

    def record(
        self,
        intended_ns: int,
        sent_ns: int,
        done_ns: int,
        *,
        error: str | None = None,
        silent: str | None = None,
        bytes_in: int = 0,
        bytes_out: int = 0,
        example: Mapping[str, Any] | None = None,
    ) -> None:
        """Count one completed call; times are ``time.perf_counter_ns()`` values.

        ``done_ns=0`` means no answer came (``lost``): the call is counted but has no latency,
        since its "latency" would only be the deadline. A call is ok when it has neither a loud
        ``error`` kind nor a ``silent`` kind; ``example`` is kept for the first few of each
        silent kind.
        """
        self.count += 1
        if done_ns:
            corrected = (done_ns - intended_ns) // 1000
            uncorrected = (done_ns - sent_ns) // 1000
            if corrected > HIGHEST_US or uncorrected > HIGHEST_US:
                self.out_of_range += 1
                corrected = min(corrected, HIGHEST_US)
                uncorrected = min(uncorrected, HIGHEST_US)
            self._record_corrected(corrected if corrected > 0 else 0)
            self._record_uncorrected(uncorrected if uncorrected > 0 else 0)
        if error is None and silent is None:
            self.ok += 1
        else:
            self._failed(error, silent, example)
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out

    def _failed(self, error: str | None, silent: str | None, example: Mapping[str, Any] | None) -> None:
        if error is not None:
            self.errors[error] = self.errors.get(error, 0) + 1
            if example is not None:
                kept = self.error_examples.setdefault(error, [])
                if len(kept) < MAX_EXAMPLES:
                    kept.append(_jsonable(example))
        if silent is not None:
            self.silent[silent] = self.silent.get(silent, 0) + 1
            if example is not None:
                self.add_example(silent, example)

    def add_example(self, kind: str, example: Mapping[str, Any]) -> None:
        """Keep ``example`` if fewer than :data:`MAX_EXAMPLES` of ``kind`` are kept."""
        kept = self.examples.setdefault(kind, [])
        if len(kept) < MAX_EXAMPLES:
            kept.append(_jsonable(example))

    # -- merging (generator workers, see loadtest.run.workers) -----------------------------------

    def counts(self) -> dict[str, Any]:
        """The counters, as :meth:`set_counts` takes them (one worker's part of a merge)."""
        return {
            "count": self.count,
            "ok": self.ok,
            "errors": dict(self.errors),
            "silent": dict(self.silent),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "out_of_range": self.out_of_range,
        }

    def set_counts(self, parts: Iterable[Mapping[str, Any]]) -> None:
        """Set the counters to the sums of ``parts`` (each a :meth:`counts` of another recorder)."""
        self.count = self.ok = self.bytes_in = self.bytes_out = self.out_of_range = 0
        self.errors.clear()
        self.silent.clear()
        for part in parts:
            self.count += part["count"]
            self.ok += part["ok"]
            self.bytes_in += part["bytes_in"]
            self.bytes_out += part["bytes_out"]
            self.out_of_range += part["out_of_range"]
            for mine, theirs in ((self.errors, part["errors"]), (self.silent, part["silent"])):
                for kind, n in theirs.items():
                    mine[kind] = mine.get(kind, 0) + n

    def encoded_interval(self) -> tuple[str | None, str | None]:
        """The pending interval's histograms (corrected, uncorrected), encoded; None when empty."""
        if not self.interval.total_count and not self.interval_uncorrected.total_count:
            return None, None
        return encode_histogram(self.interval), encode_histogram(self.interval_uncorrected)

    def add_interval(self, corrected: str | None, uncorrected: str | None) -> None:
        """Add another recorder's interval (:meth:`encoded_interval`) to the pending one.

        HdrHistograms of one configuration add exactly: the merged counts are the sums.
        """
        if corrected:
            self.interval.decode_and_add(corrected)
        if uncorrected:
            self.interval_uncorrected.decode_and_add(uncorrected)

    def clear(self) -> None:
        """Forget everything recorded (the handle stays usable)."""
        for hist in (self.interval, self.interval_uncorrected, self.total, self.total_uncorrected):
            _clear(hist)
        self.count = self.ok = self.bytes_in = self.bytes_out = self.out_of_range = 0
        self.errors.clear()
        self.silent.clear()
        self.examples.clear()
        self.error_examples.clear()

    def summary(self, measured_s: float) -> dict[str, Any]:
        """This op's entry of ``transports.<t>.ops`` in run.json, pending interval included."""
        corrected = self._with_pending(self.total, self.interval)
        uncorrected = self._with_pending(self.total_uncorrected, self.interval_uncorrected)
        return {
            "count": self.count,
            "ok": self.ok,
            "errors": dict(self.errors),
            "silent": dict(self.silent),
            "latency_us": latency_summary(corrected),
            "hdr": encode_histogram(corrected),
            "hdr_uncorrected": encode_histogram(uncorrected),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "rate": round(self.count / measured_s, 3) if measured_s > 0 else 0.0,
            "out_of_range": self.out_of_range,
            "silent_examples": {kind: list(kept) for kind, kept in self.examples.items()},
            "error_examples": {kind: list(kept) for kind, kept in self.error_examples.items()},
            "hlog_tag": self.tag,
        }

    @staticmethod
    def _with_pending(total: Any, interval: Any) -> Any:
        if not interval.total_count:
            return total
        merged = new_histogram()
        if total.total_count:
            merged.add(total)
        merged.add(interval)
        return merged


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


class _Transport:
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
        self.generator: dict[str, Any] = {}
        self.server: dict[str, Any] = {}
        self.client: dict[str, Any] = {}
        self.scratch = new_histogram()
        self.log: IO[str] | None = None
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


class Recorder:
    """Histograms and counters per transport × op, interval logs, and the results section.

    ``out_dir`` receives one ``<transport>.hlog`` per transport (none when ``None``). Times
    are ``clock()`` nanoseconds, ``time.perf_counter_ns`` unless given. The driver calls
    :meth:`tick` every :attr:`interval_s` (or runs :meth:`run_intervals`), :meth:`reset` at the
    end of warm-up and :meth:`finish` at the end of measurement.
    """

    def __init__(
        self,
        out_dir: Path | None = None,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.out_dir = out_dir
        self.interval_s = interval_s
        self._clock = clock
        self._transports: dict[str, _Transport] = {}
        self._ops: dict[tuple[str, str], OpStats] = {}
        self._finished = False

    # -- recording --------------------------------------------------------------------------

    def _transport(self, name: str) -> _Transport:
        t = self._transports.get(name)
        if t is None:
            t = self._transports[name] = _Transport(name, self._clock())
        return t

    def op(self, transport: str, op: str) -> OpStats:
        """The stats handle of ``op`` on ``transport``, created on first use; keep it."""
        stats = self._ops.get((transport, op))
        if stats is None:
            t = self._transport(transport)
            stats = OpStats(transport, op, t.unique_tag(op))
            t.ops[op] = self._ops[(transport, op)] = stats
        return stats

    def record_call(
        self,
        transport: str,
        op: str,
        intended_ns: int,
        sent_ns: int,
        done_ns: int,
        *,
        error: str | None = None,
        silent: str | None = None,
        bytes_in: int = 0,
        bytes_out: int = 0,
        example: Mapping[str, Any] | None = None,
    ) -> None:
        """:meth:`OpStats.record` by name; a hot loop should hold the :meth:`op` handle."""
        self.op(transport, op).record(
            intended_ns,
            sent_ns,
            done_ns,
            error=error,
            silent=silent,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            example=example,
        )

    def record_session(self, transport: str, setup_ns: int | None, failed: bool = False) -> None:
        """Count one session set-up; ``setup_ns`` (its duration) enters the histogram if it succeeded."""
        t = self._transport(transport)
        if failed:
            t.sessions_failed += 1
            return
        t.sessions_opened += 1
        if setup_ns is not None:
            t.setup.record_value(min(max(setup_ns // 1000, 0), HIGHEST_US))

    def record_anomaly(
        self,
        transport: str,
        op: str | None,
        kind: str,
        silent: bool,
        detail: str,
        example: Mapping[str, Any] | None = None,
    ) -> None:
        """Count something wrong that is not the outcome of one call (a duplicate, a stray id).

        It counts under ``op`` (or :data:`UNATTRIBUTED`) in ``silent`` or ``errors``, but not as
        a call: ``count`` and ``ok`` are unchanged.
        """
        stats = self.op(transport, op if op is not None else UNATTRIBUTED)
        if silent:
            stats.silent[kind] = stats.silent.get(kind, 0) + 1
            stats.add_example(kind, example if example is not None else {"op": op, "detail": detail})
        else:
            stats.errors[kind] = stats.errors.get(kind, 0) + 1

    def ops_of(self, transport: str) -> Mapping[str, OpStats]:
        """The op handles of ``transport`` by op name (read-only view)."""
        return dict(self._transport(transport).ops)

    def add_sessions(self, transport: str, opened: int, failed: int, setup: str | None) -> None:
        """Add another recorder's session counts and (encoded) set-up latency histogram."""
        t = self._transport(transport)
        t.sessions_opened += opened
        t.sessions_failed += failed
        if setup:
            t.setup.decode_and_add(setup)

    def encoded_sessions(self, transport: str) -> dict[str, Any]:
        """Session counts and the set-up histogram (encoded), as :meth:`add_sessions` takes them."""
        t = self._transport(transport)
        return {
            "opened": t.sessions_opened,
            "failed": t.sessions_failed,
            "setup": encode_histogram(t.setup) if t.setup.total_count else None,
        }

    def set_protocol_version(self, transport: str, version: str | None, chosen_by: str | None = None) -> None:
        """The version ``transport`` spoke, and how it was chosen (discover/initialize/pinned)."""
        self._transport(transport).protocol_version = version
        self._transport(transport).protocol_chosen_by = chosen_by

    def set_generator(
        self, transport: str, cpu_s: float | None, lag_p99_us: int | None, **extra: Any
    ) -> None:
        """The generator's own cost while this transport was measured."""
        self._transport(transport).generator = {"cpu_s": cpu_s, "lag_p99_us": lag_p99_us, **extra}

    def set_client(self, transport: str, stats: Mapping[str, Any]) -> None:
        """Which client made this transport's calls, and its CPU per measured call."""
        self._transport(transport).client = dict(stats)

    def set_generator_memory(self, transport: str, stats: Mapping[str, Any]) -> None:
        """The generator's own memory while this transport was measured (added to ``generator``)."""
        self._transport(transport).generator.update(stats)

    def set_server(self, transport: str, stats: Mapping[str, Any]) -> None:
        """The target's resource usage (a :class:`~loadtest.run.targets.monitor.ProcessMonitor` summary)."""
        self._transport(transport).server = dict(stats)

    # -- intervals --------------------------------------------------------------------------

    def tick(self, now_ns: int | None = None, *, transport: str | None = None) -> None:
        """Close the current interval: fold it into the totals, log it, start the next one.

        ``transport`` limits the tick to one transport; transports whose measurement has
        ended (:meth:`finish_transport`) are never ticked again.
        """
        now = self._clock() if now_ns is None else now_ns
        targets = self._transports.values() if transport is None else [self._transport(transport)]
        for t in targets:
            if not t.done:
                self._tick(t, now)

    def finish_transport(self, transport: str, now_ns: int | None = None) -> None:
        """End one transport's measurement: a last tick, and its measured time stops here."""
        self.tick(now_ns, transport=transport)
        self._transport(transport).done = True

    def _tick(self, t: _Transport, now: int) -> None:
        now = max(now, t.start_ns)
        log = self._log(t) if t.ops else None
        start_s = (t.start_ns - t.origin_ns) / 1e9
        length_s = (now - t.start_ns) / 1e9
        scratch = t.scratch
        _clear(scratch)
        calls = 0
        for stats in t.ops.values():
            calls += stats.count
            for hist, total, tag in (
                (stats.interval, stats.total, stats.tag),
                (stats.interval_uncorrected, stats.total_uncorrected, stats.tag + UNCORRECTED_SUFFIX),
            ):
                if log is not None:
                    log.write(
                        f"Tag={tag},{start_s:.3f},{length_s:.3f},{hist.get_max_value() / 1000:.3f},{encode_histogram(hist)}\n"
                    )
                if hist.total_count:
                    total.add(hist)
                    if hist is stats.interval:
                        scratch.add(hist)
                    _clear(hist)
        if log is not None:
            # Flushed every interval: a run that is killed still leaves a usable log.
            log.flush()
        t.live_rate = (calls - t.calls_at_tick) / length_s if length_s > 0 else 0.0
        p99 = percentiles(scratch, (99.0,))
        t.live_p99 = None if p99 is None else p99[99.0]
        t.calls_at_tick = calls
        t.start_ns = t.ticked_ns = now

    def _log(self, t: _Transport) -> IO[str] | None:
        if self.out_dir is None:
            return None
        if t.log is None:
            path = self.out_dir / f"{_FILE_UNSAFE.sub('_', t.name) or '_'}.hlog"
            if t.log_fresh:
                t.log = path.open("w", encoding="ascii", newline="\n")
                t.log.write(self._log_header(t))
                t.log_fresh = False
            else:
                t.log = path.open("a", encoding="ascii", newline="\n")
        return t.log

    def _log_header(self, t: _Transport) -> str:
        start = time.time() - (self._clock() - t.origin_ns) / 1e9
        iso = datetime.fromtimestamp(start, timezone.utc).isoformat(timespec="milliseconds")
        return (
            f"#[mcp-loadtest interval log, transport {t.name}: values in microseconds, Interval_Max in"
            f" milliseconds; Tag=<op> is latency from the intended send time (corrected),"
            f" Tag=<op>{UNCORRECTED_SUFFIX} from the actual send time]\n"
            "#[Histogram log format version 1.3]\n"
            f"#[StartTime: {start:.3f} (seconds since epoch), {iso}]\n"
            f"#[BaseTime: {start:.3f} (seconds since epoch)]\n"
            '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n'
        )

    def finish(self, now_ns: int | None = None) -> None:
        """End measurement: a last :meth:`tick`, then close the interval logs."""
        self.tick(now_ns)
        self._finished = True
        self.close()

    def reset(self, now_ns: int | None = None, *, transport: str | None = None) -> None:
        """Discard every call recorded so far (end of warm-up) and restart the interval clock.

        Session counts and set-up latencies, the protocol version, and generator and server
        stats are kept: sessions open before warm-up ends and belong to the run. The interval
        log starts afresh, so it holds exactly what the summary holds. ``transport`` limits the
        reset to one transport (transports measured one after another).
        """
        now = self._clock() if now_ns is None else now_ns
        targets = list(self._transports.values())
        if transport is not None:
            targets = [self._transport(transport)]
        for t in targets:
            for stats in t.ops.values():
                stats.clear()
            if t.log is not None:
                t.log.close()
                t.log = None
            t.log_fresh = True
            t.done = False
            t.restart(now)
        self._finished = False

    async def run_intervals(self) -> None:
        """Call :meth:`tick` every :attr:`interval_s` until cancelled."""
        deadline = anyio.current_time() + self.interval_s
        while True:
            await anyio.sleep_until(deadline)
            self.tick()
            deadline += self.interval_s
            # After a stall, carry on from now rather than ticking in a burst.
            deadline = max(deadline, anyio.current_time())

    def close(self) -> None:
        """Close the interval logs (a later :meth:`tick` appends to them)."""
        for t in self._transports.values():
            if t.log is not None:
                t.log.close()
                t.log = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------

    @property
    def transports(self) -> list[str]:
        return list(self._transports)

    def live_sessions(self, transport: str) -> int:
        """Sessions opened so far on ``transport``."""
        t = self._transports.get(transport)
        return 0 if t is None else t.sessions_opened

    def live(self, transport: str) -> LiveStats:
        """Progress figures for ``transport`` (rate and p99 are those of the last interval)."""
        t = self._transports.get(transport)
        if t is None:
            return LiveStats(0, 0.0, None, 0, 0, 0.0)
        calls = errors = silent = 0
        for stats in t.ops.values():
            calls += stats.count
            errors += sum(stats.errors.values())
            silent += sum(stats.silent.values())
        elapsed = (self._clock() - t.origin_ns) / 1e9
        return LiveStats(calls, t.live_rate, t.live_p99, errors, silent, max(elapsed, 0.0))

    def _measured_s(self, t: _Transport) -> float:
        end = t.ticked_ns if (self._finished or t.done) and t.ticked_ns is not None else self._clock()
        return max(end - t.origin_ns, 0) / 1e9

    def summary(self) -> dict[str, Any]:
        """The ``transports`` section of run.json (see DESIGN.md, "Results")."""
        out: dict[str, Any] = {}
        for name, t in self._transports.items():
            measured = self._measured_s(t)
            setup = percentiles(t.setup, (50.0, 99.0))
            out[name] = {
                "negotiated_protocol_version": t.protocol_version,
                "protocol_chosen_by": t.protocol_chosen_by,
                "sessions": {
                    "opened": t.sessions_opened,
                    "failed": t.sessions_failed,
                    "setup_latency_us": {
                        "p50": None if setup is None else setup[50.0],
                        "p99": None if setup is None else setup[99.0],
                        "max": None if setup is None else int(t.setup.get_max_value()),
                    },
                },
                "ops": {op: stats.summary(measured) for op, stats in t.ops.items()},
                "server": dict(t.server),
                "generator": dict(t.generator),
                "client": dict(t.client),
                "measured_s": round(measured, 3),
            }
        return out

    def totals(self) -> dict[str, int]:
        """``{"calls", "errors", "silent_failures"}`` over every transport and op."""
        calls = errors = silent = 0
        for stats in self._ops.values():
            calls += stats.count
            errors += sum(stats.errors.values())
            silent += sum(stats.silent.values())
        return {"calls": calls, "errors": errors, "silent_failures": silent}


__all__ = [
    "HIGHEST_US",
    "LOWEST_US",
    "MAX_EXAMPLES",
    "SIGNIFICANT_DIGITS",
    "UNATTRIBUTED",
    "UNCORRECTED_SUFFIX",
    "LiveStats",
    "OpStats",
    "Recorder",
    "encode_histogram",
    "latency_summary",
    "mean",
    "new_histogram",
    "percentiles",
]
