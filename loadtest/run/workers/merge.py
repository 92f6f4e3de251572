"""The exact merge of the workers' figures into the parent's one recorder.

HdrHistograms of one configuration add exactly, so the merged intervals are those of one big
recorder; counters are cumulative in every tick, so the latest of each worker wins. At the
end each worker's own totals are checked against the merge.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from loadtest.core.names import LAG_RANGE
from loadtest.measure.metrics import Recorder
from loadtest.measure.summary import merge_clients
from loadtest.run.bottleneck import bottleneck, is_own
from loadtest.run.control import Progress, TransportReport
from loadtest.run.setup import merge_setups
from loadtest.run.workers.messages import Done, Ready, Tick

#: A worker's generator figures the parent lists per worker.
_PER_WORKER_KEYS = ("cpu_s", "cpu_busy", "lag_p99_us", "lag_max_us", "in_flight_max", "saturated")


@dataclass(eq=False)
class WorkerView:
    """What the parent knows of one worker's figures."""

    index: int
    hello: Ready | None = None
    #: Interval messages not yet merged (the others' for the same interval are still to come).
    intervals: deque[Tick] = field(default_factory=deque)
    #: The counters (per op) of its last merged interval: cumulative, so the latest wins.
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Its last interval is queued.
    final: bool = False
    #: Nothing more will come from it (done, error, or gone).
    finished: bool = False
    done: Done | None = None
    error: str | None = None
    last_ns: int = 0


class Merge:
    """Merges ``workers``' intervals and ends into ``recorder`` for ``transport``."""

    def __init__(
        self, transport: str, recorder: Recorder, progress: Progress, workers: Sequence[WorkerView]
    ) -> None:
        self.transport = transport
        self.recorder = recorder
        self.progress = progress
        self.workers = workers
        self.measure_start_ns = 0
        self.transport_finished = False

    def intervals(self) -> None:
        """Merge every interval all workers have sent (a finished worker no longer counts)."""
        recorder = self.recorder
        transport = self.transport
        while not self.transport_finished:
            active = [w for w in self.workers if w.intervals or not (w.final or w.finished)]
            if not active or any(not w.intervals for w in active):
                return
            parts = [(w, w.intervals.popleft()) for w in active]
            now = max(part.now for _, part in parts)
            measured = [(w, part) for w, part in parts if not part.warming]
            for w, part in measured:
                w.last_ns = part.now
                for name, op in part.ops.items():
                    recorder.op(transport, name).add_interval(op.hdr, op.hdr_uncorrected)
                    w.counts[name] = op.counts
            elapsed = (now - self.measure_start_ns) / 1e9
            if not measured:
                self.progress.tick(transport, elapsed, True, recorder)
                continue
            names = {name for w in self.workers for name in w.counts}
            for name in names:
                recorder.op(transport, name).set_counts(
                    w.counts[name] for w in self.workers if name in w.counts
                )
            if all((w.final or w.finished) and not w.intervals for w in self.workers):
                recorder.finish_transport(transport, now)
                self.transport_finished = True
            else:
                recorder.tick(now, transport=transport)
            self.progress.tick(transport, elapsed, False, recorder)

    def finish(self, report: TransportReport, parent_cpu_s: float, wall_s: float) -> None:
        """Merge what the workers sent at their end: sessions, examples, generator, client."""
        transport = self.transport
        recorder = self.recorder
        if not self.transport_finished:
            ends = [w.last_ns for w in self.workers if w.last_ns]
            recorder.finish_transport(transport, max(ends) if ends else time.perf_counter_ns())
            self.transport_finished = True
        errors: list[str] = []
        lag = HdrHistogram(*LAG_RANGE)
        own_lag = HdrHistogram(*LAG_RANGE)
        per_worker: list[dict[str, Any]] = []
        cpu_s = parent_cpu_s
        busy_max = 0.0
        lag_max = 0
        in_flight = 0
        saturated = False
        own_calls: dict[str, int] = {}
        own_recorded: dict[str, int] = {}
        clients: list[Mapping[str, Any]] = []
        setups: list[dict[str, Any]] = []
        for worker in self.workers:
            if worker.error:
                errors.append(worker.error)
            done = worker.done
            if done is None:
                per_worker.append({"index": worker.index, "error": worker.error or "no results"})
                continue
            if done.error:
                errors.append(done.error)
            recorder.add_sessions(transport, **done.sessions)
            self._examples(done)
            for name, why in done.skipped_ops.items():
                recorder.skip_op(transport, name, why)
            clients.append(done.client)
            if done.setup is not None:
                setups.append(done.setup)
            generator = dict(done.generator)
            encoded_lag = generator.pop("lag_hdr", None)
            if encoded_lag:
                lag.decode_and_add(encoded_lag)
            encoded_own = generator.pop("own_lag_hdr", None)
            if encoded_own:
                own_lag.decode_and_add(encoded_own)
            cpu_s += generator.get("cpu_s") or 0.0
            busy_max = max(busy_max, generator.get("cpu_busy") or 0.0)
            lag_max = max(lag_max, generator.get("lag_max_us") or 0)
            in_flight += generator.get("in_flight_max") or 0
            saturated = saturated or bool(generator.get("saturated"))
            calls = recorded = 0
            for name, own in done.ops.items():
                own_calls[name] = own_calls.get(name, 0) + own.count
                own_recorded[name] = own_recorded.get(name, 0) + own.recorded
                calls += own.count
                recorded += own.recorded
            per_worker.append(
                {
                    "index": worker.index,
                    "calls": calls,
                    "recorded": recorded,
                    "sessions_opened": done.sessions["opened"],
                    **{key: generator.get(key) for key in _PER_WORKER_KEYS},
                }
            )
        merged = recorder.ops_of(transport)
        mismatched = sorted(
            name
            for name in set(own_calls) | set(merged)
            if own_calls.get(name, 0) != (merged[name].count if name in merged else 0)
            or own_recorded.get(name, 0) != (int(merged[name].total.total_count) if name in merged else 0)
        )
        if mismatched and all(w.done is not None for w in self.workers):
            errors.append(
                f"generator workers: merged figures differ from the workers' own for {', '.join(mismatched)}"
            )
        if errors and report.error is None:
            report.error = "; ".join(dict.fromkeys(errors))
        if clients:
            recorder.set_client(transport, merge_clients(clients))
        if setups:
            report.setup = merge_setups(setups)
        lag_p99 = int(lag.get_value_at_percentile(99.0)) if lag.get_total_count() else 0
        own_lag_p99 = int(own_lag.get_value_at_percentile(99.0)) if own_lag.get_total_count() else 0
        # Each worker is one event loop on at most one core: the busiest one is the limit.
        found = bottleneck(busy_max, lag_p99, own_lag_p99)
        recorder.set_generator(
            transport,
            round(cpu_s, 3),
            lag_p99,
            wall_s=round(wall_s, 3),
            cpu_busy=round(busy_max, 3),
            cpu_busy_total=round(cpu_s / wall_s, 3) if wall_s > 0 else 0.0,
            saturated=saturated or is_own(found),
            bottleneck=found,
            own_lag_p99_us=own_lag_p99,
            lag_max_us=lag_max,
            # The sum of each worker's peak: an upper bound of the run's peak.
            in_flight_max=in_flight,
            workers=len(self.workers),
            parent_cpu_s=round(parent_cpu_s, 3),
            per_worker=per_worker,
        )

    def _examples(self, done: Done) -> None:
        for name, kinds in done.examples.items():
            stats = self.recorder.op(self.transport, name)
            for kind, examples in kinds.items():
                for example in examples:
                    stats.add_example(kind, example)
        for name, kinds in done.error_examples.items():
            stats = self.recorder.op(self.transport, name)
            for kind, examples in kinds.items():
                for example in examples:
                    stats.add_error_example(kind, example)


__all__ = ["Merge", "WorkerView"]
