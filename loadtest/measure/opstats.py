"""Per-op statistics: the histograms and counters of one op on one transport.

A call costs two ``record_value`` calls and a few counter increments; the interval
histograms are folded into the totals by the recorder's tick (:mod:`loadtest.measure.recorder`).
Latencies above the histogram's range are recorded at its top and counted in
``out_of_range``, never dropped; sub-microsecond (or, should the clock run backwards,
negative) ones are recorded as 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from loadtest.core.names import HIGHEST_US
from loadtest.measure.histograms import clear_histogram, encode_histogram, new_histogram, with_pending
from loadtest.measure.summary import Latency, OpSummary

#: The op that anomalies not tied to a request are counted under.
UNATTRIBUTED = "(unattributed)"
#: Examples kept per (transport, op, failure kind).
MAX_EXAMPLES = 5
#: Longest string kept in a stored example; a truncated blob must not bloat run.json.
_EXAMPLE_STR_MAX = 300


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
        "_logged_examples",
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
        # Examples kept when :meth:`log_entry` last wrote them (-1: write them next time).
        self._logged_examples = 0

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
                self.add_error_example(error, example)
        if silent is not None:
            self.silent[silent] = self.silent.get(silent, 0) + 1
            if example is not None:
                self.add_example(silent, example)

    def add_error_example(self, kind: str, example: Mapping[str, Any]) -> None:
        """Keep ``example`` of a loud error if fewer than :data:`MAX_EXAMPLES` of ``kind`` are kept."""
        kept = self.error_examples.setdefault(kind, [])
        if len(kept) < MAX_EXAMPLES:
            kept.append(_jsonable(example))

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
            clear_histogram(hist)
        self.count = self.ok = self.bytes_in = self.bytes_out = self.out_of_range = 0
        self.errors.clear()
        self.silent.clear()
        self.examples.clear()
        self.error_examples.clear()
        # The log must learn that the examples it holds are gone (end of warm-up).
        self._logged_examples = -1

    def log_entry(self) -> list[Any]:
        """This op's entry in a health-log sample, from which a killed run is rebuilt.

        ``[count, ok, errors, silent, bytes_in, bytes_out, out_of_range]``, plus
        ``silent_examples, error_examples`` when the kept examples changed since the last
        entry: at most a few times per kind, so a day-long soak's log does not repeat them
        every second. Each call is meant to be written (it advances that mark).
        """
        entry: list[Any] = [
            self.count,
            self.ok,
            dict(self.errors),
            dict(self.silent),
            self.bytes_in,
            self.bytes_out,
            self.out_of_range,
        ]
        kept = sum(map(len, self.examples.values())) + sum(map(len, self.error_examples.values()))
        if kept != self._logged_examples:
            self._logged_examples = kept
            entry.append({kind: list(v) for kind, v in self.examples.items()})
            entry.append({kind: list(v) for kind, v in self.error_examples.items()})
        return entry

    def summarize(self, measured_s: float) -> OpSummary:
        """This op's entry of ``transports.<t>.ops`` in run.json, pending interval included."""
        corrected = with_pending(self.total, self.interval)
        uncorrected = with_pending(self.total_uncorrected, self.interval_uncorrected)
        return OpSummary(
            count=self.count,
            ok=self.ok,
            errors=dict(self.errors),
            silent=dict(self.silent),
            latency_us=Latency.of(corrected),
            hdr=encode_histogram(corrected),
            hdr_uncorrected=encode_histogram(uncorrected),
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            rate=round(self.count / measured_s, 3) if measured_s > 0 else 0.0,
            out_of_range=self.out_of_range,
            silent_examples={kind: list(kept) for kind, kept in self.examples.items()},
            error_examples={kind: list(kept) for kind, kept in self.error_examples.items()},
            hlog_tag=self.tag,
        )

    def summary(self, measured_s: float) -> dict[str, Any]:
        """:meth:`summarize` as JSON."""
        return self.summarize(measured_s).to_json()


__all__ = ["MAX_EXAMPLES", "UNATTRIBUTED", "OpStats"]
