"""A run document rebuilt from the logs of a run that never wrote run.json (it was killed).

run.json is written once, at the end. A soak killed hours in (SIGKILL, an OOM kill, a lost
machine) leaves its interval logs (``<transport>.hlog``) and health logs
(``health-<transport>.jsonl``), both flushed as the run went. From them this module builds a
document in run.json's shape, marked ``partial``, that ``report`` renders like any other:
latencies per op from the intervals, counts and failures from the last counters in the
health log, the server's samples, events and health verdict, the generator's memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loadtest.core.errors import UsageError
from loadtest.core.names import HLOG_SUFFIX
from loadtest.measure.health import Sample
from loadtest.measure.health_section import health_section
from loadtest.measure.histograms import encode_histogram, new_histogram
from loadtest.measure.hlog import hlog_path, read_hlog
from loadtest.results.health_log import HealthRecord, health_log_path, read_health_log
from loadtest.results.model import (
    Generator,
    Latency,
    OpSummary,
    RunDocument,
    Server,
    Sessions,
    TransportSection,
    totals_of,
)

__all__ = ["PARTIAL_NOTE", "can_rebuild", "rebuild_document", "rebuild_run"]

PARTIAL_NOTE = "no run.json: the run did not finish; rebuilt from its interval and health logs"


def can_rebuild(directory: Path) -> bool:
    """Whether ``directory`` holds a run's logs (interval or health logs)."""
    return directory.is_dir() and (
        any(directory.glob(f"*{HLOG_SUFFIX}")) or any(directory.glob("health-*.jsonl"))
    )


def _transports(directory: Path) -> list[str]:
    names = {path.stem for path in directory.glob(f"*{HLOG_SUFFIX}")}
    names |= {path.stem.removeprefix("health-") for path in directory.glob("health-*.jsonl")}
    return sorted(names)


def _read_hlog(path: Path) -> tuple[dict[str, tuple[Any, Any]], float]:
    """Per op tag, its merged (corrected, uncorrected) histograms; and the seconds covered."""
    out: dict[str, tuple[Any, Any]] = {}
    first: float | None = None
    last = 0.0
    for interval in read_hlog(path):
        pair = out.setdefault(interval.op, (new_histogram(), new_histogram()))
        if interval.histogram.get_total_count():
            pair[1 if interval.uncorrected else 0].add(interval.histogram)
        first = interval.start_s if first is None else min(first, interval.start_s)
        last = max(last, interval.end_s)
    return out, (last - first) if first is not None else 0.0


def _examples(samples: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Any, Any]]:
    """Per op, the (silent, error) examples last logged: entries carry them only on change."""
    out: dict[str, tuple[Any, Any]] = {}
    for sample in samples:
        for name, entry in (sample.get("ops") or {}).items():
            if isinstance(entry, list) and len(entry) >= 9:
                out[name] = (entry[7], entry[8])
    return out


def _ops(
    histograms: Mapping[str, tuple[Any, Any]],
    counters: Mapping[str, Any],
    examples: Mapping[str, tuple[Any, Any]],
    measured_s: float,
) -> dict[str, OpSummary]:
    ops: dict[str, OpSummary] = {}
    for name in [*histograms, *(n for n in counters if n not in histograms)]:
        corrected, uncorrected = histograms.get(name) or (new_histogram(), new_histogram())
        counted = counters.get(name)
        bytes_in = bytes_out = out_of_range = 0
        if isinstance(counted, list) and len(counted) >= 4:
            count, ok, errors, silent = counted[:4]
            if len(counted) >= 7:
                bytes_in, bytes_out, out_of_range = counted[4:7]
        else:
            # No counters logged: the answered calls are all that is known.
            count = ok = int(corrected.get_total_count())
            errors, silent = {}, {}
        silent_examples, error_examples = examples.get(name, ({}, {}))
        ops[name] = OpSummary(
            count=count,
            ok=ok,
            errors=dict(errors),
            silent=dict(silent),
            latency_us=Latency.of(corrected),
            hdr=encode_histogram(corrected),
            hdr_uncorrected=encode_histogram(uncorrected),
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            rate=round(count / measured_s, 3) if measured_s > 0 else 0.0,
            out_of_range=out_of_range,
            silent_examples=dict(silent_examples),
            error_examples=dict(error_examples),
            hlog_tag=name,
        )
    return ops


def _samples(rows: Sequence[Mapping[str, Any]]) -> list[Sample]:
    return [
        Sample(
            float(r["t"]),
            int(r["rss"]),
            r.get("fds"),
            r.get("threads"),
            r.get("sessions"),
            int(r.get("seg") or 0),
        )
        for r in rows
        if r.get("rss") is not None
    ]


def _server(record: HealthRecord) -> Server:
    rows = [r for r in record.samples if r.get("rss") is not None]
    header = record.header
    samples = _samples(rows)
    server: Server = {}
    if rows:
        server = {
            "rss_start_bytes": rows[0]["rss"],
            "rss_peak_bytes": max(r["rss"] for r in rows),
            "rss_end_bytes": rows[-1]["rss"],
            "cpu_s": rows[-1].get("cpu"),
            "fds_peak": max((r["fds"] for r in rows if r.get("fds") is not None), default=None),
            "threads_peak": max((r["threads"] for r in rows if r.get("threads") is not None), default=None),
            "samples": [[r["t"], r["rss"], r.get("cpu"), r.get("fds"), r.get("threads")] for r in rows],
            "sample_sessions": [r.get("sessions") for r in rows],
            "sample_segments": [r.get("seg") for r in rows],
        }
    counts: dict[str, int] = {}
    for event in record.events:
        counts[str(event.get("event"))] = counts.get(str(event.get("event")), 0) + 1
    measuring = next((e for e in record.events if e.get("event") == "measuring"), None)
    idle_event = next((e for e in record.events if e.get("event") == "idle"), None)
    idle = None
    if idle_event is not None:
        start = float(idle_event["t"])
        before = [s for s in samples if s.t <= start]
        idle = (
            start,
            before[-1] if before else None,
            samples[-1] if samples else None,
            samples[-1].t - start if samples else 0.0,
        )
    server["health"] = health_section(
        samples,
        sample_every_s=float(header.get("sample_every_s") or 1.0),
        warmup_s=float(header.get("warmup_s") or 0.0),
        per_session=bool(header.get("per_session", True)),
        watched=bool(rows),
        measure_start_s=float(measuring["t"]) if measuring else None,
        counts=counts,
        events=[e for e in record.events if e.get("event") in ("crash", "hang", "restart", "restart_failed")],
        idle=idle,
    )
    return server


def _generator(record: HealthRecord) -> Generator:
    rows = [(r["t"], r["gen_rss"]) for r in record.samples if r.get("gen_rss") is not None]
    if not rows:
        return {}
    return {
        "cpu_s": record.samples[-1].get("gen_cpu"),
        "rss_start_bytes": rows[0][1],
        "rss_peak_bytes": max(rss for _, rss in rows),
        "rss_end_bytes": rows[-1][1],
        "rss_samples": [list(row) for row in rows],
    }


def rebuild_document(directory: Path) -> RunDocument:
    """The run document of ``directory`` from its logs; :class:`UsageError` if it has none."""
    if not can_rebuild(directory):
        raise UsageError(f"{directory}: no run.json, and no interval or health logs to rebuild the run from")
    transports: dict[str, TransportSection] = {}
    started: str | None = None
    for transport in _transports(directory):
        record = read_health_log(health_log_path(directory, transport))
        started = started or record.header.get("started")
        histograms, measured_s = _read_hlog(hlog_path(directory, transport))
        counters = (record.samples[-1].get("ops") or {}) if record.samples else {}
        transports[transport] = TransportSection(
            negotiated_protocol_version=None,
            sessions=Sessions(opened=max((r.get("sessions") or 0 for r in record.samples), default=0)),
            ops=_ops(histograms, counters, _examples(record.samples), measured_s),
            server=_server(record),
            generator=_generator(record),
            measured_s=round(measured_s, 3),
            setup=record.setup,
        )
    return RunDocument(
        meta={"started": started, "ended": None},
        scenario={"name": directory.name},
        transports=transports,
        totals=totals_of(transports),
        partial=PARTIAL_NOTE,
    )


def rebuild_run(directory: Path) -> dict[str, Any]:
    """:func:`rebuild_document` as JSON (run.json's shape, marked ``partial``)."""
    return rebuild_document(directory).to_json()
