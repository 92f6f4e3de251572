"""The one recorder: samples in, HdrHistograms, counters and interval logs out.

Transports and sessions produce samples; only this package turns them into statistics. Per
transport and op it keeps two *interval* histograms (latency from the intended send time,
corrected for coordinated omission, and from the actual send time) in an
:class:`~loadtest.measure.opstats.OpStats`. ``tick()``, once per interval, folds them into the
totals, appends them to the transport's ``.hlog`` (:mod:`loadtest.measure.hlog`) and clears
them. :meth:`Recorder.sections` gives the typed transport sections of run.json.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import anyio

from loadtest.core.names import HIGHEST_US
from loadtest.measure.histograms import clear_histogram, encode_histogram, percentiles
from loadtest.measure.hlog import UNCORRECTED_SUFFIX, HlogWriter, epoch_of, hlog_path
from loadtest.measure.opstats import UNATTRIBUTED, OpStats
from loadtest.measure.summary import Client, Generator, Server, Sessions, SetupLatency, TransportSection
from loadtest.measure.transport_record import LiveStats, TransportRecord


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
        self._transports: dict[str, TransportRecord] = {}
        self._ops: dict[tuple[str, str], OpStats] = {}
        self._finished = False

    # -- recording --------------------------------------------------------------------------

    def _transport(self, name: str) -> TransportRecord:
        t = self._transports.get(name)
        if t is None:
            t = self._transports[name] = TransportRecord(name, self._clock())
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

    def skip_op(self, transport: str, op: str, reason: str) -> None:
        """``op`` is not sent on ``transport`` by design (the protocol removed it): say why."""
        self._transport(transport).skipped_ops[op] = reason

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

    def _tick(self, t: TransportRecord, now: int) -> None:
        now = max(now, t.start_ns)
        log = self._log(t) if t.ops else None
        start_s = (t.start_ns - t.origin_ns) / 1e9
        length_s = (now - t.start_ns) / 1e9
        scratch = t.scratch
        clear_histogram(scratch)
        calls = 0
        for stats in t.ops.values():
            calls += stats.count
            for hist, total, tag in (
                (stats.interval, stats.total, stats.tag),
                (stats.interval_uncorrected, stats.total_uncorrected, stats.tag + UNCORRECTED_SUFFIX),
            ):
                if log is not None:
                    log.write(tag, start_s, length_s, hist)
                if hist.total_count:
                    total.add(hist)
                    if hist is stats.interval:
                        scratch.add(hist)
                    clear_histogram(hist)
        if log is not None:
            # Flushed every interval: a run that is killed still leaves a usable log.
            log.flush()
        t.live_rate = (calls - t.calls_at_tick) / length_s if length_s > 0 else 0.0
        p99 = percentiles(scratch, (99.0,))
        t.live_p99 = None if p99 is None else p99[99.0]
        t.calls_at_tick = calls
        t.start_ns = t.ticked_ns = now

    def _log(self, t: TransportRecord) -> HlogWriter | None:
        if self.out_dir is None:
            return None
        if t.log is None:
            start = epoch_of(self._clock(), t.origin_ns)
            t.log = HlogWriter(
                hlog_path(self.out_dir, t.name), t.name, fresh=t.log_fresh, start_epoch_s=start
            )
            t.log_fresh = False
        return t.log

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

    def _measured_s(self, t: TransportRecord) -> float:
        end = t.ticked_ns if (self._finished or t.done) and t.ticked_ns is not None else self._clock()
        return max(end - t.origin_ns, 0) / 1e9

    def sections(self) -> dict[str, TransportSection]:
        """The ``transports`` section of run.json, typed (README, "Results")."""
        out: dict[str, TransportSection] = {}
        for name, t in self._transports.items():
            measured = self._measured_s(t)
            out[name] = TransportSection(
                negotiated_protocol_version=t.protocol_version,
                protocol_chosen_by=t.protocol_chosen_by,
                skipped_ops=dict(t.skipped_ops),
                sessions=Sessions(t.sessions_opened, t.sessions_failed, SetupLatency.of(t.setup)),
                ops={op: stats.summarize(measured) for op, stats in t.ops.items()},
                server=cast(Server, dict(t.server)),
                generator=cast(Generator, dict(t.generator)),
                client=cast(Client, dict(t.client)),
                measured_s=round(measured, 3),
            )
        return out

    def summary(self) -> dict[str, Any]:
        """:meth:`sections` as JSON."""
        return {name: section.to_json() for name, section in self.sections().items()}

    def totals(self) -> dict[str, int]:
        """``{"calls", "errors", "silent_failures"}`` over every transport and op."""
        calls = errors = silent = 0
        for stats in self._ops.values():
            calls += stats.count
            errors += sum(stats.errors.values())
            silent += sum(stats.silent.values())
        return {"calls": calls, "errors": errors, "silent_failures": silent}


__all__ = ["LiveStats", "Recorder"]
